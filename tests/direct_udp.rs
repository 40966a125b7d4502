//! Direct UDP paths (issue 8) on one host through a real gateway: when no TCP path is
//! offered, the path manager runs the gateway's rendezvous, punches, binds XTCP end to
//! end, and the live session moves onto it with nothing lost.

mod common;
mod session_support;

use std::time::Duration;

use common::*;
use rescue::session::{
    ConsentAnswer, ConsentConfig, DirectConfig, DirectPolicy, PathKind, Session, SessionConfig,
    SessionEvent,
};
use rescue_proto::Permission;
use session_support::{content, digests, policy, wait_for, GatedReader, Recorder};

#[tokio::test]
async fn without_tcp_the_session_moves_to_direct_udp_with_nothing_lost() {
    let setup = Setup::start().await;
    let (a, c) = setup.session().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = policy(&[Permission::FileTransfer], false);
    let mut a_cfg = SessionConfig::applet(&a, pol);
    a_cfg.consent = Some(
        ConsentConfig::new(Recorder::new(Some(ConsentAnswer::Allow)))
            .with_timeout(Duration::from_secs(5)),
    );
    a_cfg.download_dir = Some(dir.path().to_owned());
    // The applet offers no TCP path (as behind a firewall that drops inbound TCP), and
    // starts looking after the transfer below began on the relay.
    a_cfg.direct = DirectConfig {
        policy: DirectPolicy::Udp,
        first_round_after: Duration::from_millis(800),
        ..DirectConfig::default()
    };
    let c_cfg = SessionConfig::console(&c, pol);
    let mut applet = Session::start(a, PathKind::Relay, a_cfg);
    let mut console = Session::start(c, PathKind::Relay, c_cfg);
    let (mut a_ev, mut c_ev) = (applet.events().unwrap(), console.events().unwrap());

    let grant = console.request(Permission::FileTransfer).await.unwrap();
    let data = content(2_500_000, Some((b"over udp", 2_000_000)));
    let (reader, gate) = GatedReader::new(data.clone(), 1_200_000);
    console
        .send_file(reader, "punched.bin", data.len() as u64, &grant)
        .await
        .unwrap();
    wait_for(&mut a_ev, |e| match e {
        SessionEvent::FileProgress { done, .. } if done >= 1 << 20 => Some(()),
        _ => None,
    })
    .await;
    for ev in [&mut c_ev, &mut a_ev] {
        wait_for(ev, |e| match e {
            SessionEvent::PathChanged(p) if p.kind != PathKind::Relay => Some(p.kind),
            _ => None,
        })
        .await;
    }
    assert_eq!(applet.path().map(|p| p.kind), Some(PathKind::DirectUdp));
    assert_eq!(console.path().map(|p| p.kind), Some(PathKind::DirectUdp));
    gate.send(()).unwrap();
    let file = wait_for(&mut a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data), "MD5 and SHA-256 match");
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    let stats = setup.gateway.stats();
    assert_eq!(
        stats.rendezvous.pairs_completed, 1,
        "{:?}",
        stats.rendezvous
    );
}

#[tokio::test]
async fn a_large_file_crosses_a_direct_udp_path() {
    use tokio::io::AsyncReadExt;
    let setup = Setup::start().await;
    let (a, c) = setup.session().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = policy(&[Permission::FileTransfer], false);
    let mut a_cfg = SessionConfig::applet(&a, pol);
    a_cfg.consent = Some(ConsentConfig::new(Recorder::new(Some(
        ConsentAnswer::Allow,
    ))));
    a_cfg.download_dir = Some(dir.path().to_owned());
    a_cfg.direct = DirectConfig {
        policy: DirectPolicy::Udp,
        ..DirectConfig::default()
    };
    let c_cfg = SessionConfig::console(&c, pol);
    let mut applet = Session::start(a, PathKind::Relay, a_cfg);
    let mut console = Session::start(c, PathKind::Relay, c_cfg);
    let mut a_ev = applet.events().unwrap();
    drop(console.events());
    wait_for(&mut a_ev, |e| match e {
        SessionEvent::PathChanged(p) if p.kind == PathKind::DirectUdp => Some(()),
        _ => None,
    })
    .await;
    let grant = console.request(Permission::FileTransfer).await.unwrap();
    let bytes = 24u64 << 20;
    console
        .send_file(
            tokio::io::repeat(0x5a).take(bytes),
            "big.bin",
            bytes,
            &grant,
        )
        .await
        .unwrap();
    let file = wait_for(&mut a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        SessionEvent::PathChanged(p) => panic!("path changed to {p:?}"),
        _ => None,
    })
    .await;
    assert_eq!(file.size, bytes);
}
