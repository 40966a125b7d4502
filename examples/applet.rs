//! The end user's applet: registers the ticket's session at a gateway, waits for a
//! technician, shows who connected and the SAS, then runs a `Session` under the policy
//! from the ticket. Every permission the technician asks for (and the policy allows) is
//! a question on the terminal, answered with y or n (no answer in time means no);
//! chat from the technician is printed, lines typed on stdin go out as chat; received
//! files are saved into `--download-dir` (without it every file is refused) and their
//! MD5 and SHA-256 printed. `/revoke` withdraws every grant; Ctrl-D (end of stdin)
//! ends the session.
//!
//! ```text
//! cargo run --example applet -- --ticket session.ticket --key session.key \
//!     --portal-key dev-pki/ticket-verify.hex --download-dir downloads
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use rescue::session::consent::{ConsentFuture, ConsentRequest, DEFAULT_CONSENT_TIMEOUT};
use rescue::session::{
    Consent, ConsentAnswer, ConsentConfig, PathKind, Session, SessionConfig, SessionEvent,
};
use rescue::{Applet, ClaimKey};
use rescue_crypto::ticket::TicketVerifyKey;
use tokio::sync::{mpsc::Receiver, oneshot};

mod terminal;

#[derive(Parser, Debug)]
#[command(about = "rescue applet (end user side)")]
struct Args {
    #[command(flatten)]
    direct: terminal::DirectArgs,
    /// The signed ticket file (from `gateway --issue-ticket`).
    #[arg(long)]
    ticket: PathBuf,
    /// The session key file written beside the ticket (GUID and session secret).
    #[arg(long)]
    key: PathBuf,
    /// The portal's ticket verify key (64 hex digits; `ticket-verify.hex` of the
    /// development PKI): a ticket it did not sign is refused.
    #[arg(long, value_name = "FILE")]
    portal_key: PathBuf,
    /// Where received files are saved (created if missing); without it files are refused.
    #[arg(long, value_name = "DIR")]
    download_dir: Option<PathBuf>,
    /// Seconds the end user has to answer a permission prompt.
    #[arg(long, default_value_t = DEFAULT_CONSENT_TIMEOUT.as_secs())]
    consent_timeout: u64,
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
    let key = ClaimKey::from_text(&std::fs::read_to_string(&args.key)?)?;
    let portal_key: TicketVerifyKey = std::fs::read_to_string(&args.portal_key)?.parse()?;
    let applet = Applet::from_ticket(std::fs::read(&args.ticket)?, key.secret, &portal_key)?;
    if applet.guid() != key.guid {
        return Err("the session key belongs to another session than the ticket".into());
    }
    let policy = applet.ticket().policy;
    let registration = applet.register().await?;
    println!(
        "session {} registered at {}; waiting for a technician...",
        registration.guid(),
        terminal::shown(registration.gateway())
    );
    let stream = registration.wait_paired().await?;
    println!(
        "connected to technician {} (account {}); compare the code: {}",
        terminal::shown(&stream.console().technician),
        terminal::shown(stream.console().account),
        stream.sas()
    );
    let timeout = Duration::from_secs(args.consent_timeout);
    let prompt = Arc::new(TerminalConsent::new(timeout));
    let mut cfg = SessionConfig::applet(&stream, policy);
    cfg.direct = args.direct.config();
    cfg.consent = Some(ConsentConfig::new(prompt.clone()).with_timeout(timeout));
    if let Some(dir) = &args.download_dir {
        std::fs::create_dir_all(dir)?;
        cfg.download_dir = Some(dir.clone());
    }
    let mut session = Session::start(stream, PathKind::Relay, cfg);
    let events = session.events().ok_or("no event stream")?;
    run(&session, events, &prompt).await
}

/// Asks on the terminal. The prompt is printed here; the answer is the next line read
/// by [`run`] (the one stdin reader), handed over through `pending`.
pub(crate) struct TerminalConsent {
    pending: Mutex<Option<oneshot::Sender<bool>>>,
    timeout: Duration,
}

