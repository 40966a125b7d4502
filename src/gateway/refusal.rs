//! Refusals: why the gateway ends a connection, and the one way it does so (an ERROR
//! frame if there is a code, a closed connection, a tracing event and a counter). A
//! leaf: every part of the gateway uses it, it uses none of them.

use rescue_crypto::ticket::TicketError;
use rescue_proto::handoff::TableError;
use rescue_proto::wire::signal::{ErrorCode, ErrorMessage, ErrorText, Message};
use tokio::time::timeout;

use super::stats::Counters;
use crate::directory::DirectoryError;
use crate::signal::{self, Hop, RecvError};

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

/// Ends a connection: sends ERROR (if the refusal has a code), closes, logs, counts.
pub(crate) async fn refuse(stats: &Counters, mut hop: Hop, r: Refusal) {
    note_refused(stats, &r);
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
pub(crate) fn note_refused(stats: &Counters, r: &Refusal) {
    Counters::bump(&stats.refused);
    stats.on_refused(r.code);
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

/// Maps a ticket check failure to its ERROR.
pub(crate) fn ticket_refusal(e: TicketError) -> Refusal {
    match e {
        TicketError::Expired { .. } => Refusal::new(ErrorCode::ExpiredTicket, e.to_string()),
        other => Refusal::new(ErrorCode::BadTicket, other.to_string()),
    }
}

/// Maps a session table refusal to its ERROR (the table names the code).
pub(crate) fn table_refusal(e: TableError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

/// Maps a failed directory call to its ERROR: a table refusal names its code; a store
/// that failed or did not answer is `overloaded` (retry later, PROTOCOL.md 4.3), its
/// name and reason go to the log only.
pub(crate) fn directory_refusal(stats: &Counters, e: DirectoryError) -> Refusal {
    if matches!(
        e,
        DirectoryError::Timeout { .. } | DirectoryError::Unavailable { .. }
    ) {
        stats.on_store_error();
    }
    match e {
        DirectoryError::Table(e) => table_refusal(e),
        DirectoryError::Store(e) => {
            tracing::error!(error = %e, "GUID not recorded");
            Refusal::new(ErrorCode::Internal, "cannot record the session")
        }
        DirectoryError::StoreRestarted { .. } => {
            tracing::warn!(error = %e, "REGISTER refused");
            Refusal::new(ErrorCode::ExpiredTicket, e.to_string())
        }
        DirectoryError::Elsewhere { .. } => Refusal::new(ErrorCode::UnknownGuid, e.to_string()),
        other => {
            tracing::error!(error = %other, "session store failed");
            Refusal::new(
                ErrorCode::Overloaded,
                "session store unavailable, retry later",
            )
        }
    }
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
