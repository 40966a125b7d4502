//! Join tokens (PROTOCOL.md 9.5): short-lived, signed by the session manager, bound to
//! one meeting, one participant, a role and the direction that role streams.
//!
//! ```text
//!  token = 0x01 | meeting [16] | participant u32 | role u8 | direction u8 | expires u64 | sig [64]
//!  sig   = Ed25519 over  len(label) | "rescue-lens-join-v1" | everything before sig
//! ```
//!
//! The relay checks a token offline ([`verify`]): exact length, version, signature, the
//! role and direction pair, expiry; then that the meeting exists and the participant is
//! still joined. Nothing here panics on any input.

use rescue_crypto::ticket::{TicketSigner, TicketVerifyKey, SIGNATURE_LEN};

use crate::MeetingId;

/// Signature label of join tokens (domain separation from tickets and requests).
pub const JOIN_LABEL: &[u8] = b"rescue-lens-join-v1";
/// Length of a token: 31 body bytes and the signature.
pub const TOKEN_LEN: usize = BODY_LEN + SIGNATURE_LEN;
const BODY_LEN: usize = 1 + 16 + 4 + 1 + 1 + 8;
/// Format version.
pub const TOKEN_VERSION: u8 = 1;

/// Who joins: the app streams up, a console streams down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LensRole {
    /// The end user's app (the publisher).
    App = 1,
    /// A technician's console (a subscriber).
    Console = 2,
}

/// Which way media flows for the holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// Holder uploads.
    Up = 1,
    /// Holder receives.
    Down = 2,
}

impl LensRole {
    /// The only direction this role may have.
    pub fn direction(self) -> Direction {
        match self {
            LensRole::App => Direction::Up,
            LensRole::Console => Direction::Down,
        }
    }
}

/// A verified join token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The meeting.
    pub meeting: MeetingId,
    /// The participant id the session manager gave.
    pub participant: u32,
    /// The holder's role.
    pub role: LensRole,
    /// End of validity, seconds since the Unix epoch; valid while `now < expires`.
    pub expires_at_unix: u64,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not exactly [`TOKEN_LEN`] bytes.
    #[error("join token of {0} bytes")]
    Length(usize),
    /// Unknown version.
    #[error("join token version {0}")]
    Version(u8),
    /// Unknown role or direction, or a direction the role may not have.
    #[error("join token role and direction do not match")]
    Role,
    /// The signature does not verify.
    #[error("join token signature invalid")]
    Signature,
    /// Past its expiry.
    #[error("join token expired")]
    Expired,
    /// For another meeting than the one asked.
    #[error("join token for another meeting")]
    WrongMeeting,
}

impl JoinToken {
    /// The signed token bytes.
    pub fn sign(&self, key: &TicketSigner) -> Vec<u8> {
        let mut b = Vec::with_capacity(TOKEN_LEN);
        b.push(TOKEN_VERSION);
        b.extend_from_slice(&self.meeting.0);
        b.extend_from_slice(&self.participant.to_be_bytes());
        b.push(self.role as u8);
        b.push(self.role.direction() as u8);
        b.extend_from_slice(&self.expires_at_unix.to_be_bytes());
        // The label is a constant within MAX_LABEL_LEN: signing cannot fail.
        if let Ok(sig) = key.sign_labelled(JOIN_LABEL, &b) {
            b.extend_from_slice(&sig);
        }
        b
    }
}

/// Checks `bytes` against `key` at `now_unix`; the meeting and participant are checked
/// by the caller against its table.
pub fn verify(bytes: &[u8], key: &TicketVerifyKey, now_unix: u64) -> Result<JoinToken, TokenError> {
    if bytes.len() != TOKEN_LEN {
        return Err(TokenError::Length(bytes.len()));
    }
    let (body, sig) = bytes.split_at(BODY_LEN);
    if body[0] != TOKEN_VERSION {
        return Err(TokenError::Version(body[0]));
    }
    let role = match (body[21], body[22]) {
        (1, 1) => LensRole::App,
        (2, 2) => LensRole::Console,
        _ => return Err(TokenError::Role),
    };
    key.verify_labelled(JOIN_LABEL, body, sig)
        .map_err(|_| TokenError::Signature)?;
    let mut meeting = [0u8; 16];
    meeting.copy_from_slice(&body[1..17]);
    let participant = u32::from_be_bytes([body[17], body[18], body[19], body[20]]);
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&body[23..31]);
    let expires_at_unix = u64::from_be_bytes(exp);
    if now_unix >= expires_at_unix {
        return Err(TokenError::Expired);
    }
    Ok(JoinToken {
        meeting: MeetingId(meeting),
        participant,
        role,
        expires_at_unix,
    })
}

/// Fuzzing entry point: any bytes, never a panic.
#[doc(hidden)]
pub fn fuzz_token(data: &[u8]) {
    let _ = verify(data, &TicketVerifyKey([7; 32]), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_refuse() {
        let k = TicketSigner::generate().unwrap();
        let t = JoinToken {
            meeting: MeetingId([5; 16]),
            participant: 2,
            role: LensRole::Console,
            expires_at_unix: 100,
        };
        let b = t.sign(&k);
        assert_eq!(b.len(), TOKEN_LEN);
        assert_eq!(verify(&b, &k.verify_key(), 99), Ok(t));
        assert_eq!(verify(&b, &k.verify_key(), 100), Err(TokenError::Expired));
        let other = TicketSigner::generate().unwrap();
        assert_eq!(
            verify(&b, &other.verify_key(), 0),
            Err(TokenError::Signature)
        );
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(verify(&bad, &k.verify_key(), 0).is_err(), "byte {i}");
        }
        assert_eq!(
            verify(&b[1..], &k.verify_key(), 0),
            Err(TokenError::Length(94))
        );
    }
}
