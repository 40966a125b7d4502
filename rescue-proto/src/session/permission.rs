//! Policy ∧ consent (PROTOCOL.md 7.4): the applet's [`Gatekeeper`] and the console's
//! [`Requester`].
//!
//! ```text
//!  REQUEST ─► policy forbids? ──yes──► DENY(policy)           (the end user is not asked)
//!                 │ no
//!                 ▼
//!           Event::Ask{deadline} ─► answer(yes) ─► GRANT{grant_id}
//!                                 ─► answer(no)  ─► DENY(user)
//!                                 ─► deadline    ─► DENY(timeout)
//!  live grant ─► revoke() / END ─► REVOKE / gone on both sides
//! ```
//!
//! A [`Grant`] can only be made by [`Requester`] from a GRANT message; it is neither
//! `Clone` nor constructible elsewhere, and action APIs take `&Grant` and check with
//! [`Requester::verify`] that it is still live. Nothing here asks the end user itself:
//! the question is an event; the embedding application answers it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::control::{ControlMsg, DenyReason};
use crate::permission::{Permission, PermissionSet, Policy};

/// Most consent questions waiting for the end user at once; more are denied as busy.
pub const MAX_PENDING_QUESTIONS: usize = 4;
/// Most requests a console keeps outstanding; bounds its table.
pub const MAX_OUTSTANDING_REQUESTS: usize = 16;
/// Most requests the [`Gatekeeper`] holds unanswered: asked of the end user, or answered
/// but the answer not yet taken by [`Gatekeeper::poll_outgoing`]. Each of them is still
/// outstanding at the console (it has not even been sent its answer), so an honest
/// console never makes more than [`MAX_OUTSTANDING_REQUESTS`]; one more is a flood and a
/// protocol violation ([`PermissionError::RequestFlood`]), not a queue that grows.
pub const MAX_UNANSWERED_REQUESTS: usize = MAX_OUTSTANDING_REQUESTS;
/// Default time the end user has to answer; silence means no.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Proof that the end user granted permissions; required by every action API.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant {
    id: u32,
    permissions: PermissionSet,
}

impl Grant {
    /// The grant id (for revocation and audit).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What it grants.
    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }
}

/// Why an action or a control message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// The grant was revoked, or the session ended.
    #[error("grant {0} is no longer live")]
    Revoked(u32),
    /// The grant does not cover this permission.
    #[error("grant does not cover {0}")]
    NotCovered(Permission),
    /// Too many requests outstanding.
    #[error("too many outstanding requests")]
    TooManyRequests,
    /// The session ended: nothing can be asked or granted any more.
    #[error("session ended")]
    Ended,
    /// The peer answered a request that was not asked, or granted more than asked
    /// (a protocol violation: end the session).
    #[error("unsolicited or excessive answer from the peer")]
    Unsolicited,
    /// The console sent a request while [`MAX_UNANSWERED_REQUESTS`] of its requests
    /// were still unanswered (a protocol violation: end the session).
    #[error("more than {MAX_UNANSWERED_REQUESTS} requests unanswered: request flood")]
    RequestFlood,
}

/// What the [`Gatekeeper`] tells the applet's driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateEvent {
    /// Ask the end user; call [`Gatekeeper::answer`] before `deadline`.
    Ask {
        /// Names the question.
        question: u32,
        /// What the technician wants (several for the all-in-one prompt).
        permissions: PermissionSet,
        /// After this, the answer is no.
        deadline: Instant,
    },
    /// A request was denied (audit it).
    Denied {
        /// What was asked.
        permissions: PermissionSet,
        /// Why.
        reason: DenyReason,
    },
    /// A grant is live (audit it; show it in the "you are being helped" bar).
    Granted {
        /// The grant id.
        grant_id: u32,
        /// What it covers.
        permissions: PermissionSet,
    },
    /// A grant ended (revoked by either side, or the session ended).
    Revoked {
        /// The grant id.
        grant_id: u32,
    },
}

