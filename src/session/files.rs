//! File I/O of a transfer: the receiver writes into a temporary file in the target
//! directory, hashes (MD5 + SHA-256) while receiving, and renames into place only after
//! the sender's digests match; the sender reads and hashes in the same pass.
//!
//! What this never does: write outside the target directory (the peer's file name must
//! pass `rescue_proto`'s one file-name rule, `sanitize_name`, or is refused), overwrite an existing file, keep a partial file
//! after a failure, a cancel, the end of the session or a drop, or accept more bytes than
//! the offered size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rescue_crypto::{Digests, FileDigest};
use rescue_proto::session::file::{sanitize_name, NameError};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};

/// Largest file a receiver accepts by default: bounds the disk a peer can fill.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Buffer between the transfer and the file: every `tokio::fs` operation is a hop to
/// the blocking pool, so file data moves in large pieces, not per 32 KiB chunk.
pub(crate) const IO_BUFFER: usize = 1024 * 1024;
/// Candidate names tried when the target name exists (`name (1)`, `name (2)`, ...).
pub const MAX_RENAME_ATTEMPTS: u32 = 100;

/// Why a file transfer failed on this side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file name breaks the file-name rule (PROTOCOL.md 7.6), or a local path has
    /// no UTF-8 file name.
    #[error("unacceptable file name: {0}")]
    BadName(#[from] NameError),
    /// The offered size exceeds the receiver's limit.
    #[error("file of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The offered size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More or fewer bytes arrived than the offer announced.
    #[error("received {received} bytes, offered {offered}")]
    SizeMismatch {
        /// Bytes received.
        received: u64,
        /// Bytes offered.
        offered: u64,
    },
    /// The MD5 or SHA-256 of what arrived differs from the sender's.
    #[error("digest mismatch: the file was not received intact")]
    DigestMismatch,
    /// The transfer was cancelled by either side or ended with the session.
    #[error("transfer cancelled")]
    Cancelled,
    /// The transfer was refused (no grant, or the receiver declined).
    #[error("transfer refused")]
    Refused,
    /// No free target name after [`MAX_RENAME_ATTEMPTS`] candidates.
    #[error("no free target file name")]
    NameTaken,
    /// A local file-system error.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A file received and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedFile {
    /// Where it was stored.
    pub path: PathBuf,
    /// The name the sender gave.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// MD5 and SHA-256, verified against the sender's.
    pub digests: Digests,
}

/// A file being received: the temporary file, the running digests and the counts.
#[derive(Debug)]
pub(crate) struct IncomingFile {
    dir: PathBuf,
    name: String,
    size: u64,
    tmp: Option<PathBuf>,
    file: BufWriter<File>,
    digest: FileDigest,
}

impl IncomingFile {
    /// Creates a fresh temporary file in `dir` for an offer of `name`, `size` bytes.
    pub(crate) async fn create(
        dir: &Path,
        name: &str,
        size: u64,
        limit: u64,
    ) -> Result<Self, FileError> {
        let name = sanitize_name(name)?;
        if size > limit {
            return Err(FileError::TooLarge { size, limit });
        }
        let (tmp, file) = create_temp(dir).await?;
        Ok(Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            size,
            tmp: Some(tmp),
            file: BufWriter::with_capacity(IO_BUFFER, file),
            digest: FileDigest::new(),
        })
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.digest.len()
    }

    /// Appends `chunk`; more than the offered size is an error.
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        let received = self.received().saturating_add(chunk.len() as u64);
        if received > self.size {
            return Err(FileError::SizeMismatch {
                received,
                offered: self.size,
            });
        }
        self.file.write_all(chunk).await?;
        self.digest.update(chunk);
        Ok(())
    }

    /// All data is in: checks the size, syncs the file to disk and returns both
    /// digests of what was written (the caller verifies them against the sender's).
    pub(crate) async fn sync_digests(&mut self) -> Result<Digests, FileError> {
        if self.received() != self.size {
            return Err(FileError::SizeMismatch {
                received: self.received(),
                offered: self.size,
            });
        }
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        Ok(self.digest.clone().finish())
    }

    /// Moves the verified file into place under a free name. Call only after the
    /// digests from [`IncomingFile::sync_digests`] matched the sender's. On an error the
    /// temporary file is removed.
    pub(crate) async fn commit(mut self) -> Result<ReceivedFile, FileError> {
        let digests = self.sync_digests().await?;
        let tmp = self.tmp.clone().ok_or(FileError::Cancelled)?;
        let path = place(&tmp, &self.dir, &self.name).await?;
        self.tmp = None; // the temporary file is gone: nothing to clean up
        Ok(ReceivedFile {
            path,
            name: self.name.clone(),
            size: self.size,
            digests,
        })
    }
}

impl Drop for IncomingFile {
    fn drop(&mut self) {
        // Failure, cancel, end of session or an abandoned transfer: no partial file stays.
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Reads a file to send in chunks, hashing it in the same pass.
pub(crate) struct OutgoingFile {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    digest: FileDigest,
    size: u64,
}

impl OutgoingFile {
    /// Sends `size` bytes from `reader`.
    pub(crate) fn new(reader: Box<dyn AsyncRead + Send + Unpin>, size: u64) -> Self {
        Self {
            reader,
            digest: FileDigest::new(),
            size,
        }
    }

    /// Bytes read so far.
    pub(crate) fn sent(&self) -> u64 {
        self.digest.len()
    }

    /// The next chunk of at most `max` bytes; empty once `size` bytes were read. A
    /// reader that ends early is a size mismatch.
    pub(crate) async fn next_chunk(&mut self, max: usize) -> Result<Vec<u8>, FileError> {
        let left = self.size - self.sent();
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(max);
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let n = self.reader.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(FileError::SizeMismatch {
                    received: self.sent() + filled as u64,
                    offered: self.size,
                });
            }
            filled += n;
        }
        self.digest.update(&buf);
        Ok(buf)
    }

