//! Technician password hashing: scrypt with N = 2^17, r = 8, p = 1 and a 24-character
//! salt from the OS CSPRNG; verification in constant time.
//!
//! The stored form is one line of text:
//! `$scrypt$ln=17,r=8,p=1$<24-character salt>$<hash, 43 characters of unpadded base64>`.
//! The salt's characters come from `A-Z a-z 0-9 . /` (6 random bits each, 144 bits);
//! the salt string's bytes are the scrypt salt. Passwords are never stored or logged.
//! Cost parameters read back from storage are bounded ([`MAX_LOG_N`] and friends) so a
//! corrupted record cannot make a login allocate gigabytes.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::rng::{self, RandomError};

/// log2 of scrypt's N for new hashes (OWASP: at least 2^17).
pub const LOG_N: u8 = 17;
/// scrypt block size r for new hashes.
pub const R: u32 = 8;
/// scrypt parallelism p for new hashes.
pub const P: u32 = 1;
/// Characters of salt.
pub const SALT_LEN: usize = 24;
/// Bytes of derived hash.
pub const HASH_LEN: usize = 32;
/// Largest log2(N) accepted from storage: 2^20 × r 8 is 1 GiB of memory.
pub const MAX_LOG_N: u8 = 20;
/// Smallest log2(N) accepted from storage (tests use low costs; production uses 17).
pub const MIN_LOG_N: u8 = 10;
/// Largest r accepted from storage.
pub const MAX_R: u32 = 16;
/// Largest p accepted from storage.
pub const MAX_P: u32 = 4;
/// Longest password hashed: bounds the work of one login attempt.
pub const MAX_PASSWORD_LEN: usize = 1024;
const SALT_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./";

/// Why a password could not be hashed or a stored hash could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_LEN`].
    #[error("password too long")]
    TooLong,
    /// The stored string is not in the format above or its costs are out of bounds.
    #[error("stored password hash malformed")]
    Malformed,
    /// The OS random number generator failed (no salt).
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// scrypt cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// log2 of N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl Cost {
    /// The cost of new hashes: N = 2^17, r = 8, p = 1.
    pub const DEFAULT: Self = Self {
        log_n: LOG_N,
        r: R,
        p: P,
    };

    fn in_bounds(self) -> bool {
        (MIN_LOG_N..=MAX_LOG_N).contains(&self.log_n)
            && (1..=MAX_R).contains(&self.r)
            && (1..=MAX_P).contains(&self.p)
    }
}

/// Hashes `password` with [`Cost::DEFAULT`] and a fresh salt; returns the stored form.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    hash_password_with(password, Cost::DEFAULT)
}

/// Hashes `password` with `cost` (within the storage bounds) and a fresh salt.
pub fn hash_password_with(password: &str, cost: Cost) -> Result<String, PasswordError> {
    if !cost.in_bounds() {
        return Err(PasswordError::Malformed);
    }
    let salt = new_salt()?;
    let hash = derive(password, &salt, cost)?;
    Ok(format!(
        "$scrypt$ln={},r={},p={}${}${}",
        cost.log_n,
        cost.r,
        cost.p,
        salt,
        STANDARD_NO_PAD.encode(hash)
    ))
}

/// Whether `password` matches the stored form (hash compared in constant time).
pub fn verify_password(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let (cost, salt, expected) = parse(stored)?;
    let hash = derive(password, salt, cost)?;
    Ok(hash.ct_eq(&expected).into())
}

fn new_salt() -> Result<String, PasswordError> {
    let bytes = rng::array::<SALT_LEN>()?;
    Ok(bytes
        .iter()
        .map(|b| char::from(SALT_ALPHABET[usize::from(b & 63)]))
        .collect())
}

fn derive(password: &str, salt: &str, cost: Cost) -> Result<[u8; HASH_LEN], PasswordError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let params = scrypt::Params::new(cost.log_n, cost.r, cost.p, HASH_LEN)
        .map_err(|_| PasswordError::Malformed)?;
    let mut out = [0u8; HASH_LEN];
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out)
        .map_err(|_| PasswordError::Malformed)?;
    Ok(out)
}

