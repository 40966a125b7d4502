//! [`FileStore`]: remembered GUIDs in an append-only file.
//!
//! ```text
//! header   8 bytes   "RSCGUID" 0x01 (magic and format version)
//! record  36 bytes   guid (16) | account (u64 BE) | expires_unix (u64 BE) | check (4)
//! ```
//!
//! `check` is the first 4 bytes of SHA-256 over the record's first 32 bytes: it finds a
//! record torn by a crash, not an attacker (whoever can write the file can also delete
//! it). On open the file is read once: a short or failing *last* record is the tail of
//! an interrupted append and is cut off; a failing record before the last is
//! [`StoreError::Corrupt`] and the gateway does not start (nothing is changed, the
//! operator decides). Then the file is rewritten with only the records whose ticket is
//! still valid (a temporary file, synced, renamed over the old one, directory synced).
//!
//! Durability: each record is one `write` before REGISTERED is sent, so it survives a
//! crash or kill of the gateway process (the kernel holds it); [`GuidStore::maintain`]
//! (the gateway's sweeper, about once a second, and at shutdown) syncs it to disk
//! (`fdatasync`), so a power loss can forget at most the last second of registrations.
//! Size: `maintain` compacts again once the file holds twice the records it held after
//! the last compaction (plus [`COMPACT_SLACK`]), so the file stays within about twice
//! the live records; a file over [`MAX_STORE_BYTES`] is refused on open.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rescue_proto::guid::GUID_LEN;
use rescue_proto::AccountId;
use rescue_proto::Guid;

use super::store::{GuidStore, RememberedGuid, StoreError};

/// Magic bytes and format version at the start of the file.
const MAGIC: &[u8; 8] = b"RSCGUID\x01";

/// Bytes of one record.
pub const RECORD_LEN: usize = 36;

/// Records appended beyond twice the compacted size before `maintain` compacts: keeps a
/// small store from being rewritten every few registrations.
pub const COMPACT_SLACK: u64 = 4096;

/// Largest file accepted on open: 16 times the default remembered capacity
/// (`MAX_ENDED_REMEMBERED`, 100,000) in records, 57.6 MB, far beyond what compaction
/// lets the file grow to; a larger file was not written by this store.
pub const MAX_STORE_BYTES: u64 =
    (16 * rescue_proto::wire::limits::MAX_ENDED_REMEMBERED * RECORD_LEN) as u64;

/// Remembered GUIDs in an append-only file; see the module documentation.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    /// Records in the file now.
    records: u64,
    /// Records in the file after the last compaction.
    compacted: u64,
    /// Records appended since the last sync.
    dirty: bool,
    /// What the first [`GuidStore::load`] returns (read and compacted on open).
    loaded: Vec<RememberedGuid>,
}

