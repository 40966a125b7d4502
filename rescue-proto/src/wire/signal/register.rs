//! REGISTER (0x02) and REGISTERED (0x03): the applet announces its session.

use bytes::BufMut;

use super::reader::Reader;
use super::types::ResumeSecret;
use super::SignalError;
use crate::guid::{Guid, GUID_LEN};
use crate::wire::limits::{MAX_TICKET_LEN, RESUME_SECRET_LEN};

/// `REGISTER{ticket_len u16, ticket}`: the applet's ticket as opaque bytes (its format
/// and signature belong to `PROTOCOL.md` section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    ticket: Vec<u8>,
}

impl Register {
    /// Wraps a ticket of 1 to [`MAX_TICKET_LEN`] bytes.
    pub fn new(ticket: Vec<u8>) -> Result<Self, SignalError> {
        check_ticket_len(ticket.len())?;
        Ok(Self { ticket })
    }

    /// The ticket bytes.
    pub fn ticket(&self) -> &[u8] {
        &self.ticket
    }

    /// The ticket, by value.
    pub fn into_ticket(self) -> Vec<u8> {
        self.ticket
    }

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let len = usize::from(r.u16()?);
        // PROTOCOL.md 3.2: "ticket_len is 1 to 4096"; checked before anything is copied.
        check_ticket_len(len)?;
        let ticket = r.take(len)?.to_vec();
        r.finish()?;
        Ok(Self { ticket })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        // `new` bounds the ticket to MAX_TICKET_LEN < 2^16.
        dst.put_u16(self.ticket.len() as u16);
        dst.put_slice(&self.ticket);
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        2 + self.ticket.len()
    }
}

fn check_ticket_len(len: usize) -> Result<(), SignalError> {
    if len == 0 || len > MAX_TICKET_LEN {
        return Err(SignalError::Length {
            field: "ticket",
            len,
        });
    }
    Ok(())
}

/// `REGISTERED{guid, lifetime_secs u32, resume_secret}`: the session waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The session's GUID (from the ticket).
    pub guid: Guid,
    /// Seconds the session may wait unclaimed before the gateway ends it.
    pub lifetime_secs: u32,
    /// The applet's secret for REATTACH.
    pub resume_secret: ResumeSecret,
}

impl Registered {
    /// Payload length.
    pub const LEN: usize = GUID_LEN + 4 + RESUME_SECRET_LEN;

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let guid = r.guid()?;
        let lifetime_secs = r.u32()?;
        let resume_secret = ResumeSecret::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self {
            guid,
            lifetime_secs,
            resume_secret,
        })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(self.guid.as_bytes());
        dst.put_u32(self.lifetime_secs);
        dst.put_slice(self.resume_secret.as_bytes());
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        Self::LEN
    }
}
