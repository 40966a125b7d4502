//! Direct TCP paths (issue 8) on one host, through a real gateway: the path manager finds
//! the applet's listener, the live session moves off the relay with nothing lost, falls
//! back to the relay when the direct path dies, and stays on the relay when direct paths
//! are off on either side.

mod common;
mod session_support;

use std::time::Duration;

use common::*;
use rescue::session::{
    ConsentAnswer, ConsentConfig, DirectConfig, DirectPolicy, PathInfo, PathKind, Session,
    SessionConfig, SessionEvent,
};
use rescue_proto::Permission;
use session_support::{content, digests, policy, wait_for, GatedReader, Recorder};
use tokio::sync::mpsc::Receiver;

struct Pair {
    applet: Session,
    console: Session,
    a_ev: Receiver<SessionEvent>,
    c_ev: Receiver<SessionEvent>,
    _dir: tempfile::TempDir,
}

/// A paired session through the gateway with the given direct-path settings.
async fn pair(setup: &Setup, a_direct: DirectConfig, c_direct: DirectConfig) -> Pair {
    let (a, c) = setup.session().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = policy(&[Permission::FileTransfer], false);
    let mut a_cfg = SessionConfig::applet(&a, pol);
    a_cfg.consent = Some(
        ConsentConfig::new(Recorder::new(Some(ConsentAnswer::Allow)))
            .with_timeout(Duration::from_secs(5)),
    );
    a_cfg.download_dir = Some(dir.path().to_owned());
    a_cfg.direct = a_direct;
    let mut c_cfg = SessionConfig::console(&c, pol);
    c_cfg.direct = c_direct;
    let mut applet = Session::start(a, PathKind::Relay, a_cfg);
    let mut console = Session::start(c, PathKind::Relay, c_cfg);
    let (a_ev, c_ev) = (applet.events().unwrap(), console.events().unwrap());
    Pair {
        applet,
        console,
        a_ev,
        c_ev,
        _dir: dir,
    }
}

/// Waits for the session to report its path as `kind`.
async fn path_becomes(ev: &mut Receiver<SessionEvent>, kind: PathKind) -> PathInfo {
    wait_for(ev, |e| match e {
        SessionEvent::PathChanged(info) if info.kind == kind => Some(info),
        _ => None,
    })
    .await
}

/// Direct paths after a delay, so that a test can start work on the relay first.
fn delayed(after: Duration) -> DirectConfig {
    DirectConfig {
        first_round_after: after,
        ..DirectConfig::default()
    }
}

#[tokio::test]
async fn a_transfer_in_flight_moves_to_direct_tcp_and_the_relay_goes_quiet() {
    let setup = Setup::start().await;
    let mut p = pair(
        &setup,
        delayed(Duration::from_secs(1)),
        DirectConfig::default(),
    )
    .await;
    let grant = p.console.request(Permission::FileTransfer).await.unwrap();
    let data = content(3_000_000, None);
    let (reader, gate) = GatedReader::new(data.clone(), 1_200_000);
    p.console
        .send_file(reader, "moved.bin", data.len() as u64, &grant)
        .await
        .unwrap();
    // The first part crosses the relay ...
    wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::FileProgress { done, .. } if done >= 1 << 20 => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(p.applet.path().map(|i| i.kind), Some(PathKind::Relay));
    // ... then both ends move to the applet's listener.
    path_becomes(&mut p.c_ev, PathKind::DirectTcp).await;
    path_becomes(&mut p.a_ev, PathKind::DirectTcp).await;
    let relayed_before = setup.tap.total();
    gate.send(()).unwrap();
    let file = wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data), "MD5 and SHA-256 match");
    assert_eq!(std::fs::read(&file.path).unwrap(), data, "each byte once");
    // The rest (1.8 MB) went direct: the gateway saw at most keepalives meanwhile.
    let relayed_after = setup.tap.total() - relayed_before;
    assert!(
        relayed_after < 64 * 1024,
        "the gateway still relayed {relayed_after} bytes after the switch"
    );
    assert!(
        relayed_before > 1 << 20,
        "the first MiB went over the relay ({relayed_before} bytes seen)"
    );
    assert_eq!(p.console.path().map(|i| i.kind), Some(PathKind::DirectTcp));
}