impl FileStore {
    /// Opens (or creates) the store at `path`: reads it, cuts an interrupted last record,
    /// and rewrites it with the records still valid at `now_unix`.
    pub fn open(path: impl Into<PathBuf>, now_unix: u64) -> Result<Self, StoreError> {
        let path = path.into();
        let valid = read_valid(&path, now_unix)?;
        let file = rewrite(&path, &valid)?;
        let n = valid.len() as u64;
        Ok(Self {
            path,
            file,
            records: n,
            compacted: n,
            dirty: false,
            loaded: valid,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        io_err(&self.path, source)
    }
}

impl GuidStore for FileStore {
    fn load(&mut self, now_unix: u64) -> Result<Vec<RememberedGuid>, StoreError> {
        let mut loaded = std::mem::take(&mut self.loaded);
        loaded.retain(|r| r.expires_unix > now_unix);
        Ok(loaded)
    }

    fn record(&mut self, guid: &RememberedGuid) -> Result<(), StoreError> {
        self.file.write_all(&encode(guid)).map_err(|e| self.io(e))?;
        self.records += 1;
        self.dirty = true;
        Ok(())
    }

    fn maintain(&mut self, now_unix: u64) -> Result<(), StoreError> {
        if self.records >= 2 * self.compacted + COMPACT_SLACK {
            self.file.sync_data().map_err(|e| self.io(e))?;
            let valid = read_valid(&self.path, now_unix)?;
            self.file = rewrite(&self.path, &valid)?;
            self.records = valid.len() as u64;
            self.compacted = self.records;
            self.dirty = false;
            return Ok(());
        }
        if self.dirty {
            self.file.sync_data().map_err(|e| self.io(e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn encode(r: &RememberedGuid) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    out[..16].copy_from_slice(r.guid.as_bytes());
    out[16..24].copy_from_slice(&r.account.0.to_be_bytes());
    out[24..32].copy_from_slice(&r.expires_unix.to_be_bytes());
    let sum = check(&out[..32]);
    out[32..].copy_from_slice(&sum);
    out
}

/// `None` if the checksum fails.
fn decode(b: &[u8; RECORD_LEN]) -> Option<RememberedGuid> {
    if check(&b[..32]) != b[32..] {
        return None;
    }
    let mut guid = [0u8; GUID_LEN];
    guid.copy_from_slice(&b[..16]);
    let mut account = [0u8; 8];
    account.copy_from_slice(&b[16..24]);
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&b[24..32]);
    Some(RememberedGuid {
        guid: Guid::from_bytes(guid),
        account: AccountId(u64::from_be_bytes(account)),
        expires_unix: u64::from_be_bytes(expires),
    })
}

fn check(bytes: &[u8]) -> [u8; 4] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

/// Reads the file (if any) and returns its valid records still unexpired, one per GUID.
fn read_valid(path: &Path, now_unix: u64) -> Result<Vec<RememberedGuid>, StoreError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if len > MAX_STORE_BYTES {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
            len,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
    parse(path, &bytes, now_unix)
}

/// Parses a whole file; see the module documentation for what is cut and refused.
fn parse(path: &Path, bytes: &[u8], now_unix: u64) -> Result<Vec<RememberedGuid>, StoreError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        if MAGIC.starts_with(bytes) {
            // A crash while the header was written: an empty store.
            return Ok(Vec::new());
        }
        return Err(StoreError::BadHeader {
            path: path.to_owned(),
        });
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = body.chunks(RECORD_LEN).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let record = <&[u8; RECORD_LEN]>::try_from(*chunk).ok().and_then(decode);
        let Some(r) = record else {
            if last {
                // An append cut short by a crash: dropped (the rewrite removes it).
                break;
            }
            let offset = (MAGIC.len() + i * RECORD_LEN) as u64;
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                offset,
            });
        };
        if r.expires_unix > now_unix && seen.insert(r.guid) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Writes `records` to a temporary file beside `path`, syncs it, renames it over `path`,
/// syncs the directory; returns the new file opened for appending.
fn rewrite(path: &Path, records: &[RememberedGuid]) -> Result<File, StoreError> {
    let tmp = path.with_extension("tmp");
    let mut bytes = Vec::with_capacity(MAGIC.len() + records.len() * RECORD_LEN);
    bytes.extend_from_slice(MAGIC);
    for r in records {
        bytes.extend_from_slice(&encode(r));
    }
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| io_err(path, e))?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u8, expires_unix: u64) -> RememberedGuid {
        RememberedGuid {
            guid: Guid::from_bytes([n; 16]),
            account: AccountId(42),
            expires_unix,
        }
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn records_survive_a_reopen_and_expired_ones_are_dropped() {
        let d = dir();
        let path = d.path().join("guids");
        let mut s = FileStore::open(&path, 100).expect("open");
        assert!(s.load(100).expect("load").is_empty());
        s.record(&rec(1, 200)).expect("record");
        s.record(&rec(2, 150)).expect("record");
        s.record(&rec(1, 200)).expect("record");
        drop(s);
        let mut s = FileStore::open(&path, 160).expect("reopen");
        assert_eq!(s.load(160).expect("load"), vec![rec(1, 200)]);
        // The rewrite kept only the live record.
        let len = std::fs::metadata(&path).expect("meta").len();
        assert_eq!(len, (MAGIC.len() + RECORD_LEN) as u64);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_the_others_kept() {
        let d = dir();
        let path = d.path().join("guids");
        let mut s = FileStore::open(&path, 0).expect("open");
        s.record(&rec(1, 99)).expect("record");
        s.record(&rec(2, 99)).expect("record");
        drop(s);
        // A crash in the middle of the second append.
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("cut");
        let mut s = FileStore::open(&path, 0).expect("reopen");
        assert_eq!(s.load(0).expect("load"), vec![rec(1, 99)]);
        // A full-length last record with garbage (extended, never written) too.
        s.record(&rec(3, 99)).expect("record");
        drop(s);
        let mut bytes = std::fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[n - RECORD_LEN..].fill(0);
        std::fs::write(&path, &bytes).expect("zero");
        let mut s = FileStore::open(&path, 0).expect("reopen");
        assert_eq!(s.load(0).expect("load"), vec![rec(1, 99)]);
    }

    #[test]
    fn a_damaged_record_before_the_last_is_a_typed_error_and_nothing_changes() {
        let d = dir();
        let path = d.path().join("guids");
        let mut s = FileStore::open(&path, 0).expect("open");
        for n in 1..=3 {
            s.record(&rec(n, 99)).expect("record");
        }
        drop(s);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[MAGIC.len() + RECORD_LEN + 3] ^= 0xff;
        std::fs::write(&path, &bytes).expect("damage");
        let err = FileStore::open(&path, 0).expect_err("corrupt");
        assert!(
            matches!(err, StoreError::Corrupt { offset, .. } if offset == (MAGIC.len() + RECORD_LEN) as u64),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "file changed");
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let d = dir();
        let path = d.path().join("guids");
        std::fs::write(&path, b"not a store at all, something else").expect("write");
        let err = FileStore::open(&path, 0).expect_err("foreign");
        assert!(matches!(err, StoreError::BadHeader { .. }), "{err:?}");
        // A header cut short by a crash is an empty store.
        std::fs::write(&path, &MAGIC[..3]).expect("write");
        let mut s = FileStore::open(&path, 0).expect("short header");
        assert!(s.load(0).expect("load").is_empty());
    }

    #[test]
    fn maintain_compacts_once_the_file_doubled() {
        let d = dir();
        let path = d.path().join("guids");
        let mut s = FileStore::open(&path, 0).expect("open");
        let n = COMPACT_SLACK + 10;
        for i in 0..n {
            let mut g = [0u8; 16];
            g[..8].copy_from_slice(&i.to_be_bytes());
            // Half of them expire at 50.
            let expires = if i % 2 == 0 { 50 } else { 500 };
            let r = RememberedGuid {
                guid: Guid::from_bytes(g),
                account: AccountId(1),
                expires_unix: expires,
            };
            s.record(&r).expect("record");
        }
        s.maintain(100).expect("maintain");
        let len = std::fs::metadata(&path).expect("meta").len();
        assert_eq!(len, MAGIC.len() as u64 + n.div_ceil(2) * RECORD_LEN as u64);
        let mut s = FileStore::open(&path, 100).expect("reopen");
        assert_eq!(s.load(100).expect("load").len() as u64, n / 2);
    }
}
