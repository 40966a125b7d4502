//! The in-memory directory of one gateway process.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rescue_crypto::pki::AccountId;
use rescue_proto::Guid;

use super::{Directory, DirectoryError, WaitingSession};

/// The embedded default [`Directory`]: a table in this process, behind a mutex.
pub struct MemoryDirectory {
    table: Mutex<Table>,
}

impl MemoryDirectory {
    /// An empty directory with the protocol's default size limits.
    pub fn new() -> Self {
        Self {
            table: Mutex::new(Table::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every table operation is a single call that leaves it consistent, so a panic
        // elsewhere while the lock was held cannot have broken it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl Directory for MemoryDirectory {
    fn register(
        &self,
        guid: Guid,
        account: AccountId,
        lifetime: Duration,
        now: Instant,
    ) -> Result<(), DirectoryError> {
        self.lock().register(guid, account, lifetime, now)
    }

    fn claim(&self, guid: Guid, account: AccountId, now: Instant) -> Result<(), DirectoryError> {
        self.lock().claim(guid, account, now)
    }

    fn waiting(&self, account: AccountId, max: usize, now: Instant) -> Vec<WaitingSession> {
        self.lock().waiting(account, max, now)
    }

    fn end(&self, guid: Guid, now: Instant) {
        self.lock().end(guid, now)
    }

    fn expire(&self, now: Instant) -> Vec<Guid> {
        self.lock().expire(now)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[path = "table.rs"]
mod table;
use table::Table;
