//! Path changes: cut the path abruptly mid-file, give both sessions a new path, and the
//! file finishes with matching digests while chat sent around the cut arrives exactly
//! once and in order; a graceful switch to a second path loses nothing either.

mod session_support;

use std::time::Duration;

use rescue::session::{ConsentAnswer, PathKind, SessionEvent};
use rescue_proto::Permission;
use session_support::*;

fn chats<T>(evs: &mut Vec<String>, e: SessionEvent) -> Option<T> {
    if let SessionEvent::Chat { text } = e {
        evs.push(text);
    }
    None
}

#[tokio::test]
async fn abrupt_cut_mid_file_resumes_with_nothing_lost_or_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec, Duration::from_secs(5))
        .downloads(dir.path())
        .start();
    let g = p.console.request(Permission::FileTransfer).await.unwrap();
    let data = content(2_000_000, None);
    let (reader, gate) = GatedReader::new(data.clone(), 700_000);
    p.console
        .send_file(reader, "f.bin", 2_000_000, &g)
        .await
        .unwrap();
    let mut got_a = Vec::new();
    let mut got_c = Vec::new();
    for i in 0..5 {
        p.console.chat(&format!("c{i}")).await.unwrap();
        p.applet.chat(&format!("a{i}")).await.unwrap();
    }
    // Mid-file: the receiver has part of it.
    wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::FileProgress { done, .. } if done > 0 => Some(()),
        e => chats(&mut got_a, e),
    })
    .await;
    p.wire.cut();
    for i in 5..10 {
        p.console.chat(&format!("c{i}")).await.unwrap();
        p.applet.chat(&format!("a{i}")).await.unwrap();
    }
    wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::PathLost { .. } => Some(()),
        e => chats(&mut got_a, e),
    })
    .await;
    let mut wire = Wire::new();
    p.applet
        .add_path(wire.applet.take().unwrap(), PathKind::Relay)
        .await
        .unwrap();
    p.console
        .add_path(wire.console.take().unwrap(), PathKind::DirectTcp)
        .await
        .unwrap();
    let _ = gate.send(());
    for i in 10..15 {
        p.console.chat(&format!("c{i}")).await.unwrap();
        p.applet.chat(&format!("a{i}")).await.unwrap();
    }
    let file = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("failed: {reason}"),
        e => chats(&mut got_a, e),
    })
    .await;
    assert_eq!(file.digests, digests(&data));
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    wait_for(&mut p.console_events, |e| match e {
        SessionEvent::FileSent { .. } => Some(()),
        SessionEvent::FileFailed { reason, .. } => panic!("failed: {reason}"),
        e => chats(&mut got_c, e),
    })
    .await;
    // Every chat line exactly once, in order, on both sides.
    while got_a.len() < 15 {
        wait_for(&mut p.applet_events, |e| match e {
            SessionEvent::Chat { text } => {
                got_a.push(text);
                Some(())
            }
            _ => None,
        })
        .await;
    }
    while got_c.len() < 15 {
        wait_for(&mut p.console_events, |e| match e {
            SessionEvent::Chat { text } => {
                got_c.push(text);
                Some(())
            }
            _ => None,
        })
        .await;
    }
    let want = |pre: &str| (0..15).map(|i| format!("{pre}{i}")).collect::<Vec<_>>();
    assert_eq!(got_a, want("c"));
    assert_eq!(got_c, want("a"));
    assert_eq!(p.console.path().map(|i| i.kind), Some(PathKind::DirectTcp));
    // Nothing more arrives: no duplicate after the last one.
    p.console.chat("last").await.unwrap();
    let next = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(next, "last");
}

#[tokio::test]
async fn graceful_switch_to_a_new_path_keeps_order() {
    let mut p = Setup::new(policy(&[], false)).start();
    for i in 0..50 {
        p.console.chat(&format!("m{i}")).await.unwrap();
    }
    let mut wire = Wire::new();
    let (a, c) = (wire.applet.take().unwrap(), wire.console.take().unwrap());
    p.console.add_path(c, PathKind::DirectTcp).await.unwrap();
    p.applet.add_path(a, PathKind::DirectTcp).await.unwrap();
    for i in 50..100 {
        p.console.chat(&format!("m{i}")).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        wait_for(&mut p.applet_events, |e| match e {
            SessionEvent::Chat { text } => {
                got.push(text);
                Some(())
            }
            _ => None,
        })
        .await;
    }
    assert_eq!(got, (0..100).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // The old path retires once both SWITCH markers crossed: cutting it changes nothing.
    p.wire.cut();
    p.applet.chat("after").await.unwrap();
    let t = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "after");
    assert_eq!(p.applet.path().map(|i| i.kind), Some(PathKind::DirectTcp));
}
