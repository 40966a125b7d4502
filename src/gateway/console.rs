//! The gateway's console side: QUEUE (own account only) and CLAIM (account must match,
//! a second claim refused), then the console's hop is handed to the waiting applet's
//! task, which pairs and relays.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rescue_crypto::pki::ConsoleName;
use rescue_proto::handoff::gateway::Pairing;
use rescue_proto::handoff::{ConsoleIdentity, HopId};
use rescue_proto::wire::signal::{CloseReason, ErrorCode, Message, Pong, TechnicianName};
use rescue_proto::Guid;
use tracing::Instrument;

use super::refusal::{directory_refusal, refuse, Refusal};
use super::shared::{random_secret, Shared};
use super::table::ConsoleHop;
use crate::signal::{self, Hop, RecvError};

/// Serves a console connection after HELLO.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    hop: Hop,
    hop_id: HopId,
    name: ConsoleName,
    source: Option<IpAddr>,
) {
    let span =
        tracing::info_span!("console", account = %name.account, technician = %name.technician);
    serve_in_span(shared, hop, hop_id, name, source)
        .instrument(span)
        .await
}

async fn serve_in_span(
    shared: Arc<Shared>,
    mut hop: Hop,
    hop_id: HopId,
    name: ConsoleName,
    source: Option<IpAddr>,
) {
    let identity = match identity_of(&name) {
        Ok(i) => i,
        Err(r) => return refuse(&shared.stats, hop, r).await,
    };
    match requests(&shared, &mut hop, hop_id, &identity, source).await {
        Ok(None) => tracing::debug!("console left"),
        Ok(Some((guid, pairing))) => {
            let console = Box::new(ConsoleHop {
                hop,
                hop_id,
                pairing,
                technician: name.technician,
            });
            if let Err(back) = shared.sessions.hand_over(guid, console) {
                // Claimed in the directory, but the applet's task is gone.
                let now = Instant::now();
                let _ = shared
                    .directory
                    .close(now, hop_id, CloseReason::Normal)
                    .await;
                let r = Refusal::new(ErrorCode::UnknownGuid, "the applet left");
                refuse(&shared.stats, back.hop, r).await;
            }
        }
        Err(r) => refuse(&shared.stats, hop, r).await,
    }
}

/// The console's identity in the directory's terms, from its verified certificate.
fn identity_of(name: &ConsoleName) -> Result<ConsoleIdentity, Refusal> {
    match TechnicianName::new(name.technician.clone()) {
        Ok(technician) => Ok(ConsoleIdentity {
            account: name.account,
            technician,
        }),
        Err(_) => Err(Refusal::new(
            ErrorCode::WrongAccount,
            "console certificate names no usable technician",
        )),
    }
}

/// Answers QUEUE and PING until a CLAIM is accepted (`Ok(Some(..))`) or the console
/// leaves (`Ok(None)`).
async fn requests(
    shared: &Shared,
    hop: &mut Hop,
    hop_id: HopId,
    identity: &ConsoleIdentity,
    source: Option<IpAddr>,
) -> Result<Option<(Guid, Pairing)>, Refusal> {
    let idle = shared.config.limits.console_idle_timeout;
    loop {
        let msg = tokio::select! {
            m = signal::recv(hop, idle) => m,
            _ = shared.shutdown.cancelled() => {
                return Err(Refusal::new(ErrorCode::ShuttingDown, "gateway shutting down"));
            }
        };
        let reply = match msg {
            Ok(Message::Queue(_)) => {
                let queue = shared.directory.queue(Instant::now(), &identity.account);
                Message::QueueList(
                    queue
                        .await
                        .map_err(|e| directory_refusal(&shared.stats, e))?,
                )
            }
            Ok(Message::Claim(c)) => {
                shared.failures.check_claim(source, identity.account)?;
                let secret = random_secret()
                    .ok_or_else(|| Refusal::new(ErrorCode::Internal, "random generator failed"))?;
                let pairing = shared
                    .directory
                    .claim(Instant::now(), c.guid, identity.clone(), hop_id, secret)
                    .await
                    .map_err(|e| {
                        let r = directory_refusal(&shared.stats, e);
                        shared.failures.claim_refused(source, identity.account, &r);
                        r
                    })?;
                tracing::info!(guid = %c.guid.short(), "claim accepted");
                return Ok(Some((c.guid, pairing)));
            }
            Ok(Message::Ping(p)) => Message::Pong(Pong { nonce: p.nonce }),
            Ok(Message::Close(_)) | Err(RecvError::Closed) => return Ok(None),
            Ok(other) => return Err(Refusal::unexpected(&other, "QUEUE or CLAIM")),
            Err(e) => return Err(Refusal::from_recv(e, "request")),
        };
        signal::send(hop, reply)
            .await
            .map_err(|e| Refusal::silent(e.to_string()))?;
    }
}
