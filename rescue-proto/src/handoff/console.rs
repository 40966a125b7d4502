//! The console's side of the hand-off.
//!
//! ```text
//!  send HELLO                                   send HELLO + REATTACH
//!      |                                               |
//!      v                                               v
//!  ExpectHello --HELLO--> Idle --queue()--> ExpectQueueList   ExpectHello --HELLO--> ExpectResumed
//!                          ^  |                  | QUEUE_LIST                          | RESUMED
//!                          |  +------------------+ (back to Idle)                      |
//!                          |  claim()                                                  |
//!                          v                                                           v
//!                     ExpectPaired ---- PAIRED (kind 2) ----------------------> Connected
//!                                                          (Relaying <-> PeerAway -> Ended)
//! ```
//!
//! Every state answers PING, stops on ERROR and ends on CLOSE. Deadlines: the
//! gateway's HELLO within [`HELLO_TIMEOUT`] plus a request time; QUEUE_LIST, PAIRED and
//! RESUMED within [`REQUEST_TIMEOUT`]. `Idle` waits for the application (the gateway
//! idles the hop out unless the driver keeps it alive with PING).

use std::time::Instant;

use super::peer::{
    after, check_deadline, common, Connected, EndReason, Ended, PeerError, PeerEvent, Relaying,
    Step,
};
use crate::guid::Guid;
use crate::wire::limits::{HELLO_TIMEOUT, PROTOCOL_VERSION, REQUEST_TIMEOUT};
use crate::wire::signal::{
    Claim, Close, CloseReason, Hello, Message, Paired, Queue, Reattach, ResumeSecret, Role, Speaker,
};

/// The console's state; start with [`Console::start`] or [`Console::reattach`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Console {
    /// Awaiting the gateway's HELLO.
    ExpectHello(ExpectHello),
    /// Ready for a request from the application.
    Idle(Idle),
    /// Awaiting QUEUE_LIST.
    ExpectQueueList(Deadline),
    /// Awaiting PAIRED for a GUID.
    ExpectPaired(ExpectSession),
    /// Awaiting RESUMED for a GUID.
    ExpectResumed(ExpectSession),
    /// Paired (or ended).
    Connected(Connected),
}

impl From<Ended> for Console {
    fn from(e: Ended) -> Self {
        Self::Connected(Connected::Ended(e))
    }
}

/// Awaiting the gateway's HELLO.
#[derive(Debug, Clone)]
pub struct ExpectHello {
    deadline: Instant,
    reattach: Option<Guid>,
}

/// Ready for QUEUE or CLAIM.
#[derive(Debug, Clone)]
pub struct Idle {
    _private: (),
}

/// Awaiting an answer until a deadline.
#[derive(Debug, Clone)]
pub struct Deadline(Instant);

/// Awaiting an answer about one session.
#[derive(Debug, Clone)]
pub struct ExpectSession {
    deadline: Instant,
    guid: Guid,
}

impl Console {
    /// Opens the conversation: the state and the HELLO to send.
    pub fn start(now: Instant) -> (Self, Message) {
        let state = ExpectHello {
            deadline: after(now, HELLO_TIMEOUT + REQUEST_TIMEOUT),
            reattach: None,
        };
        (Self::ExpectHello(state), hello())
    }

    /// Returns to a session after a lost hop: the state and the frames to send.
    pub fn reattach(now: Instant, guid: Guid, resume_secret: ResumeSecret) -> (Self, [Message; 2]) {
        let state = ExpectHello {
            deadline: after(now, HELLO_TIMEOUT + REQUEST_TIMEOUT),
            reattach: Some(guid),
        };
        (
            Self::ExpectHello(state),
            [
                hello(),
                Message::Reattach(Reattach {
                    guid,
                    resume_secret,
                }),
            ],
        )
    }

