//! Life after admission: lost hops, REATTACH, CLOSE, expiry and the next deadline.

use std::time::Instant;

use super::{
    deadline_of, secs_u32, ConsoleIdentity, HopId, Outgoing, Party, Presence, Session,
    SessionTable, TableError,
};
use crate::guid::{Guid, GUID_LEN};
use crate::wire::signal::{
    Close, CloseReason, ErrorCode, ErrorMessage, Message, PeerBack, PeerGone, ResumeSecret,
    Resumed, Role,
};

/// A REATTACH from a hop whose HELLO gave `role`.
#[derive(Debug, Clone)]
pub struct ReattachRequest {
    /// The session.
    pub guid: Guid,
    /// The role from the hop's HELLO.
    pub role: Role,
    /// The secret presented.
    pub resume_secret: ResumeSecret,
    /// For a console: its identity from the client certificate (must match the claim).
    pub identity: Option<ConsoleIdentity>,
    /// The new hop.
    pub hop: HopId,
    /// A fresh secret from the CSPRNG that replaces the presented one.
    pub new_secret: ResumeSecret,
}

/// A successful REATTACH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reattached {
    /// RESUMED for the new hop.
    pub resumed: Resumed,
    /// The party's previous hop if it was still considered present: close it.
    pub displaced: Option<HopId>,
    /// PEER_BACK for the other party, if paired and present.
    pub notify: Option<Outgoing>,
}

impl SessionTable {
    /// A hop is gone (closed, reset, idle). Its party becomes away for the grace period;
    /// if the other party is away too, the session ends. Returns PEER_GONE for the other
    /// party, if present. A hop not in any session is ignored.
    pub fn hop_lost(&mut self, now: Instant, hop: HopId) -> Vec<Outgoing> {
        let Some((guid, role)) = self.hops.remove(&hop) else {
            return Vec::new();
        };
        let grace = self.limits.reattach_grace;
        let lifetime = self.limits.pending_lifetime;
        let Some(s) = self.sessions.get_mut(&guid) else {
            return Vec::new();
        };
        let until = now.checked_add(grace).unwrap_or(now);
        let Some(console) = s.console.as_mut() else {
            // Waiting: the applet may come back, but not past the pending lifetime.
            let expiry = s.registered_at.checked_add(lifetime).unwrap_or(until);
            s.applet.presence = Presence::Away(until.min(expiry));
            self.reindex(guid);
            return Vec::new();
        };
        let (lost, other) = match role {
            Role::Applet => (&mut s.applet, &console.party),
            _ => (&mut console.party, &s.applet),
        };
        lost.presence = Presence::Away(until);
        match other.hop() {
            Some(o) => {
                self.reindex(guid);
                vec![Outgoing {
                    hop: o,
                    message: Message::PeerGone(PeerGone {
                        grace_secs: secs_u32(grace),
                    }),
                    close: false,
                }]
            }
            None => {
                self.end_session(now, guid);
                Vec::new()
            }
        }
    }

    /// Puts a party back in its session on a new hop, if it proves itself: the current
    /// resume secret (compared in constant time), for a console the same certificate
    /// identity, and (if away) within the grace period. The secret is replaced by
    /// `new_secret`.
    pub fn reattach(
        &mut self,
        now: Instant,
        req: ReattachRequest,
    ) -> Result<Reattached, TableError> {
        if self.hops.contains_key(&req.hop) {
            return Err(TableError::HopInUse);
        }
        let s = self
            .sessions
            .get_mut(&req.guid)
            .ok_or(TableError::BadResume)?;
        let paired = s.console.is_some();
        let (party, other): (&mut Party, Option<&Party>) = match (req.role, s.console.as_mut()) {
            (Role::Applet, c) => (&mut s.applet, c.map(|c| &c.party)),
            (Role::Console, Some(c)) if Some(&c.identity) == req.identity.as_ref() => {
                (&mut c.party, Some(&s.applet))
            }
            _ => return Err(TableError::BadResume),
        };
        if !party.secret.ct_eq(&req.resume_secret) {
            return Err(TableError::BadResume);
        }
        if matches!(party.presence, Presence::Away(until) if until <= now) {
            return Err(TableError::BadResume);
        }
        let displaced = party.hop();
        party.presence = Presence::Here(req.hop);
        party.secret = req.new_secret.clone();
        let notify = other.and_then(Party::hop).map(|o| Outgoing {
            hop: o,
            message: Message::PeerBack(PeerBack),
            close: false,
        });
        if let Some(d) = displaced {
            self.hops.remove(&d);
        }
        self.hops.insert(req.hop, (req.guid, req.role));
        self.reindex(req.guid);
        let resumed = Resumed {
            guid: req.guid,
            resume_secret: req.new_secret,
            paired,
        };
        Ok(Reattached {
            resumed,
            displaced,
            notify,
        })
    }

