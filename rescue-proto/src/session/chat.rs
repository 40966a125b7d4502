//! Chat messages (PROTOCOL.md 7.5): the payload of one DATA frame on channel 1 is one
//! message, UTF-8, at most [`MAX_CHAT_BYTES`], prose under the peer-text rule
//! (PROTOCOL.md 1.3, [`crate::text`]). Chat needs no permission.

use bytes::Bytes;

use crate::text::{check_peer_text, PeerTextError};

/// The field name chat errors carry.
const FIELD: &str = "chat";

/// Longest chat message in bytes: a chat line, not a file transfer; keeps the audit
/// trail and the end user's screen readable.
pub const MAX_CHAT_BYTES: usize = 4096;

/// A refused chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// Longer than [`MAX_CHAT_BYTES`] (the frame is rejected; the session goes on).
    #[error("chat message of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not UTF-8 (the frame is rejected; the session goes on).
    #[error("chat message is not UTF-8")]
    NotUtf8,
    /// Empty.
    #[error("empty chat message")]
    Empty,
    /// Holds a control character, a bidi control or an invisible character (the frame
    /// is rejected; the session goes on).
    #[error(transparent)]
    Text(#[from] PeerTextError),
}

/// The payload for `text` (refused under the same rules as [`decode`], so this side
/// never sends what the peer would refuse).
pub fn encode(text: &str) -> Result<Bytes, ChatError> {
    check_len(text.len())?;
    check_peer_text(FIELD, text)?;
    Ok(Bytes::copy_from_slice(text.as_bytes()))
}

/// The text of a received chat payload.
pub fn decode(payload: &[u8]) -> Result<&str, ChatError> {
    check_len(payload.len())?;
    let text = core::str::from_utf8(payload).map_err(|_| ChatError::NotUtf8)?;
    check_peer_text(FIELD, text)?;
    Ok(text)
}

fn check_len(len: usize) -> Result<(), ChatError> {
    match len {
        0 => Err(ChatError::Empty),
        n if n > MAX_CHAT_BYTES => Err(ChatError::TooLong(n)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_utf8() {
        assert_eq!(decode(&encode("grüß dich").unwrap()), Ok("grüß dich"));
        let long = "x".repeat(MAX_CHAT_BYTES + 1);
        assert_eq!(encode(&long), Err(ChatError::TooLong(MAX_CHAT_BYTES + 1)));
        assert_eq!(
            decode(long.as_bytes()),
            Err(ChatError::TooLong(MAX_CHAT_BYTES + 1))
        );
        assert!(encode(&long[..MAX_CHAT_BYTES]).is_ok());
        assert_eq!(decode(b"\xff\xfe"), Err(ChatError::NotUtf8));
        assert_eq!(encode(""), Err(ChatError::Empty));
    }

    #[test]
    fn terminal_sequences_are_refused_both_ways() {
        for bad in [
            "\u{1b}[2J\u{1b}[HAllow? [y/N]",
            "x\u{1b}]52;c;ZXZpbA==\u{7}",
            "a\nb",
            "\u{202e}",
        ] {
            assert!(
                matches!(decode(bad.as_bytes()), Err(ChatError::Text(_))),
                "{bad:?}"
            );
            assert!(matches!(encode(bad), Err(ChatError::Text(_))), "{bad:?}");
        }
    }
}
