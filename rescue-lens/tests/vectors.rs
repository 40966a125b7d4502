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

fn vector_key() -> rescue_crypto::ticket::TicketSigner {
    // PKCS#8 v1 for an Ed25519 seed of 32 bytes 0x42.
    let mut pk = hex::decode("302e020100300506032b657004220420").unwrap();
    pk.extend_from_slice(&[0x42; 32]);
    rescue_crypto::ticket::TicketSigner::from_pkcs8(&pk).unwrap()
}

#[test]
fn request_signature_and_join_token_vectors() {
    use rescue_lens::signed::{sign_with_nonce, RequestVerifier};
    use rescue_lens::token::{verify, JoinToken, TokenError};
    use rescue_lens::LensRole;
    let key = vector_key();
    assert_eq!(
        key.verify_key().to_string(),
        "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12"
    );
    let body = br#"{"session":"0123abcd-4567-89ef-0011-223344556677"}"#;
    let nonce = "000102030405060708090a0b0c0d0e0f";
    let h = sign_with_nonce(&key, "POST", "/lens", body, 1_700_000_000, nonce);
    assert_eq!(h[2].1, hex::encode(v("lens.request_signature")));
    let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
    let verifier = RequestVerifier::new(vec![key.verify_key()]);
    assert_eq!(
        verifier.check("POST", "/lens", get, body, 1_700_000_030),
        Ok(())
    );

    let t = JoinToken {
        meeting: meeting(),
        participant: 2,
        role: LensRole::Console,
        expires_at_unix: 2_000_000_000,
    };
    assert_eq!(t.sign(&key), v("lens.join_token"));
    assert_eq!(
        verify(&v("lens.join_token"), &key.verify_key(), 1_999_999_999),
        Ok(t)
    );
    assert_eq!(
        verify(
            &v("bad.lens.join_token_role_direction"),
            &key.verify_key(),
            0
        ),
        Err(TokenError::Role)
    );
}
