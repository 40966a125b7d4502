//! The gateway frame: a 4-byte header and a payload.
//!
//! ```text
//!  0        1        2        3        4
//! +--------+--------+--------+--------+----------------------------+
//! |  type  |     length (u24, big-endian)  |  payload (length bytes)    |
//! +--------+--------+--------+--------+----------------------------+
//! ```
//!
//! [`Frame`] is a zero-copy view over a buffer; [`Header`] is the parsed header. A length
//! above [`MAX_PAYLOAD`] or an unknown type is rejected from the four header bytes
//! alone, before anything is reserved or read. No function here panics: accessors of a
//! view built with [`Frame::new_checked`] index only within the checked length, and
//! [`Frame::new_unchecked`] accessors use checked access and return errors.

use bytes::BufMut;

pub use super::limits::MAX_PAYLOAD;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Largest whole frame: header plus [`MAX_PAYLOAD`].
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

/// Byte offsets of the header fields.
pub mod field {
    use core::ops::{Range, RangeFrom};

    /// The frame type byte.
    pub const TYPE: usize = 0;
    /// The 24-bit big-endian payload length.
    pub const LENGTH: Range<usize> = 1..4;
    /// The payload.
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Frame type codes (`PROTOCOL.md` 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum FrameType {
    /// Version and role; the first frame in each direction.
    Hello = 0x01,
    /// Applet → gateway: register a session with a ticket.
    Register = 0x02,
    /// Gateway → applet: the session waits for a technician.
    Registered = 0x03,
    /// Console → gateway: list the waiting sessions of my account.
    Queue = 0x04,
    /// Gateway → console: the waiting sessions.
    QueueList = 0x05,
    /// Console → gateway: connect me to this session.
    Claim = 0x06,
    /// Gateway → both: the relay runs.
    Paired = 0x07,
    /// Opaque end-to-end bytes, forwarded verbatim.
    Data = 0x08,
    /// Keepalive request.
    Ping = 0x09,
    /// Keepalive answer.
    Pong = 0x0A,
    /// Gateway → peer: the other party lost its hop.
    PeerGone = 0x0B,
    /// Orderly end of the connection.
    Close = 0x0C,
    /// A refused request or a fatal condition, with a code.
    Error = 0x0D,
    /// Peer → gateway: take my place again in a session after a lost hop.
    Reattach = 0x0E,
    /// Gateway → reattached peer: you are back in the session.
    Resumed = 0x0F,
    /// Gateway → surviving peer: the other party is back.
    PeerBack = 0x10,
    /// Peer → gateway: start a UDP rendezvous for this session.
    Rendezvous = 0x11,
    /// Gateway → peer: the token to send in a UDP probe.
    UdpToken = 0x12,
    /// Gateway → peer: the other party's reflexive UDP address.
    PeerAddr = 0x13,
}

impl FrameType {
    /// Every frame type, in code order.
    pub const ALL: [FrameType; 19] = [
        Self::Hello,
        Self::Register,
        Self::Registered,
        Self::Queue,
        Self::QueueList,
        Self::Claim,
        Self::Paired,
        Self::Data,
        Self::Ping,
        Self::Pong,
        Self::PeerGone,
        Self::Close,
        Self::Error,
        Self::Reattach,
        Self::Resumed,
        Self::PeerBack,
        Self::Rendezvous,
        Self::UdpToken,
        Self::PeerAddr,
    ];

    /// The type for a code, or [`FrameError::UnknownType`].
    pub fn from_code(code: u8) -> Result<Self, FrameError> {
        // PROTOCOL.md 2.2: "A frame of any other type is rejected."
        Self::ALL
            .get(usize::from(code).wrapping_sub(1))
            .copied()
            .ok_or(FrameError::UnknownType(code))
    }

    /// The code on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// Why a frame header or frame buffer was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The buffer ends before the header or the declared payload; the caller waits for
    /// more bytes (a stream) or rejects the input (a datagram or a fuzz input).
    #[error("frame truncated: {needed} more bytes needed")]
    Truncated {
        /// How many more bytes the frame needs.
        needed: usize,
    },
    /// The header declares a payload above [`MAX_PAYLOAD`]; the peer is closed.
    #[error("frame payload of {0} bytes exceeds the limit")]
    Oversize(usize),
    /// The type code is not one of [`FrameType`]; the peer is closed.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The frame type.
    pub frame_type: FrameType,
    /// The payload length, at most [`MAX_PAYLOAD`].
    pub payload_len: usize,
}

impl Header {
    /// Parses the header at the start of `bytes` (which may hold more than the header).
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let head: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(FrameError::Truncated {
                needed: HEADER_LEN.saturating_sub(bytes.len()),
            })?;
        // The type first: a stream decoder refuses an unknown type from the first byte
        // alone, and the error is then the same however the header arrives.
        let frame_type = FrameType::from_code(head[field::TYPE])?;
        let payload_len =
            usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
        // PROTOCOL.md 2.1: "a length above 65536 is rejected from the header alone".
        if payload_len > MAX_PAYLOAD {
            return Err(FrameError::Oversize(payload_len));
        }
        Ok(Self {
            frame_type,
            payload_len,
        })
    }

    /// A header for a payload of `payload_len` bytes, checked against [`MAX_PAYLOAD`].
    pub fn new(frame_type: FrameType, payload_len: usize) -> Result<Self, FrameError> {
        if payload_len > MAX_PAYLOAD {
            return Err(FrameError::Oversize(payload_len));
        }
        Ok(Self {
            frame_type,
            payload_len,
        })
    }

    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // `payload_len <= MAX_PAYLOAD < 2^24`, so the three low bytes hold it.
        let [_, a, b, c] = (self.payload_len as u32).to_be_bytes();
        [self.frame_type.code(), a, b, c]
    }

