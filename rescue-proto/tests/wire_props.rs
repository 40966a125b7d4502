//! Property tests of the gateway frames: every message round-trips, the decoder never
//! panics and never reserves past one frame, and chunking never changes the result.

use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use rescue_proto::codec::{GatewayCodec, RawFrame};
use rescue_proto::wire::frame::{FrameType, Header, MAX_FRAME_LEN, MAX_PAYLOAD};
use rescue_proto::wire::limits::{MAX_QUEUE_ENTRIES, MAX_TICKET_LEN};
use rescue_proto::wire::signal::*;
use rescue_proto::Guid;
use tokio_util::codec::{Decoder, Encoder};

fn guid() -> impl Strategy<Value = Guid> {
    any::<[u8; 16]>().prop_map(Guid::from_bytes)
}

fn secret() -> impl Strategy<Value = ResumeSecret> {
    any::<[u8; 32]>().prop_map(ResumeSecret::from_bytes)
}

fn text(max: usize, min: usize) -> impl Strategy<Value = String> {
    // Characters of any width the peer-text rule (PROTOCOL.md 1.3) lets through: no Cc,
    // no Cf (bidi, zero-width, invisible), no line or paragraph separator, no tag; the byte
    // bound is enforced by filtering.
    proptest::string::string_regex(&format!(
        "[^\\p{{Cc}}\\p{{Cf}}\\x{{2028}}\\x{{2029}}\\x{{E0000}}-\\x{{E007F}}]{{{min},{max}}}"
    ))
    .expect("valid regex")
    .prop_filter("byte bound", move |s| s.len() <= max)
}

fn role() -> impl Strategy<Value = Speaker> {
    prop_oneof![
        Just(Speaker::Peer(Role::Applet)),
        Just(Speaker::Peer(Role::Console)),
        Just(Speaker::Gateway)
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
    .prop_flat_map(|ip| any::<u16>().prop_map(move |port| SocketAddr::new(ip, port)))
}

fn paired() -> impl Strategy<Value = Paired> {
    prop_oneof![
        (any::<u64>(), text(128, 1)).prop_map(|(a, t)| Paired::ToApplet {
            account: AccountId(a),
            technician: TechnicianName::new(t).expect("bounded"),
        }),
        (guid(), secret()).prop_map(|(guid, resume_secret)| Paired::ToConsole {
            guid,
            resume_secret
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), role()).prop_map(|(version, role)| Message::Hello(Hello { version, role })),
        vec(any::<u8>(), 1..=MAX_TICKET_LEN)
            .prop_map(|t| Message::Register(Register::new(t).expect("bounded"))),
        (guid(), any::<u32>(), secret()).prop_map(|(guid, lifetime_secs, resume_secret)| {
            Message::Registered(Registered {
                guid,
                lifetime_secs,
                resume_secret,
            })
        }),
        Just(Message::Queue(Queue)),
        vec((guid(), any::<u32>()), 0..=MAX_QUEUE_ENTRIES).prop_map(|es| {
            let entries = es
                .into_iter()
                .map(|(guid, waiting_secs)| QueueEntry { guid, waiting_secs })
                .collect();
            Message::QueueList(QueueList::new(entries).expect("bounded"))
        }),
        guid().prop_map(|guid| Message::Claim(Claim { guid })),
        paired().prop_map(Message::Paired),
        vec(any::<u8>(), 1..2048).prop_map(|d| Message::Data(Bytes::from(d))),
        any::<u64>().prop_map(|nonce| Message::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Message::Pong(Pong { nonce })),
        any::<u32>().prop_map(|grace_secs| Message::PeerGone(PeerGone { grace_secs })),
        proptest::sample::select(CloseReason::ALL)
            .prop_map(|reason| Message::Close(Close { reason })),
        (proptest::sample::select(ErrorCode::ALL), text(128, 0)).prop_map(|(code, m)| {
            Message::Error(ErrorMessage {
                code,
                message: ErrorText::new(m).expect("bounded"),
            })
        }),
        (guid(), secret()).prop_map(|(guid, resume_secret)| Message::Reattach(Reattach {
            guid,
            resume_secret
        })),
        (guid(), secret(), any::<bool>()).prop_map(|(guid, resume_secret, paired)| {
            Message::Resumed(Resumed {
                guid,
                resume_secret,
                paired,
            })
        }),
        Just(Message::PeerBack(PeerBack)),
        Just(Message::Rendezvous(Rendezvous)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(t, port)| {
            Message::UdpToken(UdpToken {
                token: RendezvousToken::from_bytes(t),
                port,
            })
        }),
        socket_addr().prop_map(|addr| Message::PeerAddr(PeerAddr { addr })),
    ]
}

fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        GatewayCodec::new()
            .encode(m, &mut out)
            .expect("valid message");
    }
    out.to_vec()
}

