//! One gateway connection: outer TLS, HELLO and the first request within one deadline
//! from accept (`GatewayLimits::pre_auth_timeout`), then the applet or the console side. Every refusal goes through [`refuse`]: an ERROR frame, a closed
//! connection, a tracing event and a counter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{
    ErrorCode, ErrorMessage, ErrorText, Hello, Message, Role, Speaker,
};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::admission::{ConnSlot, Slotted};
use super::stats::Counters;
use super::Shared;
use crate::io::{BoxStream, Tapped};
use crate::signal::{self, RecvError};

pub(crate) use crate::signal::Hop;

/// Why the gateway ends a connection: the ERROR code sent, and a reason for the log.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: Option<ErrorCode>,
    pub(crate) reason: String,
}

impl Refusal {
    /// A refusal answered with ERROR `code`.
    pub(crate) fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            reason: reason.into(),
        }
    }

    /// The peer is gone or broke the stream: nothing can be sent.
    pub(crate) fn silent(reason: impl Into<String>) -> Self {
        Self {
            code: None,
            reason: reason.into(),
        }
    }

    /// Maps a failed receive: timeouts and malformed frames are answered.
    pub(crate) fn from_recv(e: RecvError, waiting_for: &str) -> Self {
        match e {
            RecvError::Timeout => Self::new(ErrorCode::Timeout, format!("no {waiting_for}")),
            RecvError::Malformed(m) => Self::new(ErrorCode::ProtocolViolation, m),
            RecvError::Closed => Self::silent(format!("closed before {waiting_for}")),
            RecvError::Io(e) => Self::silent(format!("I/O error before {waiting_for}: {e}")),
        }
    }

    /// A message that is not allowed here.
    pub(crate) fn unexpected(msg: &Message, waiting_for: &str) -> Self {
        Self::new(
            ErrorCode::ProtocolViolation,
            format!("expected {waiting_for}, got {}", signal::name_of(msg)),
        )
    }
}

/// What a connection carries from accept to its first request.
pub(crate) struct Conn {
    /// The one deadline for TLS, HELLO and the first request.
    pub(crate) deadline: Instant,
    /// The connection's slot (unauthenticated until [`Conn::authenticate`]).
    pub(crate) slot: Arc<ConnSlot>,
    /// The local address the connection arrived on (the default gateway name).
    pub(crate) local: Option<SocketAddr>,
}

impl Conn {
    /// Time left before the deadline.
    pub(crate) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Moves the connection to the authenticated pool; refused `overloaded` when full.
    pub(crate) fn authenticate(&self) -> Result<(), Refusal> {
        self.slot
            .authenticate()
            .map_err(|_| Refusal::new(ErrorCode::Overloaded, "gateway connection limit reached"))
    }
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn handle(shared: Arc<Shared>, tcp: TcpStream, slot: Arc<ConnSlot>) {
    let limits = &shared.config.limits;
    let conn = Conn {
        deadline: Instant::now() + limits.pre_auth_timeout,
        local: tcp.local_addr().ok(),
        slot,
    };
    let tls = match timeout_at(conn.deadline, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return note_refused(&shared, &Refusal::silent(format!("TLS: {e}"))),
        Err(_) => return note_refused(&shared, &Refusal::silent("TLS handshake timed out")),
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
        let divert = super::reattach::divert(&shared, hop, hop_id, *r, console.as_ref(), &conn);
        hop = match divert.await {
            Some(hop) => hop,
            None => return,
        };
    }
    match (role, console) {
        (Ok(Role::Applet), _) => super::applet::serve(shared, hop, hop_id, conn).await,
        (Ok(_), Some(name)) => super::console::serve(shared, hop, hop_id, name).await,
        (Ok(_), None) => {
            let r = Refusal::new(ErrorCode::Internal, "no console");
            refuse(&shared, hop, r).await
        }
        (Err(r), _) => refuse(&shared, hop, r).await,
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

/// Ends a connection: sends ERROR (if the refusal has a code), closes, logs, counts.
pub(crate) async fn refuse(shared: &Shared, mut hop: Hop, r: Refusal) {
    note_refused(shared, &r);
    if let Some(code) = r.code {
        let message = ErrorText::new(truncate(&r.reason)).unwrap_or_default();
        let _ = signal::send(&mut hop, Message::Error(ErrorMessage { code, message })).await;
    }
    let _ = timeout(
        signal::SEND_TIMEOUT,
        futures_util::SinkExt::<Message>::close(&mut hop),
    )
    .await;
}

/// Counts and logs a refusal.
pub(crate) fn note_refused(shared: &Shared, r: &Refusal) {
    Counters::bump(&shared.stats.refused);
    tracing::warn!(code = ?r.code, reason = %r.reason, "connection refused");
}

/// Cuts a reason to what an ERROR text may carry, on a character boundary.
fn truncate(reason: &str) -> &str {
    let max = ErrorText::MAX_LEN;
    if reason.len() <= max {
        return reason;
    }
    let mut end = max;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_to_an_error_text_on_a_char_boundary() {
        let long = "é".repeat(ErrorText::MAX_LEN);
        let cut = truncate(&long);
        assert!(cut.len() <= ErrorText::MAX_LEN);
        assert!(ErrorText::new(cut).is_ok());
        assert_eq!(truncate("short"), "short");
    }

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

    #[test]
    fn receive_failures_map_to_the_right_error_codes() {
        let r = Refusal::from_recv(RecvError::Timeout, "HELLO");
        assert_eq!(r.code, Some(ErrorCode::Timeout));
        let r = Refusal::from_recv(RecvError::Malformed("x".into()), "HELLO");
        assert_eq!(r.code, Some(ErrorCode::ProtocolViolation));
        assert_eq!(Refusal::from_recv(RecvError::Closed, "HELLO").code, None);
    }
}