    /// Appends the header bytes to `dst`.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(&self.to_bytes());
    }

    /// Header plus payload length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }
}

/// A zero-copy view of one frame at the start of a buffer.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks; accessors may then return errors.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least one whole valid frame: a known type, a length
    /// within [`MAX_PAYLOAD`], and that many payload bytes. Bytes after the frame are
    /// ignored by the view.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let header = Header::parse(buffer.as_ref())?;
        let have = buffer.as_ref().len();
        if have < header.frame_len() {
            return Err(FrameError::Truncated {
                needed: header.frame_len() - have,
            });
        }
        Ok(Self { buffer })
    }

    /// The raw type byte.
    pub fn type_code(&self) -> Result<u8, FrameError> {
        let b = self.buffer.as_ref();
        b.get(field::TYPE).copied().ok_or(FrameError::Truncated {
            needed: HEADER_LEN.saturating_sub(b.len()),
        })
    }

    /// The frame type.
    pub fn frame_type(&self) -> Result<FrameType, FrameError> {
        FrameType::from_code(self.type_code()?)
    }

    /// The parsed header.
    pub fn header(&self) -> Result<Header, FrameError> {
        Header::parse(self.buffer.as_ref())
    }

    /// The declared payload length.
    pub fn payload_len(&self) -> Result<usize, FrameError> {
        self.header().map(|h| h.payload_len)
    }

    /// The payload (exactly the declared length).
    pub fn payload(&self) -> Result<&[u8], FrameError> {
        let h = self.header()?;
        let b = self.buffer.as_ref();
        b.get(HEADER_LEN..h.frame_len())
            .ok_or(FrameError::Truncated {
                needed: h.frame_len().saturating_sub(b.len()),
            })
    }

    /// The whole frame (header and payload) as it is on the wire.
    pub fn as_frame_bytes(&self) -> Result<&[u8], FrameError> {
        let h = self.header()?;
        let b = self.buffer.as_ref();
        b.get(..h.frame_len()).ok_or(FrameError::Truncated {
            needed: h.frame_len().saturating_sub(b.len()),
        })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Writes `header` into the first four bytes.
    pub fn set_header(&mut self, header: &Header) -> Result<(), FrameError> {
        let b = self.buffer.as_mut();
        let needed = HEADER_LEN.saturating_sub(b.len());
        let head = b
            .get_mut(..HEADER_LEN)
            .ok_or(FrameError::Truncated { needed })?;
        head.copy_from_slice(&header.to_bytes());
        Ok(())
    }

    /// The payload, mutable (exactly the declared length).
    pub fn payload_mut(&mut self) -> Result<&mut [u8], FrameError> {
        let h = self.header()?;
        let b = self.buffer.as_mut();
        let needed = h.frame_len().saturating_sub(b.len());
        b.get_mut(HEADER_LEN..h.frame_len())
            .ok_or(FrameError::Truncated { needed })
    }
}

