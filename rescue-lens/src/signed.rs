//! Portal-signed session manager requests (PROTOCOL.md 9.4): the portal signs each
//! request with its ticket key (the same Ed25519 key and scheme as applet tickets,
//! under its own label); the session manager checks the signature over the method, the
//! path, a timestamp, a nonce and the body's SHA-256 before it parses the body.
//!
//! ```text
//!  Rescue-Date:      unix seconds (decimal)
//!  Rescue-Nonce:     32 lowercase hex digits (16 random bytes)
//!  Rescue-Signature: 128 lowercase hex digits
//!  signed message:   METHOD "\n" path "\n" date "\n" nonce "\n" hex(SHA-256(body))
//! ```
//!
//! A request is refused when unsigned, signed by another key, dated more than
//! [`REQUEST_WINDOW`] from the manager's clock, or carrying a nonce seen within the
//! window (a replay). The nonce memory is bounded ([`MAX_NONCES`]); when full, requests
//! are refused rather than old nonces forgotten early.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use rescue_crypto::ticket::{TicketSigner, TicketVerifyKey};

/// Signature label of session manager requests.
pub const REQUEST_LABEL: &[u8] = b"rescue-lens-request-v1";
/// Largest clock difference accepted: the portal and the manager keep NTP time.
pub const REQUEST_WINDOW: Duration = Duration::from_secs(60);
/// Most nonces remembered (one window of requests): bounds the replay memory.
pub const MAX_NONCES: usize = 100_000;
/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 16;

/// The date header.
pub const DATE_HEADER: &str = "rescue-date";
/// The nonce header.
pub const NONCE_HEADER: &str = "rescue-nonce";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "rescue-signature";

/// Why a request was refused before its body was parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A signature header is missing or malformed.
    #[error("request not signed")]
    Unsigned,
    /// The signature does not verify with the portal's key.
    #[error("request signature invalid")]
    BadSignature,
    /// The date is outside the window.
    #[error("request date outside the window")]
    Stale,
    /// The nonce was used already.
    #[error("request replayed")]
    Replay,
    /// The nonce memory is full.
    #[error("too many requests")]
    Busy,
}

/// The message a request signature covers.
pub fn signed_message(method: &str, path: &str, date: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "{method}\n{path}\n{date}\n{nonce}\n{}",
        hex::encode(digest.as_ref())
    )
    .into_bytes()
}

/// Portal side: the three headers for a request at `now_unix` with a fresh nonce.
pub fn sign_request(
    key: &TicketSigner,
    method: &str,
    path: &str,
    body: &[u8],
    now_unix: u64,
) -> Vec<(&'static str, String)> {
    let mut n = [0u8; NONCE_LEN];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n);
    sign_with_nonce(key, method, path, body, now_unix, &hex::encode(n))
}

/// [`sign_request`] with a given nonce (test vectors).
pub fn sign_with_nonce(
    key: &TicketSigner,
    method: &str,
    path: &str,
    body: &[u8],
    now_unix: u64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let msg = signed_message(method, path, now_unix, nonce, body);
    // The label is a constant within the limit: signing cannot fail.
    let sig = key
        .sign_labelled(REQUEST_LABEL, &msg)
        .map(hex::encode)
        .unwrap_or_default();
    vec![
        (DATE_HEADER, now_unix.to_string()),
        (NONCE_HEADER, nonce.to_owned()),
        (SIGNATURE_HEADER, sig),
    ]
}

/// Manager side: the portal's keys and the nonces seen.
#[derive(Debug)]
pub struct RequestVerifier {
    keys: Vec<TicketVerifyKey>,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_nonce: HashMap<[u8; NONCE_LEN], u64>,
    by_time: BTreeMap<(u64, [u8; NONCE_LEN]), ()>,
}

impl RequestVerifier {
    /// A verifier accepting requests signed by any of `keys` (key rotation).
    pub fn new(keys: Vec<TicketVerifyKey>) -> Self {
        Self {
            keys,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Checks a request's headers (`get` looks one up by lowercase name) and raw body at
    /// `now_unix`; on success its nonce is spent.
    pub fn check<'a>(
        &self,
        method: &str,
        path: &str,
        get: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        now_unix: u64,
    ) -> Result<(), AuthError> {
        let date: u64 = get(DATE_HEADER)
            .and_then(|d| d.parse().ok())
            .ok_or(AuthError::Unsigned)?;
        let nonce_hex = get(NONCE_HEADER).ok_or(AuthError::Unsigned)?;
        let mut nonce = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| AuthError::Unsigned)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(get(SIGNATURE_HEADER).ok_or(AuthError::Unsigned)?, &mut sig)
            .map_err(|_| AuthError::Unsigned)?;
        let msg = signed_message(method, path, date, nonce_hex, body);
        if !self
            .keys
            .iter()
            .any(|k| k.verify_labelled(REQUEST_LABEL, &msg, &sig).is_ok())
        {
            return Err(AuthError::BadSignature);
        }
        let w = REQUEST_WINDOW.as_secs();
        if date.abs_diff(now_unix) > w {
            return Err(AuthError::Stale);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Forget nonces whose date left the window: such a request is refused as stale.
        while let Some((&(d, n), ())) = seen.by_time.first_key_value() {
            if d + w >= now_unix {
                break;
            }
            seen.by_time.remove(&(d, n));
            seen.by_nonce.remove(&n);
        }
        if seen.by_nonce.contains_key(&nonce) {
            return Err(AuthError::Replay);
        }
        if seen.by_nonce.len() >= MAX_NONCES {
            return Err(AuthError::Busy);
        }
        seen.by_nonce.insert(nonce, date);
        seen.by_time.insert((date, nonce), ());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_verify_once_and_only_as_signed() {
        let k = TicketSigner::generate().unwrap();
        let v = RequestVerifier::new(vec![k.verify_key()]);
        let h = sign_request(&k, "POST", "/lens", b"{}", 1000);
        let get = |name: &str| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(v.check("POST", "/lens", get, b"{}", 1000), Ok(()));
        assert_eq!(
            v.check("POST", "/lens", get, b"{}", 1001),
            Err(AuthError::Replay)
        );
        let h = sign_request(&k, "POST", "/lens", b"{}", 1000);
        let get = |name: &str| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(
            v.check("POST", "/lens", get, b"{ }", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.check("DELETE", "/lens", get, b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.check("POST", "/lens", get, b"{}", 1061),
            Err(AuthError::Stale)
        );
        assert_eq!(
            v.check("POST", "/lens", |_| None, b"{}", 1000),
            Err(AuthError::Unsigned)
        );
        let other = RequestVerifier::new(vec![TicketSigner::generate().unwrap().verify_key()]);
        assert_eq!(
            other.check("POST", "/lens", get, b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(v.check("POST", "/lens", get, b"{}", 1000), Ok(()));
    }
}
