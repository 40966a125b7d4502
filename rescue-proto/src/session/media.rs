//! Messages of the media channel ([`MEDIA`](super::MEDIA), PROTOCOL.md 9.1): encoded
//! camera frames split into fragments (applet to console) and keyframe requests
//! (console to applet).
//!
//! ```text
//!  FRAGMENT          0x01 | flags u8 | frame_no u32 | capture_us u64 | total u32 | offset u32 | data
//!  KEYFRAME_REQUEST  0x02
//!  STREAM_KEY        0x03 | key_id u64 | meeting [16] | base_key [32]
//! ```
//!
//! Decoding is strict and never panics: an unknown type, a reserved flag, a total above
//! [`MAX_MEDIA_FRAME`], a fragment past its total, an empty fragment or trailing bytes is
//! a typed [`MediaError`]. Nothing is allocated here; fragment data is a slice of the
//! input.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::MAX_PAYLOAD;

/// Largest encoded frame (its `total`): bounds one reassembly. A 1080p H.264 keyframe
/// at a high bit rate is well under 1 MiB; 2 MiB leaves room and is still small memory.
pub const MAX_MEDIA_FRAME: usize = 2 * 1024 * 1024;
/// Bytes of the FRAGMENT header before its data.
pub const FRAGMENT_HEADER_LEN: usize = 22;
/// Most data bytes in one fragment: one session frame payload less the header.
pub const MAX_FRAGMENT_DATA: usize = MAX_PAYLOAD - FRAGMENT_HEADER_LEN;
/// Length of a STREAM_KEY base key (SFrame base key for AES-256-GCM).
pub const STREAM_KEY_LEN: usize = 32;

/// Type byte of FRAGMENT.
pub const FRAGMENT_TYPE: u8 = 0x01;
/// Type byte of KEYFRAME_REQUEST.
pub const KEYFRAME_REQUEST_TYPE: u8 = 0x02;
/// Type byte of STREAM_KEY.
pub const STREAM_KEY_TYPE: u8 = 0x03;
/// FRAGMENT flag: the frame is a keyframe (decodable on its own).
pub const FLAG_KEYFRAME: u8 = 0x01;

/// One fragment of an encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The frame is a keyframe.
    pub keyframe: bool,
    /// Frame number: counts captured frames, so a gap shows frames the sender dropped.
    pub frame_no: u32,
    /// Capture time of the frame, microseconds on the sender's clock.
    pub capture_us: u64,
    /// Length of the whole frame.
    pub total: u32,
    /// Where `data` starts in the frame.
    pub offset: u32,
    /// The bytes (a slice of the decoded payload).
    pub data: Bytes,
}

/// The media key of a Lens meeting, handed from the app to one technician over that
/// technician's own end-to-end session (PROTOCOL.md 9.2): the relay never sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey {
    /// SFrame key id.
    pub key_id: u64,
    /// The Lens meeting the key is for.
    pub meeting: [u8; 16],
    /// The SFrame base key.
    pub base_key: [u8; STREAM_KEY_LEN],
}

impl core::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A media channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaMsg {
    /// Part of a frame (applet to console).
    Fragment(Fragment),
    /// Please send a keyframe (console to applet).
    KeyframeRequest,
    /// The key of a Lens meeting (applet to console).
    StreamKey(StreamKey),
}

/// A media message or stream that breaks PROTOCOL.md 9.1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Empty, or shorter than its type needs.
    #[error("truncated media message")]
    Truncated,
    /// Bytes after the end of a fixed-size message.
    #[error("trailing bytes after a media message")]
    TrailingBytes,
    /// The type byte names no media message.
    #[error("unknown media message type {0:#04x}")]
    UnknownType(u8),
    /// A reserved FRAGMENT flag is set.
    #[error("reserved media flags {0:#04x}")]
    ReservedFlags(u8),
    /// A frame claims more than [`MAX_MEDIA_FRAME`] bytes (checked before any allocation).
    #[error("media frame of {0} bytes exceeds the limit")]
    FrameTooLarge(u64),
    /// A fragment is empty or runs past its frame's total.
    #[error("fragment outside its frame")]
    BadFragment,
    /// A fragment does not continue the frame being reassembled (offset, number, fields).
    #[error("fragment out of order")]
    OutOfOrder,
    /// Frame numbers did not increase.
    #[error("frame number {got} after {last}")]
    FrameNumber {
        /// The previous frame's number.
        last: u32,
        /// The offending number.
        got: u32,
    },
    /// The message went the wrong way (FRAGMENT to the applet, a request to the console).
    #[error("media message in the wrong direction")]
    Direction,
    /// The sender's queue cannot take the frame (larger than the queue's byte bound).
    #[error("media frame larger than the queue")]
    QueueTooSmall,
}

impl MediaMsg {
    /// Decodes one media message (a whole DATA payload of the media channel).
    pub fn decode(b: &Bytes) -> Result<MediaMsg, MediaError> {
        let (&t, rest) = b.split_first().ok_or(MediaError::Truncated)?;
        match t {
            FRAGMENT_TYPE => decode_fragment(b).map(MediaMsg::Fragment),
            KEYFRAME_REQUEST_TYPE if rest.is_empty() => Ok(MediaMsg::KeyframeRequest),
            KEYFRAME_REQUEST_TYPE => Err(MediaError::TrailingBytes),
            STREAM_KEY_TYPE => {
                const LEN: usize = 8 + 16 + STREAM_KEY_LEN;
                match rest.len() {
                    n if n < LEN => return Err(MediaError::Truncated),
                    n if n > LEN => return Err(MediaError::TrailingBytes),
                    _ => {}
                }
                let mut key_id = [0u8; 8];
                key_id.copy_from_slice(&rest[..8]);
                let mut meeting = [0u8; 16];
                meeting.copy_from_slice(&rest[8..24]);
                let mut base_key = [0u8; STREAM_KEY_LEN];
                base_key.copy_from_slice(&rest[24..]);
                Ok(MediaMsg::StreamKey(StreamKey {
                    key_id: u64::from_be_bytes(key_id),
                    meeting,
                    base_key,
                }))
            }
            t => Err(MediaError::UnknownType(t)),
        }
    }

