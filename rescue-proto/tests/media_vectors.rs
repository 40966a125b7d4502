//! The media channel vectors of PROTOCOL.md 9.1: each message encodes to exactly its
//! vector and decodes from it; every prefix (of a FRAGMENT: of its header) and every `bad.media.*` vector is rejected.

use bytes::Bytes;
use rescue_proto::session::media::{Fragment, MediaError, MediaMsg, StreamKey};
use rescue_proto::vectors::{names, vector};

const DOC: &str = include_str!("../../PROTOCOL.md");

fn v(name: &str) -> Bytes {
    Bytes::from(vector(DOC, name).unwrap_or_else(|| panic!("vector {name} missing")))
}

fn expected() -> Vec<(&'static str, MediaMsg)> {
    let mut meeting = [0u8; 16];
    meeting
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let mut base_key = [0u8; 32];
    base_key
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = 0x20 + i as u8);
    vec![
        (
            "media.fragment",
            MediaMsg::Fragment(Fragment {
                keyframe: true,
                frame_no: 7,
                capture_us: 1_000_000,
                total: 5,
                offset: 2,
                data: Bytes::from_static(b"abc"),
            }),
        ),
        ("media.keyframe_request", MediaMsg::KeyframeRequest),
        (
            "media.stream_key",
            MediaMsg::StreamKey(StreamKey {
                key_id: 0x0102_0304_0506_0708,
                meeting,
                base_key,
            }),
        ),
    ]
}

#[test]
fn media_vectors_encode_and_decode_exactly() {
    for (name, msg) in expected() {
        let bytes = v(name);
        assert_eq!(msg.encode(), bytes, "{name}");
        assert_eq!(MediaMsg::decode(&bytes).as_ref(), Ok(&msg), "{name}");
        // A FRAGMENT's data is the rest of the payload: only its header can be cut short.
        let whole = match msg {
            MediaMsg::Fragment(_) => rescue_proto::session::media::FRAGMENT_HEADER_LEN,
            _ => bytes.len(),
        };
        for n in 0..whole {
            assert!(
                MediaMsg::decode(&bytes.slice(..n)).is_err(),
                "{name} prefix {n}"
            );
        }
    }
}

#[test]
fn bad_media_vectors_are_rejected() {
    let bad: Vec<&str> = names(DOC).filter(|n| n.starts_with("bad.media.")).collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(
        MediaMsg::decode(&v("bad.media.fragment_past_total")),
        Err(MediaError::BadFragment)
    );
    assert_eq!(
        MediaMsg::decode(&v("bad.media.fragment_too_large")),
        Err(MediaError::FrameTooLarge(0x0020_0001))
    );
}

#[test]
fn the_media_limits_in_section_5_match_the_constants() {
    use rescue_proto::session::media::MAX_MEDIA_FRAME;
    use rescue_proto::session::media_queue::{MAX_QUEUE_AGE, MAX_QUEUE_BYTES, MAX_QUEUE_FRAMES};
    use rescue_proto::session::media_stream::{
        KEYFRAME_REQUEST_INTERVAL, MEDIA_WINDOW, REASSEMBLY_TIMEOUT,
    };
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    let rows = [
        ("media frame", format!("{MAX_MEDIA_FRAME} B")),
        ("media reassembly", ms(REASSEMBLY_TIMEOUT)),
        ("keyframe request interval", ms(KEYFRAME_REQUEST_INTERVAL)),
        ("media window", format!("{MEDIA_WINDOW} B")),
        ("media queue age", ms(MAX_QUEUE_AGE)),
        ("media queue bytes", format!("{MAX_QUEUE_BYTES} B")),
        ("media queue frames", MAX_QUEUE_FRAMES.to_string()),
    ];
    for (name, value) in rows {
        let line = format!("| {name} | {value} |");
        assert!(DOC.contains(&line), "PROTOCOL.md section 5 lacks `{line}`");
    }
}
