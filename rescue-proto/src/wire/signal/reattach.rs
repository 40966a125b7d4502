//! REATTACH (0x0E), RESUMED (0x0F) and PEER_BACK (0x10): a party that lost its hop
//! takes its place in the session again within the grace period.

use bytes::BufMut;

use super::reader::Reader;
use super::types::ResumeSecret;
use super::SignalError;
use crate::guid::{Guid, GUID_LEN};
use crate::wire::limits::RESUME_SECRET_LEN;

/// Declares a message of exactly a GUID and a resume secret.
macro_rules! guid_secret_message {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The session.
            pub guid: Guid,
            /// The party's resume secret.
            pub resume_secret: ResumeSecret,
        }

        impl $name {
            /// Payload length.
            pub const LEN: usize = GUID_LEN + RESUME_SECRET_LEN;

            /// Parses the payload.
            pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
                let mut r = Reader::new(payload);
                let guid = r.guid()?;
                let resume_secret = ResumeSecret::from_bytes(r.array()?);
                r.finish()?;
                Ok(Self { guid, resume_secret })
            }

            /// Appends the payload.
            pub fn encode<B: BufMut>(&self, dst: &mut B) {
                dst.put_slice(self.guid.as_bytes());
                dst.put_slice(self.resume_secret.as_bytes());
            }

            /// Payload length.
            pub fn payload_len(&self) -> usize {
                Self::LEN
            }
        }
    };
}

guid_secret_message!(
    /// `REATTACH{guid, resume_secret}`: the secret from REGISTERED (applet) or PAIRED
    /// (console); a console must also present the same certificate identity as before.
    Reattach
);
/// State byte of RESUMED: the session still waits for a technician.
const STATE_WAITING: u8 = 0x01;
/// State byte of RESUMED: the session is paired; the relay runs.
const STATE_PAIRED: u8 = 0x02;

/// `RESUMED{guid, resume_secret, state u8}`: the receiver is back in the session. The
/// secret is a fresh one that replaces the used one; `state` says whether the session
/// still waits (0x01) or is paired (0x02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The session.
    pub guid: Guid,
    /// The party's new resume secret.
    pub resume_secret: ResumeSecret,
    /// Whether the session is paired (else it still waits for a technician).
    pub paired: bool,
}

impl Resumed {
    /// Payload length.
    pub const LEN: usize = GUID_LEN + RESUME_SECRET_LEN + 1;

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let guid = r.guid()?;
        let resume_secret = ResumeSecret::from_bytes(r.array()?);
        let paired = match r.u8()? {
            STATE_WAITING => false,
            STATE_PAIRED => true,
            s => {
                return Err(SignalError::UnknownCode {
                    field: "resumed state",
                    code: s.into(),
                })
            }
        };
        r.finish()?;
        Ok(Self {
            guid,
            resume_secret,
            paired,
        })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(self.guid.as_bytes());
        dst.put_slice(self.resume_secret.as_bytes());
        dst.put_u8(if self.paired {
            STATE_PAIRED
        } else {
            STATE_WAITING
        });
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        Self::LEN
    }
}

macro_rules! empty_message {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl $name {
            /// Parses the (empty) payload.
            pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
                Reader::new(payload).finish().map(|()| Self)
            }

            /// Appends the (empty) payload.
            pub fn encode<B: BufMut>(&self, _dst: &mut B) {}

            /// Payload length.
            pub fn payload_len(&self) -> usize {
                0
            }
        }
    };
}
pub(crate) use empty_message;

empty_message!(
    /// `PEER_BACK{}`: the other party has reattached; a new end-to-end path may start.
    PeerBack
);