    /// A party sent CLOSE (or the caller ends the session for it): the session ends for
    /// both. Returns CLOSE with the same reason for the other party, if present.
    pub fn close(&mut self, now: Instant, hop: HopId, reason: CloseReason) -> Vec<Outgoing> {
        let Some(&(guid, _)) = self.hops.get(&hop) else {
            return Vec::new();
        };
        let message = Message::Close(Close { reason });
        self.end_session(now, guid)
            .map(|s| {
                present_hops(&s)
                    .filter(|h| *h != hop)
                    .map(|h| Outgoing {
                        hop: h,
                        message: message.clone(),
                        close: true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends every session whose deadline has passed: waiting sessions past their
    /// lifetime (the applet gets `ERROR{timeout}`) and sessions whose away party's grace
    /// is over (the other gets `PEER_GONE{0}`). Forgets ended GUIDs whose ticket expired.
    pub fn expire(&mut self, now: Instant) -> Vec<Outgoing> {
        let lifetime = self.limits.pending_lifetime;
        let due: Vec<Guid> = self
            .due
            .range(..=(now, Guid::from_bytes([0xff; GUID_LEN])))
            .map(|(_, g)| *g)
            .collect();
        let mut out = Vec::new();
        for guid in due {
            let Some(s) = self.sessions.get(&guid) else {
                continue;
            };
            let waiting_over = s.console.is_none()
                && s.registered_at
                    .checked_add(lifetime)
                    .is_some_and(|t| t <= now);
            let message = if waiting_over {
                Message::Error(ErrorMessage::new(ErrorCode::Timeout))
            } else {
                Message::PeerGone(PeerGone { grace_secs: 0 })
            };
            if let Some(s) = self.end_session(now, guid) {
                out.extend(present_hops(&s).map(|hop| Outgoing {
                    hop,
                    message: message.clone(),
                    close: true,
                }));
            }
        }
        self.ended.expire(now);
        out
    }

    /// The earliest instant at which [`SessionTable::expire`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let live = self.due.first().map(|(t, _)| *t);
        let ended = self.ended.poll_timeout();
        live.into_iter().chain(ended).min()
    }

    /// Files the session's current deadline in the index (after any change to it).
    pub(crate) fn reindex(&mut self, guid: Guid) {
        let Some(s) = self.sessions.get_mut(&guid) else {
            return;
        };
        let new = deadline_of(s, self.limits.pending_lifetime);
        if new == s.due {
            return;
        }
        if let Some(old) = s.due {
            self.due.remove(&(old, guid));
        }
        if let Some(t) = new {
            self.due.insert((t, guid));
        }
        s.due = new;
    }

    /// Removes a session, its hops and its account count; remembers its GUID until its
    /// ticket expires.
    fn end_session(&mut self, now: Instant, guid: Guid) -> Option<Session> {
        let s = self.sessions.remove(&guid)?;
        if let Some(t) = s.due {
            self.due.remove(&(t, guid));
        }
        for hop in present_hops(&s) {
            self.hops.remove(&hop);
        }
        if let Some(n) = self.per_account.get_mut(&s.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_account.remove(&s.account);
            }
        }
        self.ended.insert(now, guid, &s.account, s.ticket_expires);
        Some(s)
    }
}

/// The parties of a session (one or two).
fn parties(s: &Session) -> impl Iterator<Item = &Party> {
    core::iter::once(&s.applet).chain(s.console.as_ref().map(|c| &c.party))
}

/// The hops of the present parties of a session.
fn present_hops(s: &Session) -> impl Iterator<Item = HopId> + '_ {
    parties(s).filter_map(Party::hop)
}