struct Question {
    request_id: u32,
    permissions: PermissionSet,
    deadline: Instant,
}

/// The applet side: decides on requests under the policy and the end user's consent.
pub struct Gatekeeper {
    policy: Policy,
    timeout: Duration,
    questions: BTreeMap<u32, Question>,
    next_question: u32,
    grants: BTreeMap<u32, PermissionSet>,
    next_grant: u32,
    ended: bool,
    out: VecDeque<ControlMsg>,
    events: VecDeque<GateEvent>,
}

impl Gatekeeper {
    /// A gatekeeper for `policy`; questions expire after `consent_timeout`.
    pub fn new(policy: Policy, consent_timeout: Duration) -> Self {
        Self {
            policy,
            timeout: consent_timeout,
            questions: BTreeMap::new(),
            next_question: 1,
            grants: BTreeMap::new(),
            next_grant: 1,
            ended: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A control message from the console. `Err` for messages an applet never receives
    /// (GRANT, DENY) and for a request beyond [`MAX_UNANSWERED_REQUESTS`]
    /// (`RequestFlood`): end the session.
    pub fn handle(&mut self, now: Instant, msg: ControlMsg) -> Result<(), PermissionError> {
        if self.ended {
            return Ok(());
        }
        let is_request = matches!(
            msg,
            ControlMsg::Request { .. } | ControlMsg::RequestAll { .. }
        );
        // PROTOCOL.md 7.4: a console never has more than 16 requests outstanding.
        if is_request && self.unanswered() >= MAX_UNANSWERED_REQUESTS {
            return Err(PermissionError::RequestFlood);
        }
        match msg {
            ControlMsg::Request {
                request_id,
                permission,
            } => {
                self.on_request(now, request_id, PermissionSet::EMPTY.with(permission));
            }
            ControlMsg::RequestAll { request_id } if !self.policy.all_in_one_allowed => {
                self.deny(
                    request_id,
                    self.policy.allowed,
                    DenyReason::AllInOneForbidden,
                );
            }
            ControlMsg::RequestAll { request_id } => {
                self.on_request(now, request_id, self.policy.allowed)
            }
            ControlMsg::Revoke { grant_id } => self.drop_grant(grant_id),
            _ => return Err(PermissionError::Unsolicited),
        }
        Ok(())
    }

    /// Requests received and not yet answered on the wire: open questions plus answers
    /// waiting in the outgoing queue.
    fn unanswered(&self) -> usize {
        let queued = self
            .out
            .iter()
            .filter(|m| matches!(m, ControlMsg::Grant { .. } | ControlMsg::Deny { .. }))
            .count();
        self.questions.len() + queued
    }

    fn on_request(&mut self, now: Instant, request_id: u32, asked: PermissionSet) {
        // PROTOCOL.md 7.4: "what the policy forbids is denied without asking".
        if asked.is_empty() || asked.intersection(self.policy.allowed) != asked {
            return self.deny(request_id, asked, DenyReason::Policy);
        }
        if self.questions.len() >= MAX_PENDING_QUESTIONS {
            return self.deny(request_id, asked, DenyReason::Busy);
        }
        let question = self.next_question;
        self.next_question = self.next_question.wrapping_add(1);
        let deadline = now + self.timeout;
        self.questions.insert(
            question,
            Question {
                request_id,
                permissions: asked,
                deadline,
            },
        );
        self.events.push_back(GateEvent::Ask {
            question,
            permissions: asked,
            deadline,
        });
    }

    fn deny(&mut self, request_id: u32, permissions: PermissionSet, reason: DenyReason) {
        self.out.push_back(ControlMsg::Deny { request_id, reason });
        self.events.push_back(GateEvent::Denied {
            permissions,
            reason,
        });
    }

    /// The end user's answer to `question`; ignored if it expired or the session ended.
    pub fn answer(&mut self, question: u32, yes: bool) {
        let Some(q) = self.questions.remove(&question) else {
            return;
        };
        if !yes {
            return self.deny(q.request_id, q.permissions, DenyReason::User);
        }
        let grant_id = self.next_grant;
        self.next_grant = self.next_grant.wrapping_add(1);
        self.grants.insert(grant_id, q.permissions);
        self.out.push_back(ControlMsg::Grant {
            request_id: q.request_id,
            grant_id,
            permissions: q.permissions,
        });
        self.events.push_back(GateEvent::Granted {
            grant_id,
            permissions: q.permissions,
        });
    }

    /// The end user revokes a grant (always possible).
    pub fn revoke(&mut self, grant_id: u32) {
        if self.grants.contains_key(&grant_id) {
            self.out.push_back(ControlMsg::Revoke { grant_id });
            self.drop_grant(grant_id);
        }
    }

    fn drop_grant(&mut self, grant_id: u32) {
        if self.grants.remove(&grant_id).is_some() {
            self.events.push_back(GateEvent::Revoked { grant_id });
        }
    }

    /// The session ended (either side): every grant and question is void.
    pub fn end(&mut self) {
        self.ended = true;
        self.questions.clear();
        let ids: Vec<u32> = self.grants.keys().copied().collect();
        ids.into_iter().for_each(|id| self.drop_grant(id));
        self.out.clear();
    }

    /// Whether a live grant covers `p` (check before acting on the technician's behalf).
    pub fn is_granted(&self, p: Permission) -> bool {
        !self.ended && self.grants.values().any(|s| s.contains(p))
    }

    /// Denies questions whose deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .questions
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(q) = self.questions.remove(&id) {
                self.deny(q.request_id, q.permissions, DenyReason::Timeout);
            }
        }
    }

