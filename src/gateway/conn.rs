//! One gateway connection: outer TLS with a timeout, HELLO, then the applet or the
//! console side. Every refusal goes through [`refuse`]: an ERROR frame, a closed
//! connection, a tracing event and a counter.

use std::sync::Arc;

use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{
    ErrorCode, ErrorMessage, ErrorText, Hello, Message, Role, Speaker,
};
use tokio::net::TcpStream;
use tokio::time::timeout;

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

/// Serves one accepted TCP connection to its end.
pub(crate) async fn handle(shared: Arc<Shared>, tcp: TcpStream) {
    Counters::bump(&shared.stats.connections);
    let limits = &shared.config.limits;
    let tls = match timeout(limits.handshake_timeout, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return note_refused(&shared, &Refusal::silent(format!("TLS: {e}"))),
        Err(_) => return note_refused(&shared, &Refusal::silent("TLS handshake timed out")),
    };
    let console = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| shared.config.account_roots.console_of(certs));
    let stream: BoxStream = match &shared.config.tap {
        Some(tap) => Box::new(Tapped::new(tls, tap.clone())),
        None => Box::new(tls),
    };
    let mut hop = signal::framed(stream);
    let hop_id = shared.hop_id();
    let role = hello(&shared, &mut hop, console.is_some()).await;
    if let Ok(r) = &role {
        // A REATTACH instead of the first request is served by the reattach module.
        let divert = super::reattach::divert(&shared, hop, hop_id, *r, console.as_ref());
        hop = match divert.await {
            Some(hop) => hop,
            None => return,
        };
    }
    match role {
        Ok(Role::Applet) => super::applet::serve(shared, hop, hop_id).await,
        Ok(_) => match console {
            Some(name) => super::console::serve(shared, hop, hop_id, name).await,
            None => {
                refuse(
                    &shared,
                    hop,
                    Refusal::new(ErrorCode::Internal, "no console"),
                )
                .await
            }
        },
        Err(r) => refuse(&shared, hop, r).await,
    }
}

/// Reads the peer's HELLO, checks version and role, answers with the gateway's HELLO.
async fn hello(shared: &Shared, hop: &mut Hop, has_cert: bool) -> Result<Role, Refusal> {
    let wait = shared.config.limits.handshake_timeout;
    let msg = signal::recv(hop, wait)
        .await
        .map_err(|e| Refusal::from_recv(e, "HELLO"))?;
    let Message::Hello(h) = msg else {
        return Err(Refusal::unexpected(&msg, "HELLO"));
    };
    if h.version != PROTOCOL_VERSION {
        let why = format!("version {} not supported", h.version);
        return Err(Refusal::new(ErrorCode::VersionMismatch, why));
    }
    let role = match (h.role, has_cert) {
        (Speaker::Peer(role @ Role::Applet), false)
        | (Speaker::Peer(role @ Role::Console), true) => role,
        (Speaker::Peer(Role::Console), false) => {
            let why = "console without a certificate from a served account";
            return Err(Refusal::new(ErrorCode::WrongAccount, why));
        }
        (role, _) => {
            let why = format!("role {role:?} not allowed here");
            return Err(Refusal::new(ErrorCode::ProtocolViolation, why));
        }
    };
    let ours = Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Gateway,
    };
    signal::send(hop, Message::Hello(ours))
        .await
        .map_err(|e| Refusal::silent(format!("sending HELLO: {e}")))?;
    Ok(role)
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
    fn receive_failures_map_to_the_right_error_codes() {
        let r = Refusal::from_recv(RecvError::Timeout, "HELLO");
        assert_eq!(r.code, Some(ErrorCode::Timeout));
        let r = Refusal::from_recv(RecvError::Malformed("x".into()), "HELLO");
        assert_eq!(r.code, Some(ErrorCode::ProtocolViolation));
        assert_eq!(Refusal::from_recv(RecvError::Closed, "HELLO").code, None);
    }
}
