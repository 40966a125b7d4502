//! Unit tests of the media stream ends: reassembly limits, the keyframe rule, requests.

use super::*;
use crate::session::channels::Role;
use crate::session::frame::{Frame, FrameKind};
use crate::session::reliable::{Config, Event, PathId};
use crate::session::CHAT;

fn frame(keyframe: bool, len: usize) -> MediaFrame {
    MediaFrame {
        keyframe,
        capture_us: 42,
        data: Bytes::from(vec![7u8; len]),
    }
}

fn sent_frames(s: &mut MediaSender, now: Instant) -> Vec<Vec<Bytes>> {
    std::iter::from_fn(|| s.poll_frame(now, |_, _| true)).collect()
}

#[test]
fn large_frame_is_split_and_reassembled() {
    let now = Instant::now();
    let mut s = MediaSender::new(QueueLimits::default());
    s.push(now, frame(true, 3 * MAX_FRAGMENT_DATA + 5)).unwrap();
    let frags = sent_frames(&mut s, now).remove(0);
    assert_eq!(frags.len(), 4);
    let mut r = MediaReceiver::new();
    let mut got = None;
    for (i, f) in frags.iter().enumerate() {
        let out = r.handle(now, f).unwrap();
        assert_eq!(out.is_some(), i == 3);
        got = got.or(out);
    }
    assert_eq!(got.unwrap().frame, frame(true, 3 * MAX_FRAGMENT_DATA + 5));
}

#[test]
fn stalled_reassembly_is_freed_and_asks_for_a_keyframe() {
    let now = Instant::now();
    let mut s = MediaSender::new(QueueLimits::default());
    s.push(now, frame(true, 2 * MAX_FRAGMENT_DATA)).unwrap();
    let frags = sent_frames(&mut s, now).remove(0);
    let mut r = MediaReceiver::new();
    assert_eq!(r.handle(now, &frags[0]), Ok(None));
    assert!(r.reassembly_bytes() > 0);
    assert_eq!(r.poll_timeout(), Some(now + REASSEMBLY_TIMEOUT));
    r.handle_timeout(now + REASSEMBLY_TIMEOUT);
    assert_eq!(r.reassembly_bytes(), 0);
    assert_eq!(r.stats().dropped, 1);
    let t = now + REASSEMBLY_TIMEOUT;
    assert_eq!(r.poll_transmit(t), Some(MediaMsg::KeyframeRequest.encode()));
    // The rest of the abandoned frame no longer fits anywhere: a violation.
    assert_eq!(r.handle(t, &frags[1]), Err(MediaError::OutOfOrder));
}

#[test]
fn interleaved_or_repeated_frames_are_violations() {
    let now = Instant::now();
    let mut s = MediaSender::new(QueueLimits::default());
    s.push(now, frame(true, 2 * MAX_FRAGMENT_DATA)).unwrap();
    s.push(now, frame(false, 10)).unwrap();
    let all = sent_frames(&mut s, now);
    let mut r = MediaReceiver::new();
    r.handle(now, &all[0][0]).unwrap();
    assert_eq!(r.handle(now, &all[1][0]), Err(MediaError::OutOfOrder));
    let mut r = MediaReceiver::new();
    r.handle(now, &all[0][0]).unwrap();
    r.handle(now, &all[0][1]).unwrap();
    assert!(matches!(
        r.handle(now, &all[0][0]),
        Err(MediaError::FrameNumber { .. })
    ));
    assert_eq!(
        r.handle(now, &MediaMsg::KeyframeRequest.encode()),
        Err(MediaError::Direction)
    );
}

#[test]
fn receiver_drops_deltas_after_a_loss_and_rate_limits_requests() {
    let now = Instant::now();
    let mut s = MediaSender::new(QueueLimits::default());
    for k in [true, false, false, true] {
        s.push(now, frame(k, 100)).unwrap();
    }
    let all = sent_frames(&mut s, now);
    let mut r = MediaReceiver::new();
    assert!(r.handle(now, &all[0][0]).unwrap().is_some());
    // The application could not take frame 0.
    r.on_lost();
    assert!(r.poll_transmit(now).is_some());
    assert!(r.handle(now, &all[1][0]).unwrap().is_none());
    assert!(r.handle(now, &all[2][0]).unwrap().is_none());
    assert_eq!(r.poll_transmit(now), None, "rate limited");
    assert_eq!(r.poll_timeout(), Some(now + KEYFRAME_REQUEST_INTERVAL));
    assert!(r.poll_transmit(now + KEYFRAME_REQUEST_INTERVAL).is_some());
    assert!(r.handle(now, &all[3][0]).unwrap().unwrap().frame.keyframe);
    assert_eq!(r.stats().dropped, 3);
}

#[test]
fn sender_numbers_drops_so_the_receiver_sees_gaps() {
    let now = Instant::now();
    let limits = QueueLimits {
        max_age: Duration::from_millis(100),
        ..QueueLimits::default()
    };
    let mut s = MediaSender::new(limits);
    s.push(now, frame(true, 10)).unwrap();
    s.push(now, frame(false, 10)).unwrap();
    let later = now + Duration::from_millis(150);
    s.push(later, frame(true, 10)).unwrap();
    let all = sent_frames(&mut s, later);
    assert_eq!(all.len(), 1, "the late pair was dropped");
    assert!(s.take_keyframe_wanted());
    let mut r = MediaReceiver::new();
    let f = r.handle(later, &all[0][0]).unwrap().unwrap();
    assert_eq!(f.frame_no, 2);
    // Frame numbers start at 0, so 0 and 1 are a gap of 2 only after a first frame.
    assert_eq!(s.stats().dropped, 2);
}

#[test]
fn feed_keeps_media_within_the_window_and_control_goes_first() {
    let now = Instant::now();
    let mut core = Reliable::new(Role::Applet, Config::default(), now);
    core.on_path_up(now, PathId(1)).unwrap();
    let mut s = MediaSender::new(QueueLimits::default());
    for i in 0..40 {
        s.push(now, frame(i % 10 == 0, 60_000)).unwrap();
    }
    let moved = feed(now, &mut s, &mut core).unwrap();
    assert!(moved > 0 && moved < 40, "moved {moved}");
    let (bytes, _) = core.buffered();
    assert!(
        bytes <= MEDIA_WINDOW + 60_000 + 2 * (HEADER_LEN + 22),
        "{bytes}"
    );
    core.send(CHAT, Bytes::from_static(b"hi")).unwrap();
    let mut out = BytesMut::new();
    // The RESUME of a new path, then the chat ahead of every media frame.
    assert!(core.poll_transmit(now, PathId(1), &mut out));
    out.clear();
    assert!(core.poll_transmit(now, PathId(1), &mut out));
    let f = Frame::decode(&out.split().freeze()).unwrap();
    assert_eq!((f.kind, f.channel), (FrameKind::Data, CHAT));
    // Nothing more goes in until the peer acknowledges.
    assert_eq!(feed(now, &mut s, &mut core).unwrap(), 0);
    assert!(core
        .poll_event()
        .is_some_and(|e| matches!(e, Event::PathActive { .. })));
}
