//! Real rustls handshakes in memory between ClientConnection and ServerConnection, with
//! the configurations of `rescue_crypto::tls`.

mod common;

use std::sync::Arc;

use common::{client_err, connect, transfer, Failed};

use rescue_crypto::bind::{bind_tag, verify_bind_tag, Exporter, PathKey, Role, SessionSecret};
use rescue_crypto::pki::{
    AccountCa, AccountId, GatewayCa, Identity, CONSOLE_CERT_VALIDITY, GATEWAY_CERT_VALIDITY,
};
use rescue_crypto::tls::{self, AccountRoots};
use rescue_crypto::verify::CaPinVerifier;
use rescue_crypto::{new_guid, Pin};
use rustls::client::danger::ServerCertVerifier;
use rustls::{CertificateError, ClientConfig, ClientConnection, Error, ServerConnection};
use rustls_pki_types::UnixTime;

struct World {
    gw_ca: GatewayCa,
    gateway: Identity,
    acct: AccountCa,
    console: Identity,
}

fn world() -> World {
    let gw_ca = GatewayCa::generate().unwrap();
    let gateway = gw_ca
        .issue_gateway(&["gw.test".into()], GATEWAY_CERT_VALIDITY)
        .unwrap();
    let acct = AccountCa::generate(AccountId(42)).unwrap();
    let console = acct
        .issue_console_cert("alice", CONSOLE_CERT_VALIDITY)
        .unwrap();
    World {
        gw_ca,
        gateway,
        acct,
        console,
    }
}

fn roots(acct: &AccountCa) -> AccountRoots {
    let mut r = AccountRoots::new();
    r.add(acct.account(), acct.cert().clone());
    r
}

