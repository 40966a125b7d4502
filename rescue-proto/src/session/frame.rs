//! Session frames: the end-to-end layer inside the inner TLS (PROTOCOL.md section 7.1).
//!
//! Every frame is a fixed 23-byte header followed by a payload of at most
//! [`MAX_PAYLOAD`] bytes:
//!
//! ```text
//!  0      1         3             11            19         23
//!  +------+---------+-------------+-------------+----------+-----------+
//!  | kind | channel |     seq     |     ack     |   len    |  payload  |
//!  |  u8  |   u16   |     u64     |     u64     |   u32    | len bytes |
//!  +------+---------+-------------+-------------+----------+-----------+
//! ```
//!
//! [`Frame::decode`] is strict: an unknown kind, a length above the limit, a truncated
//! frame, trailing bytes or a field a kind forbids is a typed [`FrameError`]. Decoding
//! never panics and never allocates: the payload is a [`Bytes`] slice of the input.
//! [`FrameCodec`] splits a byte stream into whole frames, checking the length before it
//! reserves anything.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 23;
/// Largest payload of one frame: 64 KiB (PROTOCOL.md §5); bounds what a receiver
/// buffers for a single frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest whole frame.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;
/// Longest channel label in an OPEN frame: a label is a short name, not data.
pub const MAX_LABEL: usize = 64;
/// Length of the PING/PONG token.
pub const PING_TOKEN_LEN: usize = 8;

/// A channel id (`u16` on the wire).
pub type ChannelId = u16;

/// The kind of a frame (the first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum FrameKind {
    /// Application bytes on a channel (sequenced).
    Data = 0x01,
    /// Opens an application channel; payload is its UTF-8 label (sequenced).
    Open = 0x02,
    /// Closes an application channel (sequenced).
    Close = 0x03,
    /// Ends the session; payload is one [`EndReason`] byte (sequenced).
    End = 0x04,
    /// A cumulative acknowledgement only.
    Ack = 0x10,
    /// Keepalive request with an 8-byte token.
    Ping = 0x11,
    /// Keepalive answer echoing the token.
    Pong = 0x12,
    /// Last frame of this direction on this path; `seq` is the next sequence number,
    /// which continues on the new path.
    Switch = 0x13,
    /// First frame on a path after a loss; `ack` is the next expected sequence number.
    Resume = 0x14,
}

impl FrameKind {
    /// The kind with wire code `b`, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Data,
            0x02 => Self::Open,
            0x03 => Self::Close,
            0x04 => Self::End,
            0x10 => Self::Ack,
            0x11 => Self::Ping,
            0x12 => Self::Pong,
            0x13 => Self::Switch,
            0x14 => Self::Resume,
            _ => return None,
        })
    }

    /// Whether frames of this kind carry a sequence number, are acknowledged and replayed.
    pub const fn is_sequenced(self) -> bool {
        matches!(self, Self::Data | Self::Open | Self::Close | Self::End)
    }
}

/// Why a session ended (the payload byte of END).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
pub enum EndReason {
    /// The end user ended the session.
    EndUser = 0x00,
    /// The technician ended the session.
    Technician = 0x01,
    /// The embedding application ended it (shutdown, policy).
    Application = 0x02,
    /// The sender detected a protocol violation by its peer.
    ProtocolError = 0x03,
    /// The peer stopped acknowledging or no path could be restored in time.
    Timeout = 0x04,
}

impl EndReason {
    /// The reason with wire code `b`, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x00 => Self::EndUser,
            0x01 => Self::Technician,
            0x02 => Self::Application,
            0x03 => Self::ProtocolError,
            0x04 => Self::Timeout,
            _ => return None,
        })
    }
}

/// A decoded, validated frame. Fields a kind does not use are zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The kind.
    pub kind: FrameKind,
    /// The channel (zero for every kind but DATA, OPEN and CLOSE).
    pub channel: ChannelId,
    /// Sequence number (sequenced kinds), next sequence number (SWITCH), else zero.
    pub seq: u64,
    /// Cumulative acknowledgement: the next sequence number the sender expects.
    pub ack: u64,
    /// The payload (a slice of the decoded buffer, no copy).
    pub payload: Bytes,
}

/// A frame that breaks PROTOCOL.md section 7.1; the connection is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the header or than the header's length field announces.
    #[error("truncated session frame")]
    Truncated,
    /// Bytes after the end of the frame.
    #[error("{0} trailing bytes after a session frame")]
    TrailingBytes(usize),
    /// The length field exceeds [`MAX_PAYLOAD`].
    #[error("session frame payload of {0} bytes exceeds the limit")]
    Oversize(u32),
    /// The kind byte names no frame kind.
    #[error("unknown session frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A field has a value this kind forbids (non-zero channel or seq, wrong length).
    #[error("malformed {kind:?} frame: {what}")]
    Malformed {
        /// The frame's kind.
        kind: FrameKind,
        /// Which rule was broken.
        what: &'static str,
    },
}

