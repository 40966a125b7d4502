//! `tokio_util::codec` framing of gateway frames.
//!
//! [`GatewayCodec`] decodes a byte stream into [`RawFrame`]s (type plus payload, split
//! from the read buffer without copying) and encodes [`Message`]s, raw DATA payloads
//! ([`Bytes`]) and [`RawFrame`]s (forwarded verbatim, header and all).
//!
//! The decoder checks the header (known type, length at most
//! [`MAX_PAYLOAD`](crate::wire::limits::MAX_PAYLOAD)) as soon as four bytes are buffered,
//! before it reserves anything; it then reserves only the bytes still missing for that
//! one frame, so it never asks for more than [`MAX_FRAME_LEN`] in total. It returns
//! `Ok(None)` while a frame is incomplete. It never panics on any input.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::frame::{FrameError, FrameType, Header, HEADER_LEN, MAX_FRAME_LEN};
use crate::wire::signal::{Message, SignalError};

/// One frame as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    frame_type: FrameType,
    /// Header and payload.
    bytes: Bytes,
}

impl RawFrame {
    /// A DATA frame around `payload` (1 to `MAX_PAYLOAD` bytes); copies the payload once.
    pub fn data(payload: &[u8]) -> Result<Self, SignalError> {
        let msg = Message::Data(Bytes::copy_from_slice(payload));
        let mut buf = BytesMut::with_capacity(msg.frame_len());
        msg.encode(&mut buf)?;
        Ok(Self {
            frame_type: FrameType::Data,
            bytes: buf.freeze(),
        })
    }

    /// Checks `bytes` holds exactly one valid frame header and its payload.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, FrameError> {
        let header = Header::parse(&bytes)?;
        if bytes.len() != header.frame_len() {
            return Err(FrameError::Truncated {
                needed: header.frame_len().saturating_sub(bytes.len()),
            });
        }
        Ok(Self {
            frame_type: header.frame_type,
            bytes,
        })
    }

    /// The frame type.
    pub fn frame_type(&self) -> FrameType {
        self.frame_type
    }

    /// The payload, sharing the frame's memory.
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN..)
    }

    /// Header and payload, exactly as on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Header and payload, by value.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Parses the payload as a message (DATA stays zero-copy).
    pub fn message(&self) -> Result<Message, SignalError> {
        Message::decode_bytes(self.frame_type, self.payload())
    }
}

/// Why the codec failed. After a decode error the stream is unusable: close it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame header is invalid (unknown type, oversize length): the peer's fault.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message to encode is invalid (an empty or oversize DATA payload): our fault.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decoder and encoder of gateway frames. Stateless apart from the checks above.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayCodec {
    _private: (),
}

impl GatewayCodec {
    /// A codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Decoder for GatewayCodec {
    type Item = RawFrame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, CodecError> {
        let header = match Header::parse(src) {
            Ok(h) => h,
            Err(FrameError::Truncated { .. }) => {
                // An unknown type byte is refused before the rest of the header arrives.
                if let Some(&code) = src.first() {
                    FrameType::from_code(code)?;
                }
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let frame_len = header.frame_len();
        debug_assert!(frame_len <= MAX_FRAME_LEN);
        if src.len() < frame_len {
            // Reserve only what is missing of this one, bounded, frame.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let bytes = src.split_to(frame_len).freeze();
        Ok(Some(RawFrame {
            frame_type: header.frame_type,
            bytes,
        }))
    }

    /// At end of stream, a partial frame is [`FrameError::Truncated`] (not an I/O error).
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let needed = match Header::parse(src) {
            Ok(h) => h.frame_len().saturating_sub(src.len()),
            Err(_) => HEADER_LEN.saturating_sub(src.len()),
        };
        Err(FrameError::Truncated { needed }.into())
    }
}

impl Encoder<&Message> for GatewayCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(msg.frame_len());
        msg.encode(dst)?;
        Ok(())
    }
}

impl Encoder<Message> for GatewayCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&msg, dst)
    }
}

/// A raw DATA payload: encoded as one DATA frame.
impl Encoder<Bytes> for GatewayCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&Message::Data(payload), dst)
    }
}

