//! Property tests of the media channel (PROTOCOL.md 9.1): split and reassembly round
//! trip, the latest-frame queue's bounds and decodability rule, the media window under
//! any mix of media, chat and acknowledgements, and a receiver fed arbitrary bytes.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rescue_proto::session::frame::{Frame, FrameKind, HEADER_LEN, MAX_PAYLOAD};
use rescue_proto::session::media::{FRAGMENT_HEADER_LEN, MAX_MEDIA_FRAME};
use rescue_proto::session::media_queue::{FrameQueue, QueueLimits};
use rescue_proto::session::media_stream::{
    feed, split, MediaFrame, MediaReceiver, MediaSender, NumberedFrame, MEDIA_WINDOW,
};
use rescue_proto::session::reliable::Config;
use rescue_proto::session::{PathId, Reliable, Role, CHAT, MEDIA};

fn media_frame(keyframe: bool, len: usize, seed: u8) -> MediaFrame {
    MediaFrame {
        keyframe,
        capture_us: u64::from(seed) * 33_333,
        data: Bytes::from((0..len).map(|i| (i as u8) ^ seed).collect::<Vec<_>>()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every frame comes back whole, in order, whatever its size.
    #[test]
    fn split_then_reassemble_is_identity(
        frames in prop::collection::vec((any::<bool>(), 1usize..200_000), 1..8)
    ) {
        let now = Instant::now();
        let mut r = MediaReceiver::new();
        let mut got = Vec::new();
        for (i, (k, len)) in frames.iter().enumerate() {
            // The first frame is a keyframe, or the receiver rightly drops it.
            let f = NumberedFrame { frame_no: i as u32, frame: media_frame(*k || i == 0, *len, i as u8) };
            for frag in split(&f) {
                prop_assert!(frag.len() <= MAX_PAYLOAD);
                if let Some(out) = r.handle(now, &frag).unwrap() {
                    got.push(out);
                }
            }
            prop_assert!(r.reassembly_bytes() == 0);
        }
        prop_assert_eq!(got.len(), frames.len());
        for (i, g) in got.iter().enumerate() {
            prop_assert_eq!(g.frame.data.len(), frames[i].1);
            prop_assert_eq!(g.frame_no, i as u32);
        }
    }

    /// Whatever is pushed and when: the bounds hold, and every delta frame that comes
    /// out directly follows the frame that came out before it (it stays decodable).
    #[test]
    fn queue_bounds_and_decodability(
        ops in prop::collection::vec((any::<bool>(), 1usize..3000, 0u64..80, any::<bool>()), 1..300)
    ) {
        let limits = QueueLimits { max_age: Duration::from_millis(100), max_bytes: 20_000, max_frames: 16 };
        let mut q = FrameQueue::new(limits);
        let t0 = Instant::now();
        let mut now = t0;
        let mut last_out: Option<u32> = None;
        for (no, (key, len, dt, pop)) in ops.into_iter().enumerate() {
            now += Duration::from_millis(dt);
            let f = NumberedFrame { frame_no: no as u32, frame: media_frame(key, len, 0) };
            q.push(now, f);
            let (n, b) = q.len();
            prop_assert!(n <= limits.max_frames && b <= limits.max_bytes);
            if pop {
                if let Some(f) = q.pop(now) {
                    if !f.frame.keyframe {
                        prop_assert_eq!(Some(f.frame_no.wrapping_sub(1)), last_out, "delta after a gap");
                    }
                    last_out = Some(f.frame_no);
                }
            }
        }
    }

    /// However media, chat and acknowledgements interleave, the core never holds more
    /// than one media window plus one frame, and a chat message is the next frame out.
    #[test]
    fn media_window_holds_and_chat_goes_first(
        ops in prop::collection::vec((0u8..3, 1usize..150_000), 1..60)
    ) {
        let now = Instant::now();
        let mut core = Reliable::new(Role::Applet, Config::default(), now);
        core.on_path_up(now, PathId(1)).unwrap();
        let mut peer = Reliable::new(Role::Console, Config::default(), now);
        peer.on_path_up(now, PathId(1)).unwrap();
        let mut sender = MediaSender::new(QueueLimits::default());
        let mut i = 0u32;
        let largest = |len: usize| len + len.div_ceil(MAX_PAYLOAD - FRAGMENT_HEADER_LEN) * (HEADER_LEN + FRAGMENT_HEADER_LEN);
        let mut max_len = 0;
        for (op, len) in ops {
            match op {
                0 => {
                    i += 1;
                    max_len = max_len.max(len);
                    sender.push(now, media_frame(i % 5 == 1, len, i as u8)).unwrap();
                    feed(now, &mut sender, &mut core).unwrap();
                    prop_assert!(core.buffered().0 <= MEDIA_WINDOW + largest(max_len));
                }
                1 => {
                    core.send(CHAT, Bytes::from_static(b"consent?")).unwrap();
                    let mut out = BytesMut::new();
                    let mut first_data = None;
                    while core.poll_transmit(now, PathId(1), &mut out) {
                        let f = Frame::decode(&out.split().freeze()).unwrap();
                        if f.kind == FrameKind::Data && first_data.is_none() {
                            first_data = Some(f.channel);
                        }
                        let mut again = BytesMut::new();
                        f.encode(&mut again);
                        peer.handle_frame(now, PathId(1), again.freeze()).unwrap();
                    }
                    prop_assert_eq!(first_data, Some(CHAT));
                }
                _ => {
                    // Everything goes out; the peer acknowledges; media flows again.
                    let mut out = BytesMut::new();
                    while core.poll_transmit(now, PathId(1), &mut out) {
                        peer.handle_frame(now, PathId(1), out.split().freeze()).unwrap();
                    }
                    let later = now + Duration::from_millis(25);
                    peer.handle_timeout(later).unwrap();
                    while peer.poll_transmit(later, PathId(1), &mut out) {
                        core.handle_frame(now, PathId(1), out.split().freeze()).unwrap();
                    }
                    while let Some(e) = peer.poll_event() {
                        if let rescue_proto::session::Event::Data { channel, .. } = e {
                            prop_assert!(channel == CHAT || channel == MEDIA);
                        }
                    }
                }
            }
        }
    }

    /// Arbitrary media payloads never panic and never hold more than one frame's limit.
    #[test]
    fn receiver_survives_arbitrary_input(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..50)) {
        let now = Instant::now();
        let mut r = MediaReceiver::new();
        for m in msgs {
            let _ = r.handle(now, &Bytes::from(m));
            prop_assert!(r.reassembly_bytes() <= MAX_MEDIA_FRAME);
        }
    }
}
