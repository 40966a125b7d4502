//! Per-frame end-to-end encryption in the form of SFrame (RFC 9605) with the cipher
//! suite `AES_256_GCM_SHA512_128` (0x0005), on ring (PROTOCOL.md 9.2).
//!
//! ```text
//!  SFrame ciphertext = header | AES-256-GCM(key, salt XOR CTR, aad = header | metadata, plaintext)
//!  header            = config byte |X|K(3)|Y|C(3)| , then KID (if X), then CTR (if Y)
//!  key, salt         = HKDF-SHA512-Expand(HKDF-Extract("", base_key),
//!                        "SFrame 1.0 Secret key " | KID u64 | suite u16, 32)  (salt: "... salt ...", 12)
//! ```
//!
//! The app holds the base key and hands it to each joined technician over that
//! technician's own end-to-end session (STREAM_KEY, PROTOCOL.md 9.1); the relay carries
//! ciphertext and never holds a key. Lens binds every frame to its meeting: the metadata
//! authenticated with it is the meeting id and the relay-visible flags byte, so a relay
//! can drop frames but neither flip a keyframe flag nor move frames between meetings.
//!
//! [`Decryptor::open`] rejects a counter that does not increase (replay) and never
//! panics on any input.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, KeyType, HKDF_SHA512};

/// The SFrame cipher suite: AES_256_GCM_SHA512_128 (RFC 9605 section 8.1).
pub const CIPHER_SUITE: u16 = 0x0005;
/// AES-256 key length.
pub const KEY_LEN: usize = 32;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Longest SFrame header: the config byte, an 8-byte KID and an 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

/// Why a frame could not be sealed or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SframeError {
    /// The header is truncated or not minimally encoded.
    #[error("malformed SFrame header")]
    Header,
    /// The frame is for another key id.
    #[error("SFrame key id {0} unknown")]
    UnknownKey(u64),
    /// The counter did not increase (a replay or a reordering).
    #[error("SFrame counter {got} not above {last}")]
    Replay {
        /// The highest counter opened so far.
        last: u64,
        /// The counter of this frame.
        got: u64,
    },
    /// Authentication failed (wrong key, wrong meeting, altered bytes).
    #[error("SFrame authentication failed")]
    Auth,
    /// The sender's counter is exhausted (2^64 frames: never in practice).
    #[error("SFrame counter exhausted")]
    Exhausted,
}

/// A parsed SFrame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Key id.
    pub kid: u64,
    /// Frame counter.
    pub ctr: u64,
}

fn min_len(v: u64) -> usize {
    (8 - v.leading_zeros() as usize / 8).max(1)
}

impl Header {
    /// Appends the minimal encoding (RFC 9605 section 4.3).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut cfg = 0u8;
        let (kid_long, ctr_long) = (self.kid > 7, self.ctr > 7);
        let (kl, cl) = (min_len(self.kid), min_len(self.ctr));
        cfg |= if kid_long {
            0x80 | ((kl as u8 - 1) << 4)
        } else {
            (self.kid as u8) << 4
        };
        cfg |= if ctr_long {
            0x08 | (cl as u8 - 1)
        } else {
            self.ctr as u8
        };
        out.push(cfg);
        if kid_long {
            out.extend_from_slice(&self.kid.to_be_bytes()[8 - kl..]);
        }
        if ctr_long {
            out.extend_from_slice(&self.ctr.to_be_bytes()[8 - cl..]);
        }
    }

    /// Parses a header at the start of `b`; returns it and its length.
    pub fn decode(b: &[u8]) -> Result<(Header, usize), SframeError> {
        let (&cfg, mut rest) = b.split_first().ok_or(SframeError::Header)?;
        let mut read = |long: bool, field: u8| -> Result<u64, SframeError> {
            if !long {
                return Ok(u64::from(field));
            }
            let n = usize::from(field) + 1;
            if rest.len() < n {
                return Err(SframeError::Header);
            }
            let (v, r) = rest.split_at(n);
            rest = r;
            let x = v.iter().fold(0u64, |a, b| a << 8 | u64::from(*b));
            // Minimal encoding only: one header, one meaning.
            if x <= 7 || min_len(x) != n {
                return Err(SframeError::Header);
            }
            Ok(x)
        };
        let kid = read(cfg & 0x80 != 0, (cfg >> 4) & 0x07)?;
        let ctr = read(cfg & 0x08 != 0, cfg & 0x07)?;
        let len = b.len() - rest.len();
        Ok((Header { kid, ctr }, len))
    }
}

