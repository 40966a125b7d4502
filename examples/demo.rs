//! The whole relayed session in one process on loopback, with no set-up: a development
//! PKI in memory, a gateway on an OS-assigned port, a portal issuing a ticket, an applet
//! registering it, a console claiming it. One message goes each way through the relay,
//! inside end-to-end TLS the gateway cannot read; both sides print the SAS (equal), and
//! the gateway prints the bytes it forwarded.
//!
//! ```text
//! cargo run --example demo
//! ```

use std::time::Duration;

use rescue::devpki::DevPki;
use rescue::portal::{Portal, SessionRequest};
use rescue::{Applet, Console, Gateway, GatewayConfig, PeerTimeouts};
use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::TicketSigner;
use rescue_proto::{PermissionSet, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole demo must finish well within this.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::timeout(DEMO_TIMEOUT, run())
        .await
        .map_err(|_| "demo timed out")?
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let account = AccountId(42);
    let pki = DevPki::generate(&["127.0.0.1".into()], account, "alice")?;

    let config = GatewayConfig::new(
        pki.gateway.clone(),
        [(account, pki.account_ca.cert().clone())],
        pki.verify_key(),
    );
    let gateway = Gateway::bind("127.0.0.1:0".parse()?, config).await?;
    let addr = gateway.local_addr().to_string();
    println!("gateway   listening on {addr}");

    let portal = Portal::new(
        TicketSigner::from_pkcs8(pki.signer.pkcs8())?,
        vec![addr.clone()],
        pki.gateway_ca.pin(),
    );
    let policy = Policy {
        allowed: PermissionSet::ALL,
        ..Policy::default()
    };
    let issued = portal.issue(&SessionRequest::new(account, pki.account_ca.pin(), policy))?;
    println!("portal    issued session {}", issued.guid);

    let applet = Applet::from_ticket(issued.ticket.clone())?;
    let registration = applet.register().await?;
    println!(
        "applet    registered at {}, waiting",
        registration.gateway()
    );

    let mut console = Console::connect(
        &addr,
        pki.gateway_ca.pin(),
        pki.console.clone(),
        PeerTimeouts::default(),
    )
    .await?;
    let waiting = console.queue().await?;
    println!(
        "console   sees {} waiting session(s), claims {}",
        waiting.len(),
        issued.guid
    );

    let (applet_side, console_side) =
        tokio::join!(registration.wait_paired(), console.claim(issued.guid));
    let (mut a, mut c) = (applet_side?, console_side?);
    println!(
        "applet    connected to {} (account {}), SAS {}",
        a.console().technician,
        a.console().account,
        a.sas()
    );
    println!("console   connected to the applet, SAS {}", c.sas());

    a.write_all(b"hello from the end user").await?;
    a.flush().await?;
    let mut buf = [0u8; 23];
    c.read_exact(&mut buf).await?;
    println!("console   received: {}", String::from_utf8_lossy(&buf));

    c.write_all(b"hello from the technician").await?;
    c.flush().await?;
    let mut buf = [0u8; 25];
    a.read_exact(&mut buf).await?;
    println!("applet    received: {}", String::from_utf8_lossy(&buf));

    let sas_equal = a.sas() == c.sas();
    a.shutdown().await?;
    drop(a);
    drop(c);
    let stats = gateway.shutdown().await;
    println!(
        "gateway   forwarded {} bytes applet->console, {} bytes console->applet (ciphertext only)",
        stats.bytes_applet_to_console, stats.bytes_console_to_applet
    );
    if !sas_equal {
        return Err("the two SAS differ".into());
    }
    println!("SAS equal on both sides: ok");
    Ok(())
}
