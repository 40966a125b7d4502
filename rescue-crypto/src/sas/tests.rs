use proptest::prelude::*;
use rescue_proto::Guid;

use super::*;
use crate::bind::{bind_tag, Role, SessionSecret};

const PROTOCOL: &str = include_str!("../../../PROTOCOL.md");

fn vector(name: &str) -> Vec<u8> {
    rescue_proto::vectors::vector(PROTOCOL, name).unwrap_or_else(|| panic!("vector {name}"))
}

fn run(
    e_applet: Exporter,
    e_console: Exporter,
    na: [u8; 32],
    nc: [u8; 32],
) -> (Sas, Result<Sas, SasError>) {
    let (applet, commit) = AppletSas::start_with_nonce(e_applet, na);
    let (console, nonce) = ConsoleSas::with_nonce(e_console, nc)
        .handle(commit)
        .unwrap();
    let (sas_a, reveal) = applet.handle(nonce).unwrap();
    (sas_a, console.handle(reveal))
}

#[test]
fn protocol_vectors() {
    let e = || Exporter::from_bytes([0x07; 32]);
    let guid = Guid::from_bytes(core::array::from_fn(|i| i as u8));
    let bind = InnerMsg::Bind {
        role: Role::Console,
        tag: bind_tag(
            &SessionSecret::from_bytes([0x05; 32]),
            &e(),
            &guid,
            Role::Console,
        ),
    };
    assert_eq!(bind.encode(), vector("bind.console"));
    let path_key =
        crate::bind::PathKey::derive(&SessionSecret::from_bytes([0x05; 32]), &e(), &guid);
    let later = InnerMsg::Bind {
        role: Role::Applet,
        tag: path_key.bind_tag(&Exporter::from_bytes([0x09; 32]), &guid, Role::Applet),
    };
    assert_eq!(later.encode(), vector("bind.path.applet"));
    assert_eq!(InnerMsg::Nominate.encode(), vector("nominate"));
    assert_eq!(
        InnerMsg::decode(&vector("bind.console")),
        Ok(Some((bind, 34)))
    );

    let (applet, commit) = AppletSas::start_with_nonce(e(), [0xaa; 32]);
    assert_eq!(commit.encode(), vector("sas.commit"));
    let (console, nonce) = ConsoleSas::with_nonce(e(), [0xbb; 32])
        .handle(commit)
        .unwrap();
    assert_eq!(nonce.encode(), vector("sas.nonce"));
    let (sas_a, reveal) = applet.handle(nonce).unwrap();
    assert_eq!(reveal.encode(), vector("sas.reveal"));
    for name in ["sas.commit", "sas.nonce", "sas.reveal"] {
        let (m, n) = InnerMsg::decode(&vector(name)).unwrap().unwrap();
        assert_eq!((m.encode(), n), (vector(name), 33));
    }
    let sas_c = console.handle(reveal).unwrap();
    assert_eq!(sas_a, sas_c);
    // The code stated in PROTOCOL.md 6.5.
    let stated = PROTOCOL
        .split("SAS of the vectors: `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap();
    assert_eq!(sas_a.to_string(), stated);
}

#[test]
fn sas_is_hmac_of_the_documented_message() {
    let (sas, _) = run(
        Exporter::from_bytes([1; 32]),
        Exporter::from_bytes([1; 32]),
        [2; 32],
        [3; 32],
    );
    let mut m = b"rescue-sas-v1".to_vec();
    m.extend_from_slice(&[2; 32]);
    m.extend_from_slice(&[3; 32]);
    let t = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]), &m);
    let b = t.as_ref();
    assert_eq!(
        sas.code(),
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000
    );
}

#[test]
fn reveal_not_matching_the_commit_is_refused() {
    let e = || Exporter::from_bytes([9; 32]);
    let (_applet, commit) = AppletSas::start_with_nonce(e(), [1; 32]);
    let (console, _nonce) = ConsoleSas::with_nonce(e(), [2; 32]).handle(commit).unwrap();
    assert_eq!(
        console.handle(InnerMsg::SasReveal([3; 32])),
        Err(SasError::CommitMismatch)
    );
}

#[test]
fn messages_out_of_order_are_refused() {
    let e = || Exporter::from_bytes([9; 32]);
    let nonce = InnerMsg::SasNonce([0; 32]);
    assert_eq!(
        ConsoleSas::with_nonce(e(), [2; 32])
            .handle(nonce)
            .unwrap_err(),
        SasError::Unexpected
    );
    let (applet, commit) = AppletSas::start_with_nonce(e(), [1; 32]);
    assert_eq!(applet.handle(commit).unwrap_err(), SasError::Unexpected);
    let (_, commit) = AppletSas::start_with_nonce(e(), [1; 32]);
    let (console, _) = ConsoleSas::with_nonce(e(), [2; 32]).handle(commit).unwrap();
    assert_eq!(console.handle(commit).unwrap_err(), SasError::Unexpected);
}

#[test]
fn random_nonces_agree_and_differ_between_runs() {
    let e = || Exporter::from_bytes([4; 32]);
    let (applet, commit) = AppletSas::start(e()).unwrap();
    let (console, nonce) = ConsoleSas::new(e()).unwrap().handle(commit).unwrap();
    let (a, reveal) = applet.handle(nonce).unwrap();
    assert_eq!(Ok(a), console.handle(reveal));
    assert_ne!(commit, AppletSas::start(e()).unwrap().1);
}

#[test]
fn display_has_six_digits() {
    assert_eq!(Sas(7).to_string(), "000 007");
    assert_eq!(Sas(123_456).to_string(), "123 456");
}

proptest! {
    #[test]
    fn both_ends_agree_iff_exporters_match(e1 in any::<[u8; 32]>(), e2 in any::<[u8; 32]>(), na in any::<[u8; 32]>(), nc in any::<[u8; 32]>()) {
        let (a, c) = run(Exporter::from_bytes(e1), Exporter::from_bytes(e1), na, nc);
        prop_assert_eq!(Ok(a), c);
        prop_assert!(a.code() < 1_000_000);
        // A relay with two TLS sessions has two exporters: the codes (almost surely) differ.
        let (a, c) = run(Exporter::from_bytes(e1), Exporter::from_bytes(e2), na, nc);
        prop_assert_eq!(Ok(a) == c, e1 == e2 || a.code() == c.unwrap().code());
    }
}
