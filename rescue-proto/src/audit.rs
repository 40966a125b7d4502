//! Audit event types and the hash-chained record format (PROTOCOL.md 7.7).
//!
//! A record is one JSON line: `{"seq":N,"prev":"<hex>","at_ms":T,"event":{...}}`.
//! `prev` is the lowercase hex hash of the previous line's exact bytes (without its
//! newline); the first record has `"prev":""` and `seq` 0. Lines are canonical: the
//! writer emits them with `serde_json::to_string` of [`Record`], and [`verify_chain`]
//! re-serialises every parsed line and rejects one that differs, so whitespace or field
//! order edits are caught too.
//!
//! This module never writes a file, reads a clock or hashes anything itself: the sink
//! (root crate) supplies the time and the hash function (SHA-256 from rescue-crypto).
//! What the chain cannot show on its own: a cut-off tail (the last lines removed); the
//! sink seals the head (latest `seq` and hash) separately for that.

use serde::{Deserialize, Serialize};

use crate::permission::{Permission, PermissionSet, Policy};
use crate::session::control::DenyReason;
use crate::session::file::Digests;
use crate::session::frame::EndReason;

/// Who did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Party {
    /// The end user (applet side).
    EndUser,
    /// The technician (console side).
    Technician,
}

/// The kind of path the session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PathKind {
    /// Relayed through a gateway.
    Relay,
    /// Direct TCP.
    DirectTcp,
    /// Userspace TCP over a hole-punched UDP path.
    DirectUdp,
}

/// One audited event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The session started.
    SessionStarted {
        /// The session GUID (text form).
        guid: String,
        /// The technician (from the verified certificate).
        technician: String,
        /// The account.
        account: String,
    },
    /// The session ended; every grant is revoked.
    SessionEnded {
        /// Why.
        reason: EndReason,
    },
    /// A consent question was put to the end user.
    PermissionAsked {
        /// What was asked.
        permissions: Vec<Permission>,
    },
    /// The end user granted.
    PermissionGranted {
        /// The grant id.
        grant_id: u32,
        /// What was granted.
        permissions: Vec<Permission>,
    },
    /// A request was denied (by policy, the end user, or a timeout).
    PermissionDenied {
        /// What was asked.
        permissions: Vec<Permission>,
        /// Why.
        reason: DenyReason,
    },
    /// A grant was revoked (by either side or the end of the session).
    PermissionRevoked {
        /// The grant id.
        grant_id: u32,
    },
    /// A chat message; `text` is `None` when the policy excludes chat text.
    Chat {
        /// The author.
        from: Party,
        /// The text, unless excluded.
        text: Option<String>,
    },
    /// A file was sent (sender side) or received and verified (receiver side).
    File {
        /// Direction: who sent it.
        from: Party,
        /// Sanitised name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// MD5, lowercase hex.
        md5: String,
        /// SHA-256, lowercase hex.
        sha256: String,
    },
    /// A file transfer failed (hash mismatch, cancel, violation).
    FileFailed {
        /// Sanitised name.
        name: String,
        /// What went wrong.
        error: String,
    },
    /// The session moved to another path.
    PathChanged {
        /// The new path.
        kind: PathKind,
    },
    /// A camera stream started under a live camera grant (PROTOCOL.md 9).
    CameraStarted {
        /// The camera grant it runs under.
        grant_id: u32,
    },
    /// A camera stream stopped (the end user, a revoked grant, or the end of the session).
    CameraStopped {
        /// Frames this side sent (applet) or delivered (console).
        frames: u64,
        /// Frames dropped by the latest-frame rule.
        dropped: u64,
    },
}

impl AuditEvent {
    /// A chat event that honours the policy's chat exclusion.
    pub fn chat(policy: &Policy, from: Party, text: &str) -> Self {
        let text = (!policy.exclude_chat_from_audit).then(|| text.to_owned());
        Self::Chat { from, text }
    }

    /// A file event with hex digests.
    pub fn file(from: Party, name: &str, size: u64, d: &Digests) -> Self {
        Self::File {
            from,
            name: name.to_owned(),
            size,
            md5: hex::encode(d.md5),
            sha256: hex::encode(d.sha256),
        }
    }

    /// The permissions of a set, as a list for JSON.
    pub fn list(set: PermissionSet) -> Vec<Permission> {
        set.iter().collect()
    }
}

/// One chained record (one JSON line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Hex hash of the previous line; empty for the first.
    pub prev: String,
    /// Milliseconds since the Unix epoch, supplied by the sink.
    pub at_ms: u64,
    /// The event.
    pub event: AuditEvent,
}

/// The hash the chain uses (SHA-256 in the default sink); supplied by the caller.
pub type HashFn = fn(&[u8]) -> Vec<u8>;

/// The writer's side of the chain: turns events into lines.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    seq: u64,
    prev: String,
}