    /// The wire form (for FRAGMENT the caller keeps `data` within [`MAX_FRAGMENT_DATA`]).
    pub fn encode(&self) -> Bytes {
        match self {
            MediaMsg::Fragment(f) => {
                let mut out = BytesMut::with_capacity(FRAGMENT_HEADER_LEN + f.data.len());
                out.put_u8(FRAGMENT_TYPE);
                out.put_u8(if f.keyframe { FLAG_KEYFRAME } else { 0 });
                out.put_u32(f.frame_no);
                out.put_u64(f.capture_us);
                out.put_u32(f.total);
                out.put_u32(f.offset);
                out.put_slice(&f.data);
                out.freeze()
            }
            MediaMsg::KeyframeRequest => Bytes::from_static(&[KEYFRAME_REQUEST_TYPE]),
            MediaMsg::StreamKey(k) => {
                let mut out = BytesMut::with_capacity(1 + 8 + 16 + STREAM_KEY_LEN);
                out.put_u8(STREAM_KEY_TYPE);
                out.put_u64(k.key_id);
                out.put_slice(&k.meeting);
                out.put_slice(&k.base_key);
                out.freeze()
            }
        }
    }
}

fn decode_fragment(b: &Bytes) -> Result<Fragment, MediaError> {
    if b.len() < FRAGMENT_HEADER_LEN {
        return Err(MediaError::Truncated);
    }
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let flags = b[1];
    // PROTOCOL.md 9.1: "flag bits other than 0x01 are reserved and rejected".
    if flags & !FLAG_KEYFRAME != 0 {
        return Err(MediaError::ReservedFlags(flags));
    }
    let mut cap = [0u8; 8];
    cap.copy_from_slice(&b[6..14]);
    let total = u32_at(14);
    let offset = u32_at(18);
    // "total is at most MAX_MEDIA_FRAME".
    if total as usize > MAX_MEDIA_FRAME {
        return Err(MediaError::FrameTooLarge(u64::from(total)));
    }
    let data = b.slice(FRAGMENT_HEADER_LEN..);
    // "data is not empty and offset + len(data) <= total".
    let end = u64::from(offset) + data.len() as u64;
    if data.is_empty() || end > u64::from(total) {
        return Err(MediaError::BadFragment);
    }
    Ok(Fragment {
        keyframe: flags & FLAG_KEYFRAME != 0,
        frame_no: u32_at(2),
        capture_us: u64::from_be_bytes(cap),
        total,
        offset,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag() -> Fragment {
        Fragment {
            keyframe: true,
            frame_no: 7,
            capture_us: 1_000_000,
            total: 5,
            offset: 2,
            data: Bytes::from_static(b"abc"),
        }
    }

    #[test]
    fn fragment_round_trips_and_rejects_bad_fields() {
        let m = MediaMsg::Fragment(frag());
        let b = m.encode();
        assert_eq!(b.len(), FRAGMENT_HEADER_LEN + 3);
        assert_eq!(MediaMsg::decode(&b), Ok(m));
        let mut bad = b.to_vec();
        bad[1] = 0x02;
        assert_eq!(
            MediaMsg::decode(&Bytes::from(bad)),
            Err(MediaError::ReservedFlags(2))
        );
        let mut past = frag();
        past.offset = 3;
        let b = MediaMsg::Fragment(past).encode();
        assert_eq!(MediaMsg::decode(&b), Err(MediaError::BadFragment));
        let mut huge = frag();
        huge.total = MAX_MEDIA_FRAME as u32 + 1;
        let b = MediaMsg::Fragment(huge).encode();
        assert!(matches!(
            MediaMsg::decode(&b),
            Err(MediaError::FrameTooLarge(_))
        ));
        for n in 0..FRAGMENT_HEADER_LEN {
            let b = MediaMsg::Fragment(frag()).encode().slice(..n);
            assert!(MediaMsg::decode(&b).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn request_and_key_are_exact() {
        let r = MediaMsg::KeyframeRequest.encode();
        assert_eq!(MediaMsg::decode(&r), Ok(MediaMsg::KeyframeRequest));
        assert_eq!(
            MediaMsg::decode(&Bytes::from_static(&[2, 0])),
            Err(MediaError::TrailingBytes)
        );
        let k = MediaMsg::StreamKey(StreamKey {
            key_id: 9,
            meeting: [1; 16],
            base_key: [2; 32],
        });
        let b = k.encode();
        assert_eq!(MediaMsg::decode(&b), Ok(k));
        assert_eq!(
            MediaMsg::decode(&b.slice(..b.len() - 1)),
            Err(MediaError::Truncated)
        );
        assert_eq!(
            MediaMsg::decode(&Bytes::from_static(&[9])),
            Err(MediaError::UnknownType(9))
        );
    }
}
