//! Messages on the control channel (PROTOCOL.md 7.4): permission requests, grants,
//! denials and revocations. The end of the session is the END frame, not a message.
//!
//! Each message is the payload of one DATA frame on channel 0: a type byte, then fixed
//! fields. Decoding is strict (unknown type, wrong length, reserved bits: typed error).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::permission::{Permission, PermissionSet};

/// Why a request was denied (wire byte of DENY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
pub enum DenyReason {
    /// The group policy forbids it; the end user was not asked.
    Policy = 1,
    /// The end user said no.
    User = 2,
    /// The end user did not answer in time.
    Timeout = 3,
    /// Too many questions already wait for the end user.
    Busy = 4,
    /// The all-in-one prompt is not allowed by the policy.
    AllInOneForbidden = 5,
}

impl DenyReason {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Policy,
            2 => Self::User,
            3 => Self::Timeout,
            4 => Self::Busy,
            5 => Self::AllInOneForbidden,
            _ => return None,
        })
    }
}

/// One control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlMsg {
    /// Console asks for one permission.
    Request {
        /// Chosen by the console, echoed in the answer.
        request_id: u32,
        /// What is asked.
        permission: Permission,
    },
    /// Console asks, in one prompt, for every permission the policy allows.
    RequestAll {
        /// Chosen by the console, echoed in the answer.
        request_id: u32,
    },
    /// Applet grants the permissions of a request under one grant id.
    Grant {
        /// The request answered.
        request_id: u32,
        /// Names the grant for revocation.
        grant_id: u32,
        /// What is granted (never empty).
        permissions: PermissionSet,
    },
    /// Applet denies a request.
    Deny {
        /// The request answered.
        request_id: u32,
        /// Why.
        reason: DenyReason,
    },
    /// Either side withdraws a grant (the applet: the end user revoked it; the console:
    /// it no longer needs it).
    Revoke {
        /// The grant.
        grant_id: u32,
    },
}

const T_REQUEST: u8 = 0x01;
const T_REQUEST_ALL: u8 = 0x02;
const T_GRANT: u8 = 0x03;
const T_DENY: u8 = 0x04;
const T_REVOKE: u8 = 0x05;

/// A control message that breaks PROTOCOL.md 7.4; the session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlDecodeError {
    /// Empty payload or unknown type byte.
    #[error("unknown control message type")]
    UnknownType,
    /// The payload length does not match the type.
    #[error("control message has the wrong length")]
    BadLength,
    /// A permission code, permission set or reason byte is invalid.
    #[error("invalid field in control message")]
    BadField,
}

impl ControlMsg {
    /// The wire form.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(13);
        match *self {
            Self::Request {
                request_id,
                permission,
            } => {
                b.put_u8(T_REQUEST);
                b.put_u32(request_id);
                b.put_u8(permission.code());
            }
            Self::RequestAll { request_id } => {
                b.put_u8(T_REQUEST_ALL);
                b.put_u32(request_id);
            }
            Self::Grant {
                request_id,
                grant_id,
                permissions,
            } => {
                b.put_u8(T_GRANT);
                b.put_u32(request_id);
                b.put_u32(grant_id);
                b.put_u32(permissions.bits());
            }
            Self::Deny { request_id, reason } => {
                b.put_u8(T_DENY);
                b.put_u32(request_id);
                b.put_u8(reason as u8);
            }
            Self::Revoke { grant_id } => {
                b.put_u8(T_REVOKE);
                b.put_u32(grant_id);
            }
        }
        b.freeze()
    }

    /// Decodes one message from a control-channel payload.
    pub fn decode(mut p: &[u8]) -> Result<Self, ControlDecodeError> {
        let t = *p.first().ok_or(ControlDecodeError::UnknownType)?;
        let want = match t {
            T_REQUEST => 6,
            T_REQUEST_ALL | T_REVOKE => 5,
            T_GRANT => 13,
            T_DENY => 6,
            _ => return Err(ControlDecodeError::UnknownType),
        };
        if p.len() != want {
            return Err(ControlDecodeError::BadLength);
        }
        p.advance(1);
        let id = p.get_u32();
        let bad = ControlDecodeError::BadField;
        Ok(match t {
            T_REQUEST => Self::Request {
                request_id: id,
                permission: Permission::from_code(p.get_u8()).ok_or(bad)?,
            },
            T_REQUEST_ALL => Self::RequestAll { request_id: id },
            T_GRANT => {
                let grant_id = p.get_u32();
                let permissions = PermissionSet::from_bits(p.get_u32()).ok_or(bad)?;
                if permissions.is_empty() {
                    return Err(bad);
                }
                Self::Grant {
                    request_id: id,
                    grant_id,
                    permissions,
                }
            }
            T_DENY => Self::Deny {
                request_id: id,
                reason: DenyReason::from_u8(p.get_u8()).ok_or(bad)?,
            },
            _ => Self::Revoke { grant_id: id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding() {
        assert_eq!(
            ControlMsg::decode(&[]),
            Err(ControlDecodeError::UnknownType)
        );
        assert_eq!(
            ControlMsg::decode(&[9, 0, 0, 0, 0]),
            Err(ControlDecodeError::UnknownType)
        );
        assert_eq!(
            ControlMsg::decode(&[1, 0, 0, 0, 0]),
            Err(ControlDecodeError::BadLength)
        );
        assert_eq!(
            ControlMsg::decode(&[1, 0, 0, 0, 0, 16]),
            Err(ControlDecodeError::BadField)
        );
        let empty_grant = [3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            ControlMsg::decode(&empty_grant),
            Err(ControlDecodeError::BadField)
        );
        assert_eq!(
            ControlMsg::decode(&[4, 0, 0, 0, 1, 0]),
            Err(ControlDecodeError::BadField)
        );
    }
}