    /// Both digests of everything read (call once every byte was read).
    pub(crate) fn digests(&self) -> Digests {
        self.digest.clone().finish()
    }
}

impl std::fmt::Debug for OutgoingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFile")
            .field("size", &self.size)
            .field("sent", &self.sent())
            .finish_non_exhaustive()
    }
}

async fn create_temp(dir: &Path) -> Result<(PathBuf, File), FileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..MAX_RENAME_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".rescue-{}-{n}.part", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or(FileError::NameTaken, FileError::Io))
}

/// Moves `tmp` to a name in `dir` that does not exist yet (never overwrites).
async fn place(tmp: &Path, dir: &Path, name: &str) -> Result<PathBuf, FileError> {
    for i in 0..MAX_RENAME_ATTEMPTS {
        let candidate = if i == 0 {
            dir.join(name)
        } else {
            dir.join(numbered(name, i))
        };
        // A hard link fails atomically when the target exists: no overwrite race.
        match tokio::fs::hard_link(tmp, &candidate).await {
            Ok(()) => {
                tokio::fs::remove_file(tmp).await?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FileError::NameTaken)
}

/// `report.txt` → `report (2).txt`.
fn numbered(name: &str, i: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({i}).{ext}"),
        _ => format!("{name} ({i})"),
    }
}

/// Opens `path` for sending: a buffered reader, the file's name (UTF-8) and its size.
pub(super) async fn open_path(
    path: &std::path::Path,
) -> Result<(tokio::io::BufReader<tokio::fs::File>, String, u64), FileError> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "name not UTF-8");
        FileError::Io(e)
    })?;
    let file = tokio::fs::File::open(path).await.map_err(FileError::Io)?;
    let size = file.metadata().await.map_err(FileError::Io)?.len();
    Ok((
        tokio::io::BufReader::with_capacity(IO_BUFFER, file),
        name.to_owned(),
        size,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(data: &[u8]) -> Digests {
        let mut d = FileDigest::new();
        d.update(data);
        d.finish()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn the_one_file_name_rule_guards_the_disk_too() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".bashrc",
            "c:x",
            "a\0b",
            "a\nb",
            "nul.txt",
            "a\u{202e}txt.exe",
            "a\u{2215}b",
        ] {
            let err = IncomingFile::create(dir.path(), bad, 1, 10)
                .await
                .unwrap_err();
            assert!(matches!(err, FileError::BadName(_)), "{bad:?}: {err}");
        }
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
        assert_eq!(numbered("noext", 1), "noext (1)");
    }

    #[tokio::test]
    async fn verified_file_lands_under_a_free_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"old").unwrap();
        let mut f = IncomingFile::create(dir.path(), "a.txt", 5, 10)
            .await
            .unwrap();
        f.write(b"he").await.unwrap();
        f.write(b"llo").await.unwrap();
        assert_eq!(f.sync_digests().await.unwrap(), digests(b"hello"));
        let got = f.commit().await.unwrap();
        assert_eq!(got.path, dir.path().join("a (1).txt"));
        assert_eq!(std::fs::read(&got.path).unwrap(), b"hello");
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["a (1).txt", "a.txt"]);
    }

    #[tokio::test]
    async fn mismatch_overrun_and_drop_leave_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = IncomingFile::create(dir.path(), "x", 3, 10).await.unwrap();
        f.write(b"abc").await.unwrap();
        assert_ne!(f.sync_digests().await.unwrap(), digests(b"abd"));
        drop(f); // what the driver does after a mismatch
        assert!(entries(dir.path()).is_empty());

        let mut f = IncomingFile::create(dir.path(), "x", 2, 10).await.unwrap();
        assert!(matches!(
            f.write(b"abc").await,
            Err(FileError::SizeMismatch {
                received: 3,
                offered: 2
            })
        ));
        drop(f);
        assert!(entries(dir.path()).is_empty());

        let f = IncomingFile::create(dir.path(), "x", 2, 10).await.unwrap();
        assert_eq!(entries(dir.path()).len(), 1);
        let err = f.commit().await.unwrap_err();
        assert!(matches!(err, FileError::SizeMismatch { .. }), "{err}");
        assert!(entries(dir.path()).is_empty());

        let err = IncomingFile::create(dir.path(), "x", 11, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, FileError::TooLarge { .. }));
        let err = IncomingFile::create(dir.path(), "../x", 1, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, FileError::BadName(NameError::Reserved('/'))));
    }

    #[tokio::test]
    async fn sender_hashes_what_it_reads_and_detects_a_short_reader() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut o = OutgoingFile::new(Box::new(std::io::Cursor::new(data.clone())), 10_000);
        let mut all = Vec::new();
        loop {
            let c = o.next_chunk(4096).await.unwrap();
            if c.is_empty() {
                break;
            }
            all.extend_from_slice(&c);
        }
        assert_eq!(all, data);
        assert_eq!(o.digests(), digests(&data));
        let mut short = OutgoingFile::new(Box::new(std::io::Cursor::new(vec![1u8; 3])), 5);
        assert!(matches!(
            short.next_chunk(10).await,
            Err(FileError::SizeMismatch { .. })
        ));
    }
}
