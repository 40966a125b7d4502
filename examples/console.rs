//! The technician's console: lists the account's waiting sessions, or claims one, shows
//! the SAS, then bridges stdin/stdout with the end-to-end stream.
//!
//! ```text
//! cargo run --example console -- --gateway 127.0.0.1:7443 --pki dev-pki --queue
//! cargo run --example console -- --gateway 127.0.0.1:7443 --pki dev-pki --claim GUID
//! ```

use std::path::PathBuf;

use clap::Parser;
use rescue::devpki::read_identity;
use rescue::{Console, PeerTimeouts};
use rescue_proto::Guid;

#[derive(Parser, Debug)]
#[command(about = "rescue console (technician side)")]
struct Args {
    /// The gateway (host:port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    gateway: String,
    /// The development PKI folder (console.pem, console.key.pem, gateway-ca.pem).
    #[arg(long)]
    pki: PathBuf,
    /// List the waiting sessions of this console's account.
    #[arg(long, conflicts_with = "claim")]
    queue: bool,
    /// Claim this session.
    #[arg(long, value_name = "GUID")]
    claim: Option<Guid>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let identity = read_identity(&args.pki, "console.pem", "console.key.pem")?;
    let gateway_ca_pem = std::fs::read_to_string(args.pki.join("gateway-ca.pem"))?;
    let gateway_ca_pin = {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(gateway_ca_pem.as_bytes())?;
        rescue_crypto::pin::Pin::of(&der)
    };
    let mut console = Console::connect(
        &args.gateway,
        gateway_ca_pin,
        identity,
        PeerTimeouts::default(),
    )
    .await?;
    println!(
        "connected as {} (account {})",
        console.name().technician,
        console.name().account
    );
    match args.claim {
        None => {
            let waiting = console.queue().await?;
            if waiting.is_empty() {
                println!("no session waiting");
            }
            for w in waiting {
                println!("{}  waiting {} s", w.guid, w.waiting.as_secs());
            }
            Ok(())
        }
        Some(guid) => {
            let session = console.claim(guid).await?;
            println!(
                "session {guid} connected; compare the code: {}",
                session.sas()
            );
            println!("type lines to send; Ctrl-D ends the session");
            let (mut rd, mut wr) = tokio::io::split(session);
            let to_peer = async {
                tokio::io::copy(&mut tokio::io::stdin(), &mut wr).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut wr).await
            };
            let mut stdout = tokio::io::stdout();
            let from_peer = tokio::io::copy(&mut rd, &mut stdout);
            tokio::select! {
                r = to_peer => r?,
                r = from_peer => { r?; }
            }
            println!("session ended");
            Ok(())
        }
    }
}
