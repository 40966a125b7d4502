//! HELLO (0x01): version and role, the first frame in each direction.

use bytes::BufMut;

use super::reader::Reader;
use super::types::Speaker;
use super::SignalError;

/// `HELLO{version u16, role u8, flags u8}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version ([`PROTOCOL_VERSION`](crate::wire::limits::PROTOCOL_VERSION)).
    pub version: u16,
    /// Who sends it: an applet, a console or a gateway.
    pub role: Speaker,
}

impl Hello {
    /// Payload length.
    pub const LEN: usize = 4;

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let version = r.u16()?;
        let role = Speaker::from_code(r.u8()?)?;
        // PROTOCOL.md 3.1: "flags: reserved, 0; any other value is rejected".
        let flags = r.u8()?;
        if flags != 0 {
            return Err(SignalError::Reserved {
                field: "hello flags",
            });
        }
        r.finish()?;
        Ok(Self { version, role })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u16(self.version);
        dst.put_u8(self.role.code());
        dst.put_u8(0);
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        Self::LEN
    }
}
