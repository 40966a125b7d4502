//! Signed applet tickets (Ed25519, ring).
//!
//! The portal side mints a [`Ticket`] per session and signs it with a [`TicketSigner`];
//! the applet carries the signed bytes and presents them in `REGISTER`; the gateway
//! checks them with [`verify`] and the [`TicketVerifyKey`]. The byte format and a test
//! vector are in PROTOCOL.md section 6: a version byte, fixed fields, bounded
//! variable fields, then a 64-byte Ed25519 signature over a domain-separation label and
//! everything before it.
//!
//! Verification never panics on any input, checks the total length before looking at
//! anything ([`MAX_TICKET_LEN`]), and allocates at most the bytes it was given.

mod labelled;
mod wire;

use core::fmt;
use core::str::FromStr;

use rescue_proto::{Guid, Policy};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use crate::pin::Pin;
use crate::pki::AccountId;

pub use labelled::MAX_LABEL_LEN;
pub use wire::{MAX_GATEWAYS, MAX_GATEWAY_LEN, MAX_GROUP_LEN};

/// Longest signed ticket accepted: REGISTER carries at most 4096 ticket bytes.
pub const MAX_TICKET_LEN: usize = 4096;
/// Length of the Ed25519 signature at the end of a ticket.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an Ed25519 public key.
pub const VERIFY_KEY_LEN: usize = 32;
/// Domain-separation label signed before the body, so no other Ed25519 message made
/// with the same key can pass as a ticket.
pub const SIGNING_CONTEXT: &[u8] = b"rescue-ticket-v1";

/// What an applet is allowed to do in one session, signed by the portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The session GUID.
    pub guid: Guid,
    /// The account the session belongs to; only its consoles may claim it.
    pub account: AccountId,
    /// Gateways to try, in order (`host:port`; 1 to [`MAX_GATEWAYS`]).
    pub gateways: Vec<String>,
    /// Pin of the gateway CA (outer hop).
    pub gateway_ca_pin: Pin,
    /// Pin of the account CA (inner TLS, first path).
    pub account_ca_pin: Pin,
    /// The technician group's policy.
    pub policy: Policy,
    /// Name of the technician group the policy comes from (may be empty).
    pub group: String,
    /// End of validity, seconds since the Unix epoch; valid while `now < expires_at_unix`.
    pub expires_at_unix: u64,
}

/// Why a ticket could not be signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Longer than [`MAX_TICKET_LEN`]; nothing else was looked at.
    #[error("ticket of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// The bytes end before a field does.
    #[error("ticket truncated")]
    Truncated,
    /// Unknown format version.
    #[error("unknown ticket version {0}")]
    Version(u8),
    /// The policy sets a reserved permission bit or flag.
    #[error("ticket policy invalid")]
    Policy,
    /// The group name is too long or not UTF-8.
    #[error("ticket group name invalid")]
    Group,
    /// No gateway, or more than [`MAX_GATEWAYS`].
    #[error("ticket gateway count invalid")]
    GatewayCount,
    /// A gateway address is empty, too long or not printable ASCII.
    #[error("ticket gateway address invalid")]
    Gateway,
    /// Bytes remain after the last gateway.
    #[error("trailing bytes after ticket body")]
    TrailingBytes,
    /// The signature does not verify with the gateway's key (forged or altered).
    #[error("ticket signature invalid")]
    BadSignature,
    /// The ticket is well formed and signed but `now >= expires_at_unix`.
    #[error("ticket expired at {expires_at_unix} (now {now_unix})")]
    Expired {
        /// The ticket's expiry.
        expires_at_unix: u64,
        /// The time it was checked at.
        now_unix: u64,
    },
    /// A signing key could not be generated or parsed.
    #[error("ticket signing key invalid")]
    Key,
}

/// The portal's Ed25519 signing key for tickets. Cloning shares the key (cheap).
#[derive(Clone)]
pub struct TicketSigner {
    pair: std::sync::Arc<Ed25519KeyPair>,
    pkcs8: Vec<u8>,
}

