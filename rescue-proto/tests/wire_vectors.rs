//! The gateway-layer test vectors of `PROTOCOL.md` sections 2 and 3: every message
//! encodes to exactly its vector and decodes from it; every prefix, every extension and
//! every `bad.*` vector is rejected.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::vectors::{names, vector};
use rescue_proto::wire::frame::{FrameError, FrameType, Header, MAX_PAYLOAD};
use rescue_proto::wire::signal::*;
use rescue_proto::Guid;
use tokio_util::codec::Decoder;

const DOC: &str = include_str!("../../PROTOCOL.md");

fn v(name: &str) -> Vec<u8> {
    vector(DOC, name).unwrap_or_else(|| panic!("vector {name} missing from PROTOCOL.md"))
}

fn guid() -> Guid {
    "0123abcd-4567-89ef-0011-223344556677"
        .parse()
        .expect("valid GUID")
}

fn seq<const N: usize>(start: u8) -> [u8; N] {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn secret(start: u8) -> ResumeSecret {
    ResumeSecret::from_bytes(seq(start))
}

/// Every valid vector with the message it must be.
fn expected() -> Vec<(&'static str, Message)> {
    vec![
        (
            "frame.hello.applet",
            Message::Hello(Hello {
                version: 1,
                role: Speaker::Peer(Role::Applet),
            }),
        ),
        (
            "frame.hello.gateway",
            Message::Hello(Hello {
                version: 1,
                role: Speaker::Gateway,
            }),
        ),
        (
            "frame.register",
            Message::Register(Register::new(b"ticket".to_vec()).expect("small")),
        ),
        (
            "frame.registered",
            Message::Registered(Registered {
                guid: guid(),
                lifetime_secs: 600,
                resume_secret: secret(0xa0),
            }),
        ),
        ("frame.queue", Message::Queue(Queue)),
        (
            "frame.queue_list",
            Message::QueueList(
                QueueList::new(vec![
                    QueueEntry {
                        guid: guid(),
                        waiting_secs: 90,
                    },
                    QueueEntry {
                        guid: Guid::from_bytes(seq::<16>(0).map(|b| 0xff - b * 0x11)),
                        waiting_secs: 7,
                    },
                ])
                .expect("short"),
            ),
        ),
        ("frame.claim", Message::Claim(Claim { guid: guid() })),
        (
            "frame.paired.to_applet",
            Message::Paired(Paired::ToApplet {
                account: AccountId(42),
                technician: TechnicianName::new("Ana").expect("valid"),
            }),
        ),
        (
            "frame.paired.to_console",
            Message::Paired(Paired::ToConsole {
                guid: guid(),
                resume_secret: secret(0xc0),
            }),
        ),
        ("frame.data", Message::Data(Bytes::from_static(b"hello"))),
        (
            "frame.ping",
            Message::Ping(Ping {
                nonce: 0x0102_0304_0506_0708,
            }),
        ),
        (
            "frame.pong",
            Message::Pong(Pong {
                nonce: 0x0102_0304_0506_0708,
            }),
        ),
        (
            "frame.peer_gone",
            Message::PeerGone(PeerGone { grace_secs: 30 }),
        ),
        (
            "frame.close",
            Message::Close(Close {
                reason: CloseReason::EndUser,
            }),
        ),
        (
            "frame.error",
            Message::Error(ErrorMessage {
                code: ErrorCode::GuidTaken,
                message: ErrorText::new("guid taken").expect("short"),
            }),
        ),
        (
            "frame.reattach",
            Message::Reattach(Reattach {
                guid: guid(),
                resume_secret: secret(0xa0),
            }),
        ),
        (
            "frame.resumed",
            Message::Resumed(Resumed {
                guid: guid(),
                resume_secret: secret(0xe0),
                paired: true,
            }),
        ),
        ("frame.peer_back", Message::PeerBack(PeerBack)),
        ("frame.rendezvous", Message::Rendezvous(Rendezvous)),
        (
            "frame.udp_token",
            Message::UdpToken(UdpToken {
                token: RendezvousToken::from_bytes(seq(0x10)),
                port: 3478,
            }),
        ),
        (
            "frame.peer_addr.v4",
            Message::PeerAddr(PeerAddr {
                addr: addr("192.0.2.1:50000"),
            }),
        ),
        (
            "frame.peer_addr.v6",
            Message::PeerAddr(PeerAddr {
                addr: addr("[2001:db8::1]:50000"),
            }),
        ),
    ]
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid address")
}

#[test]
fn every_message_encodes_to_its_vector() {
    for (name, msg) in expected() {
        let mut out = Vec::new();
        msg.encode(&mut out).expect("valid message");
        assert_eq!(out, v(name), "{name}");
        assert_eq!(out.len(), msg.frame_len(), "{name}");
    }
}

#[test]
fn every_vector_decodes_to_its_message() {
    for (name, msg) in expected() {
        assert_eq!(Message::decode_frame(&v(name)), Ok(msg.clone()), "{name}");
        let mut buf = BytesMut::from(&v(name)[..]);
        let raw = GatewayCodec::new()
            .decode(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!(raw.message(), Ok(msg), "{name} through the codec");
        assert!(buf.is_empty());
    }
}

#[test]
fn every_frame_type_has_a_vector() {
    let types: Vec<FrameType> = expected().iter().map(|(_, m)| m.frame_type()).collect();
    for t in FrameType::ALL {
        assert!(types.contains(&t), "{t:?} has no vector");
    }
    let listed: Vec<&str> = names(DOC)
        .filter(|n| n.starts_with("frame.") && *n != "frame.header.max")
        .collect();
    assert_eq!(
        listed.len(),
        expected().len(),
        "every frame.* vector in PROTOCOL.md is checked"
    );
}

#[test]
fn every_prefix_of_a_vector_is_truncated() {
    for (name, _) in expected() {
        let bytes = v(name);
        for cut in 0..bytes.len() {
            let err = Message::decode_frame(&bytes[..cut]).expect_err(name);
            assert!(
                matches!(err, SignalError::Frame(FrameError::Truncated { .. })),
                "{name}[..{cut}]: {err:?}"
            );
        }
    }
}

#[test]
fn a_longer_payload_is_rejected_as_trailing_bytes() {
    for (name, msg) in expected() {
        if msg.frame_type() == FrameType::Data {
            continue; // DATA has no fields: any length in bounds is valid.
        }
        let mut bytes = v(name);
        let header = Header::parse(&bytes).expect("valid");
        bytes.push(0);
        bytes[..4].copy_from_slice(
            &Header::new(header.frame_type, header.payload_len + 1)
                .expect("small")
                .to_bytes(),
        );
        assert_eq!(
            Message::decode_frame(&bytes),
            Err(SignalError::TrailingBytes(1)),
            "{name}"
        );
    }
}

#[test]
fn bad_vectors_are_rejected_with_the_right_error() {
    assert_eq!(
        Header::parse(&v("frame.header.max")).map(|h| h.payload_len),
        Ok(MAX_PAYLOAD)
    );
    assert_eq!(
        Header::parse(&v("bad.oversize")),
        Err(FrameError::Oversize(MAX_PAYLOAD + 1))
    );
    assert_eq!(
        Header::parse(&v("bad.unknown_type")),
        Err(FrameError::UnknownType(0x14))
    );
    assert_eq!(
        Message::decode_frame(&v("bad.hello_flags")),
        Err(SignalError::Reserved {
            field: "hello flags"
        })
    );
    assert_eq!(
        Message::decode_frame(&v("bad.trailing")),
        Err(SignalError::TrailingBytes(1))
    );
    assert_eq!(
        Message::decode_frame(&v("bad.truncated")),
        Err(SignalError::Truncated)
    );
    for name in ["bad.oversize", "bad.unknown_type"] {
        let mut buf = BytesMut::from(&v(name)[..]);
        assert!(
            GatewayCodec::new().decode(&mut buf).is_err(),
            "{name} through the codec"
        );
    }
}

#[test]
fn out_of_bounds_fields_are_rejected() {
    // An empty ticket, and a ticket_len above MAX_TICKET_LEN with no bytes behind it.
    assert!(matches!(
        Register::decode(&[0, 0]),
        Err(SignalError::Length { len: 0, .. })
    ));
    assert!(matches!(
        Register::decode(&[0x10, 0x01]),
        Err(SignalError::Length { len: 4097, .. })
    ));
    // A QUEUE_LIST count above MAX_QUEUE_ENTRIES is refused before the list is read.
    assert!(matches!(
        QueueList::decode(&[0x01, 0x01]),
        Err(SignalError::Length { len: 257, .. })
    ));
    // An empty account, a control character in a name, an unknown PAIRED kind.
    assert!(matches!(
        Paired::decode(&[1, 0, 1, b'A']),
        Err(SignalError::Length { .. })
    ));
    // An account that is not canonical decimal (leading zero, letters).
    for account in [&b"04"[..], b"acme", b"-1"] {
        let mut payload = vec![1, account.len() as u8];
        payload.extend_from_slice(account);
        payload.extend_from_slice(&[1, b'A']);
        assert!(matches!(
            Paired::decode(&payload),
            Err(SignalError::Text { field: "account" })
        ));
    }
    assert!(matches!(
        Paired::decode(&[1, 1, b'7', 1, 0x1b]),
        Err(SignalError::PeerText(_))
    ));
    assert!(matches!(
        Paired::decode(&[3]),
        Err(SignalError::UnknownCode { .. })
    ));
    // Unknown codes in HELLO, CLOSE, ERROR and PEER_ADDR.
    assert!(matches!(
        Hello::decode(&[0, 1, 9, 0]),
        Err(SignalError::UnknownCode { .. })
    ));
    assert!(matches!(
        Close::decode(&[0, 9]),
        Err(SignalError::UnknownCode { .. })
    ));
    assert!(matches!(
        ErrorMessage::decode(&[0, 0, 0]),
        Err(SignalError::UnknownCode { .. })
    ));
    assert!(matches!(
        PeerAddr::decode(&[5, 0, 0]),
        Err(SignalError::UnknownCode { .. })
    ));
    // An ERROR message that is not UTF-8, and an empty DATA.
    assert!(matches!(
        ErrorMessage::decode(&[0, 1, 1, 0xff]),
        Err(SignalError::Text { .. })
    ));
    assert!(matches!(
        Message::decode_frame(&[8, 0, 0, 0]),
        Err(SignalError::Length { len: 0, .. })
    ));
}

#[test]
fn the_limits_table_matches_the_constants() {
    use rescue_proto::wire::limits::*;
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs());
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    let expected = [
        ("MAX_PAYLOAD", format!("{MAX_PAYLOAD} B")),
        ("MAX_TICKET_LEN", format!("{MAX_TICKET_LEN} B")),
        ("MAX_ACCOUNT_LEN", format!("{MAX_ACCOUNT_LEN} B")),
        (
            "MAX_TECHNICIAN_NAME_LEN",
            format!("{MAX_TECHNICIAN_NAME_LEN} B"),
        ),
        (
            "MAX_ERROR_MESSAGE_LEN",
            format!("{MAX_ERROR_MESSAGE_LEN} B"),
        ),
        ("MAX_QUEUE_ENTRIES", MAX_QUEUE_ENTRIES.to_string()),
        ("RESUME_SECRET_LEN", format!("{RESUME_SECRET_LEN} B")),
        ("UDP_TOKEN_LEN", format!("{UDP_TOKEN_LEN} B")),
        ("PRE_AUTH_TIMEOUT", secs(PRE_AUTH_TIMEOUT)),
        (
            "MAX_PRE_AUTH_CONNECTIONS",
            MAX_PRE_AUTH_CONNECTIONS.to_string(),
        ),
        (
            "MAX_PRE_AUTH_PER_SOURCE",
            MAX_PRE_AUTH_PER_SOURCE.to_string(),
        ),
        ("HELLO_TIMEOUT", secs(HELLO_TIMEOUT)),
        ("REQUEST_TIMEOUT", secs(REQUEST_TIMEOUT)),
        ("PING_INTERVAL", secs(PING_INTERVAL)),
        ("IDLE_TIMEOUT", secs(IDLE_TIMEOUT)),
        ("PENDING_LIFETIME", secs(PENDING_LIFETIME)),
        ("REATTACH_GRACE", secs(REATTACH_GRACE)),
        ("MAX_SESSIONS", MAX_SESSIONS.to_string()),
        (
            "MAX_SESSIONS_PER_ACCOUNT",
            MAX_SESSIONS_PER_ACCOUNT.to_string(),
        ),
        ("MAX_ENDED_REMEMBERED", MAX_ENDED_REMEMBERED.to_string()),
        ("MAX_ENDED_PER_ACCOUNT", MAX_ENDED_PER_ACCOUNT.to_string()),
        ("UDP_TOKEN_LIFETIME", secs(UDP_TOKEN_LIFETIME)),
        ("MAX_TOKENS_PER_HOP", MAX_TOKENS_PER_HOP.to_string()),
        ("RENDEZVOUS_INTERVAL", secs(RENDEZVOUS_INTERVAL)),
        ("MAX_RENDEZVOUS_TOKENS", MAX_RENDEZVOUS_TOKENS.to_string()),
        ("MAX_PROBES_PER_SOURCE", MAX_PROBES_PER_SOURCE.to_string()),
        ("PROBE_RATE_WINDOW", secs(PROBE_RATE_WINDOW)),
        ("MAX_PROBE_SOURCES", MAX_PROBE_SOURCES.to_string()),
        ("PROBE_LEN", format!("{PROBE_LEN} B")),
        ("PROBE_ATTEMPTS", PROBE_ATTEMPTS.to_string()),
        ("PROBE_RETRY_INTERVAL", ms(PROBE_RETRY_INTERVAL)),
        ("PEER_ADDR_TIMEOUT", secs(PEER_ADDR_TIMEOUT)),
        ("PUNCH_TIMEOUT", secs(PUNCH_TIMEOUT)),
        ("PUNCH_INITIAL_RTO", ms(PUNCH_INITIAL_RTO)),
        ("MAX_PUNCH_SYNS", MAX_PUNCH_SYNS.to_string()),
        (
            "MAX_REGISTER_FAILURES_PER_SOURCE",
            MAX_REGISTER_FAILURES_PER_SOURCE.to_string(),
        ),
        (
            "MAX_CLAIM_FAILURES_PER_SOURCE",
            MAX_CLAIM_FAILURES_PER_SOURCE.to_string(),
        ),
        (
            "MAX_CLAIM_FAILURES_PER_ACCOUNT",
            MAX_CLAIM_FAILURES_PER_ACCOUNT.to_string(),
        ),
        ("FAILURE_WINDOW", secs(FAILURE_WINDOW)),
        ("MAX_FAILURE_KEYS", MAX_FAILURE_KEYS.to_string()),
    ];
    for (name, value) in expected {
        let row = DOC
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} missing from PROTOCOL.md section 5"));
        let cell = row.split('|').nth(2).map(str::trim);
        assert_eq!(cell, Some(value.as_str()), "{name}");
    }
}