fn parse(stored: &str) -> Result<(Cost, &str, [u8; HASH_LEN]), PasswordError> {
    let m = PasswordError::Malformed;
    let rest = stored.strip_prefix("$scrypt$").ok_or(m)?;
    let mut parts = rest.split('$');
    let (params, salt, hash) = (
        parts.next().ok_or(m)?,
        parts.next().ok_or(m)?,
        parts.next().ok_or(m)?,
    );
    if parts.next().is_some()
        || salt.len() != SALT_LEN
        || !salt.bytes().all(|b| SALT_ALPHABET.contains(&b))
    {
        return Err(m);
    }
    let mut kv = params.split(',');
    let mut num = |key: &str| -> Result<u32, PasswordError> {
        let v = kv.next().ok_or(m)?.strip_prefix(key).ok_or(m)?;
        if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(m);
        }
        v.parse().map_err(|_| m)
    };
    let log_n = u8::try_from(num("ln=")?).map_err(|_| m)?;
    let cost = Cost {
        log_n,
        r: num("r=")?,
        p: num("p=")?,
    };
    if kv.next().is_some() || !cost.in_bounds() {
        return Err(m);
    }
    let mut out = [0u8; HASH_LEN];
    let n = STANDARD_NO_PAD
        .decode_slice(hash, &mut out)
        .map_err(|_| m)?;
    if n != HASH_LEN || hash.len() != 43 {
        return Err(m);
    }
    Ok((cost, salt, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap enough for debug-build tests; production uses [`Cost::DEFAULT`].
    const FAST: Cost = Cost {
        log_n: MIN_LOG_N,
        r: 1,
        p: 1,
    };

    #[test]
    fn hash_verifies_and_wrong_password_does_not() {
        let h = hash_password_with("correct horse", FAST).unwrap();
        assert!(h.starts_with("$scrypt$ln=10,r=1,p=1$"));
        assert_eq!(verify_password("correct horse", &h), Ok(true));
        assert_eq!(verify_password("correct horsf", &h), Ok(false));
        assert_eq!(verify_password("", &h), Ok(false));
    }

    #[test]
    fn salts_are_24_chars_and_fresh() {
        let a = hash_password_with("pw", FAST).unwrap();
        let b = hash_password_with("pw", FAST).unwrap();
        assert_ne!(a, b);
        let salt = a.split('$').nth(3).unwrap();
        assert_eq!(salt.len(), SALT_LEN);
    }

    #[test]
    fn matches_scrypt_rfc7914_shape() {
        // Same inputs through the scrypt crate directly: the stored hash is exactly
        // scrypt(password, salt string bytes, N, r, p, 32).
        let h = hash_password_with("pleaseletmein", FAST).unwrap();
        let (cost, salt, hash) = parse(&h).unwrap();
        let mut direct = [0u8; 32];
        scrypt::scrypt(
            b"pleaseletmein",
            salt.as_bytes(),
            &scrypt::Params::new(cost.log_n, cost.r, cost.p, 32).unwrap(),
            &mut direct,
        )
        .unwrap();
        assert_eq!(hash, direct);
    }

    #[test]
    fn malformed_or_costly_records_are_refused() {
        let h = hash_password_with("pw", FAST).unwrap();
        let bad = [
            String::new(),
            h.replacen("scrypt", "bcrypt", 1),
            h.replacen("ln=10", "ln=21", 1),
            h.replacen("ln=10", "ln=9", 1),
            h.replacen("r=1", "r=99", 1),
            h.replacen("r=1", "r=0", 1),
            h.replacen("p=1", "p=5", 1),
            h.replacen("p=1", "p=1,x=2", 1),
            h.replacen("ln=10", "ln=+10", 1),
            format!("{h}$extra"),
            h[..h.len() - 1].to_owned(),
        ];
        for b in bad {
            assert_eq!(
                verify_password("pw", &b),
                Err(PasswordError::Malformed),
                "{b}"
            );
        }
        assert_eq!(
            hash_password_with(&"x".repeat(MAX_PASSWORD_LEN + 1), FAST),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            hash_password_with(
                "pw",
                Cost {
                    log_n: 30,
                    r: 8,
                    p: 1
                }
            ),
            Err(PasswordError::Malformed)
        );
        assert_eq!(
            Cost::DEFAULT,
            Cost {
                log_n: 17,
                r: 8,
                p: 1
            }
        );
    }
}