    /// Handles one message from the gateway.
    pub fn handle(self, now: Instant, msg: Message) -> Result<Step<Self>, PeerError> {
        if let Self::Connected(c) = self {
            return c.handle(now, msg).map(|s| s.map(Self::Connected));
        }
        let (state, msg) = match common(self, msg) {
            Ok(done) => return done,
            Err(back) => back,
        };
        match (state, msg) {
            (Self::ExpectHello(s), Message::Hello(h)) => {
                if h.role != Speaker::Gateway || h.version != PROTOCOL_VERSION {
                    return Err(PeerError::BadHello { version: h.version });
                }
                Ok(Step::quiet(match s.reattach {
                    None => Self::Idle(Idle { _private: () }),
                    Some(guid) => Self::ExpectResumed(ExpectSession {
                        deadline: after(now, REQUEST_TIMEOUT),
                        guid,
                    }),
                }))
            }
            (Self::ExpectQueueList(_), Message::QueueList(q)) => Ok(Step::event(
                Self::Idle(Idle { _private: () }),
                PeerEvent::Queue(q),
            )),
            (
                Self::ExpectPaired(s),
                Message::Paired(Paired::ToConsole {
                    guid,
                    resume_secret,
                }),
            ) => {
                if guid != s.guid {
                    return Err(PeerError::WrongSession);
                }
                let relay = Relaying {
                    guid,
                    resume_secret: resume_secret.clone(),
                };
                let event = PeerEvent::Paired(Paired::ToConsole {
                    guid,
                    resume_secret,
                });
                Ok(Step::event(
                    Self::Connected(Connected::Relaying(relay)),
                    event,
                ))
            }
            // A console only ever reattaches to a paired session.
            (Self::ExpectResumed(s), Message::Resumed(r)) if r.guid == s.guid && r.paired => {
                let relay = Relaying {
                    guid: r.guid,
                    resume_secret: r.resume_secret,
                };
                Ok(Step::event(
                    Self::Connected(Connected::Relaying(relay)),
                    PeerEvent::Resumed { paired: true },
                ))
            }
            (Self::ExpectResumed(_), Message::Resumed(_)) => Err(PeerError::WrongSession),
            (_, other) => Err(PeerError::Unexpected(other.frame_type())),
        }
    }

    /// When [`Console::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::ExpectHello(s) => Some(s.deadline),
            Self::Idle(_) => None,
            Self::ExpectQueueList(d) => Some(d.0),
            Self::ExpectPaired(s) | Self::ExpectResumed(s) => Some(s.deadline),
            Self::Connected(c) => c.deadline(),
        }
    }

    /// Fails with [`PeerError::Timeout`] if the awaited message is overdue.
    pub fn handle_timeout(self, now: Instant) -> Result<Self, PeerError> {
        check_deadline(self.poll_timeout(), now)?;
        Ok(self)
    }

    /// Ends the session from this side, in any state: the end state and the CLOSE to
    /// send. Nothing can refuse it.
    pub fn close(self, reason: CloseReason) -> (Self, Message) {
        let ended = Ended {
            reason: EndReason::Closed(reason),
        };
        (ended.into(), Message::Close(Close { reason }))
    }

    /// Whether the session is over.
    pub fn is_ended(&self) -> bool {
        matches!(self, Self::Connected(Connected::Ended(_)))
    }
}

impl Idle {
    /// Asks for the account's waiting sessions.
    pub fn queue(self, now: Instant) -> (Console, Message) {
        (
            Console::ExpectQueueList(Deadline(after(now, REQUEST_TIMEOUT))),
            Message::Queue(Queue),
        )
    }

    /// Claims a waiting session.
    pub fn claim(self, now: Instant, guid: Guid) -> (Console, Message) {
        let next = Console::ExpectPaired(ExpectSession {
            deadline: after(now, REQUEST_TIMEOUT),
            guid,
        });
        (next, Message::Claim(Claim { guid }))
    }
}

/// The console's HELLO.
fn hello() -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Peer(Role::Console),
    })
}