impl TicketSigner {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, TicketError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| TicketError::Key)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from PKCS#8 (v2 as [`TicketSigner::pkcs8`] returns, or v1 as other
    /// tools write; a v2 document's public key must match its private key).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TicketError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| TicketError::Key)?;
        Ok(Self {
            pair: std::sync::Arc::new(pair),
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The PKCS#8 document of the key (secret).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key gateways verify with.
    pub fn verify_key(&self) -> TicketVerifyKey {
        let mut k = [0u8; VERIFY_KEY_LEN];
        k.copy_from_slice(self.pair.public_key().as_ref());
        TicketVerifyKey(k)
    }

    /// The signed ticket bytes; fails only for a field outside its limit.
    pub fn sign(&self, ticket: &Ticket) -> Result<Vec<u8>, TicketError> {
        let mut out = Vec::with_capacity(256);
        wire::encode(ticket, &mut out)?;
        let sig = self.pair.sign(&signed_message(&out));
        out.extend_from_slice(sig.as_ref());
        if out.len() > MAX_TICKET_LEN {
            return Err(TicketError::TooLong(out.len()));
        }
        Ok(out)
    }
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("verify_key", &self.verify_key())
            .finish_non_exhaustive()
    }
}

/// The Ed25519 public key that verifies tickets.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketVerifyKey(pub [u8; VERIFY_KEY_LEN]);

impl fmt::Debug for TicketVerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketVerifyKey({self})")
    }
}

/// Lowercase hexadecimal, 64 characters.
impl fmt::Display for TicketVerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for TicketVerifyKey {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut k = [0u8; VERIFY_KEY_LEN];
        hex::decode_to_slice(s.trim(), &mut k).map_err(|_| TicketError::Key)?;
        Ok(Self(k))
    }
}

/// Checks a signed ticket: length, format, signature, then expiry against `now_unix`.
pub fn verify(bytes: &[u8], key: &TicketVerifyKey, now_unix: u64) -> Result<Ticket, TicketError> {
    let ticket = verify_signature(bytes, key)?;
    if now_unix >= ticket.expires_at_unix {
        return Err(TicketError::Expired {
            expires_at_unix: ticket.expires_at_unix,
            now_unix,
        });
    }
    Ok(ticket)
}

/// [`verify`] against several keys (key rotation): accepted if any key verifies it.
/// The bytes are parsed once; each key costs one signature check.
pub fn verify_any(
    bytes: &[u8],
    keys: &[TicketVerifyKey],
    now_unix: u64,
) -> Result<Ticket, TicketError> {
    if keys.is_empty() {
        // Nothing can verify; still report malformed input as malformed. The result is
        // an error whatever this check says.
        verify_signature(bytes, &TicketVerifyKey([0; VERIFY_KEY_LEN]))?;
    }
    for key in keys {
        match verify(bytes, key, now_unix) {
            Err(TicketError::BadSignature) => continue,
            other => return other,
        }
    }
    Err(TicketError::BadSignature)
}

/// Length, format and signature checks of [`verify`], without the expiry check.
pub fn verify_signature(bytes: &[u8], key: &TicketVerifyKey) -> Result<Ticket, TicketError> {
    if bytes.len() > MAX_TICKET_LEN {
        return Err(TicketError::TooLong(bytes.len()));
    }
    let split = bytes
        .len()
        .checked_sub(SIGNATURE_LEN)
        .ok_or(TicketError::Truncated)?;
    let (body, sig) = bytes.split_at(split);
    let ticket = wire::decode(body)?;
    UnparsedPublicKey::new(&ED25519, &key.0)
        .verify(&signed_message(body), sig)
        .map_err(|_| TicketError::BadSignature)?;
    Ok(ticket)
}

/// Entry point for the `ticket` fuzz target: decodes arbitrary bytes as a ticket body
/// and as a signed ticket; a body that decodes must re-encode to the same bytes.
#[doc(hidden)]
pub fn fuzz_ticket(data: &[u8]) {
    if let Ok(t) = wire::decode(data) {
        let mut again = Vec::new();
        let encoded = wire::encode(&t, &mut again);
        assert!(
            encoded.is_ok() && again == data,
            "ticket body does not round-trip"
        );
    }
    let _ = verify(data, &TicketVerifyKey([0x42; VERIFY_KEY_LEN]), 0);
}

/// Decodes an unsigned body (tests and tools only).
#[doc(hidden)]
pub fn decode_body(body: &[u8]) -> Result<Ticket, TicketError> {
    wire::decode(body)
}

/// Encodes an unsigned body (tests and tools only).
#[doc(hidden)]
pub fn encode_body(ticket: &Ticket) -> Result<Vec<u8>, TicketError> {
    let mut out = Vec::new();
    wire::encode(ticket, &mut out)?;
    Ok(out)
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
mod tests;
