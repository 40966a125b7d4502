//! The session GUID: a 128-bit random value that names one session and is its
//! verification code.
//!
//! The canonical text form is the 8-4-4-4-12 lowercase hexadecimal grouping
//! (`0123abcd-0123-4567-89ab-0123456789ab`). Parsing is strict: exactly 36 characters,
//! hyphens at positions 8, 13, 18 and 23, and hexadecimal digits elsewhere (either case
//! is accepted on input; output is always lowercase). Nothing else is accepted: no braces,
//! no `urn:uuid:` prefix, no surrounding whitespace.
//!
//! This crate never generates GUIDs (it has no randomness source); `rescue-crypto` draws
//! them from the OS CSPRNG.

use core::fmt;
use core::str::FromStr;

/// Length of a GUID on the wire, in bytes.
pub const GUID_LEN: usize = 16;

/// Length of the canonical text form, in characters.
pub const GUID_TEXT_LEN: usize = 36;

/// Offsets of the hyphens in the canonical text form.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// A 128-bit session identifier.
///
/// Equality on GUIDs is not constant-time; code that compares a GUID presented by a peer
/// against a secret one must use `rescue_crypto`'s constant-time comparison instead.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; GUID_LEN]);

impl Guid {
    /// Wraps 16 bytes (big-endian order, as on the wire).
    pub const fn from_bytes(bytes: [u8; GUID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes of the GUID, as on the wire.
    pub const fn as_bytes(&self) -> &[u8; GUID_LEN] {
        &self.0
    }

    /// The GUID shortened for logs and metrics: its first 4 bytes, as 8 hex digits.
    /// The full GUID is a session's verification code and stays out of logs; 32 bits
    /// still tell one gateway's sessions apart in a log.
    pub fn short(&self) -> ShortGuid {
        ShortGuid([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// Reads a GUID from exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, GuidError> {
        let arr: [u8; GUID_LEN] = bytes.try_into().map_err(|_| GuidError::Length)?;
        Ok(Self(arr))
    }
}

/// A GUID shortened for logs ([`Guid::short`]): displays as 8 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortGuid([u8; 4]);

impl fmt::Display for ShortGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortGuid({self})")
    }
}

/// Why a GUID could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuidError {
    /// The input is not 16 bytes (binary) or 36 characters (text).
    #[error("a GUID is 16 bytes or 36 characters")]
    Length,
    /// A hyphen is missing or misplaced, or a character is not a hexadecimal digit.
    #[error("a GUID's text form is 8-4-4-4-12 hexadecimal digits")]
    Syntax,
}

impl FromStr for Guid {
    type Err = GuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.as_bytes();
        if text.len() != GUID_TEXT_LEN {
            return Err(GuidError::Length);
        }
        let mut out = [0u8; GUID_LEN];
        let mut nibbles = 0usize;
        for (i, &c) in text.iter().enumerate() {
            if HYPHENS.contains(&i) {
                if c != b'-' {
                    return Err(GuidError::Syntax);
                }
                continue;
            }
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(GuidError::Syntax),
            };
            out[nibbles / 2] |= if nibbles.is_multiple_of(2) { v << 4 } else { v };
            nibbles += 1;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str = "0123abcd-4567-89ef-0011-223344556677";

    #[test]
    fn the_short_form_is_the_first_eight_hex_digits() {
        let g: Guid = TEXT.parse().expect("valid");
        assert_eq!(g.short().to_string(), "0123abcd");
        assert!(TEXT.starts_with(&g.short().to_string()));
    }

    #[test]
    fn parses_and_prints_canonical_form() {
        let g: Guid = TEXT.parse().expect("valid");
        assert_eq!(
            g.as_bytes(),
            &[
                0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                0x66, 0x77
            ]
        );
        assert_eq!(g.to_string(), TEXT);
    }

    #[test]
    fn accepts_uppercase_and_prints_lowercase() {
        let g: Guid = TEXT.to_uppercase().parse().expect("valid");
        assert_eq!(g.to_string(), TEXT);
    }

    #[test]
    fn rejects_non_canonical_forms() {
        for bad in [
            "",
            "0123abcd45678 9ef0011223344556677",
            "{0123abcd-4567-89ef-0011-223344556677}",
            " 0123abcd-4567-89ef-0011-22334455667",
            "0123abcd-4567-89ef-0011-22334455667g",
            "0123abcd-4567-89ef-00112-23344556677",
            "0123abcd04567-89ef-0011-223344556677",
            "0123abcd-4567-89ef-0011-2233445566778",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn binary_form_must_be_16_bytes() {
        assert_eq!(Guid::from_slice(&[0; 15]), Err(GuidError::Length));
        assert_eq!(Guid::from_slice(&[0; 17]), Err(GuidError::Length));
        assert!(Guid::from_slice(&[7; 16]).is_ok());
    }

    proptest! {
        #[test]
        fn text_form_round_trips(bytes in any::<[u8; 16]>()) {
            let g = Guid::from_bytes(bytes);
            prop_assert_eq!(g.to_string().parse::<Guid>(), Ok(g));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Guid>();
        }
    }
}
