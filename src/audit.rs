//! Audit sinks: where a session's audit events go. The default, [`JsonlAuditSink`],
//! writes the hash-chained JSON-lines records of `rescue_proto::audit` (SHA-256 links),
//! optionally sealed at rest line by line with AES-256-GCM (`rescue_crypto::seal`), and
//! keeps the chain head in a side file so that a cut-off tail is detected too.
//! [`verify_audit_file`] checks a file and its head.
//!
//! File format (one record per line, `\n`-terminated):
//! - plain: the canonical record JSON of `rescue_proto::audit::Record`;
//! - sealed: base64 (standard, padded) of `seal(aad = "rescue-audit line" || seq (u64
//!   BE), record JSON)`, so a line moved to another position no longer opens.
//!
//! The head file `<log>.head` holds `{"records":N,"head":"<hex>"}` (sealed: base64 of
//! that JSON sealed with aad `"rescue-audit head"`), rewritten atomically after every
//! record.
//!
//! What this never does: overwrite or append to an existing log (a new log per sink),
//! keep plaintext of a sealed log on disk, or hold the sealing key anywhere but memory.
//! Without a key the chain shows accidental and naive edits only: anyone can recompute
//! an unsealed chain, so use a sealed log where the log must resist a deliberate editor.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rescue_crypto::seal::{SealError, SealKey};
use rescue_proto::audit::{verify_chain, AuditEvent, Chain, ChainError};

/// Associated-data prefix of a sealed line (followed by its `seq`, u64 big-endian).
const LINE_AAD: &[u8] = b"rescue-audit line";
/// HKDF salt of [`audit_seal_key`].
const KEY_SALT: &[u8] = b"rescue-audit-v1";
/// Associated data of the sealed head.
const HEAD_AAD: &[u8] = b"rescue-audit head";
/// Longest line accepted when verifying: bounds memory on a corrupted file (a record
/// holds at most a 4 KiB chat line and a 255-byte file name, JSON-escaped and sealed).
pub const MAX_LINE: usize = 64 * 1024;

/// Where audit events go. Implementations must be cheap per call: the session driver
/// records synchronously, in event order.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: AuditEvent) -> Result<(), AuditError>;
    /// Makes everything recorded so far durable.
    fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// An audit write or verification failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file system failed.
    #[error("audit file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Sealing or opening failed (wrong key, or a sealed line or head was altered).
    #[error("audit seal check failed at {}: {error}", place(*.line))]
    Seal {
        /// The line (0-based), or `None` for the head.
        line: Option<usize>,
        /// What failed.
        error: SealError,
    },
    /// The chain is broken (a line edited, removed or reordered).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A line is not base64 or not UTF-8, or longer than [`MAX_LINE`].
    #[error("audit line {0} is not readable")]
    Unreadable(usize),
    /// The head file is missing, unreadable, or does not match the log (a cut-off tail
    /// or a replaced head).
    #[error("audit head does not match the log: {0}")]
    Head(&'static str),
    /// A previous write failed; the sink refuses further records.
    #[error("audit sink failed earlier")]
    Poisoned,
}

/// What a verified log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditSummary {
    /// Number of records.
    pub records: u64,
    /// Hex SHA-256 of the last record line.
    pub head: String,
    /// The records' JSON lines (opened, for a sealed log).
    pub lines: Vec<String>,
}

/// The default sink: hash-chained JSON lines, optionally sealed at rest.
pub struct JsonlAuditSink {
    path: PathBuf,
    inner: Mutex<Option<Inner>>,
}

struct Inner {
    file: File,
    chain: Chain,
    key: Option<SealKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    records: u64,
    head: String,
}

impl JsonlAuditSink {
    /// Creates a new plain log at `path` (fails if it exists).
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, AuditError> {
        Self::open_new(path.into(), None)
    }

    /// Creates a new log at `path` whose lines are sealed with `key`.
    pub fn create_sealed(path: impl Into<PathBuf>, key: SealKey) -> Result<Self, AuditError> {
        Self::open_new(path.into(), Some(key))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_new(path: PathBuf, key: Option<SealKey>) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        let inner = Inner {
            file,
            chain: Chain::new(),
            key,
        };
        write_head(&path, &inner)?;
        Ok(Self {
            path,
            inner: Mutex::new(Some(inner)),
        })
    }
}

impl AuditSink for JsonlAuditSink {
    fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut guard = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let inner = guard.as_mut().ok_or(AuditError::Poisoned)?;
        let res = append(&self.path, inner, event);
        if res.is_err() {
            *guard = None; // a gap in the chain must not be papered over by later lines
        }
        res
    }

    fn flush(&self) -> Result<(), AuditError> {
        let guard = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let inner = guard.as_ref().ok_or(AuditError::Poisoned)?;
        inner.file.sync_all()?;
        Ok(())
    }
}

