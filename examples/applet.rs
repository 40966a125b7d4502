//! The end user's applet: registers the ticket's session at a gateway, waits for a
//! technician, shows who connected and the SAS, then bridges stdin/stdout with the
//! end-to-end stream.
//!
//! ```text
//! cargo run --example applet -- --ticket session.ticket
//! ```

use std::path::PathBuf;

use clap::Parser;
use rescue::Applet;

#[derive(Parser, Debug)]
#[command(about = "rescue applet (end user side)")]
struct Args {
    /// The signed ticket file (from `gateway --issue-ticket`).
    #[arg(long)]
    ticket: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let applet = Applet::from_ticket(std::fs::read(&args.ticket)?)?;
    let registration = applet.register().await?;
    println!(
        "session {} registered at {}; waiting for a technician...",
        registration.guid(),
        registration.gateway()
    );
    let session = registration.wait_paired().await?;
    println!(
        "connected to technician {} (account {}); compare the code: {}",
        session.console().technician,
        session.console().account,
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
