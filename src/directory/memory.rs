//! The in-memory directory of one gateway process.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rescue_proto::handoff::gateway::{
    Limits, Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, SessionTable, TableError};
use rescue_proto::wire::signal::{AccountId, CloseReason, QueueList, Registered, ResumeSecret};
use rescue_proto::Guid;

use super::Directory;

/// The embedded default [`Directory`]: a session table in this process, behind a mutex.
#[derive(Debug)]
pub struct MemoryDirectory {
    table: Mutex<SessionTable>,
}

impl MemoryDirectory {
    /// An empty directory with the given table limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            table: Mutex::new(SessionTable::new(limits)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionTable> {
        // Every table operation is one call that leaves it consistent, so a panic
        // elsewhere while the lock was held cannot have broken it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryDirectory {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Directory for MemoryDirectory {
    fn register(&self, now: Instant, req: RegisterRequest) -> Result<Registered, TableError> {
        self.lock().register(now, req)
    }

    fn queue(&self, now: Instant, account: &AccountId) -> QueueList {
        self.lock().queue(now, account)
    }

    fn claim(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> Result<Pairing, TableError> {
        self.lock().claim(now, guid, identity, hop, resume_secret)
    }

    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> Vec<Outgoing> {
        self.lock().close(now, hop, reason)
    }

    fn hop_lost(&self, now: Instant, hop: HopId) -> Vec<Outgoing> {
        self.lock().hop_lost(now, hop)
    }

    fn reattach(&self, now: Instant, req: ReattachRequest) -> Result<Reattached, TableError> {
        self.lock().reattach(now, req)
    }

    fn expire(&self, now: Instant) -> Vec<Outgoing> {
        self.lock().expire(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    fn is_live(&self, guid: &Guid) -> bool {
        self.lock().session(guid).is_some()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}
