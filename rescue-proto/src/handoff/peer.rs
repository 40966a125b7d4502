//! What the applet and console sides share: steps, events, errors, and the states
//! after pairing (relaying, the other party away, ended).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::guid::Guid;
use crate::wire::frame::FrameType;
use crate::wire::limits::REQUEST_TIMEOUT;
use crate::wire::signal::{
    CloseReason, ErrorCode, ErrorText, Message, Paired, Pong, QueueList, ResumeSecret, UdpToken,
};

/// The result of handling one message: the next state, at most one message to send,
/// at most one event for the application.
#[derive(Debug)]
pub struct Step<S> {
    /// The state to continue in.
    pub next: S,
    /// A message to send to the gateway.
    pub send: Option<Message>,
    /// What happened.
    pub event: Option<PeerEvent>,
}

impl<S> Step<S> {
    pub(crate) fn quiet(next: S) -> Self {
        Self {
            next,
            send: None,
            event: None,
        }
    }

    pub(crate) fn event(next: S, event: PeerEvent) -> Self {
        Self {
            next,
            send: None,
            event: Some(event),
        }
    }

    pub(crate) fn map<T>(self, f: impl FnOnce(S) -> T) -> Step<T> {
        Step {
            next: f(self.next),
            send: self.send,
            event: self.event,
        }
    }
}

/// What a peer's machine reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The session waits for a technician (applet).
    Registered {
        /// The session.
        guid: Guid,
        /// Seconds it may wait.
        lifetime_secs: u32,
    },
    /// The waiting sessions of the console's account.
    Queue(QueueList),
    /// The relay runs; who the other party is.
    Paired(Paired),
    /// The party is back in its session after REATTACH.
    Resumed {
        /// Whether the session is paired (else it waits).
        paired: bool,
    },
    /// End-to-end bytes from the other party.
    Data(Bytes),
    /// The other party lost its hop and may come back within the grace.
    PeerGone {
        /// Seconds of grace.
        grace_secs: u32,
    },
    /// The other party is back: start a new end-to-end path.
    PeerBack,
    /// The token for a UDP probe.
    UdpToken(UdpToken),
    /// The other party's reflexive UDP address (an untrusted hint).
    PeerAddr(SocketAddr),
    /// The session ended.
    Ended(EndReason),
}

/// Why a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// CLOSE from the gateway, with its reason.
    Closed(CloseReason),
    /// PEER_GONE{0}: the other party is gone for good.
    PeerGone,
}

/// Why a peer's machine stopped. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The gateway sent ERROR.
    #[error("refused by the gateway: {code:?} {message}")]
    Refused {
        /// The code.
        code: ErrorCode,
        /// The gateway's hint.
        message: ErrorText,
    },
    /// A message not allowed in this state: send `ERROR{protocol violation}` and close.
    #[error("unexpected {0:?} frame")]
    Unexpected(FrameType),
    /// The gateway's HELLO is not a gateway's, or of another version.
    #[error("gateway HELLO refused (version {version})")]
    BadHello {
        /// The version it announced.
        version: u16,
    },
    /// An answer names another session than the one asked for.
    #[error("answer for another session")]
    WrongSession,
    /// An awaited message did not come before the deadline.
    #[error("timed out")]
    Timeout,
}

/// Handles the messages every state accepts alike: PING (answer PONG), PONG (nothing),
/// ERROR (stop) and CLOSE (end). Anything else is handed back.
pub(crate) fn common<S: From<Ended>>(
    state: S,
    msg: Message,
) -> Result<Result<Step<S>, PeerError>, (S, Message)> {
    match msg {
        Message::Ping(p) => Ok(Ok(Step {
            next: state,
            send: Some(Message::Pong(Pong { nonce: p.nonce })),
            event: None,
        })),
        Message::Pong(_) => Ok(Ok(Step::quiet(state))),
        Message::Error(e) => Ok(Err(PeerError::Refused {
            code: e.code,
            message: e.message,
        })),
        Message::Close(c) => {
            let reason = EndReason::Closed(c.reason);
            Ok(Ok(Step::event(
                Ended { reason }.into(),
                PeerEvent::Ended(reason),
            )))
        }
        other => Err((state, other)),
    }
}

/// Fails with [`PeerError::Timeout`] once `now` reaches `deadline`.
pub(crate) fn check_deadline(deadline: Option<Instant>, now: Instant) -> Result<(), PeerError> {
    match deadline {
        Some(d) if now >= d => Err(PeerError::Timeout),
        _ => Ok(()),
    }
}

