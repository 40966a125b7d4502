//! The technician's console with a portal: logs in at the terminal (e-mail, password,
//! TOTP code), has its own key certified by the portal (CSR), waits for an end user in
//! the account's queue, claims the session (the portal hands over the session secret),
//! connects through the gateway, shows the SAS, and reports the session's start and end
//! to the portal's log.
//!
//! ```text
//! cargo run -p rescue-portal --example portal_console -- --portal http://127.0.0.1:8080 \
//!     --dev-pki dev-pki --gateway 127.0.0.1:4433
//! ```
//!
//! The password is read from the terminal without hiding it (an example, not a product).

use std::io::{BufRead, Write};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rescue::{ClaimKey, Console, PeerTimeouts};
use rescue_crypto::pki::Identity;
use rescue_portal::client::Client;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How long the console waits for an end user in the queue.
const QUEUE_WAIT: Duration = Duration::from_secs(600);

fn ask(prompt: &str) -> AnyResult<String> {
    print!("{prompt}: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    let (mut portal, mut pki, mut gateway) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--portal" => portal = Some(v),
            "--dev-pki" => pki = Some(v),
            "--gateway" => gateway = Some(v),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (Some(portal), Some(pki), Some(gateway)) = (portal, pki, gateway) else {
        return Err("usage: --portal URL --dev-pki DIR --gateway HOST:PORT".into());
    };
    let gateway_pin = rescue::devpki::DevPki::read(pki.as_ref())?.gateway_ca.pin();

    let mut client = Client::new(&portal)?;
    let email = ask("e-mail")?;
    let password = ask("password")?;
    let code = ask("authenticator code")?;
    client.login(&email, &password, &code).await?;

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = rcgen::CertificateParams::default().serialize_request(&key)?;
    let cert = client
        .call(
            "POST",
            "/api/console-cert",
            Some(&json!({ "csr": STANDARD.encode(csr.der()) })),
        )
        .await?;
    let leaf = rustls_pki_types::CertificateDer::from_pem_slice(
        cert["certificate"].as_str().unwrap_or("").as_bytes(),
    )?;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(
        cert["ca"].as_str().unwrap_or("").as_bytes(),
    )?;
    let identity = Identity::new(
        vec![leaf, ca],
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );

    println!("waiting for an end user in the queue…");
    let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
    let id = loop {
        let q = client.call("GET", "/api/queue", None).await?;
        if let Some(id) = q.get(0).and_then(|s| s["id"].as_i64()) {
            break id;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("nobody came".into());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let claimed = client
        .call("POST", &format!("/api/sessions/{id}/claim"), None)
        .await?;
    let claim = ClaimKey::from_text(claimed["claim_key"].as_str().unwrap_or(""))?;
    let console =
        Console::connect(&gateway, gateway_pin, identity, PeerTimeouts::default()).await?;
    let session = console.claim(claim).await?;
    println!(
        "connected to session {}. Compare this code with the end user's: {}",
        session.guid(),
        session.sas()
    );
    let events = format!("/api/sessions/{id}/events");
    client
        .call("POST", &events, Some(&json!([{ "kind": "start" }])))
        .await?;
    ask("press Enter to end the session")?;
    drop(session);
    client
        .call("POST", &events, Some(&json!([{ "kind": "end" }])))
        .await?;
    println!("session ended; its log is at {portal}/sessions/{id}");
    Ok(())
}