    /// The earliest question deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.questions.values().map(|q| q.deadline).min()
    }

    /// The next message to send on the control channel.
    pub fn poll_outgoing(&mut self) -> Option<ControlMsg> {
        self.out.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<GateEvent> {
        self.events.pop_front()
    }
}

/// What the [`Requester`] tells the console's driver.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestEvent {
    /// A request was granted: the [`Grant`] to pass to action APIs.
    Granted {
        /// The request.
        request_id: u32,
        /// The grant.
        grant: Grant,
    },
    /// A request was denied.
    Denied {
        /// The request.
        request_id: u32,
        /// Why.
        reason: DenyReason,
    },
    /// The end user revoked a grant (or the session ended).
    Revoked {
        /// The grant id.
        grant_id: u32,
    },
}

/// The console side: asks, receives grants, tracks which are live.
#[derive(Default)]
pub struct Requester {
    outstanding: BTreeMap<u32, Option<Permission>>,
    next_request: u32,
    live: BTreeMap<u32, PermissionSet>,
    ended: bool,
    events: VecDeque<RequestEvent>,
}

impl Requester {
    /// A requester with nothing asked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for `permission`; returns the message to send.
    pub fn request(&mut self, permission: Permission) -> Result<ControlMsg, PermissionError> {
        let request_id = self.new_request(Some(permission))?;
        Ok(ControlMsg::Request {
            request_id,
            permission,
        })
    }

    /// Asks for everything the policy allows in one prompt.
    pub fn request_all(&mut self) -> Result<ControlMsg, PermissionError> {
        let request_id = self.new_request(None)?;
        Ok(ControlMsg::RequestAll { request_id })
    }

    fn new_request(&mut self, p: Option<Permission>) -> Result<u32, PermissionError> {
        if self.ended {
            return Err(PermissionError::Ended);
        }
        if self.outstanding.len() >= MAX_OUTSTANDING_REQUESTS {
            return Err(PermissionError::TooManyRequests);
        }
        self.next_request = self.next_request.wrapping_add(1);
        self.outstanding.insert(self.next_request, p);
        Ok(self.next_request)
    }

