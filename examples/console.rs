//! The technician's console: lists the account's waiting sessions, or claims one, shows
//! the SAS and runs a `Session` on the end-to-end stream. With `--chat TEXT` it sends a
//! chat message; with `--send-file PATH` it asks the end user for the file-transfer
//! permission and sends the file with a progress bar (driven by the session's progress
//! events) until the end user's side has verified MD5 and SHA-256. Then lines typed on
//! stdin go out as chat and the end user's chat and events are printed; Ctrl-D (end of
//! stdin) ends the session.
//!
//! ```text
//! cargo run --example console -- --gateway 127.0.0.1:7443 --pki dev-pki --queue
//! cargo run --example console -- --gateway 127.0.0.1:7443 --pki dev-pki --claim session.key
//! cargo run --example console -- --pki dev-pki --claim session.key --chat hi --send-file a.pdf
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rescue::devpki::read_identity;
use rescue::session::{PathKind, Session, SessionConfig, SessionEvent, TransferId};
use rescue::{ClaimKey, Console, PeerTimeouts};
use rescue_crypto::Digests;
use rescue_proto::{Permission, Policy};
use tokio::sync::mpsc::Receiver;

mod terminal;

/// Longest a transfer may go without any progress event before the console gives up
/// waiting (the session cancels a stalled transfer itself after its own idle timeout).
const TRANSFER_IDLE: Duration = Duration::from_secs(150);

#[derive(Parser, Debug)]
#[command(about = "rescue console (technician side)")]
struct Args {
    #[command(flatten)]
    direct: terminal::DirectArgs,
    /// The gateway (host:port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    gateway: String,
    /// The development PKI folder (console.pem, console.key.pem, gateway-ca.pem).
    #[arg(long)]
    pki: PathBuf,
    /// List the waiting sessions of this console's account.
    #[arg(long, conflicts_with = "claim")]
    queue: bool,
    /// Claim the session of this session key file (GUID and session secret, from the
    /// portal: `gateway --issue-ticket` writes it beside the ticket).
    #[arg(long, value_name = "KEY_FILE")]
    claim: Option<PathBuf>,
    /// After claiming: send this chat message.
    #[arg(long, value_name = "TEXT", requires = "claim")]
    chat: Option<String>,
    /// After claiming: ask for file transfer and send this file.
    #[arg(long, value_name = "PATH", requires = "claim")]
    send_file: Option<PathBuf>,
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> AnyResult<()> {
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
    let Some(key_file) = &args.claim else {
        let waiting = console.queue().await?;
        if waiting.is_empty() {
            println!("no session waiting");
        }
        for w in waiting {
            println!("{}  waiting {} s", w.guid, w.waiting.as_secs());
        }
        return Ok(());
    };
    let key = ClaimKey::from_text(&std::fs::read_to_string(key_file)?)?;
    let guid = key.guid;
    let stream = console.claim(key).await?;
    println!(
        "session {guid} connected; compare the code: {}",
        stream.sas()
    );
    // The policy is enforced on the end user's side (from the ticket); the console's
    // copy only decides what its own audit trail would leave out.
    let mut cfg = SessionConfig::console(&stream, Policy::default());
    cfg.direct = args.direct.config();
    let mut session = Session::start(stream, PathKind::Relay, cfg);
    let mut events = session.events().ok_or("no event stream")?;
    if let Some(text) = &args.chat {
        session.chat(text).await?;
        println!("you: {text}");
    }
    if let Some(path) = &args.send_file {
        if let Err(e) = send_file(&session, &mut events, path).await {
            println!("file not sent: {}", terminal::shown(&e));
        }
    }
    interact(&session, &mut events).await
}

/// Asks for file transfer, sends `path` and shows a progress bar until the receiver
/// verified it (or refused, or the transfer failed).
pub(crate) async fn send_file(
    session: &Session,
    events: &mut Receiver<SessionEvent>,
    path: &Path,
) -> AnyResult<()> {
    println!("asking the end user for file transfer...");
    let grant = session.request(Permission::FileTransfer).await?;
    println!("granted (grant {})", grant.id());
    let id = session.send_path(path, &grant).await?;
    let size = std::fs::metadata(path)?.len();
    let bar = ProgressBar::new(size);
    bar.set_style(ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )?);
    bar.set_message(path.display().to_string());
    match follow_transfer(events, id, &bar).await {
        Ok(d) => {
            bar.finish();
            println!(
                "{} sent; verified by the end user: md5 {} sha256 {}",
                path.display(),
                d.md5_hex(),
                d.sha256_hex()
            );
            Ok(())
        }
        Err(e) => {
            bar.abandon();
            Err(e)
        }
    }
}

/// Moves the bar on the progress events of transfer `id` until the receiver verified
/// it; returns the digests both sides agreed on.
pub(crate) async fn follow_transfer(
    events: &mut Receiver<SessionEvent>,
    id: TransferId,
    bar: &ProgressBar,
) -> AnyResult<Digests> {
    loop {
        let ev = tokio::time::timeout(TRANSFER_IDLE, events.recv())
            .await
            .map_err(|_| "no progress: gave up waiting")?
            .ok_or("the session ended")?;
        match ev {
            SessionEvent::FileProgress { id: i, done, .. } if i == id => bar.set_position(done),
            SessionEvent::FileSent { id: i, digests } if i == id => return Ok(digests),
            SessionEvent::FileFailed { id: i, reason } if i == id => return Err(reason.into()),
            SessionEvent::Ended { reason, .. } => {
                return Err(format!("the session ended ({reason:?})").into())
            }
            other => bar.suspend(|| print_event(other)),
        }
    }
}

/// Chat from stdin until its end (Ctrl-D), printing the end user's chat and events.
async fn interact(session: &Session, events: &mut Receiver<SessionEvent>) -> AnyResult<()> {
    println!("type lines to chat; Ctrl-D ends the session");
    let mut lines = terminal::stdin_lines();
    let mut typing = true;
    loop {
        tokio::select! {
            line = lines.recv(), if typing => match line {
                Some(text) if !text.is_empty() => session.chat(&text).await?,
                Some(_) => {}
                None => {
                    typing = false;
                    session.end();
                    println!("ending the session");
                }
            },
            ev = events.recv() => match ev {
                Some(SessionEvent::Ended { reason, by_peer }) => {
                    let by = if by_peer { "the end user" } else { "this side" };
                    println!("session ended by {by} ({reason:?})");
                    break;
                }
                Some(e) => print_event(e),
                None => break,
            },
        }
    }
    terminal::wait_closed(events).await;
    Ok(())
}

fn print_event(e: SessionEvent) {
    match e {
        SessionEvent::Chat { text } => println!("end user: {}", terminal::shown(&text)),
        SessionEvent::PermissionRevoked { grant_id } => {
            println!("grant {grant_id} revoked")
        }
        SessionEvent::PathChanged(p) => println!("path: {}", terminal::path_name(p.kind)),
        SessionEvent::FileFailed { reason, .. } => {
            println!("transfer failed: {}", terminal::shown(&reason))
        }
        _ => {}
    }
}
