//! Issuing: session mint, the end user's fetch by code, the shared queue, claims, and
//! console certificates from CSRs.

mod common;

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{ip, TestPortal};
use rescue::ClaimKey;
use rescue_crypto::pki::{AccountId, ConsoleName};
use rescue_crypto::ticket::verify;
use rescue_portal::tenant::{GroupPolicy, Tenant};
use serde_json::json;

#[tokio::test]
async fn a_session_goes_from_issued_to_the_queue_to_a_claim() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tech = p.technician(&a, "tech@acme.test").await;
    let creator = p.login(&a.admin).await;
    let other = p.login(&tech).await;

    let (s, created) = p.call("POST", "/api/sessions", Some(&creator), None).await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let id = created["session"]["id"].as_i64().unwrap();
    let code = created["code"].as_str().unwrap().to_owned();
    assert!(created["download_url"].as_str().unwrap().ends_with(&code));
    assert_eq!(created["session"]["state"], "issued");

    // Nobody waits yet.
    let (_, q) = p.call("GET", "/api/queue", Some(&other), None).await;
    assert!(q.as_array().unwrap().is_empty());

    // The end user fetches ticket and key with the code (case and dashes ignored).
    let messy = format!("{}-{}", &code[..5].to_lowercase(), &code[5..]);
    let (s, applet) = p
        .call("GET", &format!("/api/applet/{messy}"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{applet}");
    let ticket = STANDARD.decode(applet["ticket"].as_str().unwrap()).unwrap();
    let t = verify(&ticket, &p.svc.issuer().verify_key(), p.svc.now()).unwrap();
    assert_eq!(t.account, AccountId(a.id as u64));
    let key = ClaimKey::from_text(applet["key"].as_str().unwrap()).unwrap();
    assert_eq!(key.guid, t.guid);
    assert_eq!(
        key.guid.to_string(),
        created["session"]["guid"].as_str().unwrap()
    );
    assert!(
        !ticket.windows(32).any(|w| w == key.secret.expose()),
        "secret not in the ticket"
    );

    // Now the shared queue shows the end user to the account's other technician.
    let (_, q) = p.call("GET", "/api/queue", Some(&other), None).await;
    let q = q.as_array().unwrap().clone();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["id"].as_i64(), Some(id));

    // The other technician claims it and gets the same key the applet holds.
    let (s, c) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/claim"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let claimed = ClaimKey::from_text(c["claim_key"].as_str().unwrap()).unwrap();
    assert_eq!(claimed.secret.expose(), key.secret.expose());
    assert_eq!(created["claim_key"], c["claim_key"]);
    // Once: a second claim, and a second fetch of the code, find nothing.
    let (s, _) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/claim"),
            Some(&creator),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = p
        .call("GET", &format!("/api/applet/{code}"), None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, q) = p.call("GET", "/api/queue", Some(&other), None).await;
    assert!(q.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_group_without_the_shared_queue_sees_only_its_own_sessions() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    let mut pol = GroupPolicy::default();
    pol.shared_queue = false;
    let private = t.create_group("test", "private", &pol).await.unwrap();
    let loner = t
        .create_technician("test", "loner@acme.test", "loner", private, false)
        .await
        .unwrap();
    let admin = p.login(&a.admin).await;
    let loner_tok = p.login(&loner).await;
    let (_, created) = p.call("POST", "/api/sessions", Some(&admin), None).await;
    let code = created["code"].as_str().unwrap();
    let id = created["session"]["id"].as_i64().unwrap();
    assert_eq!(
        p.call("GET", &format!("/api/applet/{code}"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, q) = p.call("GET", "/api/queue", Some(&loner_tok), None).await;
    assert!(q.as_array().unwrap().is_empty(), "{q}");
    let (s, _) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/claim"),
            Some(&loner_tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, q) = p.call("GET", "/api/queue", Some(&admin), None).await;
    assert_eq!(q.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expired_code_finds_nothing_and_codes_are_rate_limited() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (_, created) = p.call("POST", "/api/sessions", Some(&tok), None).await;
    let code = created["code"].as_str().unwrap().to_owned();
    p.clock
        .advance(rescue::portal::TICKET_LIFETIME.as_secs() + 1);
    assert_eq!(
        p.call("GET", &format!("/api/applet/{code}"), None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let limit = common::test_config().login_attempts_per_source;
    let mut last = StatusCode::OK;
    for _ in 0..=limit {
        last = p
            .call_from(
                ip("192.0.2.99"),
                "GET",
                "/api/applet/AAAAAAAAAA",
                None,
                None,
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_ticket_carries_the_groups_policy_and_the_account_ca_pin() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (_, groups) = p.call("GET", "/api/groups", Some(&tok), None).await;
    let gid = groups[0]["id"].as_i64().unwrap();
    let body = json!({ "permissions": 5, "all_in_one": true, "exclude_chat": true, "shared_queue": true, "allow_list": "" });
    assert_eq!(
        p.call("PUT", &format!("/api/groups/{gid}"), Some(&tok), Some(body))
            .await
            .0,
        StatusCode::OK
    );
    let (_, created) = p.call("POST", "/api/sessions", Some(&tok), None).await;
    let (_, applet) = p
        .call(
            "GET",
            &format!("/api/applet/{}", created["code"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    let ticket = STANDARD.decode(applet["ticket"].as_str().unwrap()).unwrap();
    let t = verify(&ticket, &p.svc.issuer().verify_key(), p.svc.now()).unwrap();
    assert_eq!(t.policy.allowed.bits(), 5);
    assert!(t.policy.all_in_one_allowed && t.policy.exclude_chat_from_audit);
    assert_eq!(t.group, "default");
    // The pin is the account CA's: a console certificate it signs chains to it.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let (_, cert) = p
        .call(
            "POST",
            "/api/console-cert",
            Some(&tok),
            Some(json!({ "csr": STANDARD.encode(csr.der()) })),
        )
        .await;
    use rustls_pki_types::pem::PemObject;
    let ca =
        rustls_pki_types::CertificateDer::from_pem_slice(cert["ca"].as_str().unwrap().as_bytes())
            .unwrap();
    assert_eq!(rescue_crypto::pin::Pin::of(&ca), t.account_ca_pin);
}

#[tokio::test]
async fn a_console_csr_gets_a_short_lived_certificate_of_the_account_ca() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "I am root");
    let csr = params.serialize_request(&key).unwrap();
    let (s, v) = p
        .call(
            "POST",
            "/api/console-cert",
            Some(&tok),
            Some(json!({ "csr": STANDARD.encode(csr.der()) })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    use rustls_pki_types::pem::PemObject;
    let leaf = rustls_pki_types::CertificateDer::from_pem_slice(
        v["certificate"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(v["ca"].as_str().unwrap().as_bytes())
        .unwrap();
    let name = ConsoleName::from_cert(&leaf).unwrap();
    assert_eq!(name.account, AccountId(a.id as u64));
    assert_eq!(
        name.technician, "admin",
        "the portal names the technician, not the CSR"
    );
    // The gateway's own check accepts the chain as this account's console.
    let mut roots = rescue_crypto::tls::AccountRoots::new();
    roots.add(AccountId(a.id as u64), ca.clone());
    assert_eq!(roots.console_of(&[leaf.clone(), ca.clone()]), Some(name));
    // Lifetime: hours, as configured.
    let (_, parsed) = x509_validity(&leaf);
    let hours = parsed / 3600;
    assert!(
        hours <= common::test_config().console_cert_validity.as_secs() / 3600 + 1,
        "{hours} h"
    );
    for bad in [
        json!({ "csr": "!!!" }),
        json!({ "csr": STANDARD.encode(b"junk") }),
    ] {
        let (s, _) = p
            .call("POST", "/api/console-cert", Some(&tok), Some(bad))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    let (s, _) = p
        .call(
            "POST",
            "/api/console-cert",
            None,
            Some(json!({ "csr": STANDARD.encode(csr.der()) })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// (notBefore, notAfter - notBefore) in seconds: the first two UTCTime values of the
/// certificate (tag 0x17, 13 bytes `YYMMDDHHMMSSZ`) are its validity.
fn x509_validity(der: &[u8]) -> (u64, u64) {
    let mut times = der
        .windows(15)
        .filter(|w| w[0] == 0x17 && w[1] == 13 && w[14] == b'Z')
        .map(|w| {
            let d = |i: usize| u64::from(w[2 + i] - b'0') * 10 + u64::from(w[3 + i] - b'0');
            let (y, mo, day, h, mi, sec) = (2000 + d(0), d(2), d(4), d(6), d(8), d(10));
            // Days from the civil date (Howard Hinnant's algorithm), March-based year.
            let (y2, m2) = if mo <= 2 {
                (y - 1, mo + 9)
            } else {
                (y, mo - 3)
            };
            let era = y2 / 400;
            let yoe = y2 - era * 400;
            let doy = (153 * m2 + 2) / 5 + day - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146097 + doe - 719468;
            days * 86400 + h * 3600 + mi * 60 + sec
        });
    let nb = times.next().unwrap();
    let na = times.next().unwrap();
    (nb, na - nb)
}
