//! The gateway's session directory: which GUIDs are waiting, for which account, and which
//! are paired. A small trait so that a cluster can later keep it in a shared store
//! (future work); [`MemoryDirectory`] is the embedded default and delegates every rule
//! to the sans-IO `rescue_proto::handoff` session table.
//!
//! The directory holds metadata only (GUIDs, account ids, times). It never holds
//! connections, tickets or keys: the gateway keeps the parked hops itself.

mod memory;

use std::time::{Duration, Instant};

use rescue_crypto::pki::AccountId;
use rescue_proto::Guid;

pub use memory::MemoryDirectory;

/// One waiting session as listed to a console of the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingSession {
    /// The session's GUID.
    pub guid: Guid,
    /// How long the end user has been waiting.
    pub waiting: Duration,
}

/// Why the directory refused an operation. Each maps to an ERROR code on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// REGISTER of a GUID the directory already knows (registered twice, or reused).
    #[error("GUID already registered")]
    Taken,
    /// CLAIM (or another operation) named a GUID the directory does not know.
    #[error("unknown GUID")]
    Unknown,
    /// CLAIM from a console of another account than the session's.
    #[error("session belongs to another account")]
    WrongAccount,
    /// CLAIM of a session that is already paired.
    #[error("session already claimed")]
    AlreadyClaimed,
    /// The directory is at its size limit (globally or for this account).
    #[error("too many sessions")]
    Full,
    /// Any other refusal the underlying table reports, with its text.
    #[error("refused: {0}")]
    Other(String),
}

/// The session directory behind a gateway. Methods take `now` so implementations never
/// read a clock; all are quick, non-blocking calls.
pub trait Directory: Send + Sync {
    /// Records `guid` (of `account`) as waiting for a technician until `now + lifetime`.
    fn register(
        &self,
        guid: Guid,
        account: AccountId,
        lifetime: Duration,
        now: Instant,
    ) -> Result<(), DirectoryError>;

    /// Marks `guid` as claimed by a console of `account`; refuses other accounts and a
    /// second claim.
    fn claim(&self, guid: Guid, account: AccountId, now: Instant) -> Result<(), DirectoryError>;

    /// The waiting (unclaimed) sessions of `account`, at most `max` of them.
    fn waiting(&self, account: AccountId, max: usize, now: Instant) -> Vec<WaitingSession>;

    /// Forgets `guid` (the session ended or its applet left). Unknown GUIDs are ignored.
    fn end(&self, guid: Guid, now: Instant);

    /// Drops waiting sessions whose lifetime is over; returns their GUIDs.
    fn expire(&self, now: Instant) -> Vec<Guid>;

    /// Number of sessions currently known (waiting or paired).
    fn len(&self) -> usize;

    /// Whether no session is known.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
