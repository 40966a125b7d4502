//! The gateway's session table.
//!
//! ```text
//!                REGISTER (fresh GUID)            CLAIM (same account, first claim)
//!  issued ----------------------------> Waiting ----------------------------> Paired
//!                                        |   ^                                 |   ^
//!                        applet hop lost |   | REATTACH (applet)    a hop lost |   | REATTACH
//!                                        v   |                                 v   |
//!                                    Waiting, applet away                Paired, one away
//!                                        |                                      |
//!           lifetime over / grace over   |           grace over / CLOSE / both  |
//!                                        v                                      v
//!                                      Ended <----------------------------------+
//!                          (GUID remembered until its ticket expires)
//! ```
//!
//! Hops are the caller's connection ids ([`HopId`]). Every operation takes `now`;
//! [`SessionTable::poll_timeout`] says when [`SessionTable::expire`] is next due.
//! The table never holds more than [`Limits::max_sessions`] live sessions,
//! [`Limits::max_per_account`] per account, [`Limits::max_ended`] GUIDs it must refuse
//! to register again (live or ended) and [`Limits::max_ended_per_account`] of them per
//! account; past each it refuses REGISTER with its own [`TableError`] variant, so only
//! the account over its quota is refused. Deadlines are kept in ordered indexes:
//! `poll_timeout` is O(log n) and `expire` touches only what is due.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::guid::Guid;
use crate::wire::limits::{
    MAX_ENDED_PER_ACCOUNT, MAX_ENDED_REMEMBERED, MAX_SESSIONS, MAX_SESSIONS_PER_ACCOUNT,
    PENDING_LIFETIME, REATTACH_GRACE,
};
use crate::wire::signal::{AccountId, ErrorCode, Message, ResumeSecret, Role, TechnicianName};

mod admit;
mod lifecycle;
mod remembered;
#[cfg(test)]
mod tests;

pub use admit::{ticket_lists_gateway, Pairing, RegisterRequest};
pub use lifecycle::{ReattachRequest, Reattached};
pub use remembered::EXPIRY_GRANULARITY;

/// The caller's id for one connection (hop) to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopId(pub u64);

/// Who a console is, from its verified client certificate (never from a message).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsoleIdentity {
    /// The account of the certificate's CA.
    pub account: AccountId,
    /// The technician named in the certificate.
    pub technician: TechnicianName,
}

/// Bounds and durations of a table; [`Default`] gives the protocol's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most live sessions.
    pub max_sessions: usize,
    /// Most live sessions of one account.
    pub max_per_account: usize,
    /// Most GUIDs that may not register again (live sessions plus ended GUIDs whose
    /// ticket is valid); when reached, REGISTER is refused for every account.
    pub max_ended: usize,
    /// Most such GUIDs of one account; when reached, REGISTER is refused for that
    /// account only.
    pub max_ended_per_account: usize,
    /// Lifetime of a waiting session.
    pub pending_lifetime: Duration,
    /// Time a party that lost its hop has to reattach.
    pub reattach_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: MAX_SESSIONS,
            max_per_account: MAX_SESSIONS_PER_ACCOUNT,
            max_ended: MAX_ENDED_REMEMBERED,
            max_ended_per_account: MAX_ENDED_PER_ACCOUNT,
            pending_lifetime: PENDING_LIFETIME,
            reattach_grace: REATTACH_GRACE,
        }
    }
}

/// Why the table refused an operation; [`TableError::code`] is the ERROR to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// REGISTER of a GUID that is live, or ended while its ticket is still valid.
    #[error("GUID already registered")]
    GuidTaken,
    /// REGISTER with a ticket that expires at or before `now`.
    #[error("ticket expired")]
    ExpiredTicket,
    /// The gateway holds [`Limits::max_sessions`] live sessions.
    #[error("gateway session limit reached")]
    SessionLimit,
    /// The ticket's account holds [`Limits::max_per_account`] live sessions.
    #[error("account session quota reached")]
    AccountSessionQuota,
    /// The gateway remembers [`Limits::max_ended`] GUIDs (live or ended, ticket valid).
    #[error("remembered GUID capacity reached")]
    EndedCapacity,
    /// The ticket's account has [`Limits::max_ended_per_account`] remembered GUIDs.
    #[error("account remembered GUID quota reached")]
    AccountEndedQuota,
    /// CLAIM of a GUID with no live session, or one whose applet is away.
    #[error("unknown session")]
    UnknownGuid,
    /// CLAIM by a console of another account.
    #[error("session belongs to another account")]
    WrongAccount,
    /// CLAIM of a session that is paired already.
    #[error("session already claimed")]
    AlreadyClaimed,
    /// REATTACH with an unknown GUID, a wrong secret or identity, or after the grace.
    #[error("reattach refused")]
    BadResume,
    /// The hop already has a place in a session: the peer broke the protocol.
    #[error("connection already in a session")]
    HopInUse,
}