    /// A control message from the applet. `Err(Unsolicited)`: end the session.
    pub fn handle(&mut self, msg: ControlMsg) -> Result<(), PermissionError> {
        if self.ended {
            return Ok(());
        }
        match msg {
            ControlMsg::Grant {
                request_id,
                grant_id,
                permissions,
            } => {
                let asked = self
                    .outstanding
                    .remove(&request_id)
                    .ok_or(PermissionError::Unsolicited)?;
                let fits = asked.is_none_or(|p| permissions == PermissionSet::EMPTY.with(p));
                if !fits || self.live.contains_key(&grant_id) {
                    return Err(PermissionError::Unsolicited);
                }
                self.live.insert(grant_id, permissions);
                let grant = Grant {
                    id: grant_id,
                    permissions,
                };
                self.events
                    .push_back(RequestEvent::Granted { request_id, grant });
            }
            ControlMsg::Deny { request_id, reason } => {
                self.outstanding
                    .remove(&request_id)
                    .ok_or(PermissionError::Unsolicited)?;
                self.events
                    .push_back(RequestEvent::Denied { request_id, reason });
            }
            ControlMsg::Revoke { grant_id } => self.drop_grant(grant_id),
            _ => return Err(PermissionError::Unsolicited),
        }
        Ok(())
    }

    /// The runtime check every action API makes: `grant` is live and covers `p`.
    pub fn verify(&self, grant: &Grant, p: Permission) -> Result<(), PermissionError> {
        if self.ended || !self.live.contains_key(&grant.id) {
            return Err(PermissionError::Revoked(grant.id));
        }
        if !grant.permissions.contains(p) {
            return Err(PermissionError::NotCovered(p));
        }
        Ok(())
    }

    /// Gives a grant back; returns the REVOKE to send.
    pub fn release(&mut self, grant: Grant) -> Option<ControlMsg> {
        self.live.contains_key(&grant.id).then(|| {
            self.drop_grant(grant.id);
            ControlMsg::Revoke { grant_id: grant.id }
        })
    }

    fn drop_grant(&mut self, grant_id: u32) {
        if self.live.remove(&grant_id).is_some() {
            self.events.push_back(RequestEvent::Revoked { grant_id });
        }
    }

    /// The session ended: every grant is void.
    pub fn end(&mut self) {
        let ids: Vec<u32> = self.live.keys().copied().collect();
        ids.into_iter().for_each(|id| self.drop_grant(id));
        self.outstanding.clear();
        self.ended = true;
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<RequestEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[Permission], all: bool) -> Policy {
        Policy {
            allowed: allowed.iter().copied().collect(),
            all_in_one_allowed: all,
            exclude_chat_from_audit: false,
        }
    }

    #[test]
    fn forbidden_is_denied_without_asking() {
        let now = Instant::now();
        let mut g = Gatekeeper::new(
            policy(&[Permission::FileTransfer], false),
            DEFAULT_CONSENT_TIMEOUT,
        );
        g.handle(
            now,
            ControlMsg::Request {
                request_id: 1,
                permission: Permission::Reboot,
            },
        )
        .unwrap();
        g.handle(now, ControlMsg::RequestAll { request_id: 2 })
            .unwrap();
        assert_eq!(
            g.poll_outgoing(),
            Some(ControlMsg::Deny {
                request_id: 1,
                reason: DenyReason::Policy
            })
        );
        assert_eq!(
            g.poll_outgoing(),
            Some(ControlMsg::Deny {
                request_id: 2,
                reason: DenyReason::AllInOneForbidden
            })
        );
        assert!(!std::iter::from_fn(|| g.poll_event()).any(|e| matches!(e, GateEvent::Ask { .. })));
    }

