//! The relay-MITM threat, end to end in memory: a gateway that holds a valid console
//! certificate of the account (an insider, or a compromised account CA) can terminate
//! the inner TLS towards both ends. The pins cannot stop it; the committed SAS shows it:
//! both ends run the real BIND and SAS code over real TLS connections, and the codes on
//! the two screens differ whatever the MITM chooses.

mod common;

use common::connect;
use rescue_crypto::bind::{bind_tag, verify_bind_tag, Exporter, Role, SessionSecret};
use rescue_crypto::msg::InnerMsg;
use rescue_crypto::pki::{AccountCa, AccountId, CONSOLE_CERT_VALIDITY};
use rescue_crypto::sas::{AppletSas, ConsoleSas, Sas};
use rescue_crypto::{new_guid, tls};

/// What a MITM relaying the SAS exchange can do: pick its own nonces on each side.
fn sas_through_mitm(
    e_applet: Exporter,
    e_console: Exporter,
    mitm_na: [u8; 32],
    mitm_nc: [u8; 32],
) -> (Sas, Sas) {
    // Applet → MITM: the applet's commitment (the MITM cannot open it yet).
    let (applet, _commit_to_mitm) = AppletSas::start_with_nonce(e_applet.clone(), [0xa1; 32]);
    // MITM → console: a commitment to a nonce of the MITM's choice (it must commit now).
    let (mitm_as_applet, mitm_commit) = AppletSas::start_with_nonce(e_console.clone(), mitm_na);
    let (console, nonce_c) = ConsoleSas::new(e_console)
        .unwrap()
        .handle(mitm_commit)
        .unwrap();
    // MITM → applet: any nonce, even one chosen after seeing the console's.
    let (sas_applet, _reveal_na) = applet.handle(InnerMsg::SasNonce(mitm_nc)).unwrap();
    let (_, mitm_reveal) = mitm_as_applet.handle(nonce_c).unwrap();
    let sas_console = console.handle(mitm_reveal).unwrap();
    (sas_applet, sas_console)
}

#[test]
fn mitm_with_a_valid_console_certificate_is_shown_by_the_sas() {
    let acct = AccountCa::generate(AccountId(42)).unwrap();
    let console_id = acct
        .issue_console_cert("alice", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let rogue_id = acct
        .issue_console_cert("alice", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let guid = new_guid();

    // Applet ↔ MITM (rogue but valid console cert) and MITM ↔ real console.
    let (applet_tls, mitm_server) = connect(
        tls::inner_client_config_account(acct.pin()).unwrap(),
        tls::inner_server_config(&rogue_id).unwrap(),
    )
    .unwrap();
    let (mitm_client, console_tls) = connect(
        tls::inner_client_config_account(acct.pin()).unwrap(),
        tls::inner_server_config(&console_id).unwrap(),
    )
    .unwrap();
    let e_applet = Exporter::from_connection(&applet_tls, &guid).unwrap();
    let e_console = Exporter::from_connection(&console_tls, &guid).unwrap();

    // Forwarding the applet's BIND verbatim fails at the console: the exporters differ.
    let k = SessionSecret::generate().unwrap();
    let applet_bind = bind_tag(&k, &e_applet, &guid, Role::Applet);
    assert!(verify_bind_tag(&k, &e_console, &guid, Role::Applet, &applet_bind).is_err());
    // The MITM holds both exporters but not the session secret K: the BIND it makes on
    // each side is refused.
    let guess = SessionSecret::generate().unwrap();
    let e_mitm_s = Exporter::from_connection(&mitm_server, &guid).unwrap();
    let e_mitm_c = Exporter::from_connection(&mitm_client, &guid).unwrap();
    let to_console = bind_tag(&guess, &e_mitm_c, &guid, Role::Applet);
    assert!(verify_bind_tag(&k, &e_console, &guid, Role::Applet, &to_console).is_err());
    let to_applet = bind_tag(&guess, &e_mitm_s, &guid, Role::Console);
    assert!(verify_bind_tag(&k, &e_applet, &guid, Role::Console, &to_applet).is_err());
    // (With K it could: K is what makes BIND an authentication, so it never reaches a
    // gateway.)
    let with_k = bind_tag(&k, &e_mitm_c, &guid, Role::Applet);
    assert!(verify_bind_tag(&k, &e_console, &guid, Role::Applet, &with_k).is_ok());

    // ... but not the SAS: over a range of MITM nonce choices the codes never agree
    // (each try would succeed with probability 1e-6; the honest ends' nonces are fixed
    // here so the test is deterministic).
    // Forwarding the three SAS messages verbatim gives each end the same nonces, but
    // each end mixes in its own exporter, so the codes differ.
    let (applet, commit) = AppletSas::start_with_nonce(e_applet.clone(), [0xa1; 32]);
    let (console, nonce) = ConsoleSas::with_nonce(e_console.clone(), [0xc1; 32])
        .handle(commit)
        .unwrap();
    let (sas_applet, reveal) = applet.handle(nonce).unwrap();
    let sas_console = console.handle(reveal).unwrap();
    assert_ne!(sas_applet, sas_console, "verbatim forwarding");
    for i in 0..64u8 {
        let (a, c) = sas_through_mitm(e_applet.clone(), e_console.clone(), [i; 32], [i ^ 0xff; 32]);
        assert_ne!(a, c, "MITM try {i} matched");
    }
}

#[test]
fn without_a_mitm_both_screens_show_the_same_code() {
    let acct = AccountCa::generate(AccountId(1)).unwrap();
    let console_id = acct
        .issue_console_cert("bob", CONSOLE_CERT_VALIDITY)
        .unwrap();
    let guid = new_guid();
    let (a, c) = connect(
        tls::inner_client_config_account(acct.pin()).unwrap(),
        tls::inner_server_config(&console_id).unwrap(),
    )
    .unwrap();
    let (ea, ec) = (
        Exporter::from_connection(&a, &guid).unwrap(),
        Exporter::from_connection(&c, &guid).unwrap(),
    );
    let (applet, commit) = AppletSas::start(ea).unwrap();
    let (console, nonce) = ConsoleSas::new(ec)
        .unwrap()
        .handle(InnerMsg::decode(&commit.encode()).unwrap().unwrap().0)
        .unwrap();
    let (sas_a, reveal) = applet
        .handle(InnerMsg::decode(&nonce.encode()).unwrap().unwrap().0)
        .unwrap();
    let sas_c = console
        .handle(InnerMsg::decode(&reveal.encode()).unwrap().unwrap().0)
        .unwrap();
    assert_eq!(sas_a, sas_c);
}
