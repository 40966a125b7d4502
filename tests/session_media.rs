//! The camera stream on the session's media channel (PROTOCOL.md 9.1) over in-memory
//! paths: policy ∧ consent, frames whole and in order, stop by the end user, audit,
//! the latest-frame rule for a console that does not read, and chat never behind media.

mod session_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rescue::audit::{AuditError, AuditSink};
use rescue::session::{ConsentAnswer, MediaFrame, SessionError, SessionEvent};
use rescue_proto::audit::AuditEvent;
use rescue_proto::session::control::DenyReason;
use rescue_proto::Permission;
use session_support::*;

#[derive(Default)]
struct Events(Mutex<Vec<AuditEvent>>);

impl AuditSink for Events {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

fn frame(i: u64, len: usize) -> MediaFrame {
    MediaFrame {
        keyframe: i.is_multiple_of(30),
        capture_us: i * 33_333,
        data: Bytes::from(vec![(i % 251) as u8; len]),
    }
}

fn camera_pair(audit: Option<(Arc<Events>, Arc<Events>)>) -> Pair {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut s = Setup::new(policy(&[Permission::Camera], false)).consent(rec, WAIT);
    if let Some((a, c)) = audit {
        s = s.audit(a, c);
    }
    s.start()
}

#[tokio::test]
async fn camera_needs_policy_and_consent() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let p = Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec, WAIT)
        .start();
    let r = p.console.request(Permission::Camera).await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::Policy))),
        "{r:?}"
    );
    let r = p.applet.start_camera().await;
    assert!(matches!(r, Err(SessionError::Permission(_))), "{r:?}");

    let rec = Recorder::new(Some(ConsentAnswer::Deny));
    let p = Setup::new(policy(&[Permission::Camera], false))
        .consent(rec.clone(), WAIT)
        .start();
    assert!(p.console.request(Permission::Camera).await.is_err());
    assert_eq!(rec.calls().len(), 1, "the end user was asked");
    assert!(p.applet.start_camera().await.is_err());
}

#[tokio::test]
async fn frames_arrive_whole_in_order_and_stop_when_the_end_user_says_so() {
    let (a_log, c_log) = (Arc::new(Events::default()), Arc::new(Events::default()));
    let mut p = camera_pair(Some((a_log.clone(), c_log.clone())));
    let grant = p.console.request(Permission::Camera).await.unwrap();
    let mut stream = p.console.camera_stream(&grant).await.unwrap();
    let gid = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::PermissionGranted { grant_id, .. } => Some(grant_id),
        _ => None,
    })
    .await;
    let cam = p.applet.start_camera().await.unwrap();
    assert!(cam.keyframe_wanted(), "a new stream starts with a keyframe");
    // Larger than one session frame: split and reassembled.
    let sizes = [150_000, 3_000, 70_000, 10];
    for (i, len) in sizes.iter().enumerate() {
        let mut f = frame(i as u64, *len);
        f.keyframe = i == 0;
        cam.send(f).await.unwrap();
        // Paced like a camera, so nothing is late.
        let got = tokio::time::timeout(WAIT, stream.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.frame_no, i as u32);
        assert_eq!(got.frame.data.len(), *len);
        assert_eq!(got.frame.keyframe, i == 0);
        assert_eq!(got.frame.capture_us, i as u64 * 33_333);
    }
    // The end user stops the camera by revoking the grant.
    p.applet.revoke(gid).await.unwrap();
    assert!(tokio::time::timeout(WAIT, stream.recv())
        .await
        .unwrap()
        .is_none());
    let stopped = tokio::time::timeout(WAIT, async {
        while !cam.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "the sender learns the stream is over");
    assert!(cam.send(frame(9, 10)).await.is_err());
    let has = |log: &Events, f: &dyn Fn(&AuditEvent) -> bool| log.0.lock().unwrap().iter().any(f);
    assert!(has(
        &a_log,
        &|e| matches!(e, AuditEvent::CameraStarted { grant_id } if *grant_id == gid)
    ));
    assert!(has(&a_log, &|e| matches!(
        e,
        AuditEvent::CameraStopped { frames: 4, .. }
    )));
    assert!(has(&c_log, &|e| matches!(
        e,
        AuditEvent::CameraStopped { frames: 4, .. }
    )));
}

#[tokio::test]
async fn a_console_that_does_not_read_gets_the_latest_frames_and_chat_still_flows() {
    let mut p = camera_pair(None);
    let grant = p.console.request(Permission::Camera).await.unwrap();
    let mut stream = p.console.camera_stream(&grant).await.unwrap();
    let cam = p.applet.start_camera().await.unwrap();
    // 300 frames of 20 KB (6 MB) pushed at once, while nobody reads the stream.
    let total = 300u64;
    for i in 0..total {
        cam.send(frame(i, 20_000)).await.unwrap();
    }
    // Chat is not stuck behind the video.
    let t = Instant::now();
    p.applet.chat("can you see the router?").await.unwrap();
    let text = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(text, "can you see the router?");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "chat took {:?}",
        t.elapsed()
    );
    // Now read: what comes out is decodable (every delta directly follows the frame
    // before it) and much less than everything (late frames were dropped).
    let mut got = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(1500), stream.recv()).await {
        got.push(f);
    }
    assert!(!got.is_empty());
    assert!(got[0].frame.keyframe, "starts at a keyframe");
    for w in got.windows(2) {
        if !w[1].frame.keyframe {
            assert_eq!(w[1].frame_no, w[0].frame_no + 1, "delta after a gap");
        }
    }
    assert!(
        (got.len() as u64) < total,
        "nothing was dropped: {}",
        got.len()
    );
    assert!(
        cam.keyframe_wanted(),
        "drops ask the encoder for a keyframe"
    );
}