impl TableError {
    /// The ERROR code for the peer.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::GuidTaken => ErrorCode::GuidTaken,
            Self::ExpiredTicket => ErrorCode::ExpiredTicket,
            Self::SessionLimit
            | Self::AccountSessionQuota
            | Self::EndedCapacity
            | Self::AccountEndedQuota => ErrorCode::Overloaded,
            Self::UnknownGuid => ErrorCode::UnknownGuid,
            Self::WrongAccount => ErrorCode::WrongAccount,
            Self::AlreadyClaimed => ErrorCode::AlreadyClaimed,
            Self::BadResume => ErrorCode::BadResume,
            Self::HopInUse => ErrorCode::ProtocolViolation,
        }
    }
}

/// A message for the caller to send on a hop, and whether to close the hop after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to send.
    pub hop: HopId,
    /// What to send.
    pub message: Message,
    /// Close the hop after sending.
    pub close: bool,
}

/// The observable state of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Registered, not yet claimed.
    Waiting,
    /// Claimed; the relay runs (or a party is away).
    Paired,
}

/// A snapshot of one session, for the caller and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Waiting or paired.
    pub state: SessionState,
    /// The account from the ticket.
    pub account: AccountId,
    /// The applet's hop, if present.
    pub applet: Option<HopId>,
    /// The console's hop, if paired and present.
    pub console: Option<HopId>,
}

/// Where a party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Connected on this hop.
    Here(HopId),
    /// Hop lost; may reattach until the instant.
    Away(Instant),
}

/// One party of a session.
#[derive(Debug, Clone)]
pub(crate) struct Party {
    pub(crate) presence: Presence,
    pub(crate) secret: ResumeSecret,
}

impl Party {
    pub(crate) fn hop(&self) -> Option<HopId> {
        match self.presence {
            Presence::Here(h) => Some(h),
            Presence::Away(_) => None,
        }
    }
}

/// The console side of a paired session.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSide {
    pub(crate) party: Party,
    pub(crate) identity: ConsoleIdentity,
}

/// One live session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) account: AccountId,
    pub(crate) registered_at: Instant,
    pub(crate) ticket_expires: Instant,
    pub(crate) applet: Party,
    /// `None` while waiting.
    pub(crate) console: Option<ConsoleSide>,
    /// The session's next deadline as filed in [`SessionTable::due`].
    pub(crate) due: Option<Instant>,
}

/// The gateway's sessions, keyed by GUID.
#[derive(Debug)]
pub struct SessionTable {
    pub(crate) limits: Limits,
    pub(crate) sessions: HashMap<Guid, Session>,
    /// Live sessions per account (no zero entries).
    pub(crate) per_account: HashMap<AccountId, usize>,
    /// Every present hop: its session and role.
    pub(crate) hops: HashMap<HopId, (Guid, Role)>,
    /// Ended GUIDs whose ticket is valid, by account and expiry.
    pub(crate) ended: remembered::Remembered,
    /// Live sessions by next deadline (pending lifetime or grace end).
    pub(crate) due: BTreeSet<(Instant, Guid)>,
}

impl SessionTable {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sessions: HashMap::new(),
            per_account: HashMap::new(),
            hops: HashMap::new(),
            ended: remembered::Remembered::default(),
            due: BTreeSet::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A snapshot of a session.
    pub fn session(&self, guid: &Guid) -> Option<SessionInfo> {
        let s = self.sessions.get(guid)?;
        Some(SessionInfo {
            state: if s.console.is_some() {
                SessionState::Paired
            } else {
                SessionState::Waiting
            },
            account: s.account,
            applet: s.applet.hop(),
            console: s.console.as_ref().and_then(|c| c.party.hop()),
        })
    }