    #[test]
    fn consent_grant_verify_revoke_and_timeout() {
        let now = Instant::now();
        let mut g = Gatekeeper::new(
            policy(&[Permission::FileTransfer, Permission::Reboot], true),
            DEFAULT_CONSENT_TIMEOUT,
        );
        let mut r = Requester::new();
        g.handle(now, r.request(Permission::FileTransfer).unwrap())
            .unwrap();
        let Some(GateEvent::Ask { question, .. }) = g.poll_event() else {
            panic!("no question")
        };
        g.answer(question, true);
        r.handle(g.poll_outgoing().unwrap()).unwrap();
        let Some(RequestEvent::Granted { grant, .. }) = r.poll_event() else {
            panic!("no grant")
        };
        assert_eq!(r.verify(&grant, Permission::FileTransfer), Ok(()));
        assert_eq!(
            r.verify(&grant, Permission::Reboot),
            Err(PermissionError::NotCovered(Permission::Reboot))
        );
        assert!(g.is_granted(Permission::FileTransfer));
        g.revoke(grant.id());
        r.handle(g.poll_outgoing().unwrap()).unwrap();
        assert_eq!(
            r.verify(&grant, Permission::FileTransfer),
            Err(PermissionError::Revoked(grant.id()))
        );
        assert!(!g.is_granted(Permission::FileTransfer));
        // Silence is a no.
        g.handle(now, r.request(Permission::Reboot).unwrap())
            .unwrap();
        g.handle_timeout(now + DEFAULT_CONSENT_TIMEOUT);
        assert!(matches!(
            g.poll_outgoing(),
            Some(ControlMsg::Deny {
                reason: DenyReason::Timeout,
                ..
            })
        ));
    }

    #[test]
    fn a_request_flood_beyond_the_bound_is_a_violation_not_a_queue() {
        let now = Instant::now();
        let mut g = Gatekeeper::new(
            policy(&[Permission::Reboot], false),
            DEFAULT_CONSENT_TIMEOUT,
        );
        let req = |request_id| ControlMsg::Request {
            request_id,
            permission: Permission::Scripts, // forbidden: a DENY queued per request
        };
        for id in 0..MAX_UNANSWERED_REQUESTS as u32 {
            assert_eq!(g.handle(now, req(id)), Ok(()));
        }
        // Nobody took the DENYs (the console does not read): one more is a flood.
        assert_eq!(g.handle(now, req(99)), Err(PermissionError::RequestFlood));
        let queued = std::iter::from_fn(|| g.poll_outgoing()).count();
        assert_eq!(queued, MAX_UNANSWERED_REQUESTS);
        // Answers that went out free their slots: an honest console's pace is fine.
        for id in 100..100 + 4 * MAX_UNANSWERED_REQUESTS as u32 {
            assert_eq!(g.handle(now, req(id)), Ok(()));
            assert!(g.poll_outgoing().is_some());
        }
        // Open questions count too (asked, not yet answered by the end user).
        let mut g = Gatekeeper::new(
            policy(&[Permission::Reboot], false),
            DEFAULT_CONSENT_TIMEOUT,
        );
        let ask = |request_id| ControlMsg::Request {
            request_id,
            permission: Permission::Reboot,
        };
        for id in 0..MAX_UNANSWERED_REQUESTS as u32 {
            assert_eq!(g.handle(now, ask(id)), Ok(()));
        }
        assert_eq!(g.handle(now, ask(99)), Err(PermissionError::RequestFlood));
        // A REVOKE is no request: never refused as a flood.
        assert_eq!(g.handle(now, ControlMsg::Revoke { grant_id: 5 }), Ok(()));
    }

    #[test]
    fn unsolicited_grant_is_refused() {
        let mut r = Requester::new();
        let msg = ControlMsg::Grant {
            request_id: 7,
            grant_id: 1,
            permissions: PermissionSet::ALL,
        };
        assert_eq!(r.handle(msg), Err(PermissionError::Unsolicited));
        let ControlMsg::Request { request_id, .. } = r.request(Permission::Reboot).unwrap() else {
            panic!()
        };
        let more = ControlMsg::Grant {
            request_id,
            grant_id: 1,
            permissions: PermissionSet::ALL,
        };
        assert_eq!(r.handle(more), Err(PermissionError::Unsolicited));
    }
}