impl TerminalConsent {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            pending: Mutex::new(None),
            timeout,
        }
    }

    /// Hands `line` to an open prompt; `false` if no prompt is waiting for it.
    pub(crate) fn answer(&self, line: &str) -> bool {
        let Some(tx) = self.pending.lock().ok().and_then(|mut p| p.take()) else {
            return false;
        };
        let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        // A prompt that timed out has dropped its receiver: the line is chat then.
        tx.send(yes).is_ok()
    }
}

impl Consent for TerminalConsent {
    fn ask(&self, req: ConsentRequest) -> ConsentFuture<'_> {
        let what = req
            .permissions
            .iter()
            .map(|p| p.label())
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "Allow {what} for {}@account {}? [y/N] (no answer within {} s means no)",
            terminal::shown(&req.technician),
            terminal::shown(&req.account),
            self.timeout.as_secs()
        );
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(tx); // a newer question replaces an unanswered one (that one: no)
        }
        Box::pin(async move {
            match rx.await {
                Ok(true) => ConsentAnswer::Allow,
                _ => ConsentAnswer::Deny,
            }
        })
    }
}

/// Reads stdin (answers, chat, `/revoke`) and prints events until the session ends.
async fn run(
    session: &Session,
    mut events: Receiver<SessionEvent>,
    prompt: &TerminalConsent,
) -> AnyResult<()> {
    println!("type lines to chat; /revoke withdraws every permission; Ctrl-D ends the session");
    let mut lines = terminal::stdin_lines();
    let mut typing = true;
    loop {
        tokio::select! {
            line = lines.recv(), if typing => match line {
                Some(l) if prompt.answer(&l) => {}
                Some(l) if l.trim() == "/revoke" => revoke_all(session).await,
                Some(l) if !l.is_empty() => session.chat(&l).await?,
                Some(_) => {}
                None => {
                    typing = false;
                    session.end();
                    println!("ending the session");
                }
            },
            ev = events.recv() => match ev {
                Some(SessionEvent::Ended { reason, by_peer }) => {
                    let by = if by_peer { "the technician" } else { "you" };
                    println!("session ended by {by} ({reason:?}); every permission is void");
                    break;
                }
                Some(e) => print_event(e),
                None => break,
            },
        }
    }
    terminal::wait_closed(&mut events).await;
    Ok(())
}

async fn revoke_all(session: &Session) {
    let grants = session.grants();
    if grants.is_empty() {
        println!("no permission granted");
    }
    for (id, _) in grants {
        if let Err(e) = session.revoke(id).await {
            println!("revoking grant {id} failed: {}", terminal::shown(&e));
        }
    }
}

fn print_event(e: SessionEvent) {
    match e {
        SessionEvent::Chat { text } => println!("technician: {}", terminal::shown(&text)),
        SessionEvent::PermissionGranted { grant_id, .. } => println!("granted (grant {grant_id})"),
        SessionEvent::PermissionDenied {
            permissions,
            reason,
        } => println!("refused {permissions:?}: {reason:?}"),
        SessionEvent::PermissionRevoked { grant_id } => println!("grant {grant_id} revoked"),
        SessionEvent::FileOffered { name, size, .. } => {
            println!("incoming file {} ({size} bytes)", terminal::shown(&name))
        }
        SessionEvent::FileReceived { file, .. } => println!(
            "saved {} ({} bytes), verified: md5 {} sha256 {}",
            terminal::shown(file.path.display()),
            file.size,
            file.digests.md5_hex(),
            file.digests.sha256_hex()
        ),
        SessionEvent::FileFailed { reason, .. } => {
            println!("file transfer failed: {}", terminal::shown(&reason))
        }
        SessionEvent::PathChanged(p) => println!("path: {}", terminal::path_name(p.kind)),
        _ => {}
    }
}