#[tokio::test]
async fn a_killed_direct_path_falls_back_to_the_relay_with_nothing_lost() {
    let setup = Setup::start().await;
    let mut p = pair(&setup, DirectConfig::default(), DirectConfig::default()).await;
    let direct = path_becomes(&mut p.c_ev, PathKind::DirectTcp).await;
    path_becomes(&mut p.a_ev, PathKind::DirectTcp).await;
    let grant = p.console.request(Permission::FileTransfer).await.unwrap();
    let data = content(3_000_000, Some((b"fallback", 2_000_000)));
    let (reader, gate) = GatedReader::new(data.clone(), 1_200_000);
    p.console
        .send_file(reader, "fallback.bin", data.len() as u64, &grant)
        .await
        .unwrap();
    wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::FileProgress { done, .. } if done >= 1 << 20 => Some(()),
        _ => None,
    })
    .await;
    p.console.chat("before the kill").await.unwrap();
    // The direct path dies under the transfer (as if the network dropped it).
    p.console.close_path(direct.id).await.unwrap();
    p.console.chat("after the kill").await.unwrap();
    path_becomes(&mut p.c_ev, PathKind::Relay).await;
    gate.send(()).unwrap();
    let mut chats = Vec::new();
    let file = wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::Chat { text } => {
            chats.push(text);
            None
        }
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data));
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    while chats.len() < 2 {
        let t = wait_for(&mut p.a_ev, |e| match e {
            SessionEvent::Chat { text } => Some(text),
            _ => None,
        })
        .await;
        chats.push(t);
    }
    assert_eq!(
        chats,
        ["before the kill", "after the kill"],
        "once each, in order"
    );
}

#[tokio::test]
async fn with_direct_paths_off_on_one_side_the_session_stays_relayed_and_quiet() {
    let setup = Setup::start().await;
    let quick = DirectConfig {
        tcp_window: Duration::from_millis(200),
        udp_window: Duration::from_millis(200),
        retry_base: Duration::from_millis(200),
        ..DirectConfig::default()
    };
    let off = DirectConfig {
        policy: DirectPolicy::Off,
        ..DirectConfig::default()
    };
    let mut p = pair(&setup, quick, off).await;
    // Several rounds of the applet's path manager come and go unanswered ...
    p.console.chat("one").await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, p.a_ev.recv()).await {
        match e {
            SessionEvent::Chat { text } => got.push(text),
            SessionEvent::PathChanged(info) => assert_eq!(info.kind, PathKind::Relay),
            other => panic!("unexpected event {other:?}"),
        }
    }
    // ... and the app sees nothing but its relayed path and its chat.
    assert_eq!(got, ["one"]);
    assert_eq!(p.applet.path().map(|i| i.kind), Some(PathKind::Relay));
    assert_eq!(p.console.path().map(|i| i.kind), Some(PathKind::Relay));
    p.applet.chat("still here").await.unwrap();
    let t = wait_for(&mut p.c_ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "still here");
}

#[tokio::test]
async fn the_session_goes_on_directly_when_the_gateway_goes_away() {
    let setup = Setup::start().await;
    let mut p = pair(&setup, DirectConfig::default(), DirectConfig::default()).await;
    path_becomes(&mut p.c_ev, PathKind::DirectTcp).await;
    path_becomes(&mut p.a_ev, PathKind::DirectTcp).await;
    let Setup { gateway, .. } = setup;
    within(gateway.shutdown()).await;
    // Both ends see their relay path go ...
    for ev in [&mut p.a_ev, &mut p.c_ev] {
        wait_for(ev, |e| match e {
            SessionEvent::PathLost { .. } => Some(()),
            SessionEvent::Ended { reason, .. } => panic!("the session ended: {reason:?}"),
            _ => None,
        })
        .await;
    }
    // ... and the session goes on over the direct path.
    p.console.chat("the gateway is gone").await.unwrap();
    let t = wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        SessionEvent::Ended { reason, .. } => panic!("the session ended: {reason:?}"),
        _ => None,
    })
    .await;
    assert_eq!(t, "the gateway is gone");
    p.applet.chat("still direct").await.unwrap();
    let t = wait_for(&mut p.c_ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        SessionEvent::Ended { reason, .. } => panic!("the session ended: {reason:?}"),
        _ => None,
    })
    .await;
    assert_eq!(t, "still direct");
    assert!(!p.applet.is_ended() && !p.console.is_ended());
    assert_eq!(p.applet.path().map(|i| i.kind), Some(PathKind::DirectTcp));
}

#[tokio::test]
async fn a_large_file_over_the_relay_arrives_while_the_console_has_direct_paths_on() {
    use tokio::io::AsyncReadExt;
    let setup = Setup::start().await;
    let off = DirectConfig {
        policy: DirectPolicy::Off,
        ..DirectConfig::default()
    };
    let mut p = pair(&setup, off, DirectConfig::default()).await;
    let grant = p.console.request(Permission::FileTransfer).await.unwrap();
    let bytes = 24u64 << 20;
    p.console
        .send_file(
            tokio::io::repeat(0x5a).take(bytes),
            "big.bin",
            bytes,
            &grant,
        )
        .await
        .unwrap();
    drop(std::mem::replace(
        &mut p.c_ev,
        tokio::sync::mpsc::channel(1).1,
    ));
    let file = wait_for(&mut p.a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.size, bytes);
}