impl Chain {
    /// A chain with no record yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next line (without newline) for `event` at `at_ms`.
    pub fn append(&mut self, event: AuditEvent, at_ms: u64, hash: HashFn) -> String {
        let rec = Record {
            seq: self.seq,
            prev: std::mem::take(&mut self.prev),
            at_ms,
            event,
        };
        // Serialising these plain types cannot fail (no maps with non-string keys).
        let line = serde_json::to_string(&rec).unwrap_or_default();
        self.seq += 1;
        self.prev = hex::encode(hash(line.as_bytes()));
        line
    }

    /// Records written so far and the hex hash of the last one (the head to seal).
    pub fn head(&self) -> (u64, &str) {
        (self.seq, &self.prev)
    }
}

/// A broken chain: the first bad line (0-based) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at line {line}: {kind}")]
pub struct ChainError {
    /// The first line that fails.
    pub line: usize,
    /// What is wrong.
    pub kind: ChainErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainErrorKind {
    /// Not a record (bad JSON or fields).
    #[error("not a record")]
    Malformed,
    /// Not in canonical form (edited by hand).
    #[error("not canonical")]
    NotCanonical,
    /// `seq` is not the line's position (removed or reordered line).
    #[error("wrong sequence number")]
    Sequence,
    /// `prev` does not match the previous line (edited, removed or reordered).
    #[error("hash link broken")]
    Link,
}

/// Checks a whole chain; returns the number of records and the head hash.
pub fn verify_chain<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    hash: HashFn,
) -> Result<(u64, String), ChainError> {
    let mut prev = String::new();
    let mut n = 0u64;
    for (i, line) in lines.into_iter().enumerate() {
        let err = |kind| ChainError { line: i, kind };
        let rec: Record = serde_json::from_str(line).map_err(|_| err(ChainErrorKind::Malformed))?;
        if serde_json::to_string(&rec).ok().as_deref() != Some(line) {
            return Err(err(ChainErrorKind::NotCanonical));
        }
        if rec.seq != n {
            return Err(err(ChainErrorKind::Sequence));
        }
        if rec.prev != prev {
            return Err(err(ChainErrorKind::Link));
        }
        prev = hex::encode(hash(line.as_bytes()));
        n += 1;
    }
    Ok((n, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in hash for tests (FNV-1a, 8 bytes): the chain rule, not the hash, is
    /// under test; the root crate uses SHA-256.
    fn fnv(b: &[u8]) -> Vec<u8> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in b {
            h = (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3);
        }
        h.to_be_bytes().to_vec()
    }

    fn chain(n: usize) -> Vec<String> {
        let mut c = Chain::new();
        let policy = Policy {
            exclude_chat_from_audit: true,
            ..Policy::default()
        };
        (0..n)
            .map(|i| match i % 3 {
                0 => c.append(
                    AuditEvent::chat(&policy, Party::EndUser, "secret"),
                    i as u64,
                    fnv,
                ),
                1 => c.append(
                    AuditEvent::PermissionRevoked { grant_id: i as u32 },
                    i as u64,
                    fnv,
                ),
                _ => c.append(
                    AuditEvent::file(
                        Party::Technician,
                        "a.txt",
                        3,
                        &Digests {
                            md5: [1; 16],
                            sha256: [2; 32],
                        },
                    ),
                    0,
                    fnv,
                ),
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_chat_text_is_excluded() {
        let lines = chain(6);
        let (n, head) = verify_chain(lines.iter().map(String::as_str), fnv).unwrap();
        assert_eq!(n, 6);
        assert_eq!(head, hex::encode(fnv(lines[5].as_bytes())));
        assert!(lines[0].contains(r#""text":null"#) && !lines[0].contains("secret"));
        assert!(lines[2].contains(r#""md5":"01010101010101010101010101010101""#));
    }

    #[test]
    fn any_edit_removal_or_reordering_names_the_first_bad_line() {
        let lines = chain(6);
        let check = |v: &[String]| {
            verify_chain(v.iter().map(String::as_str), fnv)
                .map(|_| ())
                .map_err(|e| (e.line, e.kind))
        };
        let mut edited = lines.clone();
        edited[4] = edited[4].replace("\"grant_id\":4", "\"grant_id\":5");
        assert_ne!(edited[4], lines[4]);
        assert_eq!(check(&edited), Err((5, ChainErrorKind::Link)));
        let mut spaced = lines.clone();
        spaced[2] = spaced[2].replacen(':', ": ", 1);
        assert_eq!(check(&spaced), Err((2, ChainErrorKind::NotCanonical)));
        let mut removed = lines.clone();
        removed.remove(2);
        assert_eq!(check(&removed), Err((2, ChainErrorKind::Sequence)));
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&swapped), Err((1, ChainErrorKind::Sequence)));
        let mut first_gone = lines.clone();
        first_gone.remove(0);
        assert_eq!(check(&first_gone), Err((0, ChainErrorKind::Sequence)));
        assert_eq!(
            check(&["{".to_owned()]),
            Err((0, ChainErrorKind::Malformed))
        );
    }
}
