//! CLAIM (0x06) and PAIRED (0x07): the console takes a session; the relay starts.

use bytes::BufMut;

use super::reader::Reader;
use super::types::{AccountId, ResumeSecret, TechnicianName};
use super::SignalError;
use crate::guid::{Guid, GUID_LEN};
use crate::wire::limits::MAX_ACCOUNT_LEN;

/// `CLAIM{guid}`: connect this console to the waiting session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The session to claim.
    pub guid: Guid,
}

impl Claim {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let guid = r.guid()?;
        r.finish()?;
        Ok(Self { guid })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(self.guid.as_bytes());
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        GUID_LEN
    }
}

/// Peer kind byte of a PAIRED sent to the applet (the peer is a console).
const TO_APPLET: u8 = 0x01;
/// Peer kind byte of a PAIRED sent to the console (the peer is an applet).
const TO_CONSOLE: u8 = 0x02;

/// `PAIRED{kind u8, ...}`: who the other party is. The two variants go to the two ends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Paired {
    /// Sent to the applet (kind 0x01): the technician, from the console's certificate.
    ToApplet {
        /// The console's account.
        account: AccountId,
        /// The technician's display name.
        technician: TechnicianName,
    },
    /// Sent to the console (kind 0x02): the session and the console's resume secret.
    ToConsole {
        /// The claimed session.
        guid: Guid,
        /// The console's secret for REATTACH.
        resume_secret: ResumeSecret,
    },
}

impl Paired {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let out = match r.u8()? {
            TO_APPLET => {
                let len = usize::from(r.u8()?);
                if len == 0 || len > MAX_ACCOUNT_LEN {
                    return Err(SignalError::Length {
                        field: "account",
                        len,
                    });
                }
                let account = AccountId::from_decimal(r.take(len)?)
                    .map_err(|_| SignalError::Text { field: "account" })?;
                let len = usize::from(r.u8()?);
                let technician = TechnicianName::from_utf8(r.take(len)?)?;
                Self::ToApplet {
                    account,
                    technician,
                }
            }
            TO_CONSOLE => Self::ToConsole {
                guid: r.guid()?,
                resume_secret: ResumeSecret::from_bytes(r.array()?),
            },
            kind => {
                return Err(SignalError::UnknownCode {
                    field: "paired kind",
                    code: kind.into(),
                })
            }
        };
        r.finish()?;
        Ok(out)
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        match self {
            Self::ToApplet {
                account,
                technician,
            } => {
                dst.put_u8(TO_APPLET);
                // Both texts are bounded by their types to at most 128 < 256 bytes.
                let text = account.to_string();
                // At most MAX_ACCOUNT_DIGITS (20) bytes: always fits the length byte.
                dst.put_u8(text.len() as u8);
                dst.put_slice(text.as_bytes());
                dst.put_u8(technician.as_str().len() as u8);
                dst.put_slice(technician.as_str().as_bytes());
            }
            Self::ToConsole {
                guid,
                resume_secret,
            } => {
                dst.put_u8(TO_CONSOLE);
                dst.put_slice(guid.as_bytes());
                dst.put_slice(resume_secret.as_bytes());
            }
        }
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        match self {
            Self::ToApplet {
                account,
                technician,
            } => 3 + account.to_string().len() + technician.as_str().len(),
            Self::ToConsole { resume_secret, .. } => 1 + GUID_LEN + resume_secret.as_bytes().len(),
        }
    }
}