/// Longest wait a peer machine arms, whatever the gateway announces (lifetime, grace):
/// a day covers every real wait and keeps `Instant` arithmetic far from overflow.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// `now + d`, with `d` capped at [`MAX_WAIT`]. (If even that overflowed the clock, the
/// deadline would be `now`: an immediate timeout, never a panic.)
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_WAIT)).unwrap_or(now)
}

/// The session is over. Terminal: any further message is unexpected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Why.
    pub reason: EndReason,
}

/// The relay runs: DATA flows both ways.
#[derive(Debug, Clone)]
pub struct Relaying {
    /// The session.
    pub guid: Guid,
    /// This party's current resume secret (for REATTACH after a lost hop).
    pub resume_secret: ResumeSecret,
}

/// The states after pairing, shared by applet and console.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Connected {
    /// The relay runs.
    Relaying(Relaying),
    /// The other party lost its hop.
    PeerAway(PeerAway),
    /// Over.
    Ended(Ended),
}

impl From<Ended> for Connected {
    fn from(e: Ended) -> Self {
        Self::Ended(e)
    }
}

impl Relaying {
    /// Handles one message from the gateway.
    pub fn handle(self, now: Instant, msg: Message) -> Result<Step<Connected>, PeerError> {
        let (relay, msg) = match common(Connected::Relaying(self), msg) {
            Ok(done) => return done,
            Err((Connected::Relaying(r), m)) => (r, m),
            Err((_, m)) => return Err(PeerError::Unexpected(m.frame_type())),
        };
        let stay = |r: Relaying, e| Ok(Step::event(Connected::Relaying(r), e));
        match msg {
            Message::Data(d) => stay(relay, PeerEvent::Data(d)),
            // A reattach that displaced the other party's old hop: start a new path.
            Message::PeerBack(_) => stay(relay, PeerEvent::PeerBack),
            Message::UdpToken(t) => stay(relay, PeerEvent::UdpToken(t)),
            Message::PeerAddr(a) => stay(relay, PeerEvent::PeerAddr(a.addr)),
            Message::PeerGone(g) if g.grace_secs == 0 => Ok(ended_by_peer_gone()),
            Message::PeerGone(g) => {
                // The gateway sends PEER_GONE{0} when the grace ends; allow it one request time.
                let until = after(
                    now,
                    Duration::from_secs(g.grace_secs.into()) + REQUEST_TIMEOUT,
                );
                let away = PeerAway { relay, until };
                Ok(Step::event(
                    Connected::PeerAway(away),
                    PeerEvent::PeerGone {
                        grace_secs: g.grace_secs,
                    },
                ))
            }
            other => Err(PeerError::Unexpected(other.frame_type())),
        }
    }
}

fn ended_by_peer_gone() -> Step<Connected> {
    let reason = EndReason::PeerGone;
    Step::event(Connected::Ended(Ended { reason }), PeerEvent::Ended(reason))
}

/// The other party lost its hop; it may come back until `until`.
#[derive(Debug, Clone)]
pub struct PeerAway {
    /// The paused relay.
    pub relay: Relaying,
    /// When to give up waiting (the grace plus a margin for the gateway's notice).
    pub until: Instant,
}

impl PeerAway {
    /// Handles one message from the gateway.
    pub fn handle(self, _now: Instant, msg: Message) -> Result<Step<Connected>, PeerError> {
        let (away, msg) = match common(Connected::PeerAway(self), msg) {
            Ok(done) => return done,
            Err((Connected::PeerAway(a), m)) => (a, m),
            Err((_, m)) => return Err(PeerError::Unexpected(m.frame_type())),
        };
        match msg {
            Message::PeerBack(_) => Ok(Step::event(
                Connected::Relaying(away.relay),
                PeerEvent::PeerBack,
            )),
            Message::PeerGone(g) if g.grace_secs == 0 => Ok(ended_by_peer_gone()),
            other => Err(PeerError::Unexpected(other.frame_type())),
        }
    }
}

impl Connected {
    /// Handles one message from the gateway.
    pub fn handle(self, now: Instant, msg: Message) -> Result<Step<Connected>, PeerError> {
        match self {
            Self::Relaying(r) => r.handle(now, msg),
            Self::PeerAway(a) => a.handle(now, msg),
            Self::Ended(_) => Err(PeerError::Unexpected(msg.frame_type())),
        }
    }

    /// When the state times out.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Self::PeerAway(a) => Some(a.until),
            Self::Relaying(_) | Self::Ended(_) => None,
        }
    }
}
