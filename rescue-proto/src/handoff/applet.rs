//! The applet's side of the hand-off.
//!
//! ```text
//!  send HELLO + REGISTER          send HELLO + REATTACH
//!        |                               |
//!        v                               v
//!  ExpectHello --HELLO--> ExpectRegistered    ExpectHello --HELLO--> ExpectResumed
//!                              | REGISTERED                            | RESUMED
//!                              v                        waiting <------+------> paired
//!                         ExpectPaired <-------------------+                      |
//!                              | PAIRED (kind 1)                                  v
//!                              +----------------------------------------> Connected
//!                                    (Relaying <-> PeerAway -> Ended)
//! ```
//!
//! Every state answers PING, stops on ERROR and ends on CLOSE. Deadlines: the gateway's
//! HELLO within [`HELLO_TIMEOUT`] plus a request time, REGISTERED or RESUMED within
//! [`REQUEST_TIMEOUT`], PAIRED within the session's lifetime plus [`REQUEST_TIMEOUT`].

use std::time::{Duration, Instant};

use super::peer::{
    after, check_deadline, common, Connected, EndReason, Ended, PeerError, PeerEvent, Relaying,
    Step,
};
use crate::guid::Guid;
use crate::wire::limits::{HELLO_TIMEOUT, PROTOCOL_VERSION, REQUEST_TIMEOUT};
use crate::wire::signal::{
    Close, CloseReason, Hello, Message, Paired, Reattach, Register, ResumeSecret, Role, Speaker,
};

/// The applet's state; start with [`Applet::register`] or [`Applet::reattach`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Applet {
    /// Awaiting the gateway's HELLO.
    ExpectHello(ExpectHello),
    /// Awaiting REGISTERED.
    ExpectRegistered(ExpectRegistered),
    /// Awaiting RESUMED.
    ExpectResumed(ExpectResumed),
    /// Registered; awaiting a technician.
    ExpectPaired(ExpectPaired),
    /// Paired (or ended).
    Connected(Connected),
}

impl From<Ended> for Applet {
    fn from(e: Ended) -> Self {
        Self::Connected(Connected::Ended(e))
    }
}

/// What the applet asked for after its HELLO.
#[derive(Debug, Clone)]
enum Request {
    Register,
    Reattach(Guid),
}

/// Awaiting the gateway's HELLO.
#[derive(Debug, Clone)]
pub struct ExpectHello {
    deadline: Instant,
    request: Request,
}

/// Awaiting REGISTERED.
#[derive(Debug, Clone)]
pub struct ExpectRegistered {
    deadline: Instant,
}

/// Awaiting RESUMED for `guid`.
#[derive(Debug, Clone)]
pub struct ExpectResumed {
    deadline: Instant,
    guid: Guid,
}

/// Registered; awaiting PAIRED.
#[derive(Debug, Clone)]
pub struct ExpectPaired {
    deadline: Instant,
    /// The session.
    pub guid: Guid,
    /// The applet's resume secret.
    pub resume_secret: ResumeSecret,
}

impl Applet {
    /// Starts a session: the state and the two frames to send (HELLO, REGISTER).
    pub fn register(now: Instant, register: Register) -> (Self, [Message; 2]) {
        let state = ExpectHello {
            deadline: after(now, HELLO_TIMEOUT + REQUEST_TIMEOUT),
            request: Request::Register,
        };
        (
            Self::ExpectHello(state),
            [hello(), Message::Register(register)],
        )
    }

    /// Returns to a session after a lost hop: the state and the frames to send (HELLO,
    /// REATTACH).
    pub fn reattach(now: Instant, guid: Guid, resume_secret: ResumeSecret) -> (Self, [Message; 2]) {
        let state = ExpectHello {
            deadline: after(now, HELLO_TIMEOUT + REQUEST_TIMEOUT),
            request: Request::Reattach(guid),
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
            (Self::ExpectHello(s), Message::Hello(h)) => s.handle(now, h),
            (Self::ExpectRegistered(_), Message::Registered(r)) => {
                let deadline = after(
                    now,
                    Duration::from_secs(r.lifetime_secs.into()) + REQUEST_TIMEOUT,
                );
                let event = PeerEvent::Registered {
                    guid: r.guid,
                    lifetime_secs: r.lifetime_secs,
                };
                let next = ExpectPaired {
                    deadline,
                    guid: r.guid,
                    resume_secret: r.resume_secret,
                };
                Ok(Step::event(Self::ExpectPaired(next), event))
            }
            (Self::ExpectResumed(s), Message::Resumed(r)) if r.guid == s.guid => {
                let event = PeerEvent::Resumed { paired: r.paired };
                let next = if r.paired {
                    Self::Connected(Connected::Relaying(Relaying {
                        guid: r.guid,
                        resume_secret: r.resume_secret,
                    }))
                } else {
                    // The gateway's lifetime is not known again here; it ends the
                    // session with ERROR{timeout} when it runs out.
                    let deadline =
                        after(now, crate::wire::limits::PENDING_LIFETIME + REQUEST_TIMEOUT);
                    Self::ExpectPaired(ExpectPaired {
                        deadline,
                        guid: r.guid,
                        resume_secret: r.resume_secret,
                    })
                };
                Ok(Step::event(next, event))
            }
            (Self::ExpectResumed(_), Message::Resumed(_)) => Err(PeerError::WrongSession),
            (Self::ExpectPaired(s), Message::Paired(p @ Paired::ToApplet { .. })) => {
                let relay = Relaying {
                    guid: s.guid,
                    resume_secret: s.resume_secret,
                };
                Ok(Step::event(
                    Self::Connected(Connected::Relaying(relay)),
                    PeerEvent::Paired(p),
                ))
            }
            (_, other) => Err(PeerError::Unexpected(other.frame_type())),
        }
    }

    /// When [`Applet::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::ExpectHello(s) => Some(s.deadline),
            Self::ExpectRegistered(s) => Some(s.deadline),
            Self::ExpectResumed(s) => Some(s.deadline),
            Self::ExpectPaired(s) => Some(s.deadline),
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

impl ExpectHello {
    fn handle(self, now: Instant, h: Hello) -> Result<Step<Applet>, PeerError> {
        if h.role != Speaker::Gateway || h.version != PROTOCOL_VERSION {
            return Err(PeerError::BadHello { version: h.version });
        }
        let deadline = after(now, REQUEST_TIMEOUT);
        let next = match self.request {
            Request::Register => Applet::ExpectRegistered(ExpectRegistered { deadline }),
            Request::Reattach(guid) => Applet::ExpectResumed(ExpectResumed { deadline, guid }),
        };
        Ok(Step::quiet(next))
    }
}

/// The applet's HELLO.
fn hello() -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Peer(Role::Applet),
    })
}
