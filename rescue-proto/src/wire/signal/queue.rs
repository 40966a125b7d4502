//! QUEUE (0x04) and QUEUE_LIST (0x05): the console lists its account's waiting sessions.

use bytes::BufMut;

use super::reader::Reader;
use super::SignalError;
use crate::guid::{Guid, GUID_LEN};
use crate::wire::limits::MAX_QUEUE_ENTRIES;

/// `QUEUE{}` (empty payload): the account is the one of the console's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queue;

impl Queue {
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

/// One waiting session in a QUEUE_LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    /// The session.
    pub guid: Guid,
    /// Seconds since it registered.
    pub waiting_secs: u32,
}

/// Bytes of one entry on the wire.
const ENTRY_LEN: usize = GUID_LEN + 4;

/// `QUEUE_LIST{count u16, count × (guid, waiting_secs u32)}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueList {
    entries: Vec<QueueEntry>,
}

impl QueueList {
    /// Wraps at most [`MAX_QUEUE_ENTRIES`] entries.
    pub fn new(entries: Vec<QueueEntry>) -> Result<Self, SignalError> {
        check_count(entries.len())?;
        Ok(Self { entries })
    }

    /// The entries, in the gateway's order (longest waiting first).
    pub fn entries(&self) -> &[QueueEntry] {
        &self.entries
    }

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let count = usize::from(r.u16()?);
        // PROTOCOL.md 3.4: "count is at most 256"; checked before the list is allocated.
        check_count(count)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(QueueEntry {
                guid: r.guid()?,
                waiting_secs: r.u32()?,
            });
        }
        r.finish()?;
        Ok(Self { entries })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        // `new` bounds the count to MAX_QUEUE_ENTRIES < 2^16.
        dst.put_u16(self.entries.len() as u16);
        for e in &self.entries {
            dst.put_slice(e.guid.as_bytes());
            dst.put_u32(e.waiting_secs);
        }
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        2 + ENTRY_LEN * self.entries.len()
    }
}

fn check_count(count: usize) -> Result<(), SignalError> {
    if count > MAX_QUEUE_ENTRIES {
        return Err(SignalError::Length {
            field: "queue count",
            len: count,
        });
    }
    Ok(())
}