/// PROBE (PROTOCOL.md 3.13): the two vectors parse to the probes they spell and encode
/// back to the same bytes; each `bad.probe.*` vector is refused with its typed error.
#[test]
fn probe_vectors_parse_encode_and_refuse() {
    use rescue_proto::wire::probe::{Probe, ProbeFormatError, PROBE_LEN};
    use rescue_proto::Role;
    for (name, role, start) in [
        ("probe.applet", Role::Applet, 0xa0),
        ("probe.console", Role::Console, 0xb0),
    ] {
        let want = Probe {
            role,
            token: RendezvousToken::from_bytes(seq(start)),
        };
        let bytes = v(name);
        assert_eq!(bytes.len(), PROBE_LEN, "{name}");
        assert_eq!(Probe::parse(&bytes), Ok(want.clone()), "{name}");
        assert_eq!(want.to_bytes().to_vec(), bytes, "{name}");
        for cut in 0..bytes.len() {
            assert_eq!(
                Probe::parse(&bytes[..cut]),
                Err(ProbeFormatError::Length(cut)),
                "{name}[..{cut}]"
            );
        }
    }
    assert_eq!(
        Probe::parse(&v("bad.probe.magic")),
        Err(ProbeFormatError::Magic)
    );
    assert_eq!(
        Probe::parse(&v("bad.probe.version")),
        Err(ProbeFormatError::Version(2))
    );
    assert_eq!(
        Probe::parse(&v("bad.probe.role")),
        Err(ProbeFormatError::Role(3))
    );
    assert_eq!(
        Probe::parse(&v("bad.probe.trailing")),
        Err(ProbeFormatError::Length(PROBE_LEN + 1))
    );
    let listed = names(DOC).filter(|n| n.contains("probe")).count();
    assert_eq!(listed, 6, "every probe vector in PROTOCOL.md is checked");
}
