//! TOTP second factor (RFC 6238 over RFC 4226 HOTP), on ring's HMAC.
//!
//! [`Totp::verify`] compares codes in constant time and accepts each time step at most
//! once: the caller stores the returned step and passes it back as `last_used`, so a
//! code seen by an onlooker cannot be replayed (RFC 6238 section 5.2). No clock is read:
//! the time is an argument.

use core::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;

/// Shortest shared secret accepted: RFC 4226 section 4 requires 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest shared secret accepted: one HMAC-SHA-512 block.
pub const MAX_SECRET_LEN: usize = 128;
/// Most time steps of clock skew [`Totp::verify`] looks at on each side (RFC 6238
/// section 5.2 recommends at most one).
pub const MAX_SKEW_STEPS: u64 = 2;

/// The HMAC of the TOTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1, what authenticator apps use by default.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// Why a TOTP could not be set up or a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] or longer than [`MAX_SECRET_LEN`].
    #[error("TOTP secret length out of range")]
    Secret,
    /// Digits outside 6..=8 or a zero time step.
    #[error("TOTP parameters out of range")]
    Params,
    /// The code matches no step in the window, or only steps already used.
    #[error("TOTP code refused")]
    Refused,
}

/// A TOTP generator/verifier for one shared secret.
#[derive(Clone)]
pub struct Totp {
    key: hmac::Key,
    digits: u32,
    step: u64,
}

impl Totp {
    /// A TOTP with `digits` (6 to 8) digits and a time step of `step_secs` seconds.
    pub fn new(
        secret: &[u8],
        alg: TotpAlgorithm,
        digits: u32,
        step_secs: u64,
    ) -> Result<Self, TotpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(TotpError::Secret);
        }
        if !(6..=8).contains(&digits) || step_secs == 0 {
            return Err(TotpError::Params);
        }
        let a = match alg {
            TotpAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            TotpAlgorithm::Sha256 => hmac::HMAC_SHA256,
            TotpAlgorithm::Sha512 => hmac::HMAC_SHA512,
        };
        Ok(Self {
            key: hmac::Key::new(a, secret),
            digits,
            step: step_secs,
        })
    }

    /// The usual authenticator-app profile: SHA-1, 6 digits, 30 s.
    pub fn standard(secret: &[u8]) -> Result<Self, TotpError> {
        Self::new(secret, TotpAlgorithm::Sha1, 6, 30)
    }

    /// The time step containing `unix_secs`.
    pub fn step_of(&self, unix_secs: u64) -> u64 {
        unix_secs / self.step
    }

    /// The code for time `unix_secs`, zero-padded to the configured digits.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.code_for_step(self.step_of(unix_secs))
    }

    /// Checks `code` at `unix_secs`, allowing `skew` steps (at most [`MAX_SKEW_STEPS`])
    /// either side, and refusing steps at or before `last_used`. Returns the matched step,
    /// which the caller must store as the new `last_used`.
    pub fn verify(
        &self,
        code: &str,
        unix_secs: u64,
        skew: u64,
        last_used: Option<u64>,
    ) -> Result<u64, TotpError> {
        let now = self.step_of(unix_secs);
        let skew = skew.min(MAX_SKEW_STEPS);
        let mut matched = None;
        for step in now.saturating_sub(skew)..=now.saturating_add(skew) {
            let fresh = last_used.is_none_or(|l| step > l);
            let same: bool = self
                .code_for_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if same && fresh && matched.is_none() {
                matched = Some(step);
            }
        }
        matched.ok_or(TotpError::Refused)
    }

    fn code_for_step(&self, step: u64) -> String {
        let tag = hmac::sign(&self.key, &step.to_be_bytes());
        let h = tag.as_ref();
        // RFC 4226 section 5.3, dynamic truncation; the offset is at most 15 and every
        // HMAC here is at least 20 bytes long, so the indexing below is in bounds.
        let offset = usize::from(h[h.len() - 1] & 0x0f);
        let bin = u32::from_be_bytes([
            h[offset] & 0x7f,
            h[offset + 1],
            h[offset + 2],
            h[offset + 3],
        ]);
        let code = bin % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("digits", &self.digits)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: [u64; 6] = [
        59,
        1_111_111_109,
        1_111_111_111,
        1_234_567_890,
        2_000_000_000,
        20_000_000_000,
    ];

    fn check(alg: TotpAlgorithm, seed: &[u8], expect: [&str; 6]) {
        let t = Totp::new(seed, alg, 8, 30).unwrap();
        for (time, code) in TIMES.iter().zip(expect) {
            assert_eq!(t.code_at(*time), code, "{alg:?} at {time}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let s = b"1234567890";
        check(
            TotpAlgorithm::Sha1,
            &s.repeat(2),
            [
                "94287082", "07081804", "14050471", "89005924", "69279037", "65353130",
            ],
        );
        check(
            TotpAlgorithm::Sha256,
            &[s.repeat(3), b"12".to_vec()].concat(),
            [
                "46119246", "68084774", "67062674", "91819424", "90698825", "77737706",
            ],
        );
        check(
            TotpAlgorithm::Sha512,
            &[s.repeat(6), b"1234".to_vec()].concat(),
            [
                "90693936", "25091201", "99943326", "93441116", "38618901", "47863826",
            ],
        );
    }

    #[test]
    fn verify_accepts_each_step_once_within_skew() {
        let t = Totp::standard(b"12345678901234567890").unwrap();
        let now = 1_111_111_111;
        let code = t.code_at(now);
        let step = t.verify(&code, now, 1, None).unwrap();
        assert_eq!(step, t.step_of(now));
        assert_eq!(
            t.verify(&code, now, 1, Some(step)),
            Err(TotpError::Refused),
            "replay"
        );
        assert_eq!(
            t.verify(&code, now + 30, 1, None),
            Ok(step),
            "one step late"
        );
        assert_eq!(
            t.verify(&code, now + 90, 1, None),
            Err(TotpError::Refused),
            "three steps late"
        );
        assert_eq!(t.verify("000000", now, 0, None).is_ok(), code == "000000");
        assert_eq!(t.verify(&code[..5], now, 1, None), Err(TotpError::Refused));
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(Totp::standard(&[0; 15]).unwrap_err(), TotpError::Secret);
        assert_eq!(
            Totp::new(&[0; 20], TotpAlgorithm::Sha1, 9, 30).unwrap_err(),
            TotpError::Params
        );
        assert_eq!(
            Totp::new(&[0; 20], TotpAlgorithm::Sha1, 6, 0).unwrap_err(),
            TotpError::Params
        );
    }
}
