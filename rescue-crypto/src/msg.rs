//! The messages the two ends exchange inside the inner TLS before the session layer:
//! BIND, the three SAS messages and, on direct paths, NOMINATE (PROTOCOL.md 6.4, 6.5).
//!
//! Each message is a type byte and a fixed-length body, so [`InnerMsg::decode`] knows
//! from the first byte how much it needs; it returns `Ok(None)` while bytes are missing,
//! never panics, and never allocates.

use crate::bind::{Role, TAG_LEN};

/// Type byte of BIND.
pub const TYPE_BIND: u8 = 0x01;
/// Type byte of SAS_COMMIT.
pub const TYPE_SAS_COMMIT: u8 = 0x02;
/// Type byte of SAS_NONCE.
pub const TYPE_SAS_NONCE: u8 = 0x03;
/// Type byte of SAS_REVEAL.
pub const TYPE_SAS_REVEAL: u8 = 0x04;
/// Type byte of NOMINATE (the console picks this direct path; no body).
pub const TYPE_NOMINATE: u8 = 0x05;
/// Length of a SAS nonce or commitment.
pub const SAS_FIELD_LEN: usize = 32;
/// Longest message (BIND): type, role, tag.
pub const MAX_MSG_LEN: usize = 2 + TAG_LEN;

/// One BIND or SAS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InnerMsg {
    /// The sender's role and its BIND tag.
    Bind {
        /// Which end sends it.
        role: Role,
        /// The tag (see [`crate::bind`]).
        tag: [u8; TAG_LEN],
    },
    /// The applet's commitment to its nonce.
    SasCommit([u8; SAS_FIELD_LEN]),
    /// The console's nonce.
    SasNonce([u8; SAS_FIELD_LEN]),
    /// The applet's nonce, revealed.
    SasReveal([u8; SAS_FIELD_LEN]),
    /// On a direct path, after BIND: the console (the controlling side) will use this
    /// connection. The applet uses no direct connection that was not nominated.
    Nominate,
}

/// A message that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// The type byte is not one of 6.4/6.5.
    #[error("unknown inner message type {0:#04x}")]
    UnknownType(u8),
    /// A BIND with a role code other than applet or console.
    #[error("unknown role {0:#04x}")]
    UnknownRole(u8),
}

impl InnerMsg {
    /// Length of the encoded message.
    pub const fn len(&self) -> usize {
        match self {
            InnerMsg::Bind { .. } => MAX_MSG_LEN,
            InnerMsg::Nominate => 1,
            _ => 1 + SAS_FIELD_LEN,
        }
    }

    /// Always false: no message is empty (for clippy's `len` convention).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        match self {
            InnerMsg::Bind { role, tag } => {
                out.extend_from_slice(&[TYPE_BIND, role.code()]);
                out.extend_from_slice(tag);
            }
            InnerMsg::SasCommit(v) => push(&mut out, TYPE_SAS_COMMIT, v),
            InnerMsg::SasNonce(v) => push(&mut out, TYPE_SAS_NONCE, v),
            InnerMsg::SasReveal(v) => push(&mut out, TYPE_SAS_REVEAL, v),
            InnerMsg::Nominate => out.push(TYPE_NOMINATE),
        }
        out
    }

    /// Decodes one message from the front of `buf`: `Ok(None)` if more bytes are
    /// needed, else the message and the bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, MsgError> {
        let Some(&ty) = buf.first() else {
            return Ok(None);
        };
        let need = match ty {
            TYPE_BIND => MAX_MSG_LEN,
            TYPE_SAS_COMMIT | TYPE_SAS_NONCE | TYPE_SAS_REVEAL => 1 + SAS_FIELD_LEN,
            TYPE_NOMINATE => return Ok(Some((InnerMsg::Nominate, 1))),
            other => return Err(MsgError::UnknownType(other)),
        };
        let Some(body) = buf.get(1..need) else {
            return Ok(None);
        };
        let msg = match ty {
            TYPE_BIND => {
                let (role, tag) = body.split_first().ok_or(MsgError::UnknownType(ty))?;
                InnerMsg::Bind {
                    role: Role::from_code(*role).ok_or(MsgError::UnknownRole(*role))?,
                    tag: field(tag)?,
                }
            }
            TYPE_SAS_COMMIT => InnerMsg::SasCommit(field(body)?),
            TYPE_SAS_NONCE => InnerMsg::SasNonce(field(body)?),
            _ => InnerMsg::SasReveal(field(body)?),
        };
        Ok(Some((msg, need)))
    }
}

fn push(out: &mut Vec<u8>, ty: u8, v: &[u8; SAS_FIELD_LEN]) {
    out.push(ty);
    out.extend_from_slice(v);
}

fn field(b: &[u8]) -> Result<[u8; SAS_FIELD_LEN], MsgError> {
    // Lengths are fixed by the type byte above; a mismatch cannot happen, and is
    // reported as the type being wrong rather than a panic.
    b.try_into().map_err(|_| MsgError::UnknownType(0))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_msg() -> impl Strategy<Value = InnerMsg> {
        prop_oneof![
            (any::<bool>(), any::<[u8; 32]>()).prop_map(|(a, tag)| InnerMsg::Bind {
                role: if a { Role::Applet } else { Role::Console },
                tag
            }),
            any::<[u8; 32]>().prop_map(InnerMsg::SasCommit),
            any::<[u8; 32]>().prop_map(InnerMsg::SasNonce),
            any::<[u8; 32]>().prop_map(InnerMsg::SasReveal),
            Just(InnerMsg::Nominate),
        ]
    }

    #[test]
    fn bad_type_and_role_are_rejected() {
        assert_eq!(InnerMsg::decode(&[0x06]), Err(MsgError::UnknownType(6)));
        assert_eq!(
            InnerMsg::decode(&[TYPE_NOMINATE, 9]),
            Ok(Some((InnerMsg::Nominate, 1)))
        );
        assert_eq!(
            InnerMsg::decode(&[0x00, 1, 2]),
            Err(MsgError::UnknownType(0))
        );
        let mut b = vec![TYPE_BIND, 0x03];
        b.extend_from_slice(&[0; 32]);
        assert_eq!(InnerMsg::decode(&b), Err(MsgError::UnknownRole(3)));
        assert_eq!(InnerMsg::decode(&[]), Ok(None));
    }

    proptest! {
        #[test]
        fn round_trip_and_every_prefix_is_incomplete(m in arb_msg(), extra in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = m.encode();
            prop_assert_eq!(bytes.len(), m.len());
            for cut in 0..bytes.len() {
                prop_assert_eq!(InnerMsg::decode(&bytes[..cut]), Ok(None));
            }
            let n = bytes.len();
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(InnerMsg::decode(&bytes), Ok(Some((m, n))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(Some((m, n))) = InnerMsg::decode(&data) {
                prop_assert_eq!(&m.encode()[..], &data[..n]);
            }
        }
    }
}
