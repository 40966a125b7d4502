//! Unit tests of the reliable core: limits and typed errors on bad peer input.

use super::*;
use crate::session::channels::{CHAT, FILE};

fn pair() -> (Reliable, Reliable, Instant) {
    let now = Instant::now();
    let mut a = Reliable::new(Role::Applet, Config::default(), now);
    let mut b = Reliable::new(Role::Console, Config::default(), now);
    a.on_path_up(now, PathId(1)).unwrap();
    b.on_path_up(now, PathId(1)).unwrap();
    (a, b, now)
}

/// Moves every frame between `a` and `b` on path 1 until both are quiet.
fn pump(a: &mut Reliable, b: &mut Reliable, now: Instant) -> Result<(), SessionError> {
    while one_way(a, b, now)? | one_way(b, a, now)? {}
    Ok(())
}

fn one_way(from: &mut Reliable, to: &mut Reliable, now: Instant) -> Result<bool, SessionError> {
    let mut out = BytesMut::new();
    let mut moved = false;
    while from.poll_transmit(now, PathId(1), &mut out) {
        to.handle_frame(now, PathId(1), out.split().freeze())?;
        moved = true;
    }
    Ok(moved)
}

fn raw(kind: FrameKind, channel: ChannelId, seq: u64, ack: u64, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_parts(kind, channel, seq, ack, payload, &mut out);
    out.freeze()
}

#[test]
fn silent_peer_fills_buffer_then_backpressure_then_stall_error() {
    let (mut a, _b, now) = pair();
    let chunk = Bytes::from(vec![0u8; 60_000]);
    let mut sent = 0;
    while a.send(FILE, chunk.clone()).is_ok() {
        sent += 1;
    }
    assert_eq!(a.send(FILE, chunk.clone()), Err(SendError::Backpressure));
    assert!(sent * 60_000 <= MAX_BUFFER_BYTES);
    // Control still fits in the reserve.
    assert_eq!(a.send(CHAT, Bytes::from_static(b"hello")), Ok(()));
    let mut out = BytesMut::new();
    while a.poll_transmit(now, PathId(1), &mut out) {}
    let t = now + Duration::from_secs(31);
    // The peer keeps the path alive with PINGs but never acknowledges.
    a.handle_frame(t, PathId(1), raw(FrameKind::Ping, 0, 0, 0, &[0; 8]))
        .unwrap();
    assert_eq!(a.handle_timeout(t), Err(SessionError::PeerStalled));
    assert!(a.is_closed());
}

#[test]
fn ack_frees_buffer_and_signals_writable() {
    let (mut a, mut b, now) = pair();
    let chunk = Bytes::from(vec![0u8; 60_000]);
    while a.send(FILE, chunk.clone()).is_ok() {}
    pump(&mut a, &mut b, now).unwrap();
    b.handle_timeout(now + Duration::from_millis(25)).unwrap();
    pump(&mut a, &mut b, now).unwrap();
    assert_eq!(a.buffered(), (0, 0));
    assert!(std::iter::from_fn(|| a.poll_event()).any(|e| e == Event::Writable));
}

#[test]
fn bad_peer_input_is_a_typed_error() {
    let cases: [(Bytes, SessionError); 3] = [
        (
            raw(FrameKind::Ack, 0, 0, 5, &[]),
            SessionError::AckOutOfRange {
                ack: 5,
                next_seq: 0,
            },
        ),
        (
            raw(FrameKind::Data, 7, 0, 0, b"x"),
            SessionError::UnknownChannel(7),
        ),
        (
            raw(FrameKind::Data, 1, 5000, 0, b"x"),
            SessionError::WindowExceeded,
        ),
    ];
    for (bytes, want) in cases {
        let (_, mut b, now) = pair();
        assert_eq!(b.handle_frame(now, PathId(1), bytes), Err(want));
        assert_eq!(
            b.handle_frame(now, PathId(1), raw(FrameKind::Ack, 0, 0, 0, &[])),
            Err(SessionError::Failed)
        );
    }
}

#[test]
fn resume_for_discarded_frames_is_fatal_but_stale_resume_is_not() {
    let (mut a, mut b, now) = pair();
    a.send(CHAT, Bytes::from_static(b"1")).unwrap();
    pump(&mut a, &mut b, now).unwrap();
    b.handle_timeout(now + Duration::from_millis(25)).unwrap();
    pump(&mut a, &mut b, now).unwrap();
    assert_eq!(a.buffered(), (0, 0));
    // On another path a RESUME{0} may be older than the ACK{1} seen on path 1: stale.
    a.on_path_up(now, PathId(2)).unwrap();
    let stale = raw(FrameKind::Resume, 0, 0, 0, &[]);
    assert_eq!(a.handle_frame(now, PathId(2), stale.clone()), Ok(()));
    // On path 1, where the peer already acknowledged 1, it is a peer that lost state.
    let r = a.handle_frame(now, PathId(1), stale);
    assert_eq!(
        r,
        Err(SessionError::ResumeUnavailable {
            requested: 0,
            oldest: 1
        })
    );
}

#[test]
fn frame_on_closed_channel_is_rejected_not_fatal() {
    let (mut a, mut b, now) = pair();
    let ch = a.open_channel("x").unwrap();
    pump(&mut a, &mut b, now).unwrap();
    b.send(ch, Bytes::from_static(b"late")).unwrap();
    a.close_channel(ch).unwrap();
    pump(&mut a, &mut b, now).unwrap();
    let ev: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(ev.contains(&Event::Rejected {
        channel: ch,
        error: ChannelError::Closed
    }));
    assert_eq!(b.send(ch, Bytes::new()), Err(SendError::ChannelNotOpen));
}