impl Frame {
    /// A DATA frame.
    pub fn data(channel: ChannelId, seq: u64, ack: u64, payload: Bytes) -> Self {
        Self {
            kind: FrameKind::Data,
            channel,
            seq,
            ack,
            payload,
        }
    }

    /// An unsequenced frame of `kind` with the given seq field and payload.
    pub fn control(kind: FrameKind, seq: u64, ack: u64, payload: Bytes) -> Self {
        Self {
            kind,
            channel: 0,
            seq,
            ack,
            payload,
        }
    }

    /// The END reason, for an END frame.
    pub fn end_reason(&self) -> Option<EndReason> {
        match (self.kind, self.payload.first()) {
            (FrameKind::End, Some(b)) => EndReason::from_u8(*b),
            _ => None,
        }
    }

    /// The PING/PONG token, for those kinds.
    pub fn token(&self) -> Option<u64> {
        let b: [u8; PING_TOKEN_LEN] = self.payload.as_ref().try_into().ok()?;
        matches!(self.kind, FrameKind::Ping | FrameKind::Pong).then(|| u64::from_be_bytes(b))
    }

    /// Bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Appends the frame to `out`. The caller keeps the payload within [`MAX_PAYLOAD`].
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        encode_parts(
            self.kind,
            self.channel,
            self.seq,
            self.ack,
            &self.payload,
            out,
        );
    }

    /// Decodes exactly one frame; the payload shares `buf`'s memory.
    pub fn decode(buf: &Bytes) -> Result<Frame, FrameError> {
        let (kind, channel, seq, ack, len) = parse_header(buf)?;
        let total = HEADER_LEN + len;
        match buf.len().cmp(&total) {
            core::cmp::Ordering::Less => return Err(FrameError::Truncated),
            core::cmp::Ordering::Greater => {
                return Err(FrameError::TrailingBytes(buf.len() - total))
            }
            core::cmp::Ordering::Equal => {}
        }
        let frame = Frame {
            kind,
            channel,
            seq,
            ack,
            payload: buf.slice(HEADER_LEN..total),
        };
        frame.validate()?;
        Ok(frame)
    }

    fn validate(&self) -> Result<(), FrameError> {
        let bad = |what| {
            Err(FrameError::Malformed {
                kind: self.kind,
                what,
            })
        };
        let len = self.payload.len();
        // PROTOCOL.md 7.1: "channel is zero in every kind but DATA, OPEN and CLOSE".
        let channel_kind = matches!(
            self.kind,
            FrameKind::Data | FrameKind::Open | FrameKind::Close
        );
        if !channel_kind && self.channel != 0 {
            return bad("channel must be zero");
        }
        // "seq is zero in ACK, PING, PONG and RESUME".
        if !self.kind.is_sequenced() && self.kind != FrameKind::Switch && self.seq != 0 {
            return bad("seq must be zero");
        }
        match self.kind {
            FrameKind::Data => Ok(()),
            FrameKind::Open if len == 0 || len > MAX_LABEL => bad("label length"),
            FrameKind::Open => match core::str::from_utf8(&self.payload) {
                Err(_) => bad("label UTF-8"),
                // PROTOCOL.md 7.1: a label is a name under the peer-text rule (1.3).
                Ok(l) if crate::text::check_peer_name("label", l).is_err() => bad("label text"),
                Ok(_) => Ok(()),
            },
            FrameKind::End if len != 1 || self.end_reason().is_none() => bad("end reason"),
            FrameKind::Ping | FrameKind::Pong if len != PING_TOKEN_LEN => bad("token length"),
            FrameKind::Close | FrameKind::Ack | FrameKind::Switch | FrameKind::Resume
                if len != 0 =>
            {
                bad("payload must be empty")
            }
            _ => Ok(()),
        }
    }
}

/// Appends a frame from its parts (lets callers avoid building a [`Frame`]).
pub(crate) fn encode_parts<B: BufMut>(
    kind: FrameKind,
    channel: ChannelId,
    seq: u64,
    ack: u64,
    payload: &[u8],
    out: &mut B,
) {
    out.put_u8(kind as u8);
    out.put_u16(channel);
    out.put_u64(seq);
    out.put_u64(ack);
    // Callers bound payloads by MAX_PAYLOAD, which fits in u32.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
}

/// Reads and checks the header; returns the payload length, already bounded.
fn parse_header(buf: &[u8]) -> Result<(FrameKind, ChannelId, u64, u64, usize), FrameError> {
    let mut h = buf.get(..HEADER_LEN).ok_or(FrameError::Truncated)?;
    let kind_byte = h.get_u8();
    let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
    let channel = h.get_u16();
    let seq = h.get_u64();
    let ack = h.get_u64();
    let len = h.get_u32();
    // PROTOCOL.md 7.1: "len is at most 65536; a larger value is rejected".
    let len_usize = usize::try_from(len).map_err(|_| FrameError::Oversize(len))?;
    if len_usize > MAX_PAYLOAD {
        return Err(FrameError::Oversize(len));
    }
    Ok((kind, channel, seq, ack, len_usize))
}

