//! PING (0x09) and PONG (0x0A): keepalive between a peer and the gateway.

use bytes::BufMut;

use super::reader::Reader;
use super::SignalError;

macro_rules! nonce_message {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            /// An opaque value; a PONG echoes the PING's.
            pub nonce: u64,
        }

        impl $name {
            /// Parses the payload.
            pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
                let mut r = Reader::new(payload);
                let nonce = r.u64()?;
                r.finish()?;
                Ok(Self { nonce })
            }

            /// Appends the payload.
            pub fn encode<B: BufMut>(&self, dst: &mut B) {
                dst.put_u64(self.nonce);
            }

            /// Payload length.
            pub fn payload_len(&self) -> usize {
                8
            }
        }
    };
}

nonce_message!(
    /// `PING{nonce u64}`: the receiver answers with a PONG carrying the same nonce.
    Ping
);
nonce_message!(
    /// `PONG{nonce u64}`: the answer to a PING.
    Pong
);
