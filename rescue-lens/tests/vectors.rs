//! The Lens vectors of PROTOCOL.md 9.2–9.5: each encodes to exactly its bytes and
//! decodes or opens from them; every `bad.lens.*` vector is rejected.

use rescue_lens::sframe::{Decryptor, Encryptor, Header, SframeError};
use rescue_lens::wire::{encode_msg, metadata, MsgType};
use rescue_lens::MeetingId;
use rescue_proto::vectors::vector;

const DOC: &str = include_str!("../../PROTOCOL.md");

fn v(name: &str) -> Vec<u8> {
    vector(DOC, name).unwrap_or_else(|| panic!("vector {name} missing from PROTOCOL.md"))
}

fn meeting() -> MeetingId {
    MeetingId(core::array::from_fn(|i| 0xa0 + i as u8))
}

#[test]
fn sframe_and_media_vectors() {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let mut plain = 1_000_000u64.to_be_bytes().to_vec();
    plain.extend_from_slice(b"frame");
    let md = metadata(&meeting(), 1);
    let sealed = Encryptor::new(1, &key)
        .seal_with_ctr(5, &md, &plain)
        .unwrap();
    assert_eq!(sealed, v("lens.sframe"));
    assert_eq!(Decryptor::new(1, &key).open(&md, &sealed), Ok((5, plain)));
    let mut body = vec![1u8];
    body.extend_from_slice(&sealed);
    assert_eq!(encode_msg(MsgType::Media, &body).to_vec(), v("lens.media"));
    let mut h = Vec::new();
    Header {
        kid: 0x1234,
        ctr: 0x10000,
    }
    .encode(&mut h);
    assert_eq!(h, v("lens.sframe_header"));
    assert_eq!(
        Header::decode(&v("bad.lens.sframe_header_not_minimal")),
        Err(SframeError::Header)
    );
}

#[test]
fn the_lens_limits_in_section_5_match_the_constants() {
    use rescue_lens::*;
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    let s = |d: std::time::Duration| format!("{} s", d.as_secs());
    let rows = [
        ("relay message body", format!("{} B", wire::MAX_BODY)),
        ("relay join wait", s(JOIN_TIMEOUT)),
        ("relay pending joins", MAX_PENDING_JOINS.to_string()),
        ("subscriber queue age", ms(SUBSCRIBER_QUEUE_AGE)),
        (
            "subscriber queue bytes",
            format!("{SUBSCRIBER_QUEUE_BYTES} B"),
        ),
        (
            "subscriber queue frames",
            SUBSCRIBER_QUEUE_FRAMES.to_string(),
        ),
        ("subscriber write stall", s(SUBSCRIBER_WRITE_TIMEOUT)),
        ("meetings", MAX_MEETINGS.to_string()),
        ("participants", MAX_PARTICIPANTS.to_string()),
        ("meeting lifetime", s(MEETING_LIFETIME)),
        ("join token lifetime", s(TOKEN_LIFETIME)),
    ];
    for (name, value) in rows {
        let line = format!("| {name} | {value} |");
        assert!(DOC.contains(&line), "PROTOCOL.md section 5 lacks `{line}`");
    }
}