#[test]
fn applet_reaches_gateway_with_aes_256_gcm_tls13_and_no_account() {
    let w = world();
    let (c, s) = connect(
        tls::applet_gateway_client_config(w.gw_ca.pin()).unwrap(),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    )
    .unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(
        c.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    assert!(s.peer_certificates().is_none());
    assert_eq!(
        roots(&w.acct).account_of(s.peer_certificates().unwrap_or(&[])),
        None
    );
}

#[test]
fn console_reaches_gateway_and_gateway_learns_its_account() {
    let w = world();
    let (_c, s) = connect(
        tls::console_gateway_client_config(w.gw_ca.pin(), &w.console).unwrap(),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    )
    .unwrap();
    let certs = s.peer_certificates().unwrap();
    let r = roots(&w.acct);
    assert_eq!(r.account_of(certs), Some(AccountId(42)));
    assert_eq!(r.console_of(certs).unwrap().technician, "alice");
    // A gateway that knows only another account's CA learns nothing from this chain.
    let other = AccountCa::generate(AccountId(43)).unwrap();
    assert_eq!(roots(&other).account_of(certs), None);
}

#[test]
fn console_of_an_unknown_account_is_refused_by_the_gateway() {
    let w = world();
    let stranger = AccountCa::generate(AccountId(99)).unwrap();
    let id = stranger
        .issue_console_cert("mallory", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let r = connect(
        tls::console_gateway_client_config(w.gw_ca.pin(), &id).unwrap(),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    );
    assert!(
        matches!(
            r,
            Err(Failed::Server(Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )))
        ),
        "{r:?}"
    );
}

#[test]
fn account_is_taken_from_the_issuing_ca_not_the_leaf_claim() {
    // Account 43's CA registered under account 42: its leaves name 43, so they match
    // no root of account 43 and the gateway attributes them to nobody.
    let ca43 = AccountCa::generate(AccountId(43)).unwrap();
    let leaf = ca43
        .issue_console_cert("eve", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let mut r = AccountRoots::new();
    r.add(AccountId(42), ca43.cert().clone());
    assert_eq!(r.account_of(leaf.chain()), None);
}

#[test]
fn wrong_gateway_pin_is_refused() {
    let w = world();
    let other = GatewayCa::generate().unwrap();
    let e = client_err(connect(
        tls::applet_gateway_client_config(other.pin()).unwrap(),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    ));
    assert_eq!(
        e,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn inner_tls_binds_both_ends_to_the_same_exporter() {
    let w = world();
    let (c, s) = connect(
        tls::inner_client_config_account(w.acct.pin()).unwrap(),
        tls::inner_server_config(&w.console).unwrap(),
    )
    .unwrap();
    assert_eq!(c.alpn_protocol(), Some(tls::ALPN_INNER));
    let guid = new_guid();
    let ea = Exporter::from_connection(&c, &guid).unwrap();
    let ec = Exporter::from_connection(&s, &guid).unwrap();
    let k = SessionSecret::generate().unwrap();
    let applet_tag = bind_tag(&k, &ea, &guid, Role::Applet);
    assert_eq!(
        verify_bind_tag(&k, &ec, &guid, Role::Applet, &applet_tag),
        Ok(())
    );
    let console_tag = bind_tag(&k, &ec, &guid, Role::Console);
    assert_eq!(
        verify_bind_tag(&k, &ea, &guid, Role::Console, &console_tag),
        Ok(())
    );
    // A GUID other than the session's gives another exporter.
    let e_other = Exporter::from_connection(&s, &new_guid()).unwrap();
    assert!(verify_bind_tag(&k, &e_other, &guid, Role::Applet, &applet_tag).is_err());

    // A later path: the applet pins the exact leaf it saw, both bind with the path key.
    let leaf = c.peer_certificates().unwrap()[0].clone();
    let (c2, s2) = connect(
        tls::inner_client_config_leaf(&leaf).unwrap(),
        tls::inner_server_config(&w.console).unwrap(),
    )
    .unwrap();
    let (ka, kc) = (
        PathKey::derive(&k, &ea, &guid),
        PathKey::derive(&k, &ec, &guid),
    );
    let (pa, pc) = (
        Exporter::from_connection(&c2, &guid).unwrap(),
        Exporter::from_connection(&s2, &guid).unwrap(),
    );
    let t = ka.bind_tag(&pa, &guid, Role::Applet);
    assert_eq!(kc.verify_bind_tag(&pc, &guid, Role::Applet, &t), Ok(()));
    // The first path's tag does not bind the new path.
    assert!(kc
        .verify_bind_tag(&pc, &guid, Role::Applet, &applet_tag)
        .is_err());
}

#[test]
fn gateway_presenting_its_own_certificate_in_the_inner_tls_is_refused() {
    let w = world();
    let e = client_err(connect(
        tls::inner_client_config_account(w.acct.pin()).unwrap(),
        tls::inner_server_config(&w.gateway).unwrap(),
    ));
    assert_eq!(
        e,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn console_of_another_account_is_refused_in_the_inner_tls() {
    let w = world();
    let other = AccountCa::generate(AccountId(43)).unwrap();
    let id = other
        .issue_console_cert("bob", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let e = client_err(connect(
        tls::inner_client_config_account(w.acct.pin()).unwrap(),
        tls::inner_server_config(&id).unwrap(),
    ));
    assert_eq!(
        e,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn forged_chain_with_the_real_account_ca_is_refused() {
    // The gateway knows the account CA certificate (public) and sends it after its own
    // leaf: the pin matches, the leaf's signature does not.
    let w = world();
    let forged = Identity::new(
        vec![w.gateway.chain()[0].clone(), w.acct.cert().clone()],
        w.gateway.key_pkcs8().clone_key(),
    );
    let e = client_err(connect(
        tls::inner_client_config_account(w.acct.pin()).unwrap(),
        tls::inner_server_config(&forged).unwrap(),
    ));
    assert!(matches!(e, Error::InvalidCertificate(_)), "{e:?}");
}

#[test]
fn later_path_refuses_any_other_leaf() {
    let w = world();
    let same_account_other_leaf = w
        .acct
        .issue_console_cert("alice", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let pin = w.console.leaf_pin().unwrap();
    assert!(connect(
        tls::inner_client_config_leaf_pin(pin).unwrap(),
        tls::inner_server_config(&w.console).unwrap(),
    )
    .is_ok());
    let e = client_err(connect(
        tls::inner_client_config_leaf_pin(pin).unwrap(),
        tls::inner_server_config(&same_account_other_leaf).unwrap(),
    ));
    assert!(matches!(e, Error::InvalidCertificate(_)), "{e:?}");
}

#[test]
fn expired_console_certificate_is_refused() {
    let w = world();
    let v = CaPinVerifier::new(w.acct.pin());
    let chain = w.console.chain();
    let name = tls::server_name();
    assert!(v
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .is_ok());
    let later = UnixTime::since_unix_epoch(
        UnixTime::now()
            .as_secs()
            .checked_add(CONSOLE_CERT_VALIDITY.as_secs() + 60)
            .map(std::time::Duration::from_secs)
            .unwrap(),
    );
    let e = v
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], later)
        .unwrap_err();
    assert_eq!(e, Error::InvalidCertificate(CertificateError::Expired));
}

fn provider_with(suites: Vec<rustls::SupportedCipherSuite>) -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = suites;
    Arc::new(p)
}

fn client_with(
    suites: Vec<rustls::SupportedCipherSuite>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    pin: Pin,
) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider_with(suites))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(CaPinVerifier::new(pin))
            .with_no_client_auth(),
    )
}

#[test]
fn client_offering_only_aes_128_or_chacha_is_refused() {
    use rustls::crypto::ring::cipher_suite as cs;
    let w = world();
    for suite in [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ] {
        let r = connect(
            client_with(vec![suite], &[&rustls::version::TLS13], w.gw_ca.pin()),
            tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
        );
        assert!(
            matches!(
                r,
                Err(Failed::Server(Error::PeerIncompatible(
                    rustls::PeerIncompatible::NoCipherSuitesInCommon
                )))
            ),
            "{r:?}"
        );
    }
    let r = connect(
        client_with(
            vec![cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
            &[&rustls::version::TLS12],
            w.gw_ca.pin(),
        ),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    );
    assert!(matches!(r, Err(Failed::Server(_))), "{r:?}");
}

#[test]
fn outer_hop_allows_tls12_aes_256_gcm_but_inner_tls_does_not() {
    use rustls::crypto::ring::cipher_suite as cs;
    let w = world();
    let tls12 = || {
        client_with(
            vec![cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
            &[&rustls::version::TLS12],
            w.gw_ca.pin(),
        )
    };
    let (c, _s) = connect(
        tls12(),
        tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap(),
    )
    .unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let inner12 = client_with(
        vec![cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
        &[&rustls::version::TLS12],
        w.acct.pin(),
    );
    let r = connect(inner12, tls::inner_server_config(&w.console).unwrap());
    assert!(matches!(r, Err(Failed::Server(_))), "{r:?}");
}

#[test]
fn account_ca_presented_as_its_own_leaf_is_refused() {
    // Someone holding the account CA key still cannot make the CA itself the server leaf.
    use rustls_pki_types::pem::PemObject;
    let w = world();
    let key =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(w.acct.key_pem().as_bytes()).unwrap();
    let ca_as_leaf = Identity::new(vec![w.acct.cert().clone(), w.acct.cert().clone()], key);
    let e = client_err(connect(
        tls::inner_client_config_account(w.acct.pin()).unwrap(),
        tls::inner_server_config(&ca_as_leaf).unwrap(),
    ));
    assert!(matches!(e, Error::InvalidCertificate(_)), "{e:?}");
}

#[test]
fn gateway_does_not_reveal_account_ca_names_to_clients() {
    // Over TLS 1.2 the CertificateRequest is in clear: it must carry no CA names, so an
    // applet (or anyone) learns no account ids from it.
    use rustls::crypto::ring::cipher_suite as cs;
    let w = world();
    let mut c = ClientConnection::new(
        client_with(
            vec![cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
            &[&rustls::version::TLS12],
            w.gw_ca.pin(),
        ),
        tls::server_name(),
    )
    .unwrap();
    let mut s =
        ServerConnection::new(tls::gateway_server_config(&w.gateway, &roots(&w.acct)).unwrap())
            .unwrap();
    transfer(&mut c, &mut s).unwrap();
    let mut flight = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut flight).unwrap();
    }
    let has = |needle: &[u8]| flight.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"rescue gateway CA"),
        "the flight should contain the gateway chain"
    );
    assert!(!has(b"rescue account"), "the flight names an account CA");
}
