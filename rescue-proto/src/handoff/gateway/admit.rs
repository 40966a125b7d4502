//! Admission: REGISTER, QUEUE and CLAIM.

use std::time::Instant;

use super::{
    secs_u32, ConsoleIdentity, ConsoleSide, HopId, Party, Presence, Session, SessionTable,
    TableError,
};
use crate::guid::Guid;
use crate::wire::limits::MAX_QUEUE_ENTRIES;
use crate::wire::signal::{
    AccountId, Paired, QueueEntry, QueueList, Registered, ResumeSecret, Role,
};

/// The gateway binding of a ticket (PROTOCOL.md 3.11): whether one of the ticket's
/// gateways (`host:port`, as the portal wrote them) is one of `names`, the names this
/// gateway answers to. Compared byte for byte except ASCII case (host names are
/// case-insensitive; a ticket's addresses are printable ASCII).
pub fn ticket_lists_gateway<'a>(
    listed: impl IntoIterator<Item = &'a str>,
    names: &[String],
) -> bool {
    listed
        .into_iter()
        .any(|g| names.iter().any(|n| n.eq_ignore_ascii_case(g)))
}

/// A REGISTER whose ticket the caller has verified.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// The GUID from the ticket.
    pub guid: Guid,
    /// The account from the ticket.
    pub account: AccountId,
    /// When the ticket expires.
    pub ticket_expires: Instant,
    /// The applet's hop.
    pub hop: HopId,
    /// A fresh secret from the CSPRNG, for the applet's REATTACH.
    pub resume_secret: ResumeSecret,
}

/// A successful CLAIM: what to send to each party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The applet's hop.
    pub applet: HopId,
    /// PAIRED for the applet (the technician's identity).
    pub to_applet: Paired,
    /// PAIRED for the console (the GUID and its resume secret).
    pub to_console: Paired,
}

impl SessionTable {
    /// Records a waiting session. Refuses a GUID that is live or remembered as ended, an
    /// expired ticket, a hop already in a session, and anything past the limits.
    /// Returns the REGISTERED to send to the applet.
    pub fn register(
        &mut self,
        now: Instant,
        req: RegisterRequest,
    ) -> Result<Registered, TableError> {
        self.check_register(now, &req)?;
        let account_count = self.per_account.get(&req.account).copied().unwrap_or(0);
        let reply = Registered {
            guid: req.guid,
            lifetime_secs: secs_u32(self.limits.pending_lifetime),
            resume_secret: req.resume_secret.clone(),
        };
        self.per_account.insert(req.account, account_count + 1);
        self.hops.insert(req.hop, (req.guid, Role::Applet));
        let applet = Party {
            presence: Presence::Here(req.hop),
            secret: req.resume_secret,
        };
        let session = Session {
            account: req.account,
            registered_at: now,
            ticket_expires: req.ticket_expires,
            applet,
            console: None,
            due: None,
        };
        self.sessions.insert(req.guid, session);
        self.reindex(req.guid);
        Ok(reply)
    }

    /// Which limit, if any, a new session of `account` (with `live` sessions now) hits.
    /// Account quotas are checked first: an account over its quota learns that, not
    /// that the gateway is full.
    fn check_room(&self, account: &AccountId, live: usize) -> Result<(), TableError> {
        let l = &self.limits;
        if live >= l.max_per_account {
            return Err(TableError::AccountSessionQuota);
        }
        if live + self.ended.of_account(account) >= l.max_ended_per_account {
            return Err(TableError::AccountEndedQuota);
        }
        if self.sessions.len() >= l.max_sessions {
            return Err(TableError::SessionLimit);
        }
        if self.sessions.len() + self.ended.len() >= l.max_ended {
            return Err(TableError::EndedCapacity);
        }
        Ok(())
    }

    /// Whether [`SessionTable::register`] would accept `req` now (the same checks, no
    /// change): lets a caller record the GUID durably before the table admits it.
    pub fn check_register(&self, now: Instant, req: &RegisterRequest) -> Result<(), TableError> {
        if self.hops.contains_key(&req.hop) {
            return Err(TableError::HopInUse);
        }
        if req.ticket_expires <= now {
            return Err(TableError::ExpiredTicket);
        }
        if self.sessions.contains_key(&req.guid) || self.ended.contains(&req.guid) {
            return Err(TableError::GuidTaken);
        }
        let live = self.per_account.get(&req.account).copied().unwrap_or(0);
        self.check_room(&req.account, live)
    }

    /// The waiting sessions of `account` whose applet is present, longest waiting first,
    /// at most [`MAX_QUEUE_ENTRIES`]. Nothing of any other account.
    pub fn queue(&self, now: Instant, account: &AccountId) -> QueueList {
        let mut waiting: Vec<(Instant, Guid)> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                &s.account == account && s.console.is_none() && s.applet.hop().is_some()
            })
            .map(|(g, s)| (s.registered_at, *g))
            .collect();
        waiting.sort_unstable();
        let entries = waiting
            .into_iter()
            .take(MAX_QUEUE_ENTRIES)
            .map(|(at, guid)| QueueEntry {
                guid,
                waiting_secs: secs_u32(now.saturating_duration_since(at)),
            })
            .collect();
        // At most MAX_QUEUE_ENTRIES entries by the `take` above.
        QueueList::new(entries).unwrap_or_default()
    }

    /// Pairs a console with a waiting session of its account whose applet is present.
    /// `resume_secret` is a fresh secret from the CSPRNG for the console's REATTACH.
    pub fn claim(
        &mut self,
        _now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> Result<Pairing, TableError> {
        if self.hops.contains_key(&hop) {
            return Err(TableError::HopInUse);
        }
        let s = self
            .sessions
            .get_mut(&guid)
            .ok_or(TableError::UnknownGuid)?;
        if s.account != identity.account {
            return Err(TableError::WrongAccount);
        }
        if s.console.is_some() {
            return Err(TableError::AlreadyClaimed);
        }
        let applet = s.applet.hop().ok_or(TableError::UnknownGuid)?;
        let pairing = Pairing {
            applet,
            to_applet: Paired::ToApplet {
                account: identity.account,
                technician: identity.technician.clone(),
            },
            to_console: Paired::ToConsole {
                guid,
                resume_secret: resume_secret.clone(),
            },
        };
        let party = Party {
            presence: Presence::Here(hop),
            secret: resume_secret,
        };
        s.console = Some(ConsoleSide { party, identity });
        self.hops.insert(hop, (guid, Role::Console));
        self.reindex(guid);
        Ok(pairing)
    }
}