struct Len(usize);
impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The key and salt of one KID (RFC 9605 section 4.4.2).
struct Keys {
    key: LessSafeKey,
    salt: [u8; NONCE_LEN],
}

fn derive(kid: u64, base_key: &[u8]) -> Keys {
    let prk = hkdf::Salt::new(HKDF_SHA512, &[]).extract(base_key);
    let suite = CIPHER_SUITE.to_be_bytes();
    let kid_b = kid.to_be_bytes();
    let expand = |label: &[u8], out: &mut [u8]| {
        let info = [label, &kid_b[..], &suite[..]];
        // Lengths 32 and 12 are far below HKDF-SHA512's 255 * 64 limit: cannot fail.
        if let Ok(okm) = prk.expand(&info, Len(out.len())) {
            let _ = okm.fill(out);
        }
    };
    let mut key = [0u8; KEY_LEN];
    expand(b"SFrame 1.0 Secret key ", &mut key);
    let mut salt = [0u8; NONCE_LEN];
    expand(b"SFrame 1.0 Secret salt ", &mut salt);
    // A 32-byte key is what AES-256 takes: cannot fail.
    let unbound = UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!());
    Keys {
        key: LessSafeKey::new(unbound),
        salt,
    }
}

fn nonce(salt: &[u8; NONCE_LEN], ctr: u64) -> Nonce {
    let mut n = *salt;
    for (i, b) in ctr.to_be_bytes().iter().enumerate() {
        n[NONCE_LEN - 8 + i] ^= b;
    }
    Nonce::assume_unique_for_key(n)
}

fn aad(header: &[u8], metadata: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + metadata.len());
    a.extend_from_slice(header);
    a.extend_from_slice(metadata);
    a
}

/// The sending side: one KID, a counter that only goes up.
pub struct Encryptor {
    kid: u64,
    keys: Keys,
    next_ctr: u64,
}

impl Encryptor {
    /// An encryptor for `kid` with `base_key` (Lens uses 32 bytes), counting from 0.
    pub fn new(kid: u64, base_key: &[u8]) -> Self {
        Self {
            kid,
            keys: derive(kid, base_key),
            next_ctr: 0,
        }
    }