/// Splits a byte stream (one path) into whole frames, for `tokio_util::codec::FramedRead`.
///
/// Yields each frame's bytes undecoded; pass them to the session core, which decodes
/// them strictly. Rejects an unknown kind or an oversize length as soon as the header is
/// complete, before reserving room for the body.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl tokio_util::codec::Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameCodecError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let (_, _, _, _, len) = parse_header(src)?;
        let total = HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(total).freeze()))
    }
}

impl tokio_util::codec::Encoder<Bytes> for FrameCodec {
    type Error = FrameCodecError;

    /// Writes already-encoded frame bytes (from the core's `poll_transmit`) unchanged.
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameCodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// Error of [`FrameCodec`]: a bad header or an I/O error of the underlying stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameCodecError {
    /// The stream carried an invalid frame header; close the path.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Fuzzing entry point: decodes `data` as a frame and, if valid, checks that it
/// re-encodes to the same bytes. Panics only on a codec bug.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    if let Ok(frame) = Frame::decode(&buf) {
        let mut out = Vec::with_capacity(frame.encoded_len());
        frame.encode(&mut out);
        assert_eq!(out, data, "session frame does not round-trip");
    }
    let mut stream = BytesMut::from(data);
    while let Ok(Some(f)) = tokio_util::codec::Decoder::decode(&mut FrameCodec, &mut stream) {
        let _ = Frame::decode(&f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    fn frame_bytes(f: &Frame) -> Bytes {
        let mut v = BytesMut::new();
        f.encode(&mut v);
        v.freeze()
    }

    #[test]
    fn data_round_trips_and_is_zero_copy() {
        let f = Frame::data(7, 3, 9, Bytes::from_static(b"hi"));
        let b = frame_bytes(&f);
        let d = Frame::decode(&b).unwrap();
        assert_eq!(d, f);
        assert_eq!(d.payload.as_ptr(), b[HEADER_LEN..].as_ptr());
    }

    #[test]
    fn rejects_truncated_trailing_oversize_unknown() {
        let b = frame_bytes(&Frame::data(1, 0, 0, Bytes::from_static(b"abc")));
        assert_eq!(
            Frame::decode(&b.slice(..b.len() - 1)),
            Err(FrameError::Truncated)
        );
        assert_eq!(Frame::decode(&b.slice(..5)), Err(FrameError::Truncated));
        let mut long = BytesMut::from(&b[..]);
        long.put_u8(0);
        assert_eq!(
            Frame::decode(&long.freeze()),
            Err(FrameError::TrailingBytes(1))
        );
        let mut big = BytesMut::from(&b[..HEADER_LEN]);
        big[19..23].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        assert_eq!(
            Frame::decode(&big.freeze()),
            Err(FrameError::Oversize(65537))
        );
        let mut unk = BytesMut::from(&b[..]);
        unk[0] = 0x7f;
        assert_eq!(
            Frame::decode(&unk.freeze()),
            Err(FrameError::UnknownKind(0x7f))
        );
    }

    #[test]
    fn rejects_fields_a_kind_forbids() {
        let cases = [
            Frame {
                channel: 1,
                ..Frame::control(FrameKind::Ack, 0, 0, Bytes::new())
            },
            Frame::control(FrameKind::Ping, 1, 0, Bytes::from_static(&[0; 8])),
            Frame::control(FrameKind::Ping, 0, 0, Bytes::from_static(&[0; 7])),
            Frame::control(FrameKind::End, 0, 0, Bytes::from_static(&[9])),
            Frame::control(FrameKind::Resume, 0, 0, Bytes::from_static(&[1])),
            Frame {
                kind: FrameKind::Open,
                ..Frame::data(16, 0, 0, Bytes::new())
            },
            Frame {
                kind: FrameKind::Open,
                ..Frame::data(16, 0, 0, Bytes::from_static(b"\xff"))
            },
            Frame {
                kind: FrameKind::Open,
                ..Frame::data(16, 0, 0, Bytes::from_static("app\u{1b}[2J".as_bytes()))
            },
            Frame {
                kind: FrameKind::Open,
                ..Frame::data(16, 0, 0, Bytes::from_static("\u{202e}ppa".as_bytes()))
            },
        ];
        for f in cases {
            assert!(
                matches!(
                    Frame::decode(&frame_bytes(&f)),
                    Err(FrameError::Malformed { .. })
                ),
                "{f:?}"
            );
        }
    }

    #[test]
    fn codec_waits_for_whole_frames_and_checks_length_first() {
        let one = frame_bytes(&Frame::data(2, 1, 1, Bytes::from(vec![5u8; 100])));
        let mut stream = BytesMut::new();
        let mut out = Vec::new();
        for chunk in one.chunks(7).chain(one.chunks(50)) {
            stream.extend_from_slice(chunk);
            while let Some(f) = FrameCodec.decode(&mut stream).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, vec![one.clone(), one.clone()]);
        let mut bad = BytesMut::from(&one[..HEADER_LEN]);
        bad[19..23].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(FrameCodec.decode(&mut bad).is_err());
        assert!(bad.capacity() < MAX_FRAME);
    }
}
