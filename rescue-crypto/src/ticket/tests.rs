use proptest::prelude::*;
use rescue_proto::PermissionSet;

use super::*;

const PROTOCOL: &str = include_str!("../../../PROTOCOL.md");
/// RFC 8032 section 7.1, TEST 1 secret key, as PKCS#8 v1.
const VECTOR_PKCS8_V1: &str = "302e020100300506032b657004220420\
    9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn vector_signer() -> TicketSigner {
    TicketSigner::from_pkcs8(&hex::decode(VECTOR_PKCS8_V1).unwrap()).unwrap()
}

fn vector_ticket() -> Ticket {
    Ticket {
        guid: Guid::from_bytes([
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ]),
        account: AccountId(42),
        gateways: vec!["gw1.example:443".into(), "gw2.example:443".into()],
        gateway_ca_pin: Pin([0x11; 32]),
        account_ca_pin: Pin([0x22; 32]),
        policy: Policy {
            allowed: PermissionSet::from_bits(0b111).unwrap(),
            all_in_one_allowed: true,
            exclude_chat_from_audit: false,
        },
        group: "support".into(),
        expires_at_unix: 1_800_000_000,
    }
}

#[test]
fn vector_key_is_rfc8032_test_1() {
    assert_eq!(
        vector_signer().verify_key().to_string(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}

#[test]
fn protocol_vector_encodes_and_decodes() {
    let doc =
        rescue_proto::vectors::vector(PROTOCOL, "ticket.signed").expect("vector in PROTOCOL.md");
    let signer = vector_signer();
    assert_eq!(signer.sign(&vector_ticket()).unwrap(), doc);
    let t = verify(&doc, &signer.verify_key(), 1_700_000_000).unwrap();
    assert_eq!(t, vector_ticket());
}

#[test]
fn signs_and_verifies_with_a_generated_key() {
    let signer = TicketSigner::generate().unwrap();
    let bytes = signer.sign(&vector_ticket()).unwrap();
    assert_eq!(
        verify(&bytes, &signer.verify_key(), 0).unwrap(),
        vector_ticket()
    );
    let again = TicketSigner::from_pkcs8(signer.pkcs8()).unwrap();
    assert_eq!(again.verify_key(), signer.verify_key());
    let text = signer.verify_key().to_string();
    assert_eq!(
        text.parse::<TicketVerifyKey>().unwrap(),
        signer.verify_key()
    );
}

#[test]
fn malformed_keys_are_refused() {
    assert_eq!(
        TicketSigner::from_pkcs8(b"not a key").unwrap_err(),
        TicketError::Key
    );
    // A v2 document whose embedded public key is not the private key's.
    let mut doc = TicketSigner::generate().unwrap().pkcs8().to_vec();
    let last = doc.len() - 1;
    doc[last] ^= 1;
    assert_eq!(
        TicketSigner::from_pkcs8(&doc).unwrap_err(),
        TicketError::Key
    );
    assert_eq!("zz".parse::<TicketVerifyKey>(), Err(TicketError::Key));
}

#[test]
fn expired_at_and_after_expiry() {
    let signer = vector_signer();
    let bytes = signer.sign(&vector_ticket()).unwrap();
    let key = signer.verify_key();
    assert!(verify(&bytes, &key, 1_799_999_999).is_ok());
    for now in [1_800_000_000, u64::MAX] {
        assert_eq!(
            verify(&bytes, &key, now),
            Err(TicketError::Expired {
                expires_at_unix: 1_800_000_000,
                now_unix: now
            })
        );
    }
    assert!(verify_signature(&bytes, &key).is_ok());
}

#[test]
fn forged_or_altered_tickets_are_refused() {
    let signer = vector_signer();
    let other = TicketSigner::generate().unwrap();
    let bytes = other.sign(&vector_ticket()).unwrap();
    assert_eq!(
        verify(&bytes, &signer.verify_key(), 0),
        Err(TicketError::BadSignature)
    );
    let good = signer.sign(&vector_ticket()).unwrap();
    // Flip one bit of the account id (a wrong-account forgery) and of the signature.
    for at in [17 + 7, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert_eq!(
            verify(&bad, &signer.verify_key(), 0),
            Err(TicketError::BadSignature)
        );
    }
}

#[test]
fn verify_any_accepts_any_listed_key() {
    let old = vector_signer();
    let new = TicketSigner::generate().unwrap();
    let stranger = TicketSigner::generate().unwrap();
    let keys = [new.verify_key(), old.verify_key()];
    let t = vector_ticket();
    assert_eq!(verify_any(&old.sign(&t).unwrap(), &keys, 0), Ok(t.clone()));
    assert_eq!(verify_any(&new.sign(&t).unwrap(), &keys, 0), Ok(t.clone()));
    let forged = stranger.sign(&t).unwrap();
    assert_eq!(
        verify_any(&forged, &keys, 0),
        Err(TicketError::BadSignature)
    );
    assert_eq!(verify_any(&forged, &[], 0), Err(TicketError::BadSignature));
    assert_eq!(
        verify_any(&forged[..10], &[], 0),
        Err(TicketError::Truncated)
    );
    assert!(matches!(
        verify_any(&old.sign(&t).unwrap(), &keys, u64::MAX),
        Err(TicketError::Expired { .. })
    ));
}

#[test]
fn malformed_tickets_get_typed_errors() {
    let signer = vector_signer();
    let key = signer.verify_key();
    let good = signer.sign(&vector_ticket()).unwrap();
    assert_eq!(verify(&[], &key, 0), Err(TicketError::Truncated));
    assert_eq!(
        verify(&good[..good.len() - 1], &key, 0),
        Err(TicketError::Truncated)
    );
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(verify(&v, &key, 0), Err(TicketError::Version(2)));
    assert_eq!(
        verify(&vec![0; MAX_TICKET_LEN + 1], &key, 0),
        Err(TicketError::TooLong(MAX_TICKET_LEN + 1))
    );
    let mut body = encode_body(&vector_ticket()).unwrap();
    body.push(0);
    assert_eq!(decode_body(&body), Err(TicketError::TrailingBytes));
    let mut t = vector_ticket();
    t.gateways.clear();
    assert_eq!(signer.sign(&t), Err(TicketError::GatewayCount));
    t.gateways = vec!["a".into(); MAX_GATEWAYS + 1];
    assert_eq!(signer.sign(&t), Err(TicketError::GatewayCount));
    t.gateways = vec!["has space:1".into()];
    assert_eq!(signer.sign(&t), Err(TicketError::Gateway));
    t.gateways = vec!["x".repeat(MAX_GATEWAY_LEN + 1)];
    assert_eq!(signer.sign(&t), Err(TicketError::Gateway));
    t.gateways = vec!["x".into()];
    t.group = "g".repeat(MAX_GROUP_LEN + 1);
    assert_eq!(signer.sign(&t), Err(TicketError::Group));
    t.group = "support\u{1b}[2J".into();
    assert_eq!(signer.sign(&t), Err(TicketError::Group));
    t.group = "\u{202e}troppus".into();
    assert_eq!(signer.sign(&t), Err(TicketError::Group));
    // A reserved policy flag (offset 101 is the policy flag byte).
    let mut body = encode_body(&vector_ticket()).unwrap();
    body[101] |= 0x80;
    assert_eq!(decode_body(&body), Err(TicketError::Policy));
}

#[test]
fn largest_ticket_fits_the_limit() {
    let mut t = vector_ticket();
    t.group = "g".repeat(MAX_GROUP_LEN);
    t.gateways = vec!["h".repeat(MAX_GATEWAY_LEN); MAX_GATEWAYS];
    let bytes = vector_signer().sign(&t).unwrap();
    assert!(bytes.len() <= MAX_TICKET_LEN);
    assert_eq!(verify(&bytes, &vector_signer().verify_key(), 0).unwrap(), t);
}

fn arb_ticket() -> impl Strategy<Value = Ticket> {
    (
        any::<[u8; 16]>(),
        any::<u64>(),
        proptest::collection::vec("[!-~]{1,40}", 1..=MAX_GATEWAYS),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        0u32..(1 << 15),
        any::<(bool, bool)>(),
        "[\\PC&&[^\u{2028}\u{2029}]]{0,16}",
        any::<u64>(),
    )
        .prop_map(|(g, a, gws, p1, p2, bits, (aio, ex), group, exp)| Ticket {
            guid: Guid::from_bytes(g),
            account: AccountId(a),
            gateways: gws,
            gateway_ca_pin: Pin(p1),
            account_ca_pin: Pin(p2),
            policy: Policy {
                allowed: PermissionSet::from_bits(bits).unwrap_or(PermissionSet::EMPTY),
                all_in_one_allowed: aio,
                exclude_chat_from_audit: ex,
            },
            group,
            expires_at_unix: exp,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn body_round_trips(t in arb_ticket()) {
        let body = encode_body(&t).unwrap();
        prop_assert_eq!(decode_body(&body).unwrap(), t);
        fuzz_ticket(&body);
    }

    #[test]
    fn every_truncation_is_refused(t in arb_ticket(), cut in any::<prop::sample::Index>()) {
        let body = encode_body(&t).unwrap();
        let cut = cut.index(body.len());
        prop_assert!(decode_body(&body[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_ticket(&data);
    }

    #[test]
    fn any_single_bit_flip_is_refused(t in arb_ticket(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let signer = vector_signer();
        let mut bytes = signer.sign(&t).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(verify_signature(&bytes, &signer.verify_key()).is_err());
    }
}
