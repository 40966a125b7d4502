//! A bounds-checked reader over a message payload.
//!
//! Every read returns [`SignalError::Truncated`] instead of overrunning, and
//! [`Reader::finish`] rejects trailing bytes. Nothing here allocates.

use super::SignalError;
use crate::guid::{Guid, GUID_LEN};

/// Reads big-endian fields from a payload, front to back.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Self {
        Self { rest: payload }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], SignalError> {
        if n > self.rest.len() {
            return Err(SignalError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], SignalError> {
        self.take(N)?.try_into().map_err(|_| SignalError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, SignalError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, SignalError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, SignalError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, SignalError> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn guid(&mut self) -> Result<Guid, SignalError> {
        self.array::<GUID_LEN>().map(Guid::from_bytes)
    }

    /// Ends the read; bytes left over are an error.
    pub(crate) fn finish(self) -> Result<(), SignalError> {
        // PROTOCOL.md 3: "a payload longer than its fields is rejected".
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SignalError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_rejects_overrun_and_trailing_bytes() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 9]);
        assert_eq!(r.u16(), Ok(1));
        assert_eq!(r.u32(), Ok(2));
        assert_eq!(r.u16(), Err(SignalError::Truncated));
        assert_eq!(r.finish(), Err(SignalError::TrailingBytes(1)));
    }
}
