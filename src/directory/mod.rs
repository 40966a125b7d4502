//! The gateway's session directory: which GUIDs are waiting, for which account, which
//! are paired, on which hops. An async trait so that a cluster keeps it in a shared
//! store; [`MemoryDirectory`] is the embedded default, a
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
#[cfg(feature = "redis")]
mod redis;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rescue_proto::handoff::gateway::{
    Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, TableError};
use rescue_proto::wire::signal::{AccountId, CloseReason, QueueList, Registered, ResumeSecret};
use rescue_proto::Guid;

pub use file::{FileStore, COMPACT_SLACK, MAX_STORE_BYTES, RECORD_LEN};
pub use memory::MemoryDirectory;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisDirectory, MAX_TICKET_LIFETIME, STORE_CALL_TIMEOUT};
pub use store::{EndedStore, GuidStore, MemoryStore, RememberedGuid, StoreError};

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The session table refused it (its error names the rule or limit).
    #[error(transparent)]
    Table(#[from] TableError),
    /// The GUID could not be recorded durably, so it is not admitted (fail closed).
    #[error("could not record the GUID: {0}")]
    Store(#[from] StoreError),
    /// The shared store did not answer within its deadline.
    #[error("session store {store}: no answer within {after:?}")]
    Timeout {
        /// The store (for example `redis://127.0.0.1:6379`).
        store: String,
        /// The deadline that passed.
        after: std::time::Duration,
    },
    /// The shared store was restarted empty and cannot tell whether this ticket's GUID
    /// registered before: a ticket issued before the restart is refused (a new one
    /// works; PROTOCOL.md 4.3, shared directory).
    #[error("session store {store} restarted empty: the ticket predates it")]
    StoreRestarted {
        /// The store.
        store: String,
    },
    /// The session waits at another gateway of the cluster.
    #[error("the session waits at gateway {owner}")]
    Elsewhere {
        /// That gateway's name in the cluster.
        owner: String,
    },
    /// The shared store failed or answered something this directory did not write.
    #[error("session store {store}: {reason}")]
    Unavailable {
        /// The store.
        store: String,
        /// What went wrong.
        reason: String,
    },
}

/// The old name of [`DirectoryError`] for REGISTER.
pub type RegisterError = DirectoryError;

/// A directory call in flight.
pub type DirFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DirectoryError>> + Send + 'a>>;

/// The session directory behind a gateway: the operations of the session table, as
/// futures so that a backend may live in another process (a shared store). Methods take
/// `now` for a backend in this process ([`MemoryDirectory`], which never reads a
/// clock); a shared store keeps its own time (TTLs). A gateway bounds every call with a
/// deadline of its own and never holds one across a relay's I/O.
pub trait Directory: Send + Sync {
    /// Records a waiting session (the caller verified the ticket); `record` is what the
    /// directory's [`GuidStore`] keeps (the same GUID, the ticket's account and Unix
    /// expiry), written before the table admits the session. Returns REGISTERED.
    fn register<'a>(
        &'a self,
        now: Instant,
        req: RegisterRequest,
        record: &'a RememberedGuid,
    ) -> DirFuture<'a, Registered>;

    /// The waiting sessions of `account`, longest waiting first, bounded.
    fn queue<'a>(&'a self, now: Instant, account: &'a AccountId) -> DirFuture<'a, QueueList>;

    /// Pairs a console (identity from its certificate) with a waiting session of its
    /// account; refuses other accounts and a second claim.
    fn claim(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> DirFuture<'_, Pairing>;

    /// A party ended the session (CLOSE, or its hop is gone and REATTACH is not offered):
    /// the session ends for both, its GUID is remembered until its ticket expires.
    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> DirFuture<'_, Vec<Outgoing>>;

    /// A party's hop is gone without CLOSE: it is away for the reattach grace (the
    /// session ends if the other party is away too). Returns PEER_GONE for the other.
    fn hop_lost(&self, now: Instant, hop: HopId) -> DirFuture<'_, Vec<Outgoing>>;

    /// A party comes back on a new hop with its resume secret (and, for a console, the
    /// same certificate identity), within the grace; refused with a typed error else.
    fn reattach(&self, now: Instant, req: ReattachRequest) -> DirFuture<'_, Reattached>;

    /// Ends overdue sessions and forgets GUIDs whose ticket expired.
    fn expire(&self, now: Instant) -> DirFuture<'_, Vec<Outgoing>>;

    /// Makes recorded GUIDs durable and compacts the store when due (about once a
    /// second, and at shutdown).
    fn maintain(&self, now_unix: u64) -> DirFuture<'_, ()>;

    /// [`Directory::close`] from where nothing can be awaited (a drop guard): by
    /// default a task on the current tokio runtime runs it (nothing without one).
    fn close_detached(self: Arc<Self>, now: Instant, hop: HopId, reason: CloseReason)
    where
        Self: 'static,
    {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = self.close(now, hop, reason).await {
                    tracing::warn!(error = %e, "closing a session in the directory failed");
                }
            });
        }
    }

    /// When [`Directory::expire`] next has work (a quick local answer).
    fn poll_timeout(&self) -> Option<Instant>;

    /// Number of live sessions this gateway holds (waiting or paired; a quick local
    /// answer).
    fn len(&self) -> usize;

    /// Whether no session is live.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
