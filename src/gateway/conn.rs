//! One gateway connection: outer TLS, HELLO and the first request within one deadline
//! from accept (`GatewayLimits::pre_auth_timeout`), then the applet side, the console
//! side, or (a REATTACH first) the reattach side. Every refusal goes through
//! [`refuse`]: an ERROR frame, a closed connection, a tracing event and a counter.

use std::sync::Arc;

use bytes::BytesMut;
use rescue_crypto::pki::ConsoleName;
use rescue_proto::handoff::HopId;
use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{ErrorCode, Hello, Message, Role, Speaker};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

use super::admission::{source_of, Conn, ConnSlot, Slotted};
use super::refusal::{note_refused, refuse, Refusal};
use super::shared::Shared;
use crate::io::{BoxStream, Tapped};
use crate::signal::{self, Hop, RecvError};

/// Serves one accepted TCP connection to its end.
pub(crate) async fn handle(shared: Arc<Shared>, tcp: TcpStream, slot: Arc<ConnSlot>) {
    let limits = &shared.config.limits;
    let conn = Conn {
        deadline: Instant::now() + limits.pre_auth_timeout,
        local: tcp.local_addr().ok(),
        source: tcp.peer_addr().ok().map(|a| source_of(a.ip())),
        slot,
    };
    let tls = match timeout_at(conn.deadline, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return note_refused(&shared.stats, &Refusal::silent(format!("TLS: {e}"))),
        Err(_) => return note_refused(&shared.stats, &Refusal::silent("TLS handshake timed out")),
    };
    let console = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| shared.config.account_roots.console_of(certs));
    let has_cert = tls.get_ref().1.peer_certificates().is_some();
    let stream: BoxStream = match &shared.config.tap {
        Some(tap) => Box::new(Tapped::new(tls, tap.clone())),
        None => Box::new(tls),
    };
    // The slot lives as long as the stream, wherever the hop goes.
    let stream: BoxStream = Box::new(Slotted::new(stream, conn.slot.clone()));
    let mut hop = signal::framed(stream);
    let hop_id = shared.hop_id();
    let role = hello(&mut hop, &conn, has_cert, console.is_some()).await;
    if let Ok(r) = &role {
        // A REATTACH instead of the first request is served by the reattach module.
        let divert = divert(&shared, hop, hop_id, *r, console.as_ref(), &conn);
        hop = match divert.await {
            Some(hop) => hop,
            None => return,
        };
    }
    match (role, console) {
        (Ok(Role::Applet), _) => super::applet::serve(shared, hop, hop_id, conn).await,
        (Ok(_), Some(name)) => super::console::serve(shared, hop, hop_id, name, conn.source).await,
        (Ok(_), None) => {
            let r = Refusal::new(ErrorCode::Internal, "no console");
            refuse(&shared.stats, hop, r).await
        }
        (Err(r), _) => refuse(&shared.stats, hop, r).await,
    }
}

/// Reads the peer's HELLO, checks version and role against the connection's client
/// certificate (PROTOCOL.md 3.1), answers with the gateway's HELLO.
async fn hello(hop: &mut Hop, conn: &Conn, has_cert: bool, served: bool) -> Result<Role, Refusal> {
    let msg = signal::recv(hop, conn.left())
        .await
        .map_err(|e| Refusal::from_recv(e, "HELLO"))?;
    let Message::Hello(h) = msg else {
        return Err(Refusal::unexpected(&msg, "HELLO"));
    };
    if h.version != PROTOCOL_VERSION {
        let why = format!("version {} not supported", h.version);
        return Err(Refusal::new(ErrorCode::VersionMismatch, why));
    }
    let role = check_role(h.role, has_cert, served)?;
    if role == Role::Console {
        // A console authenticated with its certificate (before its HELLO is answered,
        // so a full pool is its answer); its requests come when the technician acts,
        // bounded by the console idle timeout.
        conn.authenticate()?;
    }
    let ours = Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Gateway,
    };
    signal::send(hop, Message::Hello(ours))
        .await
        .map_err(|e| Refusal::silent(format!("sending HELLO: {e}")))?;
    Ok(role)
}

/// The HELLO rule of PROTOCOL.md 3.1: an applet is anonymous (a client certificate is a
/// protocol violation); a console needs the certificate of an account served here
/// (`wrong account` without one); no other role connects to a gateway.
fn check_role(speaker: Speaker, has_cert: bool, served: bool) -> Result<Role, Refusal> {
    match speaker {
        Speaker::Peer(Role::Applet) if !has_cert => Ok(Role::Applet),
        Speaker::Peer(Role::Applet) => Err(Refusal::new(
            ErrorCode::ProtocolViolation,
            "an applet presents no client certificate",
        )),
        Speaker::Peer(Role::Console) if served => Ok(Role::Console),
        Speaker::Peer(Role::Console) => Err(Refusal::new(
            ErrorCode::WrongAccount,
            "console without a certificate of an account served here",
        )),
        other => Err(Refusal::new(
            ErrorCode::ProtocolViolation,
            format!("{other:?} does not connect to a gateway"),
        )),
    }
}

/// Reads the first request after HELLO: a REATTACH is served here (`None`), anything
/// else is put back in front of the hop's input for the normal path (`Some`).
async fn divert(
    shared: &Arc<Shared>,
    mut hop: Hop,
    hop_id: HopId,
    role: Role,
    console: Option<&ConsoleName>,
    conn: &Conn,
) -> Option<Hop> {
    // An applet's first request is within the connection's one deadline; a console
    // authenticated already and may wait for its technician.
    let wait = match role {
        Role::Applet => conn.left(),
        _ => shared.config.limits.console_idle_timeout,
    };
    let msg = tokio::select! {
        m = signal::recv(&mut hop, wait) => m,
        // The normal path answers a shutdown itself.
        _ = shared.shutdown.cancelled() => return Some(hop),
    };
    let msg = match msg {
        Ok(m) => m,
        // A console that leaves is not a refusal (as in the console's request loop);
        // an applet that leaves before REGISTER is counted as one (as before).
        Err(RecvError::Closed) if role != Role::Applet => return None,
        Err(e) => {
            refuse(&shared.stats, hop, Refusal::from_recv(e, "request")).await;
            return None;
        }
    };
    let Message::Reattach(r) = msg else {
        let mut front = BytesMut::with_capacity(msg.frame_len() + hop.read_buffer().len());
        if msg.encode(&mut front).is_err() {
            refuse(
                &shared.stats,
                hop,
                Refusal::new(ErrorCode::Internal, "re-encoding"),
            )
            .await;
            return None;
        }
        front.extend_from_slice(hop.read_buffer());
        *hop.read_buffer_mut() = front;
        return Some(hop);
    };
    let span = tracing::info_span!("reattach", guid = %r.guid.short(), ?role);
    super::reattach::serve(shared, hop, hop_id, role, console, r, conn)
        .instrument(span)
        .await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_roles_are_checked_against_the_client_certificate() {
        let code = |role, cert, served| check_role(role, cert, served).err().and_then(|r| r.code);
        let (applet, console) = (Speaker::Peer(Role::Applet), Speaker::Peer(Role::Console));
        assert_eq!(code(applet, false, false), None);
        assert_eq!(code(applet, true, true), Some(ErrorCode::ProtocolViolation));
        assert_eq!(code(console, true, true), None);
        assert_eq!(code(console, false, false), Some(ErrorCode::WrongAccount));
        assert_eq!(
            code(Speaker::Gateway, false, false),
            Some(ErrorCode::ProtocolViolation)
        );
    }
}