    /// Seals `plaintext` with `metadata` authenticated beside it: header | ciphertext.
    pub fn seal(&mut self, metadata: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SframeError> {
        let ctr = self.next_ctr;
        self.next_ctr = ctr.checked_add(1).ok_or(SframeError::Exhausted)?;
        self.seal_with_ctr(ctr, metadata, plaintext)
    }

    /// [`Encryptor::seal`] at an explicit counter (test vectors only).
    #[doc(hidden)]
    pub fn seal_with_ctr(
        &self,
        ctr: u64,
        metadata: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SframeError> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN + plaintext.len() + TAG_LEN);
        Header { kid: self.kid, ctr }.encode(&mut out);
        let hlen = out.len();
        let aad = aad(&out, metadata);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(hlen);
        self.keys
            .key
            .seal_in_place_append_tag(nonce(&self.keys.salt, ctr), Aad::from(&aad), &mut body)
            .map_err(|_| SframeError::Auth)?;
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// The receiving side: one KID, the highest counter seen.
pub struct Decryptor {
    kid: u64,
    keys: Keys,
    last_ctr: Option<u64>,
}

impl Decryptor {
    /// A decryptor for `kid` with `base_key`.
    pub fn new(kid: u64, base_key: &[u8]) -> Self {
        Self {
            kid,
            keys: derive(kid, base_key),
            last_ctr: None,
        }
    }

    /// Opens an SFrame ciphertext with its `metadata`; returns the counter and plaintext.
    pub fn open(&mut self, metadata: &[u8], sframe: &[u8]) -> Result<(u64, Vec<u8>), SframeError> {
        let (h, hlen) = Header::decode(sframe)?;
        if h.kid != self.kid {
            return Err(SframeError::UnknownKey(h.kid));
        }
        if let Some(last) = self.last_ctr.filter(|l| h.ctr <= *l) {
            return Err(SframeError::Replay { last, got: h.ctr });
        }
        let aad = aad(&sframe[..hlen], metadata);
        let mut body = sframe[hlen..].to_vec();
        let plain = self
            .keys
            .key
            .open_in_place(nonce(&self.keys.salt, h.ctr), Aad::from(&aad), &mut body)
            .map_err(|_| SframeError::Auth)?;
        let n = plain.len();
        body.truncate(n);
        self.last_ctr = Some(h.ctr);
        Ok((h.ctr, body))
    }
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_minimal_and_round_trip() {
        for (kid, ctr, len) in [
            (0, 0, 1),
            (7, 7, 1),
            (8, 0, 2),
            (0, 256, 3),
            (u64::MAX, u64::MAX, 17),
        ] {
            let mut b = Vec::new();
            Header { kid, ctr }.encode(&mut b);
            assert_eq!(b.len(), len, "{kid} {ctr}");
            assert_eq!(Header::decode(&b), Ok((Header { kid, ctr }, len)));
        }
        // KID 5 written long (X=1, one byte): not minimal.
        assert_eq!(Header::decode(&[0x80, 0x05]), Err(SframeError::Header));
        assert_eq!(Header::decode(&[0x90, 0x01]), Err(SframeError::Header));
        assert_eq!(Header::decode(&[]), Err(SframeError::Header));
    }

    /// RFC 9605 appendix C.4, cipher suite 0x0005 (AES_256_GCM_SHA512_128).
    #[test]
    fn rfc_9605_vector_for_aes_256_gcm_sha512() {
        let base_key = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let metadata = b"IETF SFrame WG";
        let pt = b"draft-ietf-sframe-enc";
        let ct = hex::decode(concat!(
            "990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17",
            "ca21353c1cc24d56ceabced279"
        ))
        .unwrap();
        let e = Encryptor::new(0x123, &base_key);
        assert_eq!(e.seal_with_ctr(0x4567, metadata, pt).unwrap(), ct);
        let mut d = Decryptor::new(0x123, &base_key);
        assert_eq!(d.open(metadata, &ct), Ok((0x4567, pt.to_vec())));
    }

    #[test]
    fn seal_open_and_every_tamper_fails() {
        let key = [9u8; KEY_LEN];
        let mut e = Encryptor::new(3, &key);
        let mut d = Decryptor::new(3, &key);
        let c = e.seal(b"meta", b"frame").unwrap();
        assert_eq!(d.open(b"meta", &c), Ok((0, b"frame".to_vec())));
        assert!(matches!(
            d.open(b"meta", &c),
            Err(SframeError::Replay { .. })
        ));
        let c = e.seal(b"meta", b"frame").unwrap();
        assert_eq!(
            Decryptor::new(3, &key).open(b"metb", &c),
            Err(SframeError::Auth)
        );
        for i in 0..c.len() {
            let mut bad = c.clone();
            bad[i] ^= 1;
            assert!(
                Decryptor::new(3, &key).open(b"meta", &bad).is_err(),
                "byte {i}"
            );
        }
        assert_eq!(
            Decryptor::new(4, &key).open(b"meta", &c),
            Err(SframeError::UnknownKey(3))
        );
        assert_eq!(
            Decryptor::new(3, &[8; 32]).open(b"meta", &c),
            Err(SframeError::Auth)
        );
    }
}
