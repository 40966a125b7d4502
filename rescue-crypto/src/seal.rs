//! At-rest sealing: AES-256-GCM (ring) under a key derived with HKDF-SHA256.
//!
//! A sealed record is `nonce (12 random bytes) || ciphertext || tag (16)`. The nonce is
//! drawn from the OS CSPRNG for every record; with random 96-bit nonces one key should
//! seal at most [`MAX_RECORDS_PER_KEY`] records (NIST SP 800-38D section 8.3), so derive
//! a key per log or per session (the `info` argument). The associated data (for example a
//! record number and the previous record's hash) is authenticated, not stored: the
//! caller must present the same `aad` to open.
//!
//! Nothing here writes files or keeps plaintext after returning it.

use core::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};

use crate::rng::{self, RandomError};

/// Bytes a sealed record adds to its plaintext: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Shortest master secret: the derived key is AES-256, a shorter master would cap it.
pub const MIN_MASTER_LEN: usize = 32;
/// Records one key may seal with random nonces (2^32, NIST SP 800-38D 8.3).
pub const MAX_RECORDS_PER_KEY: u64 = 1 << 32;

/// Why sealing or opening failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The master secret is shorter than [`MIN_MASTER_LEN`].
    #[error("master secret shorter than {MIN_MASTER_LEN} bytes")]
    WeakMaster,
    /// The record is shorter than [`SEAL_OVERHEAD`].
    #[error("sealed record truncated")]
    Truncated,
    /// Wrong key, wrong associated data, or the record was altered.
    #[error("sealed record failed authentication")]
    Forged,
    /// The OS random number generator failed (no nonce).
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// An AES-256-GCM key for sealing records at rest.
pub struct SealKey {
    key: LessSafeKey,
}

impl SealKey {
    /// HKDF-SHA256(`salt`, `master`) expanded with `info` to an AES-256-GCM key.
    pub fn derive(master: &[u8], salt: &[u8], info: &[u8]) -> Result<Self, SealError> {
        if master.len() < MIN_MASTER_LEN {
            return Err(SealError::WeakMaster);
        }
        let info = [info];
        let prk = Salt::new(HKDF_SHA256, salt).extract(master);
        let okm = prk
            .expand(&info, &AES_256_GCM)
            // Only fails for an output longer than 255 hash lengths; 32 bytes is not.
            .map_err(|_| SealError::WeakMaster)?;
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    /// Seals `plaintext`, authenticating `aad` with it.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce_bytes = rng::array::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SealError::Forged)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a record made by [`SealKey::seal`] with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(SealError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = body.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Forged)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MASTER: [u8; 32] = [0x5a; 32];

    fn key(info: &[u8]) -> SealKey {
        SealKey::derive(&MASTER, b"salt", info).unwrap()
    }

    #[test]
    fn seal_open_round_trip_with_random_nonces() {
        let k = key(b"log-1");
        let a = k.seal(b"rec 1", b"hello").unwrap();
        let b = k.seal(b"rec 1", b"hello").unwrap();
        assert_eq!(a.len(), 5 + SEAL_OVERHEAD);
        assert_ne!(a, b, "nonces repeat");
        assert_eq!(k.open(b"rec 1", &a).unwrap(), b"hello");
        assert_eq!(
            k.open(b"rec 1", &k.seal(b"rec 1", b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn tampering_wrong_aad_and_wrong_key_are_refused() {
        let k = key(b"log-1");
        let sealed = k.seal(b"rec 1", b"chat text").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.open(b"rec 1", &bad), Err(SealError::Forged), "byte {i}");
        }
        assert_eq!(k.open(b"rec 2", &sealed), Err(SealError::Forged));
        assert_eq!(
            key(b"log-2").open(b"rec 1", &sealed),
            Err(SealError::Forged)
        );
        let other_salt = SealKey::derive(&MASTER, b"other", b"log-1").unwrap();
        assert_eq!(other_salt.open(b"rec 1", &sealed), Err(SealError::Forged));
        assert_eq!(
            k.open(b"rec 1", &sealed[..SEAL_OVERHEAD - 1]),
            Err(SealError::Truncated)
        );
        assert_eq!(
            k.open(b"rec 1", &sealed[..sealed.len() - 1]),
            Err(SealError::Forged)
        );
    }

    #[test]
    fn weak_master_is_refused() {
        assert_eq!(
            SealKey::derive(&[1; 31], b"", b"").unwrap_err(),
            SealError::WeakMaster
        );
    }

    #[test]
    fn key_is_hkdf_sha256_of_rfc5869_shape() {
        // Open a record sealed with a key derived independently (ring HKDF, same inputs)
        // to pin the derivation: extract(salt, master), expand(info) to 32 bytes.
        let prk = Salt::new(HKDF_SHA256, b"salt").extract(&MASTER);
        let okm = prk.expand(&[b"log-1"], &AES_256_GCM).unwrap();
        let other = LessSafeKey::new(UnboundKey::from(okm));
        let mut buf = b"x".to_vec();
        other
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(b"a"),
                &mut buf,
            )
            .unwrap();
        let mut sealed = vec![0u8; 12];
        sealed.extend_from_slice(&buf);
        assert_eq!(key(b"log-1").open(b"a", &sealed).unwrap(), b"x");
    }

    proptest! {
        #[test]
        fn any_plaintext_round_trips(p in proptest::collection::vec(any::<u8>(), 0..512), aad in proptest::collection::vec(any::<u8>(), 0..32)) {
            let k = key(b"p");
            prop_assert_eq!(k.open(&aad, &k.seal(&aad, &p).unwrap()).unwrap(), p);
        }

        #[test]
        fn arbitrary_records_never_open(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            prop_assert!(key(b"p").open(b"", &data).is_err());
        }
    }
}
