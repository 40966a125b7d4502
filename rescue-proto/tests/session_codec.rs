//! Property tests for every session encode/decode pair, and for decoders fed garbage.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rescue_proto::permission::{Permission, PermissionSet};
use rescue_proto::session::chat::{self, ChatError, MAX_CHAT_BYTES};
use rescue_proto::session::control::{ControlMsg, DenyReason};
use rescue_proto::session::file::{Digests, FileMsg, CHUNK_SIZE};
use rescue_proto::session::frame::{Frame, FrameKind};

fn permission() -> impl Strategy<Value = Permission> {
    (0u8..16).prop_map(|c| Permission::from_code(c).unwrap())
}

fn frame() -> impl Strategy<Value = Frame> {
    let any_u64 = any::<u64>();
    prop_oneof![
        (
            any::<u16>(),
            any_u64,
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..512)
        )
            .prop_map(|(c, s, a, p)| Frame::data(c, s, a, Bytes::from(p))),
        (16u16.., any::<u64>(), any::<u64>(), "[a-z]{1,64}").prop_map(|(c, s, a, l)| Frame {
            kind: FrameKind::Open,
            ..Frame::data(c, s, a, Bytes::from(l))
        }),
        (any::<u64>(), any::<u64>(), 0u8..5).prop_map(|(s, a, r)| Frame::control(
            FrameKind::End,
            s,
            a,
            Bytes::from(vec![r])
        )),
        (any::<u64>(), any::<u64>()).prop_map(|(s, a)| Frame::control(
            FrameKind::Switch,
            s,
            a,
            Bytes::new()
        )),
        any::<u64>().prop_map(|a| Frame::control(FrameKind::Resume, 0, a, Bytes::new())),
        (any::<u64>(), any::<u64>()).prop_map(|(a, t)| Frame::control(
            FrameKind::Ping,
            0,
            a,
            Bytes::copy_from_slice(&t.to_be_bytes())
        )),
    ]
}

fn control() -> impl Strategy<Value = ControlMsg> {
    prop_oneof![
        (any::<u32>(), permission()).prop_map(|(request_id, permission)| ControlMsg::Request {
            request_id,
            permission
        }),
        any::<u32>().prop_map(|request_id| ControlMsg::RequestAll { request_id }),
        (any::<u32>(), any::<u32>(), 1u32..0x8000).prop_map(|(request_id, grant_id, b)| {
            ControlMsg::Grant {
                request_id,
                grant_id,
                permissions: PermissionSet::from_bits(b).unwrap(),
            }
        }),
        (
            any::<u32>(),
            prop_oneof![
                Just(DenyReason::Policy),
                Just(DenyReason::User),
                Just(DenyReason::Timeout)
            ]
        )
            .prop_map(|(request_id, reason)| ControlMsg::Deny { request_id, reason }),
        any::<u32>().prop_map(|grant_id| ControlMsg::Revoke { grant_id }),
    ]
}

fn file_msg() -> impl Strategy<Value = FileMsg> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u64>(),
            "[a-zA-Z0-9][a-zA-Z0-9 _-]{0,30}[a-zA-Z0-9]\\.[a-z]{1,4}"
        )
            .prop_map(|(id, size, name)| FileMsg::Offer { id, size, name }),
        any::<u32>().prop_map(|id| FileMsg::Accept { id }),
        any::<u32>().prop_map(|id| FileMsg::Cancel { id }),
        (
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..CHUNK_SIZE.min(2048))
        )
            .prop_map(|(id, offset, d)| FileMsg::Chunk {
                id,
                offset,
                data: Bytes::from(d)
            }),
        (any::<u32>(), any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(|(id, md5, sha256)| {
            FileMsg::Done {
                id,
                digests: Digests { md5, sha256 },
            }
        }),
        (any::<u32>(), any::<bool>()).prop_map(|(id, ok)| FileMsg::Result { id, ok }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip(f in frame()) {
        let mut out = BytesMut::new();
        f.encode(&mut out);
        prop_assert_eq!(out.len(), f.encoded_len());
        prop_assert_eq!(Frame::decode(&out.freeze()), Ok(f));
    }

    #[test]
    fn control_round_trips(m in control()) {
        prop_assert_eq!(ControlMsg::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn file_messages_round_trip(m in file_msg()) {
        prop_assert_eq!(FileMsg::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn chat_round_trips_within_the_limit(s in "[\\PC&&[^\u{2028}\u{2029}]]{1,200}") {
        let p = chat::encode(&s).unwrap();
        prop_assert_eq!(chat::decode(&p), Ok(s.as_str()));
    }

    #[test]
    fn oversize_chat_is_refused(extra in 1usize..1000) {
        let s = "é".repeat((MAX_CHAT_BYTES + extra).div_ceil(2));
        prop_assert_eq!(chat::encode(&s), Err(ChatError::TooLong(s.len())));
        prop_assert_eq!(chat::decode(s.as_bytes()), Err(ChatError::TooLong(s.len())));
    }

    #[test]
    fn core_survives_streams_of_random_valid_frames(
        frames in proptest::collection::vec((frame(), 0u64..4, 0u64..4), 0..30)
    ) {
        let mut stream = BytesMut::new();
        for (mut f, seq, ack) in frames {
            // Small numbers so that frames are often in sequence and ACKs in range.
            f.seq = if f.kind.is_sequenced() { seq } else { f.seq };
            f.ack = ack;
            f.encode(&mut stream);
        }
        rescue_proto::session::fuzz_session(&stream);
    }

    #[test]
    fn decoders_never_panic_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = Bytes::from(b);
        rescue_proto::session::fuzz_session(&b);
        let _ = ControlMsg::decode(&b);
        let _ = FileMsg::decode(&b);
        let _ = chat::decode(&b);
    }
}