#[test]
fn silent_path_dies_after_three_keepalives() {
    let (mut a, _b, now) = pair();
    let mut t = now;
    let mut pings = 0;
    while !a.paths.is_empty() {
        t = a.poll_timeout().unwrap();
        a.handle_timeout(t).unwrap();
        let mut out = BytesMut::new();
        while a.poll_transmit(t, PathId(1), &mut out) {
            pings +=
                usize::from(Frame::decode(&out.split().freeze()).unwrap().kind == FrameKind::Ping);
        }
    }
    assert_eq!(t, now + Config::default().path_dead_after);
    assert!(pings >= 2);
    let lost = Event::PathLost {
        path: PathId(1),
        reason: PathLossReason::KeepaliveTimeout,
    };
    assert!(std::iter::from_fn(|| a.poll_event()).any(|e| e == lost));
}

#[test]
fn end_goes_out_despite_full_buffer_and_closes_both() {
    let (mut a, mut b, now) = pair();
    while a.send(FILE, Bytes::from(vec![0u8; 60_000])).is_ok() {}
    a.end(EndReason::EndUser);
    assert_eq!(a.send(CHAT, Bytes::new()), Err(SendError::Ended));
    pump(&mut a, &mut b, now).unwrap();
    let eb: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
    assert!(eb.contains(&Event::Ended {
        reason: EndReason::EndUser,
        by_peer: true
    }));
    assert!(eb.contains(&Event::Closed));
    assert!(a.is_closed() && b.is_closed());
}

/// Everything `from` transmits on path 1 now, decoded.
fn drain_frames(from: &mut Reliable, now: Instant) -> Vec<Frame> {
    let mut out = BytesMut::new();
    while from.poll_transmit(now, PathId(1), &mut out) {}
    let mut frames = Vec::new();
    while !out.is_empty() {
        let len = HEADER_LEN + u32::from_be_bytes([out[19], out[20], out[21], out[22]]) as usize;
        frames.push(Frame::decode(&out.split_to(len).freeze()).unwrap());
    }
    frames
}

#[test]
fn a_fatal_error_sends_one_end_so_the_peer_fails_at_once() {
    let (mut a, mut b, now) = pair();
    a.send(CHAT, Bytes::from_static(b"before")).unwrap();
    pump(&mut a, &mut b, now).unwrap();
    while b.poll_event().is_some() {}
    // `a` sends an ACK for a frame `b` never sent: `b` fails.
    let bad = raw(FrameKind::Ack, 0, 0, 9, &[]);
    assert!(matches!(
        b.handle_frame(now, PathId(1), bad),
        Err(SessionError::AckOutOfRange { .. })
    ));
    assert!(b.is_closed());
    b.send(CHAT, Bytes::from_static(b"after")).unwrap_err();
    let frames = drain_frames(&mut b, now);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].end_reason(), Some(EndReason::ProtocolError));
    assert_eq!(drain_frames(&mut b, now), vec![], "the END goes out once");
    let mut end = BytesMut::new();
    frames[0].encode(&mut end);
    a.handle_frame(now, PathId(1), end.freeze()).unwrap();
    let ev: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(ev.contains(&Event::Ended {
        reason: EndReason::ProtocolError,
        by_peer: true
    }));
}

#[test]
fn a_stream_the_splitter_refuses_is_fatal_not_a_lost_path() {
    let (_, mut b, now) = pair();
    assert_eq!(
        b.on_bad_frame(PathId(1), FrameError::Oversize(70_000)),
        Err(SessionError::Frame(FrameError::Oversize(70_000)))
    );
    assert!(b.is_closed());
    let frames = drain_frames(&mut b, now);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].end_reason(), Some(EndReason::ProtocolError));
    // A path that is not up is ignored, like its frames.
    let (_, mut c, _) = pair();
    assert_eq!(
        c.on_bad_frame(PathId(9), FrameError::UnknownKind(0x7f)),
        Ok(())
    );
    assert!(!c.is_closed());
}

#[test]
fn a_stalled_peer_is_told_with_end_timeout_and_no_end_follows_an_end() {
    let (mut a, _b, now) = pair();
    a.send(CHAT, Bytes::from_static(b"x")).unwrap();
    drain_frames(&mut a, now);
    let t = now + STALL_TIMEOUT + Duration::from_secs(1);
    a.handle_frame(t, PathId(1), raw(FrameKind::Ping, 0, 0, 0, &[0; 8]))
        .unwrap();
    assert_eq!(a.handle_timeout(t), Err(SessionError::PeerStalled));
    let frames = drain_frames(&mut a, t);
    let ends: Vec<_> = frames.iter().filter_map(Frame::end_reason).collect();
    assert_eq!(ends, vec![EndReason::Timeout]);
    // A side that already sent its END owes no second one.
    let (mut a, _b, now) = pair();
    a.end(EndReason::EndUser);
    let ends = drain_frames(&mut a, now)
        .iter()
        .filter_map(Frame::end_reason)
        .count();
    assert_eq!(ends, 1);
    let bad = raw(FrameKind::Ack, 0, 0, 9, &[]);
    assert!(a.handle_frame(now, PathId(1), bad).is_err());
    assert_eq!(drain_frames(&mut a, now), vec![]);
}
