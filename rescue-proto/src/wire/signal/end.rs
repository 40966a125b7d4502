//! PEER_GONE (0x0B), CLOSE (0x0C) and ERROR (0x0D): how sessions and connections end.

use bytes::BufMut;

use super::reader::Reader;
use super::types::{CloseReason, ErrorCode, ErrorText};
use super::SignalError;

/// `PEER_GONE{grace_secs u32}`: the other party lost its hop. It has `grace_secs` to
/// REATTACH; 0 means the session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerGone {
    /// Seconds the other party has to come back; 0 = never.
    pub grace_secs: u32,
}

impl PeerGone {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let grace_secs = r.u32()?;
        r.finish()?;
        Ok(Self { grace_secs })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.grace_secs);
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        4
    }
}

/// `CLOSE{reason u16}`: the sender ends the session and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// Why.
    pub reason: CloseReason,
}

impl Close {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let reason = CloseReason::from_code(r.u16()?)?;
        r.finish()?;
        Ok(Self { reason })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u16(self.reason.code());
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        2
    }
}

/// `ERROR{code u16, message_len u8, message}`: a refused request or a fatal condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// What went wrong.
    pub code: ErrorCode,
    /// A short hint for logs; never shown as authoritative.
    pub message: ErrorText,
}

impl ErrorMessage {
    /// An ERROR with an empty message.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: ErrorText::default(),
        }
    }

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let code = ErrorCode::from_code(r.u16()?)?;
        let len = usize::from(r.u8()?);
        let message = ErrorText::from_utf8(r.take(len)?)?;
        r.finish()?;
        Ok(Self { code, message })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u16(self.code.code());
        // ErrorText is at most 128 < 256 bytes.
        dst.put_u8(self.message.as_str().len() as u8);
        dst.put_slice(self.message.as_str().as_bytes());
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        3 + self.message.as_str().len()
    }
}