impl std::fmt::Debug for JsonlAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlAuditSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The sealing key of an audit log: HKDF-SHA256 of the operator's `master` secret (at
/// least 32 bytes) with a fixed salt, bound to `log_id` (one key per log keeps each key
/// far below its record limit).
pub fn audit_seal_key(master: &[u8], log_id: &str) -> Result<SealKey, SealError> {
    SealKey::derive(master, KEY_SALT, log_id.as_bytes())
}

/// The head file of the log at `log`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".head");
    PathBuf::from(s)
}

/// Checks the log at `path` (and its head file): every line opens (with `key`, for a
/// sealed log), the chain is intact, and the head names the last line. Detects any
/// edit, removal (including of the last lines) or reordering.
pub fn verify_audit_file(path: &Path, key: Option<&SealKey>) -> Result<AuditSummary, AuditError> {
    let reader = BufReader::new(File::open(path)?);
    let mut lines = Vec::new();
    for (i, raw) in reader.split(b'\n').enumerate() {
        let raw = raw?;
        if raw.len() > MAX_LINE {
            return Err(AuditError::Unreadable(i));
        }
        lines.push(open_line(i, &raw, key)?);
    }
    let (records, head) = verify_chain(lines.iter().map(String::as_str), sha256)?;
    let stored = read_head(path, key)?;
    if stored.records != records || stored.head != head {
        return Err(AuditError::Head("record count or last hash differs"));
    }
    Ok(AuditSummary {
        records,
        head,
        lines,
    })
}

fn place(line: Option<usize>) -> String {
    line.map_or_else(|| "the head".to_owned(), |l| format!("line {l}"))
}

fn sha256(b: &[u8]) -> Vec<u8> {
    rescue_crypto::sha256(b).to_vec()
}

fn append(path: &Path, inner: &mut Inner, event: AuditEvent) -> Result<(), AuditError> {
    let seq = inner.chain.head().0;
    let line = inner.chain.append(event, now_ms(), sha256);
    let mut out = match &inner.key {
        Some(k) => {
            let sealed = k
                .seal(&line_aad(seq), line.as_bytes())
                .map_err(|error| AuditError::Seal { line: None, error })?;
            base64::engine::general_purpose::STANDARD.encode(sealed)
        }
        None => line,
    };
    out.push('\n');
    inner.file.write_all(out.as_bytes())?;
    write_head(path, inner)
}

fn write_head(path: &Path, inner: &Inner) -> Result<(), AuditError> {
    let (records, head) = inner.chain.head();
    let json = serde_json::to_string(&Head {
        records,
        head: head.to_owned(),
    })
    .map_err(|_| AuditError::Head("unserialisable"))?;
    let body = match &inner.key {
        Some(k) => {
            let sealed = k
                .seal(HEAD_AAD, json.as_bytes())
                .map_err(|error| AuditError::Seal { line: None, error })?;
            base64::engine::general_purpose::STANDARD.encode(sealed)
        }
        None => json,
    };
    let target = head_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &target)?;
    Ok(())
}

fn read_head(path: &Path, key: Option<&SealKey>) -> Result<Head, AuditError> {
    let raw = std::fs::read(head_path(path)).map_err(|_| AuditError::Head("missing"))?;
    if raw.len() > MAX_LINE {
        return Err(AuditError::Head("oversize"));
    }
    let json = match key {
        Some(k) => {
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(&raw)
                .map_err(|_| AuditError::Head("not base64"))?;
            k.open(HEAD_AAD, &sealed)
                .map_err(|error| AuditError::Seal { line: None, error })?
        }
        None => raw,
    };
    serde_json::from_slice(&json).map_err(|_| AuditError::Head("malformed"))
}

fn open_line(i: usize, raw: &[u8], key: Option<&SealKey>) -> Result<String, AuditError> {
    let plain = match key {
        Some(k) => {
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| AuditError::Unreadable(i))?;
            k.open(&line_aad(i as u64), &sealed)
                .map_err(|error| AuditError::Seal {
                    line: Some(i),
                    error,
                })?
        }
        None => raw.to_vec(),
    };
    String::from_utf8(plain).map_err(|_| AuditError::Unreadable(i))
}

