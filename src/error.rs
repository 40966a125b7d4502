//! The error type of the async roles, typed by what happened and who caused it.
//!
//! Peer-triggered conditions (a refusal, a malformed frame, a failed BIND) are values of
//! [`Error`], never panics.

use std::io;

pub use rescue_proto::wire::signal::ErrorCode;

/// Why a gateway, applet or console operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed (connection refused, reset, ...); the connection is gone.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A TLS handshake or record failed (bad certificate, pin mismatch, alert); the
    /// connection is closed.
    #[error("TLS error: {0}")]
    Tls(#[source] io::Error),
    /// A TLS configuration could not be built from the given keys and pins.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rescue_crypto::tls::TlsError),
    /// An awaited step did not complete in time; the connection is closed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The gateway refused the request with an ERROR frame; the connection is closed.
    #[error("refused by the gateway: {code:?} ({message})")]
    Refused {
        /// The ERROR code.
        code: ErrorCode,
        /// The ERROR text (a hint for logs).
        message: String,
    },
    /// The other side sent a malformed frame or a message not allowed in this state;
    /// the connection is closed.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The gateway closed the connection (CLOSE or end of stream) before the awaited step.
    #[error("connection closed by the gateway")]
    Closed,
    /// The other party left the session (PEER_GONE).
    #[error("the other party left the session")]
    PeerGone,
    /// The applet ticket could not be read or was refused locally.
    #[error("ticket: {0}")]
    Ticket(#[from] rescue_crypto::ticket::TicketError),
    /// No gateway of the ticket's list could be reached; `last` is the last failure.
    #[error("no gateway reachable ({tried} tried), last error: {last}")]
    NoGateway {
        /// How many gateways were tried.
        tried: usize,
        /// The failure of the last one.
        last: Box<Error>,
    },
    /// The peer's BIND tag did not match: the end-to-end TLS is not bound to this
    /// session (a splicing relay or a confused peer). The session is ended.
    #[error("BIND mismatch: the end-to-end channel is not bound to this session")]
    BindMismatch,
    /// The SAS exchange failed (a reveal not matching its commitment, a malformed
    /// message). The session is ended.
    #[error("SAS exchange failed: {0}")]
    Sas(String),
    /// The peer's end-to-end certificate does not name a console (account, technician).
    #[error("console certificate: {0}")]
    ConsoleIdentity(String),
    /// A local configuration value is unusable (e.g. an unparsable gateway address).
    #[error("configuration: {0}")]
    Config(String),
    /// The gateway's store of remembered GUIDs could not be opened or read.
    #[error("{0}")]
    GuidStore(#[from] crate::directory::StoreError),
}

/// What a caller can do about an [`Error`] ([`Error::advice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// Try the same thing again, perhaps after a pause: the failure was transient (a
    /// timeout, a reset connection, a peer not there yet).
    Retry,
    /// Try another gateway: this one is full, shutting down or faulty.
    OtherGateway,
    /// Do not retry: the request cannot succeed (a bad or expired ticket, a session
    /// claimed already or of another account, a peer that failed authentication).
    GiveUp,
    /// Fix the local configuration (keys, certificates, addresses, the GUID store).
    FixConfig,
}

impl Error {
    /// What the caller can do about it.
    ///
    /// ```
    /// use rescue::error::{Advice, Error, ErrorCode};
    /// let full = Error::Refused { code: ErrorCode::Overloaded, message: "table full".into() };
    /// assert_eq!(full.advice(), Advice::OtherGateway);
    /// assert_eq!(Error::BindMismatch.advice(), Advice::GiveUp);
    /// ```
    pub fn advice(&self) -> Advice {
        match self {
            Error::Io(_) | Error::Tls(_) | Error::Timeout(_) | Error::Closed | Error::PeerGone => {
                Advice::Retry
            }
            Error::Refused { code, .. } => match *code {
                ErrorCode::Overloaded | ErrorCode::ShuttingDown | ErrorCode::Internal => {
                    Advice::OtherGateway
                }
                ErrorCode::Timeout | ErrorCode::UnknownGuid => Advice::Retry,
                _ => Advice::GiveUp,
            },
            // Every gateway was tried: another one is not an option left.
            Error::NoGateway { last, .. } => match last.advice() {
                Advice::OtherGateway => Advice::Retry,
                other => other,
            },
            Error::Protocol(_)
            | Error::Ticket(_)
            | Error::BindMismatch
            | Error::Sas(_)
            | Error::ConsoleIdentity(_) => Advice::GiveUp,
            Error::TlsConfig(_) | Error::Config(_) | Error::GuidStore(_) => Advice::FixConfig,
        }
    }

    /// The ERROR code, if the gateway refused with one.
    pub fn refusal(&self) -> Option<ErrorCode> {
        match self {
            Error::Refused { code, .. } => Some(*code),
            Error::NoGateway { last, .. } => last.refusal(),
            _ => None,
        }
    }
}
