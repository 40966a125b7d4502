//! The relay's messages (PROTOCOL.md 9.3) and the per-frame plaintext and metadata.
//!
//! ```text
//!  message          = type u8 | len u32 | body (len <= MAX_BODY)
//!  JOIN      0x01   body = join token (9.5)                       client -> relay, first
//!  JOINED    0x02   body = empty                                  relay -> client
//!  MEDIA     0x03   body = flags u8 | SFrame ciphertext (9.2)     app -> relay -> consoles
//!  KEYFRAME  0x04   body = empty                                  console -> relay -> app
//!  BYE       0x05   body = reason u8                              relay -> client, then close
//!  plaintext        = capture_us u64 | encoded frame
//!  metadata (AAD)   = meeting [16] | flags u8
//! ```
//!
//! [`read_msg`] checks the length against [`MAX_BODY`] before it allocates the body.

use bytes::{Bytes, BytesMut};
use rescue_proto::session::media::MAX_MEDIA_FRAME;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::sframe::{MAX_HEADER_LEN, TAG_LEN};
use crate::MeetingId;

/// Largest message body: a whole encoded frame with its timestamp, flags, SFrame header
/// and tag.
pub const MAX_BODY: usize = MAX_MEDIA_FRAME + 1 + 8 + MAX_HEADER_LEN + TAG_LEN;
/// MEDIA flag: the frame is a keyframe (visible to the relay for its drop rule,
/// authenticated as metadata).
pub const FLAG_KEYFRAME: u8 = 0x01;

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum MsgType {
    /// A join token.
    Join = 0x01,
    /// The relay accepted the token.
    Joined = 0x02,
    /// One encrypted frame.
    Media = 0x03,
    /// Please send a keyframe.
    Keyframe = 0x04,
    /// The relay ends the connection.
    Bye = 0x05,
}

impl MsgType {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Join,
            0x02 => Self::Joined,
            0x03 => Self::Media,
            0x04 => Self::Keyframe,
            0x05 => Self::Bye,
            _ => return None,
        })
    }
}

/// Why the relay ends a connection (the BYE byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum ByeReason {
    /// The token was refused.
    Refused = 1,
    /// The participant left or the meeting was deleted.
    Left = 2,
    /// The subscriber did not read in time.
    TooSlow = 3,
    /// A message broke the format or came from the wrong role.
    Protocol = 4,
    /// The meeting is full.
    Full = 5,
}

/// A broken relay stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Unknown type byte.
    #[error("unknown relay message type {0:#04x}")]
    UnknownType(u8),
    /// A body longer than [`MAX_BODY`] (nothing was allocated).
    #[error("relay message of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// A MEDIA body without flags, with reserved flags, or a body where none belongs.
    #[error("malformed relay message")]
    Malformed,
}

/// Reads one message; `Ok(None)` at a clean end of stream.
pub async fn read_msg<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(MsgType, Bytes)>, WireError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let t = MsgType::from_u8(head[0]).ok_or(WireError::UnknownType(head[0]))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    // PROTOCOL.md 9.3: "len is at most MAX_BODY", checked before the body is allocated.
    if len as usize > MAX_BODY {
        return Err(WireError::TooLarge(len));
    }
    let mut body = BytesMut::zeroed(len as usize);
    r.read_exact(&mut body).await?;
    let body = body.freeze();
    let ok = match t {
        MsgType::Joined | MsgType::Keyframe => body.is_empty(),
        MsgType::Media => body.first().is_some_and(|f| f & !FLAG_KEYFRAME == 0) && body.len() > 1,
        MsgType::Bye => body.len() == 1,
        MsgType::Join => !body.is_empty(),
    };
    if !ok {
        return Err(WireError::Malformed);
    }
    Ok(Some((t, body)))
}

/// The wire form of a message (the body within [`MAX_BODY`]).
pub fn encode_msg(t: MsgType, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + body.len());
    b.extend_from_slice(&[t as u8]);
    // Bodies are bounded by MAX_BODY, far below u32::MAX.
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(body);
    b.freeze()
}

/// Writes one message.
pub async fn write_msg<W: AsyncWrite + Unpin>(
    w: &mut W,
    t: MsgType,
    body: &[u8],
) -> std::io::Result<()> {
    w.write_all(&encode_msg(t, body)).await?;
    w.flush().await
}

/// The authenticated metadata of a frame: the meeting and the flags byte.
pub fn metadata(meeting: &MeetingId, flags: u8) -> [u8; 17] {
    let mut m = [0u8; 17];
    m[..16].copy_from_slice(&meeting.0);
    m[16] = flags;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversize_and_malformed_are_refused_before_allocation() {
        let mut b: &[u8] = &[0x03, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_msg(&mut b).await,
            Err(WireError::TooLarge(_))
        ));
        let mut b: &[u8] = &[0x03, 0, 0, 0, 1, 0x01];
        assert!(matches!(read_msg(&mut b).await, Err(WireError::Malformed)));
        let mut b: &[u8] = &[0x09, 0, 0, 0, 0];
        assert!(matches!(
            read_msg(&mut b).await,
            Err(WireError::UnknownType(9))
        ));
        let msg = encode_msg(MsgType::Media, &[0x01, 9, 9]);
        let mut b: &[u8] = &msg;
        let (t, body) = read_msg(&mut b).await.unwrap().unwrap();
        assert_eq!((t, &body[..]), (MsgType::Media, &[1u8, 9, 9][..]));
        let mut b: &[u8] = &[];
        assert!(read_msg(&mut b).await.unwrap().is_none());
    }
}