/// Decodes `data` fed in the given chunk sizes (cycled); returns frames and whether an
/// error ended the stream. Checks the reservation bound after every call.
fn decode_chunked(data: &[u8], sizes: &[usize]) -> (Vec<RawFrame>, bool) {
    let mut codec = GatewayCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].clamp(1, data.len() - at);
        i += 1;
        buf.extend_from_slice(&data[at..at + n]);
        at += n;
        loop {
            let cap_before = buf.capacity();
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => {
                    // The decoder reserves for one frame at most; Vec-style growth may
                    // round up to twice the request.
                    assert!(buf.capacity() == cap_before || buf.capacity() <= 2 * MAX_FRAME_LEN);
                    break;
                }
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_header_round_trips(code in 1u8..=0x13, len in 0..=MAX_PAYLOAD) {
        let t = FrameType::from_code(code).expect("known");
        let h = Header::new(t, len).expect("in bounds");
        prop_assert_eq!(Header::parse(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn every_message_round_trips(msg in message()) {
        let mut out = Vec::new();
        msg.encode(&mut out).expect("valid message");
        prop_assert_eq!(out.len(), msg.frame_len());
        prop_assert_eq!(Message::decode_frame(&out), Ok(msg.clone()));
        let mut buf = BytesMut::from(&out[..]);
        let raw = GatewayCodec::new().decode(&mut buf).expect("valid").expect("complete");
        prop_assert_eq!(raw.message(), Ok(msg));
        prop_assert_eq!(raw.as_bytes().as_ref(), &out[..]);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in vec(any::<u8>(), 0..4096)) {
        let (frames, _) = decode_chunked(&data, &[data.len().max(1)]);
        for f in frames {
            let _ = f.message();
        }
        let _ = Message::decode_frame(&data);
    }

    #[test]
    fn a_header_alone_reserves_at_most_one_frame(head in any::<[u8; 4]>()) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&head);
        match GatewayCodec::new().decode(&mut buf) {
            // A fresh 4-byte buffer grows to exactly the frame, never past MAX_FRAME_LEN.
            Ok(None) => prop_assert!(buf.capacity() <= MAX_FRAME_LEN),
            Ok(Some(f)) => prop_assert_eq!(f.payload().len(), 0),
            Err(_) => prop_assert!(buf.capacity() <= 8),
        }
    }

    #[test]
    fn arbitrary_bytes_decode_the_same_in_any_chunking(
        data in vec(any::<u8>(), 0..2048),
        sizes in vec(1usize..64, 1..8),
    ) {
        prop_assert_eq!(decode_chunked(&data, &sizes), decode_chunked(&data, &[data.len().max(1)]));
    }

    #[test]
    fn a_stream_split_anywhere_decodes_the_same_frames(
        msgs in vec(message(), 1..6),
        split in any::<prop::sample::Index>(),
    ) {
        let data = encode_all(&msgs);
        let at = split.index(data.len() + 1);
        let whole = decode_chunked(&data, &[data.len()]);
        let mut codec = GatewayCodec::new();
        let mut buf = BytesMut::from(&data[..at]);
        let mut frames = Vec::new();
        while let Some(f) = codec.decode(&mut buf).expect("valid") { frames.push(f); }
        buf.extend_from_slice(&data[at..]);
        while let Some(f) = codec.decode(&mut buf).expect("valid") { frames.push(f); }
        prop_assert_eq!(&frames, &whole.0);
        let decoded: Vec<Message> = frames.iter().map(|f| f.message().expect("valid")).collect();
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn a_stream_fed_byte_by_byte_decodes_the_same_frames(msgs in vec(message(), 1..4)) {
        let data = encode_all(&msgs);
        let (frames, failed) = decode_chunked(&data, &[1]);
        prop_assert!(!failed);
        let decoded: Vec<Message> = frames.iter().map(|f| f.message().expect("valid")).collect();
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn fuzz_entry_points_hold_on_valid_and_arbitrary_input(
        msgs in vec(message(), 1..3),
        noise in vec(any::<u8>(), 0..256),
        chunk in any::<u8>(),
    ) {
        let mut data = encode_all(&msgs);
        rescue_proto::wire::signal::fuzz_decode_frame(&data[..msgs[0].frame_len()]);
        rescue_proto::wire::signal::fuzz_decode_frame(&noise);
        data.extend_from_slice(&noise);
        rescue_proto::codec::fuzz_decode_stream(&data, usize::from(chunk));
    }

    #[test]
    fn data_payloads_up_to_the_limit_are_framed(len in prop_oneof![Just(1usize), Just(MAX_PAYLOAD), 1..MAX_PAYLOAD]) {
        let payload = Bytes::from(vec![0xa5; len]);
        let mut out = BytesMut::new();
        GatewayCodec::new().encode(payload.clone(), &mut out).expect("in bounds");
        let raw = GatewayCodec::new().decode(&mut out).expect("valid").expect("complete");
        prop_assert_eq!(raw.payload(), payload);
    }
}

#[test]
fn an_oversize_data_payload_is_refused_by_the_encoder() {
    let mut out = BytesMut::new();
    let big = Bytes::from(vec![0; MAX_PAYLOAD + 1]);
    assert!(GatewayCodec::new().encode(big, &mut out).is_err());
    assert!(GatewayCodec::new().encode(Bytes::new(), &mut out).is_err());
    assert!(out.is_empty(), "nothing is written for a refused message");
}
