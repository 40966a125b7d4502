//! The gateway's applet side: REGISTER (ticket checks, directory), REGISTERED, then
//! waiting for a console (PING answered, bounded by the pending lifetime), then PAIRED to
//! both hops and the relay core between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rescue_crypto::ticket::Ticket;
use rescue_proto::handoff::gateway::{ticket_lists_gateway, RegisterRequest};
use rescue_proto::handoff::HopId;
use rescue_proto::wire::signal::{Close, CloseReason, ErrorCode, Message, Pong, Registered};
use rescue_proto::Guid;
use tracing::Instrument;

use super::admission::Conn;
use super::refusal::{directory_refusal, refuse, ticket_refusal, Refusal};
use super::session::relay_session;
use super::shared::Shared;
use super::stats::Counters;
use super::table::{ConsoleHop, Entry, WaitingApplet};
use crate::directory::RememberedGuid;
use crate::signal::{self, Hop};

/// Serves an applet connection after HELLO.
pub(crate) async fn serve(shared: Arc<Shared>, mut hop: Hop, hop_id: HopId, conn: Conn) {
    if let Err(r) = shared.failures.check_register(conn.source) {
        return refuse(&shared.stats, hop, r).await;
    }
    let refused = |r: &Refusal| shared.failures.register_refused(conn.source, r);
    let ticket = match read_ticket(&shared, &mut hop, &conn).await {
        Ok(t) => t,
        Err(r) => {
            refused(&r);
            return refuse(&shared.stats, hop, r).await;
        }
    };
    // A verified ticket for this gateway authenticates the connection.
    if let Err(r) = conn.authenticate() {
        return refuse(&shared.stats, hop, r).await;
    }
    let guid = ticket.guid;
    // Parked before the directory admits the session, so a CLAIM can never find it
    // without a waiting task; the slot goes away with `parked`.
    let Some(parked) = shared.sessions.wait(guid) else {
        let r = Refusal::new(ErrorCode::GuidTaken, "GUID already registered");
        refused(&r);
        return refuse(&shared.stats, hop, r).await;
    };
    let registered = match admit(&shared, &ticket, hop_id).await {
        Ok(r) => r,
        Err(r) => {
            refused(&r);
            return refuse(&shared.stats, hop, r).await;
        }
    };
    let span = tracing::info_span!("session", guid = %guid.short(), account = %ticket.account);
    let _ended = EndOnDrop {
        shared: shared.clone(),
        hop: hop_id,
    };
    async move {
        if let Err(e) = signal::send(&mut hop, Message::Registered(registered)).await {
            tracing::debug!(error = %e, "applet left before REGISTERED");
            return;
        }
        Counters::bump(&shared.stats.registered);
        let accepted = conn.deadline - shared.config.limits.pre_auth_timeout;
        shared.stats.on_registered_after(accepted.elapsed());
        tracing::info!("applet registered, waiting for a technician");
        shared.stats.on_waiting(1);
        let console = wait_for_console(&shared, &mut hop, parked).await;
        shared.stats.on_waiting(-1);
        match console {
            Ok(Some(console)) => pair(&shared, hop, console, guid, hop_id).await,
            Ok(None) => tracing::info!("applet left before a technician came"),
            Err(r) => refuse(&shared.stats, hop, r).await,
        }
    }
    .instrument(span)
    .await
}

/// Reads REGISTER (within the connection's deadline) and checks the ticket: signature,
/// expiry, served account, gateway binding.
async fn read_ticket(shared: &Shared, hop: &mut Hop, conn: &Conn) -> Result<Ticket, Refusal> {
    let msg = signal::recv(hop, conn.left())
        .await
        .map_err(|e| Refusal::from_recv(e, "REGISTER"))?;
    let Message::Register(reg) = msg else {
        return Err(Refusal::unexpected(&msg, "REGISTER"));
    };
    let now_unix = crate::portal::unix_now();
    let ticket = rescue_crypto::ticket::verify(reg.ticket(), &shared.config.ticket_key, now_unix)
        .map_err(ticket_refusal)?;
    if !shared.config.accounts.contains(&ticket.account) {
        let why = format!("account {} not served here", ticket.account);
        return Err(Refusal::new(ErrorCode::WrongAccount, why));
    }
    let own: Vec<String> = if shared.config.names.is_empty() {
        conn.local.iter().map(ToString::to_string).collect()
    } else {
        shared.config.names.clone()
    };
    if !ticket_lists_gateway(ticket.gateways.iter().map(String::as_str), &own) {
        let why = format!("ticket does not list this gateway ({})", own.join(", "));
        return Err(Refusal::new(ErrorCode::BadTicket, why));
    }
    Ok(ticket)
}