/// Appends a whole frame (header and payload) to `dst`.
pub fn encode_frame<B: BufMut>(
    frame_type: FrameType,
    payload: &[u8],
    dst: &mut B,
) -> Result<(), FrameError> {
    Header::new(frame_type, payload.len())?.encode(dst);
    dst.put_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip_and_unknown_codes_are_rejected() {
        for t in FrameType::ALL {
            assert_eq!(FrameType::from_code(t.code()), Ok(t));
        }
        for code in [0x00, 0x14, 0x7f, 0xff] {
            assert_eq!(
                FrameType::from_code(code),
                Err(FrameError::UnknownType(code))
            );
        }
    }

    #[test]
    fn header_parse_and_emit() {
        let h = Header::parse(&[0x08, 0x01, 0x00, 0x00]).expect("valid");
        assert_eq!(
            h,
            Header {
                frame_type: FrameType::Data,
                payload_len: MAX_PAYLOAD
            }
        );
        assert_eq!(h.to_bytes(), [0x08, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn oversize_is_rejected_from_the_header_alone() {
        assert_eq!(
            Header::parse(&[0x08, 0x01, 0x00, 0x01]),
            Err(FrameError::Oversize(MAX_PAYLOAD + 1))
        );
        assert_eq!(
            Header::parse(&[0x08, 0xff, 0xff, 0xff]),
            Err(FrameError::Oversize(0xff_ffff))
        );
        assert_eq!(
            Header::new(FrameType::Data, MAX_PAYLOAD + 1),
            Err(FrameError::Oversize(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn truncated_header_and_payload() {
        assert_eq!(
            Header::parse(&[0x09, 0x00]),
            Err(FrameError::Truncated { needed: 2 })
        );
        let f = Frame::new_checked(&[0x09u8, 0x00, 0x00, 0x08, 1, 2, 3][..]);
        assert_eq!(f.err(), Some(FrameError::Truncated { needed: 5 }));
        let f = Frame::new_unchecked(&[0x09u8, 0x00, 0x00, 0x08, 1][..]);
        assert_eq!(f.payload(), Err(FrameError::Truncated { needed: 7 }));
        assert_eq!(
            Frame::new_unchecked(&[][..]).type_code(),
            Err(FrameError::Truncated { needed: 4 })
        );
    }

    #[test]
    fn view_reads_and_writes_fields() {
        let mut buf = [0u8; 7];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_header(&Header::new(FrameType::Pong, 2).expect("small"))
            .expect("room");
        f.payload_mut()
            .expect("room")
            .copy_from_slice(&[0xaa, 0xbb]);
        let f = Frame::new_checked(&buf[..]).expect("valid");
        assert_eq!(f.frame_type(), Ok(FrameType::Pong));
        assert_eq!(f.payload(), Ok(&[0xaa, 0xbb][..]));
        assert_eq!(f.as_frame_bytes(), Ok(&[0x0a, 0, 0, 2, 0xaa, 0xbb][..]));
    }
}
