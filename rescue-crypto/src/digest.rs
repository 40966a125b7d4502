//! File digests: MD5 (for compatibility with the original's file "thumbprint") and
//! SHA-256 (for integrity), computed incrementally in one pass.
//!
//! MD5 is never used for anything that needs collision resistance here; it is recorded
//! next to SHA-256 only so that logs match what the original system reported.

use md5::{Digest as _, Md5};
use ring::digest::{Context, SHA256};

/// Length of an MD5 digest in bytes.
pub const MD5_LEN: usize = 16;
/// Length of a SHA-256 digest in bytes.
pub const SHA256_LEN: usize = 32;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; SHA256_LEN] {
    let d = ring::digest::digest(&SHA256, data);
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Both digests of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digests {
    /// MD5 (compatibility only).
    pub md5: [u8; MD5_LEN],
    /// SHA-256 (integrity).
    pub sha256: [u8; SHA256_LEN],
}

impl Digests {
    /// The MD5 digest as lowercase hexadecimal.
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// The SHA-256 digest as lowercase hexadecimal.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Incremental MD5 + SHA-256 over a stream of chunks.
#[derive(Clone)]
pub struct FileDigest {
    md5: Md5,
    sha256: Context,
    len: u64,
}

impl FileDigest {
    /// An empty digest state.
    pub fn new() -> Self {
        Self {
            md5: Md5::new(),
            sha256: Context::new(&SHA256),
            len: 0,
        }
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.md5.update(chunk);
        self.sha256.update(chunk);
        self.len = self.len.saturating_add(chunk.len() as u64);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Both digests of everything fed.
    pub fn finish(self) -> Digests {
        let mut sha = [0u8; SHA256_LEN];
        sha.copy_from_slice(self.sha256.finish().as_ref());
        Digests {
            md5: self.md5.finalize().into(),
            sha256: sha,
        }
    }
}

impl Default for FileDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileDigest")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_answers() {
        // RFC 1321 appendix A.5 and FIPS 180-2 appendix B.1.
        let mut d = FileDigest::new();
        d.update(b"a");
        d.update(b"bc");
        assert_eq!(d.len(), 3);
        let out = d.finish();
        assert_eq!(out.md5_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            out.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let empty = FileDigest::default().finish();
        assert_eq!(empty.md5_hex(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_digests(data in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let cut = cut.min(data.len());
            let mut a = FileDigest::new();
            a.update(&data[..cut]);
            a.update(&data[cut..]);
            let mut b = FileDigest::new();
            b.update(&data);
            let (a, b) = (a.finish(), b.finish());
            prop_assert_eq!(a, b);
            prop_assert_eq!(a.sha256, sha256(&data));
        }
    }
}
