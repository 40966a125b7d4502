//! Chat messages (PROTOCOL.md 7.5): the payload of one DATA frame on channel 1 is one
//! message, UTF-8, at most [`MAX_CHAT_BYTES`]. Chat needs no permission.

use bytes::Bytes;

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
}

/// The payload for `text`.
pub fn encode(text: &str) -> Result<Bytes, ChatError> {
    check_len(text.len())?;
    Ok(Bytes::copy_from_slice(text.as_bytes()))
}

/// The text of a received chat payload.
pub fn decode(payload: &[u8]) -> Result<&str, ChatError> {
    check_len(payload.len())?;
    core::str::from_utf8(payload).map_err(|_| ChatError::NotUtf8)
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
}