fn line_aad(seq: u64) -> Vec<u8> {
    let mut aad = LINE_AAD.to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use rescue_proto::audit::{Party, PathKind};
    use rescue_proto::Policy;

    use super::*;

    const MASTER: [u8; 32] = [7; 32];

    fn events() -> Vec<AuditEvent> {
        let policy = Policy::default();
        vec![
            AuditEvent::PathChanged {
                kind: PathKind::Relay,
            },
            AuditEvent::chat(&policy, Party::Technician, "secret chat line"),
            AuditEvent::PermissionRevoked { grant_id: 1 },
            AuditEvent::PermissionRevoked { grant_id: 2 },
            AuditEvent::PathChanged {
                kind: PathKind::DirectTcp,
            },
        ]
    }

    fn write(dir: &Path, key: Option<SealKey>) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let sink = match key {
            Some(k) => JsonlAuditSink::create_sealed(&path, k).unwrap(),
            None => JsonlAuditSink::create(&path).unwrap(),
        };
        for e in events() {
            sink.record(e).unwrap();
        }
        sink.flush().unwrap();
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    fn key() -> SealKey {
        audit_seal_key(&MASTER, "audit.jsonl").unwrap()
    }

    #[test]
    fn plain_log_verifies_and_any_edit_removal_or_reordering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), None);
        let ok = verify_audit_file(&path, None).unwrap();
        assert_eq!(ok.records, 5);
        assert!(ok.lines[1].contains("secret chat line"));
        assert!(
            JsonlAuditSink::create(&path).is_err(),
            "an existing log was reopened"
        );
        let orig = lines(&path);
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("edit", {
                let mut v = orig.clone();
                v[2] = v[2].replace("\"grant_id\":1", "\"grant_id\":9");
                v
            }),
            ("remove", {
                let mut v = orig.clone();
                v.remove(1);
                v
            }),
            ("reorder", {
                let mut v = orig.clone();
                v.swap(2, 3);
                v
            }),
            ("cut tail", orig[..4].to_vec()),
        ];
        for (what, v) in cases {
            assert_ne!(v, orig);
            rewrite(&path, &v);
            assert!(verify_audit_file(&path, None).is_err(), "{what} undetected");
        }
        rewrite(&path, &orig);
        verify_audit_file(&path, None).unwrap();
        std::fs::remove_file(head_path(&path)).unwrap();
        assert!(matches!(
            verify_audit_file(&path, None),
            Err(AuditError::Head(_))
        ));
    }

    #[test]
    fn sealed_log_round_trips_hides_text_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), Some(key()));
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("secret") && !raw.contains("grant_id"));
        let ok = verify_audit_file(&path, Some(&key())).unwrap();
        assert_eq!(ok.records, 5);
        assert!(ok.lines[1].contains("secret chat line"));
        let wrong = audit_seal_key(&MASTER, "other").unwrap();
        assert!(verify_audit_file(&path, Some(&wrong)).is_err());
        assert!(verify_audit_file(&path, None).is_err());
        let orig = lines(&path);
        let mut flipped = orig.clone();
        let b = flipped[2].as_bytes()[10];
        let c = if b == b'A' { "B" } else { "A" };
        flipped[2].replace_range(10..11, c);
        let mut swapped = orig.clone();
        swapped.swap(0, 1);
        let mut removed = orig.clone();
        removed.remove(3);
        for (what, v) in [
            ("flip", flipped),
            ("swap", swapped),
            ("remove", removed),
            ("cut tail", orig[..4].to_vec()),
        ] {
            rewrite(&path, &v);
            assert!(
                verify_audit_file(&path, Some(&key())).is_err(),
                "{what} undetected"
            );
        }
    }

    fn event(i: u8, text: &str) -> AuditEvent {
        match i % 3 {
            0 => AuditEvent::chat(&Policy::default(), Party::EndUser, text),
            1 => AuditEvent::PermissionRevoked {
                grant_id: u32::from(i),
            },
            _ => AuditEvent::FileFailed {
                name: text.to_owned(),
                error: "x".into(),
            },
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 32,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn any_log_round_trips_and_any_line_edit_is_detected(
            evs in proptest::collection::vec((0u8..255, "\\PC{0,40}"), 1..12),
            sealed: bool,
            victim: proptest::sample::Index,
            how in 0u8..3,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.jsonl");
            let k = || sealed.then(key);
            let sink = match k() {
                Some(k) => JsonlAuditSink::create_sealed(&path, k).unwrap(),
                None => JsonlAuditSink::create(&path).unwrap(),
            };
            for (i, t) in &evs {
                sink.record(event(*i, t)).unwrap();
            }
            let ok = verify_audit_file(&path, k().as_ref()).unwrap();
            proptest::prop_assert_eq!(ok.records, evs.len() as u64);
            let mut v = lines(&path);
            let i = victim.index(v.len());
            match how {
                0 => { v.remove(i); }
                1 if v.len() > 1 => { let j = (i + 1) % v.len(); v.swap(i, j); }
                _ => v[i].push(' '),
            }
            rewrite(&path, &v);
            proptest::prop_assert!(verify_audit_file(&path, k().as_ref()).is_err());
        }
    }
}