/// A frame forwarded verbatim, header and all.
impl Encoder<RawFrame> for GatewayCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: RawFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&frame.bytes);
        Ok(())
    }
}

/// Fuzz entry point: decodes `data` fed in chunks of the given sizes, checks that the
/// frames equal those of a one-shot decode, that no reservation exceeds one frame, and
/// that every frame's message parse does not panic.
#[doc(hidden)]
pub fn fuzz_decode_stream(data: &[u8], chunk: usize) {
    let whole = decode_all(data, data.len().max(1));
    let pieces = decode_all(data, chunk.max(1));
    assert_eq!(whole, pieces, "chunking changes nothing");
    for f in whole.0 {
        let _ = f.message();
    }
}

/// Frames decoded from `data` fed `chunk` bytes at a time, and the first error if any.
fn decode_all(data: &[u8], chunk: usize) -> (Vec<RawFrame>, Option<String>) {
    let mut codec = GatewayCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.capacity();
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => {
                    let grown = buf.capacity() > before;
                    assert!(
                        !grown || buf.capacity() <= 2 * MAX_FRAME_LEN,
                        "bounded reserve"
                    );
                    break;
                }
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::signal::Ping;

    #[test]
    fn decodes_a_frame_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&[0x09, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 0x0a][..]);
        let f = GatewayCodec::new()
            .decode(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!(f.message(), Ok(Message::Ping(Ping { nonce: 7 })));
        assert_eq!(&buf[..], &[0x0a]);
    }

    #[test]
    fn incomplete_input_is_pending_and_reserves_only_the_missing_part() {
        let mut codec = GatewayCodec::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x08, 0x01, 0x00]);
        assert!(codec.decode(&mut buf).expect("ok").is_none());
        buf.extend_from_slice(&[0x00]);
        assert!(codec.decode(&mut buf).expect("ok").is_none());
        assert!(buf.capacity() >= MAX_FRAME_LEN);
        assert!(buf.capacity() <= 2 * MAX_FRAME_LEN);
    }

    #[test]
    fn oversize_and_unknown_headers_fail_before_any_reserve() {
        for head in [
            [0x08, 0x01, 0x00, 0x01],
            [0x08, 0xff, 0xff, 0xff],
            [0x7f, 0, 0, 0],
        ] {
            let mut buf = BytesMut::with_capacity(4);
            buf.extend_from_slice(&head);
            let cap = buf.capacity();
            assert!(GatewayCodec::new().decode(&mut buf).is_err());
            assert_eq!(buf.capacity(), cap);
        }
    }

    #[test]
    fn a_partial_frame_at_end_of_stream_is_truncated() {
        let mut codec = GatewayCodec::new();
        let mut buf = BytesMut::from(&[0x09, 0, 0, 8, 1, 2][..]);
        let err = codec.decode_eof(&mut buf).expect_err("partial");
        assert!(matches!(
            err,
            CodecError::Frame(FrameError::Truncated { needed: 6 })
        ));
        let mut buf = BytesMut::from(&[0x09, 0][..]);
        let err = codec.decode_eof(&mut buf).expect_err("partial header");
        assert!(matches!(
            err,
            CodecError::Frame(FrameError::Truncated { needed: 2 })
        ));
        assert!(codec
            .decode_eof(&mut BytesMut::new())
            .expect("clean end")
            .is_none());
    }

    #[test]
    fn garbage_is_refused_at_its_first_byte() {
        let mut buf = BytesMut::from(&b"G"[..]);
        let err = GatewayCodec::new()
            .decode(&mut buf)
            .expect_err("not a frame type");
        assert!(matches!(
            err,
            CodecError::Frame(FrameError::UnknownType(b'G'))
        ));
    }

    #[test]
    fn raw_frames_are_forwarded_verbatim() {
        let raw = RawFrame::data(b"inner tls").expect("valid");
        let mut out = BytesMut::new();
        GatewayCodec::new()
            .encode(raw.clone(), &mut out)
            .expect("encodes");
        assert_eq!(&out[..], &raw.as_bytes()[..]);
        assert_eq!(&out[..4], &[0x08, 0, 0, 9]);
        assert!(RawFrame::data(b"").is_err());
    }
}
