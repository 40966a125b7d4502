//! The in-memory directory of one gateway process.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rescue_proto::handoff::gateway::{
    Limits, Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, SessionTable, TableError};
use rescue_proto::wire::signal::{AccountId, CloseReason, QueueList, Registered, ResumeSecret};
use rescue_proto::Guid;

use super::{Directory, GuidStore, MemoryStore, RegisterError, RememberedGuid, StoreError};

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

impl Directory for MemoryDirectory {
    fn register(
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

    fn queue(&self, now: Instant, account: &AccountId) -> QueueList {
        self.lock().table.queue(now, account)
    }

    fn claim(
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

    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> Vec<Outgoing> {
        self.lock().table.close(now, hop, reason)
    }

    fn hop_lost(&self, now: Instant, hop: HopId) -> Vec<Outgoing> {
        self.lock().table.hop_lost(now, hop)
    }

    fn reattach(&self, now: Instant, req: ReattachRequest) -> Result<Reattached, TableError> {
        self.lock().table.reattach(now, req)
    }

    fn expire(&self, now: Instant) -> Vec<Outgoing> {
        self.lock().table.expire(now)
    }

    fn maintain(&self, now_unix: u64) -> Result<(), StoreError> {
        self.lock().store.maintain(now_unix)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().table.poll_timeout()
    }

    fn is_live(&self, guid: &Guid) -> bool {
        self.lock().table.session(guid).is_some()
    }

    fn len(&self) -> usize {
        self.lock().table.len()
    }
}
