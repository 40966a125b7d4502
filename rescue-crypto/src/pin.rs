//! Certificate pins: the SHA-256 of a certificate's DER encoding.
//!
//! A pin names exactly one certificate. The applet carries the gateway-CA pin and the
//! account-CA pin in its signed ticket; the peer presents the certificate itself in its
//! TLS chain, and the verifiers of [`crate::verify`] pick the certificate whose SHA-256 is
//! the pin. Pins are public values; comparing them is still done in constant time.

use core::fmt;
use core::str::FromStr;

use rustls_pki_types::CertificateDer;
use subtle::ConstantTimeEq;

/// Length of a pin in bytes.
pub const PIN_LEN: usize = 32;

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; PIN_LEN]);

impl Pin {
    /// The pin of `cert`.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        Self(crate::digest::sha256(cert.as_ref()))
    }

    /// Whether `cert` is the pinned certificate (constant-time comparison).
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        Self::of(cert).0.ct_eq(&self.0).into()
    }

    /// The 32 bytes of the pin.
    pub const fn as_bytes(&self) -> &[u8; PIN_LEN] {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// Lowercase hexadecimal, 64 characters.
impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A pin's text form is not 64 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a pin is 64 hexadecimal digits")]
pub struct PinParseError;

impl FromStr for Pin {
    type Err = PinParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; PIN_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| PinParseError)?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_sha256_of_der_and_round_trips_as_text() {
        let cert = CertificateDer::from(b"abc".to_vec());
        let pin = Pin::of(&cert);
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            pin.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(pin.to_string().parse::<Pin>(), Ok(pin));
        assert!(pin.matches(&cert));
        assert!(!pin.matches(&CertificateDer::from(b"abd".to_vec())));
        assert_eq!("xyz".parse::<Pin>(), Err(PinParseError));
        assert_eq!("ab".repeat(33).parse::<Pin>(), Err(PinParseError));
    }
}
