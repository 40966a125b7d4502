//! The gateway's console side: QUEUE (own account only) and CLAIM (account must match,
//! a second claim refused), then the console's hop is handed to the waiting applet's
//! task, which pairs and relays.

use std::sync::Arc;
use std::time::Instant;

use rescue_crypto::pki::ConsoleName;
use rescue_proto::wire::limits::MAX_QUEUE_ENTRIES;
use rescue_proto::wire::signal::{ErrorCode, Message, Pong, QueueEntry, QueueList};
use rescue_proto::Guid;
use tracing::Instrument;

use super::applet::directory_refusal;
use super::conn::{refuse, Hop, Refusal};
use super::pairing::ConsoleHop;
use super::Shared;
use crate::signal::{self, RecvError};

/// Serves a console connection after HELLO.
pub(crate) async fn serve(shared: Arc<Shared>, hop: Hop, name: ConsoleName) {
    let span =
        tracing::info_span!("console", account = %name.account, technician = %name.technician);
    serve_in_span(shared, hop, name).instrument(span).await
}

async fn serve_in_span(shared: Arc<Shared>, mut hop: Hop, name: ConsoleName) {
    match requests(&shared, &mut hop, &name).await {
        Ok(None) => tracing::debug!("console left"),
        Ok(Some(guid)) => {
            let console = Box::new(ConsoleHop {
                hop,
                account: name.account,
                technician: name.technician,
            });
            if let Err(back) = shared.parking.hand_over(guid, console) {
                // Claimed in the directory, but the applet's task is gone.
                shared.config.directory.end(guid, Instant::now());
                let r = Refusal::new(ErrorCode::UnknownGuid, "the applet left");
                refuse(&shared, back.hop, r).await;
            }
        }
        Err(r) => refuse(&shared, hop, r).await,
    }
}

/// Answers QUEUE and PING until a CLAIM is accepted (`Ok(Some(guid))`) or the console
/// leaves (`Ok(None)`).
async fn requests(
    shared: &Shared,
    hop: &mut Hop,
    name: &ConsoleName,
) -> Result<Option<Guid>, Refusal> {
    let idle = shared.config.limits.console_idle_timeout;
    loop {
        let msg = tokio::select! {
            m = signal::recv(hop, idle) => m,
            _ = shared.shutdown.cancelled() => {
                return Err(Refusal::new(ErrorCode::ShuttingDown, "gateway shutting down"));
            }
        };
        let reply = match msg {
            Ok(Message::Queue(_)) => Message::QueueList(queue(shared, name)?),
            Ok(Message::Claim(c)) => {
                shared
                    .config
                    .directory
                    .claim(c.guid, name.account, Instant::now())
                    .map_err(directory_refusal)?;
                tracing::info!(guid = %c.guid, "claim accepted");
                return Ok(Some(c.guid));
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

fn queue(shared: &Shared, name: &ConsoleName) -> Result<QueueList, Refusal> {
    let waiting = shared
        .config
        .directory
        .waiting(name.account, MAX_QUEUE_ENTRIES, Instant::now());
    let entries = waiting
        .into_iter()
        .map(|w| QueueEntry {
            guid: w.guid,
            waiting_secs: u32::try_from(w.waiting.as_secs()).unwrap_or(u32::MAX),
        })
        .collect();
    QueueList::new(entries).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))
}
