//! The gateway's session directory: which GUIDs are waiting, for which account, which
//! are paired, on which hops. A small trait so that a cluster can later keep it in a
//! shared store (future work); [`MemoryDirectory`] is the embedded default, a
//! `rescue_proto::handoff::SessionTable` behind a mutex. Every rule (fresh GUIDs, one
//! claim, account isolation, limits, expiry, remembered GUIDs) is the table's; this
//! module adds none.
//!
//! The GUIDs a directory must refuse to register again are kept durably by a
//! [`GuidStore`] ([`FileStore`] by default in a deployed gateway), selected with
//! [`EndedStore`]: recorded at REGISTER, loaded back into the table on start.
//!
//! The directory holds metadata only (GUIDs, account ids, hop ids, resume secrets,
//! deadlines). It never holds connections, tickets or end-to-end keys: the gateway keeps
//! the parked hops itself.

mod file;
mod memory;
mod store;

use std::time::Instant;

use rescue_proto::handoff::gateway::{
    Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, TableError};
use rescue_proto::wire::signal::{AccountId, CloseReason, QueueList, Registered, ResumeSecret};
use rescue_proto::Guid;

pub use file::{FileStore, COMPACT_SLACK, MAX_STORE_BYTES, RECORD_LEN};
pub use memory::MemoryDirectory;
pub use store::{EndedStore, GuidStore, MemoryStore, RememberedGuid, StoreError};

/// Why a REGISTER was not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The session table refused it (its error names the rule or limit).
    #[error(transparent)]
    Table(#[from] TableError),
    /// The GUID could not be recorded durably, so it is not admitted (fail closed).
    #[error("could not record the GUID: {0}")]
    Store(#[from] StoreError),
}

/// The session directory behind a gateway: the operations of the session table. Methods
/// take `now` so implementations never read a clock; all are quick, non-blocking calls.
pub trait Directory: Send + Sync {
    /// Records a waiting session (the caller verified the ticket); `record` is what the
    /// directory's [`GuidStore`] keeps (the same GUID, the ticket's account and Unix
    /// expiry), written before the table admits the session. Returns REGISTERED.
    fn register(
        &self,
        now: Instant,
        req: RegisterRequest,
        record: &RememberedGuid,
    ) -> Result<Registered, RegisterError>;

    /// The waiting sessions of `account`, longest waiting first, bounded.
    fn queue(&self, now: Instant, account: &AccountId) -> QueueList;

    /// Pairs a console (identity from its certificate) with a waiting session of its
    /// account; refuses other accounts and a second claim.
    fn claim(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> Result<Pairing, TableError>;

    /// A party ended the session (CLOSE, or its hop is gone and REATTACH is not offered):
    /// the session ends for both, its GUID is remembered until its ticket expires.
    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> Vec<Outgoing>;

    /// A party's hop is gone without CLOSE: it is away for the reattach grace (the
    /// session ends if the other party is away too). Returns PEER_GONE for the other.
    fn hop_lost(&self, now: Instant, hop: HopId) -> Vec<Outgoing>;

    /// A party comes back on a new hop with its resume secret (and, for a console, the
    /// same certificate identity), within the grace; refused with a typed error else.
    fn reattach(&self, now: Instant, req: ReattachRequest) -> Result<Reattached, TableError>;

    /// Ends overdue sessions and forgets GUIDs whose ticket expired.
    fn expire(&self, now: Instant) -> Vec<Outgoing>;

    /// Makes recorded GUIDs durable and compacts the store when due (about once a
    /// second, and at shutdown).
    fn maintain(&self, now_unix: u64) -> Result<(), StoreError>;

    /// When [`Directory::expire`] next has work.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Whether `guid` is a live session.
    fn is_live(&self, guid: &Guid) -> bool;

    /// Number of live sessions (waiting or paired).
    fn len(&self) -> usize;

    /// Whether no session is live.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
