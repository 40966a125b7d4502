//! The in-memory directory of one gateway process.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rescue_proto::handoff::gateway::{
    Limits, Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, SessionTable, TableError};
use rescue_proto::wire::signal::{AccountId, CloseReason, QueueList, Registered, ResumeSecret};
use rescue_proto::Guid;

use super::StoreError;
use super::{DirFuture, Directory, GuidStore, MemoryStore, RegisterError, RememberedGuid};

/// The embedded default [`Directory`]: a session table in this process, behind a mutex,
/// with the GUIDs it must refuse kept by a [`GuidStore`].
pub struct MemoryDirectory {
    inner: Mutex<Inner>,
}

struct Inner {
    table: SessionTable,
    store: Box<dyn GuidStore>,
}

impl std::fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDirectory").finish_non_exhaustive()
    }
}

impl MemoryDirectory {
    /// An empty directory with the given table limits whose remembered GUIDs live in
    /// memory only ([`MemoryStore`]).
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Mutex::new(Inner {
                table: SessionTable::new(limits),
                store: Box::new(MemoryStore),
            }),
        }
    }

    /// A directory whose remembered GUIDs are kept by `store`: every record still valid
    /// at `now_unix` (the wall clock matching `now`) is loaded as an ended GUID.
    pub fn with_store(
        limits: Limits,
        mut store: Box<dyn GuidStore>,
        now: Instant,
        now_unix: u64,
    ) -> Result<Self, StoreError> {
        let mut table = SessionTable::new(limits);
        let records = store.load(now_unix)?;
        let restored = records.len();
        for r in records {
            let left = Duration::from_secs(r.expires_unix.saturating_sub(now_unix));
            let expires = now.checked_add(left).unwrap_or(now);
            table.remember_ended(now, r.guid, &r.account, expires);
        }
        if restored > 0 {
            tracing::info!(restored, "remembered GUIDs loaded from the store");
        }
        Ok(Self {
            inner: Mutex::new(Inner { table, store }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every table operation is one call that leaves it consistent, so a panic
        // elsewhere while the lock was held cannot have broken it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryDirectory {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl MemoryDirectory {
    /// REGISTER, synchronously (the [`Directory`] call is this, ready at once).
    pub fn register_now(
        &self,
        now: Instant,
        req: RegisterRequest,
        record: &RememberedGuid,
    ) -> Result<Registered, RegisterError> {
        let mut inner = self.lock();
        inner.table.check_register(now, &req)?;
        inner.store.record(record)?;
        Ok(inner.table.register(now, req)?)
    }

    /// Whether `guid` is a live session.
    pub fn is_live(&self, guid: &Guid) -> bool {
        self.lock().table.session(guid).is_some()
    }

    /// The account of a live session.
    pub fn account_of(&self, guid: &Guid) -> Option<AccountId> {
        self.lock().table.session(guid).map(|s| s.account)
    }

    /// The table's REGISTER checks alone (nothing recorded).
    pub fn check_register(&self, now: Instant, req: &RegisterRequest) -> Result<(), TableError> {
        self.lock().table.check_register(now, req)
    }

    /// CLAIM, synchronously.
    pub fn claim_now(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> Result<Pairing, TableError> {
        self.lock()
            .table
            .claim(now, guid, identity, hop, resume_secret)
    }

    /// CLOSE, synchronously.
    pub fn close_now(&self, now: Instant, hop: HopId, reason: CloseReason) -> Vec<Outgoing> {
        self.lock().table.close(now, hop, reason)
    }

    /// A lost hop, synchronously.
    pub fn hop_lost_now(&self, now: Instant, hop: HopId) -> Vec<Outgoing> {
        self.lock().table.hop_lost(now, hop)
    }

    /// REATTACH, synchronously.
    pub fn reattach_now(
        &self,
        now: Instant,
        req: ReattachRequest,
    ) -> Result<Reattached, TableError> {
        self.lock().table.reattach(now, req)
    }

    /// The table's deadlines, synchronously.
    pub fn expire_now(&self, now: Instant) -> Vec<Outgoing> {
        self.lock().table.expire(now)
    }
}

/// A future that is ready with `value`.
fn ready<'a, T: Send + 'a>(value: Result<T, RegisterError>) -> DirFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Directory for MemoryDirectory {
    fn register<'a>(
        &'a self,
        now: Instant,
        req: RegisterRequest,
        record: &'a RememberedGuid,
    ) -> DirFuture<'a, Registered> {
        ready(self.register_now(now, req, record))
    }

    fn queue<'a>(&'a self, now: Instant, account: &'a AccountId) -> DirFuture<'a, QueueList> {
        ready(Ok(self.lock().table.queue(now, account)))
    }

    fn claim(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> DirFuture<'_, Pairing> {
        let r = self
            .lock()
            .table
            .claim(now, guid, identity, hop, resume_secret);
        ready(r.map_err(Into::into))
    }

    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> DirFuture<'_, Vec<Outgoing>> {
        ready(Ok(self.lock().table.close(now, hop, reason)))
    }

    fn hop_lost(&self, now: Instant, hop: HopId) -> DirFuture<'_, Vec<Outgoing>> {
        ready(Ok(self.lock().table.hop_lost(now, hop)))
    }

    fn reattach(&self, now: Instant, req: ReattachRequest) -> DirFuture<'_, Reattached> {
        ready(self.lock().table.reattach(now, req).map_err(Into::into))
    }

    fn expire(&self, now: Instant) -> DirFuture<'_, Vec<Outgoing>> {
        ready(Ok(self.lock().table.expire(now)))
    }

    fn maintain(&self, now_unix: u64) -> DirFuture<'_, ()> {
        ready(self.lock().store.maintain(now_unix).map_err(Into::into))
    }

    fn close_detached(self: Arc<Self>, now: Instant, hop: HopId, reason: CloseReason) {
        // Closed at once: the table is in this process.
        self.lock().table.close(now, hop, reason);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().table.poll_timeout()
    }

    fn len(&self) -> usize {
        self.lock().table.len()
    }
}