    /// The session and role of a hop.
    pub fn hop(&self, hop: HopId) -> Option<(Guid, Role)> {
        self.hops.get(&hop).copied()
    }

    /// The hop to forward DATA to from `hop`: the other party, if paired and present.
    pub fn peer_of(&self, hop: HopId) -> Option<HopId> {
        let (guid, role) = self.hops.get(&hop)?;
        let s = self.sessions.get(guid)?;
        let console = s.console.as_ref()?;
        match role {
            Role::Applet => console.party.hop(),
            _ => s.applet.hop(),
        }
    }

    /// Whether `guid` is remembered as ended (and cannot be registered again).
    pub fn is_ended(&self, guid: &Guid) -> bool {
        self.ended.contains(guid)
    }

    /// Number of ended GUIDs remembered.
    pub fn ended_len(&self) -> usize {
        self.ended.len()
    }

    /// Remembers `guid` of `account` as ended until `ticket_expires`, as if its session
    /// had ended here: how a gateway restores what its store kept across a restart. The
    /// limits do not apply (forgetting would allow a replay); REGISTER is refused while
    /// they are exceeded. Returns whether the GUID was new to the table.
    pub fn remember_ended(
        &mut self,
        now: Instant,
        guid: Guid,
        account: &AccountId,
        ticket_expires: Instant,
    ) -> bool {
        if self.sessions.contains_key(&guid) {
            return false;
        }
        self.ended.insert(now, guid, account, ticket_expires)
    }

    /// Bytes held by the remembered GUIDs' containers (see the module `remembered`).
    pub fn ended_bytes(&self) -> usize {
        self.ended.approx_bytes()
    }

    /// Checks every internal invariant; panics with a description if one is broken.
    /// For tests: the table maintains these on every operation.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        assert!(
            self.sessions.len() <= self.limits.max_sessions,
            "session bound"
        );
        let mut counts: HashMap<&AccountId, usize> = HashMap::new();
        let mut present = 0;
        for (guid, s) in &self.sessions {
            *counts.entry(&s.account).or_default() += 1;
            assert!(!self.ended.contains(guid), "live and ended");
            let parties = [
                Some((&s.applet, Role::Applet)),
                s.console.as_ref().map(|c| (&c.party, Role::Console)),
            ];
            for (party, role) in parties.into_iter().flatten() {
                if let Some(h) = party.hop() {
                    present += 1;
                    assert_eq!(self.hops.get(&h), Some(&(*guid, role)), "hop index");
                }
            }
            let away = [Some(&s.applet), s.console.as_ref().map(|c| &c.party)]
                .into_iter()
                .flatten()
                .filter(|p| p.hop().is_none())
                .count();
            assert!(away < 2, "a session with both parties away has ended");
            let deadline = deadline_of(s, self.limits.pending_lifetime);
            assert_eq!(s.due, deadline, "cached deadline");
            if let Some(d) = deadline {
                assert!(self.due.contains(&(d, *guid)), "deadline filed");
            }
        }
        let filed = self.sessions.values().filter(|s| s.due.is_some()).count();
        assert_eq!(self.due.len(), filed, "no stale deadline");
        self.ended.check_invariants();
        assert_eq!(present, self.hops.len(), "no stale hop");
        assert_eq!(counts.len(), self.per_account.len(), "account index");
        for (a, n) in counts {
            assert_eq!(self.per_account.get(a), Some(&n), "account count");
            assert!(n <= self.limits.max_per_account, "per-account bound");
        }
        assert!(
            self.ended.len() + self.sessions.len() <= self.limits.max_ended,
            "remembered bound"
        );
    }
}

impl Default for SessionTable {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The next deadline of a session: the end of its pending lifetime while waiting, the
/// end of an away party's grace.
pub(crate) fn deadline_of(s: &Session, lifetime: Duration) -> Option<Instant> {
    let waiting = s
        .console
        .is_none()
        .then(|| s.registered_at.checked_add(lifetime))
        .flatten();
    let away = [Some(&s.applet), s.console.as_ref().map(|c| &c.party)]
        .into_iter()
        .flatten()
        .filter_map(|p| match p.presence {
            Presence::Away(t) => Some(t),
            Presence::Here(_) => None,
        });
    waiting.into_iter().chain(away).min()
}

/// Whole seconds of `d`, saturated to `u32`.
pub(crate) fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
