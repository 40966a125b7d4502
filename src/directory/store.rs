//! Where a gateway keeps the GUIDs it must refuse to register again, so that they
//! survive a restart (PROTOCOL.md 4.3): a small trait, [`GuidStore`], with an
//! append-only file ([`super::FileStore`], the default of a deployed gateway) and a
//! store in memory only ([`MemoryStore`], for tests). A shared directory (a cluster's
//! store) implements the same trait.
//!
//! A GUID is recorded when its REGISTER is admitted, before REGISTERED is sent, with
//! its ticket's expiry: a session that is live when the gateway stops (crash included)
//! is as protected as one that ended. After a restart the gateway loads every record
//! whose ticket is still valid into its session table as ended.

use std::path::PathBuf;

use rescue_proto::AccountId;
use rescue_proto::Guid;

/// One GUID that may not register again until `expires_unix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedGuid {
    /// The session GUID from the ticket.
    pub guid: Guid,
    /// The ticket's account (the quota it counts against).
    pub account: AccountId,
    /// The ticket's expiry, seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// Why a store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened, read, written or synced.
    #[error("GUID store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the store's magic bytes: not a GUID store, or one
    /// of another format version. Nothing was changed.
    #[error("GUID store {path}: not a rescue GUID store (bad header)")]
    BadHeader {
        /// The file.
        path: PathBuf,
    },
    /// A record before the last one fails its checksum: the file was damaged, not
    /// merely cut short by a crash. Nothing was changed; the operator decides.
    #[error("GUID store {path}: corrupt record at byte {offset}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the bad record.
        offset: u64,
    },
    /// The file is larger than [`super::file::MAX_STORE_BYTES`]: it was not written by
    /// this store (which compacts long before). Nothing was read.
    #[error("GUID store {path}: {len} bytes exceeds the limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
}

/// A durable record of remembered GUIDs. Calls are made with the session directory's
/// lock held, so each must be quick: an append is one small write, syncing and
/// compaction happen in [`GuidStore::maintain`], which the gateway calls about once a
/// second from its sweeper.
pub trait GuidStore: Send + Sync {
    /// Every record whose ticket is still valid at `now_unix` (called once, when the
    /// gateway starts).
    fn load(&mut self, now_unix: u64) -> Result<Vec<RememberedGuid>, StoreError>;

    /// Records a GUID before its REGISTERED is sent. An error refuses the REGISTER (the
    /// gateway fails closed rather than admit a GUID it could forget).
    fn record(&mut self, guid: &RememberedGuid) -> Result<(), StoreError>;

    /// Makes the records durable and drops expired ones when due.
    fn maintain(&mut self, now_unix: u64) -> Result<(), StoreError>;
}

/// A store that keeps nothing: after a restart every ticket whose GUID ended here may
/// register again. For tests and for gateways whose directory is shared (where the
/// directory itself remembers).
#[derive(Debug, Default)]
pub struct MemoryStore;

impl GuidStore for MemoryStore {
    fn load(&mut self, _now_unix: u64) -> Result<Vec<RememberedGuid>, StoreError> {
        Ok(Vec::new())
    }

    fn record(&mut self, _guid: &RememberedGuid) -> Result<(), StoreError> {
        Ok(())
    }

    fn maintain(&mut self, _now_unix: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How a [`crate::gateway::GatewayConfig`] selects its [`GuidStore`].
#[non_exhaustive]
pub enum EndedStore {
    /// Nothing survives a restart ([`MemoryStore`]): for tests. A gateway started so
    /// logs a warning.
    Memory,
    /// An append-only file at this path ([`super::FileStore`]), created if missing: the
    /// choice of a deployed gateway (the example gateway's `--state-dir`).
    File(PathBuf),
    /// Any other store (a shared directory).
    Custom(Box<dyn GuidStore>),
}

impl std::fmt::Debug for EndedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
