//! The end user's side with a portal: fetches the session's ticket and key with the code
//! the technician gave, registers at the ticket's gateway, waits for the technician and
//! shows who connected and the SAS to compare; stays connected until the console ends.
//!
//! ```text
//! cargo run -p rescue-portal --example portal_applet -- --portal http://127.0.0.1:8080 \
//!     --code 7K3M9QX2PA --portal-key dev-pki/ticket-verify.hex
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rescue::{Applet, ClaimKey};
use rescue_crypto::ticket::TicketVerifyKey;
use rescue_portal::client::Client;
use tokio::io::AsyncReadExt;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> AnyResult<()> {
    let (mut portal, mut code, mut key_file) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--portal" => portal = Some(v),
            "--code" => code = Some(v),
            "--portal-key" => key_file = Some(v),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (Some(portal), Some(code), Some(key_file)) = (portal, code, key_file) else {
        return Err("usage: --portal URL --code CODE --portal-key FILE".into());
    };
    let client = Client::new(&portal)?;
    let conf = client
        .call("GET", &format!("/api/applet/{code}"), None)
        .await?;
    let ticket = STANDARD.decode(conf["ticket"].as_str().ok_or("no ticket in the answer")?)?;
    let key = ClaimKey::from_text(conf["key"].as_str().ok_or("no key in the answer")?)?;
    let verify_key: TicketVerifyKey = std::fs::read_to_string(key_file)?.parse()?;
    let applet = Applet::from_ticket(ticket, key.secret, &verify_key)?;
    let registration = applet.register().await?;
    println!(
        "session {} registered at {}; waiting for your technician…",
        registration.guid(),
        registration.gateway()
    );
    let session = registration.wait_paired().await?;
    println!(
        "technician {} (account {}) connected. Compare this code with theirs: {}",
        session.console().technician,
        session.console().account,
        session.sas()
    );
    let mut stream = session.into_stream();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break println!("session ended"),
            Ok(_) => {}
            // The console going away without a goodbye also ends the session.
            Err(e) => break println!("session ended ({e})"),
        }
    }
    Ok(())
}
