//! REATTACH (0x0E), RESUMED (0x0F) and PEER_BACK (0x10): a party that lost its hop
//! takes its place in the session again within the grace period.

use bytes::BufMut;

use super::reader::Reader;
use super::types::ResumeSecret;
use super::SignalError;
use crate::guid::{Guid, GUID_LEN};
use crate::wire::limits::RESUME_SECRET_LEN;

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
guid_secret_message!(
    /// `RESUMED{guid, resume_secret}`: the sender is back in the session; the secret is a
    /// fresh one that replaces the used one.
    Resumed
);

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
