//! Verified file transfer through the public API: both digests checked before success,
//! a corrupted file rejected and its partial file removed, cancel on revoke and end.

mod session_support;

use std::time::Duration;

use rescue::session::{ConsentAnswer, Grant, SessionEvent};
use rescue_proto::Permission;
use session_support::*;

async fn granted(p: &Pair) -> Grant {
    p.console.request(Permission::FileTransfer).await.unwrap()
}

fn setup(dir: &std::path::Path) -> Setup {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec, Duration::from_secs(5))
        .downloads(dir)
}

#[tokio::test]
async fn file_arrives_verified_with_md5_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = setup(dir.path()).start();
    let g = granted(&p).await;
    let data = content(3 * 1024 * 1024 + 123, None);
    let want = digests(&data);
    let id = p
        .console
        .send_file(
            std::io::Cursor::new(data.clone()),
            "report.bin",
            data.len() as u64,
            &g,
        )
        .await
        .unwrap();
    let mut last_progress = 0;
    let file = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::FileProgress { done, .. } => {
            assert!(done >= last_progress);
            last_progress = done;
            None
        }
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("failed: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(last_progress, data.len() as u64);
    assert_eq!(file.digests, want);
    assert_eq!(file.name, "report.bin");
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    let sent = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::FileSent { id: i, digests } => Some((i, digests)),
        SessionEvent::FileFailed { reason, .. } => panic!("failed: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(sent, (id, want));
    assert_eq!(wait_entries(dir.path(), 1).await, ["report.bin"]);
}

#[tokio::test]
async fn corrupted_file_is_rejected_and_no_partial_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"rescue-corrupt-me-0123456789abcdef".to_vec();
    let (a, c, task) = corrupting_wire(marker.clone());
    let mut p = setup(dir.path()).start_on(a, c, Wire::from_task(task));
    let g = granted(&p).await;
    let data = content(200_000, Some((&marker, 100_000)));
    p.console
        .send_file(
            std::io::Cursor::new(data.clone()),
            "x.bin",
            data.len() as u64,
            &g,
        )
        .await
        .unwrap();
    let reason = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::FileFailed { reason, .. } => Some(reason),
        SessionEvent::FileReceived { .. } => panic!("a corrupted file was accepted"),
        _ => None,
    })
    .await;
    assert!(reason.contains("digest"), "{reason}");
    wait_for(&mut p.console_events, |e| match e {
        SessionEvent::FileFailed { .. } => Some(()),
        SessionEvent::FileSent { .. } => panic!("sender told success"),
        _ => None,
    })
    .await;
    assert!(wait_entries(dir.path(), 0).await.is_empty());
    // The session goes on.
    p.console.chat("still here").await.unwrap();
    let t = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "still here");
}

#[tokio::test]
async fn revoking_mid_file_cancels_it_on_both_sides_and_removes_the_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = setup(dir.path()).start();
    let g = granted(&p).await;
    let data = content(1_000_000, None);
    let (reader, _gate) = GatedReader::new(data, 300_000); // never opens
    p.console
        .send_file(reader, "big.bin", 1_000_000, &g)
        .await
        .unwrap();
    wait_for(&mut p.applet_events, |e| {
        matches!(e, SessionEvent::FileOffered { .. }).then_some(())
    })
    .await;
    assert_eq!(wait_entries(dir.path(), 1).await.len(), 1); // the partial file
    p.applet.revoke(g.id()).await.unwrap();
    wait_for(&mut p.applet_events, |e| {
        matches!(e, SessionEvent::FileFailed { .. }).then_some(())
    })
    .await;
    wait_for(&mut p.console_events, |e| {
        matches!(e, SessionEvent::FileFailed { .. }).then_some(())
    })
    .await;
    assert!(wait_entries(dir.path(), 0).await.is_empty());
}

#[tokio::test]
async fn ending_mid_file_removes_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = setup(dir.path()).start();
    let g = granted(&p).await;
    let (reader, _gate) = GatedReader::new(content(500_000, None), 100_000);
    p.console
        .send_file(reader, "big.bin", 500_000, &g)
        .await
        .unwrap();
    wait_for(&mut p.applet_events, |e| {
        matches!(
            e,
            SessionEvent::FileProgress { .. } | SessionEvent::FileOffered { .. }
        )
        .then_some(())
    })
    .await;
    p.console.end();
    let evs = drain(&mut p.applet_events).await;
    assert!(
        evs.iter()
            .any(|e| matches!(e, SessionEvent::FileFailed { .. })),
        "{evs:?}"
    );
    assert!(wait_entries(dir.path(), 0).await.is_empty());
}

#[tokio::test]
async fn without_a_download_dir_offers_are_refused() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec, Duration::from_secs(5))
        .start();
    let g = granted(&p).await;
    p.console
        .send_file(&b"abc"[..], "a.txt", 3, &g)
        .await
        .unwrap();
    wait_for(&mut p.console_events, |e| match e {
        SessionEvent::FileFailed { .. } => Some(()),
        SessionEvent::FileSent { .. } => panic!("sent without a receiver"),
        _ => None,
    })
    .await;
    // A name that is not a plain file name is refused before anything is sent.
    assert!(p
        .console
        .send_file(&b"abc"[..], "../a.txt", 3, &g)
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_transfer_is_cancelled_and_its_partial_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = setup(dir.path()).start();
    let g = granted(&p).await;
    let (reader, _gate) = GatedReader::new(content(500_000, None), 100_000); // stalls
    p.console
        .send_file(reader, "stuck.bin", 500_000, &g)
        .await
        .unwrap();
    wait_for(&mut p.applet_events, |e| {
        matches!(e, SessionEvent::FileOffered { .. }).then_some(())
    })
    .await;
    // The idle timeout is the cause under test: let virtual time pass it.
    tokio::time::sleep(Duration::from_secs(121)).await;
    let reason = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::FileFailed { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("stalled"), "{reason}");
    wait_for(&mut p.applet_events, |e| {
        matches!(e, SessionEvent::FileFailed { .. }).then_some(())
    })
    .await;
    assert!(wait_entries(dir.path(), 0).await.is_empty());
    assert!(
        !p.applet.is_ended(),
        "a stalled file must not end the session"
    );
}
