//! Decode property tests of the peer-text rule (PROTOCOL.md 1.3) over every decoder that
//! carries text a peer supplies: whatever the input, no accepted text holds a control,
//! bidi or invisible character, and a text holding one is refused with a typed error.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use rescue_proto::session::chat::{self, ChatError};
use rescue_proto::session::file::{sanitize_name, FileError, FileMsg};
use rescue_proto::session::frame::{Frame, FrameError, FrameKind};
use rescue_proto::text::{refused_class, CharClass};
use rescue_proto::wire::signal::{ErrorMessage, Paired, SignalError};

/// One of every refused kind, and a few characters around them.
const TRICKY: &[char] = &[
    '\u{0}',
    '\u{7}',
    '\t',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{9b}',
    '\u{61c}',
    '\u{200e}',
    '\u{200f}',
    '\u{202a}',
    '\u{202e}',
    '\u{2066}',
    '\u{2069}',
    '\u{2028}',
    '\u{2029}',
    '\u{200b}',
    '\u{200c}',
    '\u{200d}',
    '\u{2060}',
    '\u{feff}',
    '\u{ad}',
    '\u{e0041}',
    '[',
    ']',
    ';',
    'a',
    'é',
    '東',
    ' ',
    '.',
];

/// Arbitrary strings, with refused characters far more often than chance.
fn text(max: usize) -> impl Strategy<Value = String> {
    let c = prop_oneof![any::<char>(), prop::sample::select(TRICKY)];
    prop::collection::vec(c, 0..max).prop_map(|v| v.into_iter().collect())
}

/// No refused code point at all (names).
fn clean_name(s: &str) -> bool {
    s.chars().all(|c| refused_class(c).is_none())
}

/// No refused code point but joiners (prose).
fn clean_prose(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(refused_class(c), None | Some(CharClass::Joiner)))
}

fn short(b: &mut BytesMut, s: &str) {
    b.put_u8(s.len() as u8);
    b.put_slice(s.as_bytes());
}

proptest! {
    #[test]
    fn chat(s in text(60)) {
        match chat::decode(s.as_bytes()) {
            Ok(t) => prop_assert!(clean_prose(t) && !t.chars().any(char::is_control)),
            Err(ChatError::Text(e)) => {
                prop_assert_eq!(e.field, "chat");
                prop_assert!(!clean_prose(&s));
            }
            Err(e) => prop_assert!(s.is_empty(), "{}", e),
        }
    }

    #[test]
    fn file_offer(name in text(40), id in any::<u32>()) {
        let mut p = BytesMut::new();
        p.put_u8(1);
        p.put_u32(id);
        p.put_u64(3);
        p.put_slice(name.as_bytes());
        match FileMsg::decode(&p.freeze()) {
            Ok(FileMsg::Offer { name: n, .. }) => {
                prop_assert!(clean_name(&n));
                prop_assert_eq!(sanitize_name(&n), Ok(n.as_str()));
            }
            Ok(m) => prop_assert!(false, "not an offer: {:?}", m),
            Err(FileError::BadName(_)) => prop_assert!(sanitize_name(&name).is_err()),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn channel_label(label in text(20)) {
        prop_assume!(!label.is_empty() && label.len() <= 64);
        let f = Frame { kind: FrameKind::Open, ..Frame::data(16, 0, 0, Bytes::from(label.clone())) };
        let mut b = BytesMut::new();
        f.encode(&mut b);
        match Frame::decode(&b.freeze()) {
            Ok(f) => {
                let label = std::str::from_utf8(&f.payload);
                prop_assert!(label.is_ok_and(clean_name));
            }
            Err(FrameError::Malformed { .. }) => prop_assert!(!clean_name(&label)),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn paired_technician_and_account(technician in text(30), account in text(10)) {
        prop_assume!(technician.len() < 128 && account.len() < 64);
        for account in [account.as_str(), "42"] {
            let mut p = BytesMut::new();
            p.put_u8(1);
            short(&mut p, account);
            short(&mut p, &technician);
            match Paired::decode(&p) {
                Ok(Paired::ToApplet { account, technician }) => {
                    prop_assert!(clean_name(technician.as_str()));
                    prop_assert!(clean_name(&account.to_string()));
                }
                Ok(other) => prop_assert!(false, "{:?}", other),
                Err(SignalError::PeerText(e)) => {
                    prop_assert!(e.field == "technician" || e.field == "account");
                    prop_assert!(!clean_name(&technician) || !clean_name(account));
                }
                Err(_) => {} // length bounds, or (later) a non-decimal account
            }
        }
    }

    #[test]
    fn error_message(message in text(40)) {
        prop_assume!(message.len() <= 128);
        let mut p = BytesMut::new();
        p.put_u16(1);
        short(&mut p, &message);
        match ErrorMessage::decode(&p) {
            Ok(e) => prop_assert!(clean_prose(e.message.as_str())),
            Err(SignalError::PeerText(e)) => {
                prop_assert_eq!(e.field, "message");
                prop_assert!(!clean_prose(&message));
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}