/// Records the session in the directory (fresh GUID, limits); returns REGISTERED.
async fn admit(shared: &Shared, ticket: &Ticket, hop_id: HopId) -> Result<Registered, Refusal> {
    let now_unix = crate::portal::unix_now();
    let account = ticket.account;
    let resume_secret = super::shared::random_secret()
        .ok_or_else(|| Refusal::new(ErrorCode::Internal, "random generator failed"))?;
    let now = Instant::now();
    let valid_for = Duration::from_secs(ticket.expires_at_unix.saturating_sub(now_unix));
    let req = RegisterRequest {
        guid: ticket.guid,
        account,
        ticket_expires: now.checked_add(valid_for).unwrap_or(now),
        hop: hop_id,
        resume_secret,
    };
    let record = RememberedGuid {
        guid: ticket.guid,
        account: ticket.account,
        expires_unix: ticket.expires_at_unix,
    };
    shared
        .directory
        .register(now, req, &record)
        .await
        .map_err(|e| directory_refusal(&shared.stats, e))
}

/// Waits for a console's hop; answers PING; ends on CLOSE, EOF, the pending lifetime or
/// shutdown. `Ok(None)`: the applet left.
async fn wait_for_console(
    shared: &Shared,
    hop: &mut Hop,
    mut parked: WaitingApplet,
) -> Result<Option<Box<ConsoleHop>>, Refusal> {
    let deadline = tokio::time::Instant::now() + shared.config.limits.pending_lifetime;
    loop {
        tokio::select! {
            console = &mut parked.rx => {
                return console
                    .map(Some)
                    .map_err(|_| Refusal::new(ErrorCode::Internal, "pairing channel lost"));
            }
            frame = hop.next() => match frame {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Refusal::new(ErrorCode::ProtocolViolation, e.to_string()));
                }
                Some(Ok(frame)) => match frame.message() {
                    Ok(Message::Ping(p)) => {
                        let pong = Message::Pong(Pong { nonce: p.nonce });
                        signal::send(hop, pong)
                            .await
                            .map_err(|e| Refusal::silent(e.to_string()))?;
                    }
                    Ok(Message::Pong(_)) => {}
                    Ok(Message::Close(_)) => return Ok(None),
                    Ok(other) => return Err(Refusal::unexpected(&other, "PING or CLOSE")),
                    Err(e) => return Err(Refusal::new(ErrorCode::ProtocolViolation, e.to_string())),
                },
            },
            _ = tokio::time::sleep_until(deadline) => {
                turn_away_late_console(shared, &mut parked).await;
                return Err(Refusal::new(ErrorCode::Timeout, "no technician claimed the session"));
            }
            _ = shared.shutdown.cancelled() => {
                let close = Message::Close(Close { reason: CloseReason::ShuttingDown });
                let _ = signal::send(hop, close).await;
                return Ok(None);
            }
        }
    }
}

/// A console handed over in the same instant the lifetime ran out gets an ERROR.
async fn turn_away_late_console(shared: &Shared, parked: &mut WaitingApplet) {
    if let Ok(console) = parked.rx.try_recv() {
        let r = Refusal::new(ErrorCode::UnknownGuid, "session expired");
        refuse(&shared.stats, console.hop, r).await;
    }
}

/// PAIRED to both, then the relay core until the session ends.
async fn pair(
    shared: &Shared,
    mut applet: Hop,
    console: Box<ConsoleHop>,
    guid: Guid,
    applet_id: HopId,
) {
    let ConsoleHop {
        hop: mut console_hop,
        hop_id: console_id,
        pairing,
        technician,
    } = *console;
    let sent_a = signal::send(&mut applet, Message::Paired(pairing.to_applet)).await;
    let sent_c = signal::send(&mut console_hop, Message::Paired(pairing.to_console)).await;
    if sent_a.is_err() || sent_c.is_err() {
        tracing::info!("a party left while being paired");
        return;
    }
    Counters::bump(&shared.stats.paired);
    shared.stats.on_paired();
    tracing::info!(%technician, "paired, relaying");
    let a = Entry::paired(rescue_proto::wire::signal::Role::Applet, applet_id, applet);
    let c = Entry::paired(
        rescue_proto::wire::signal::Role::Console,
        console_id,
        console_hop,
    );
    relay_session(shared, guid, (a, c)).await;
}

/// Ends the session in the directory when the applet's task ends, however it ends (a
/// lost hop of a paired session is handled by `reattach`, which closes the session
/// itself; this ends waiting sessions; the GUID stays remembered).
struct EndOnDrop {
    shared: Arc<Shared>,
    hop: HopId,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let directory = self.shared.directory.clone();
        directory.close_detached(Instant::now(), self.hop, CloseReason::Normal);
    }
}
