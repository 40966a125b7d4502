//! Framed signalling over one hop, shared by the gateway and the peers: a hop is a
//! boxed stream with the `rescue_proto` [`GatewayCodec`]; [`recv`] waits for one
//! decoded message with a timeout, [`send`] writes one with a timeout.
//!
//! Nothing here parses bytes itself: framing and message formats are `rescue_proto`'s.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rescue_proto::codec::{CodecError, GatewayCodec};
use rescue_proto::wire::signal::Message;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use crate::io::{BoxStream, Rewind};

/// One hop: a peer's connection to a gateway (or the gateway's to a peer), framed.
pub(crate) type Hop = Framed<BoxStream, GatewayCodec>;

/// Time allowed to write one signalling frame: a peer that does not read its socket
/// must not hold a task forever.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`recv`] returned no message.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The stream ended (EOF) before a frame.
    Closed,
    /// The stream failed (reset, TLS error).
    Io(std::io::Error),
    /// A frame or message was malformed or of an unknown type.
    Malformed(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("timed out"),
            RecvError::Closed => f.write_str("connection closed"),
            RecvError::Io(e) => write!(f, "I/O error: {e}"),
            RecvError::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

/// Frames `stream` with the gateway codec.
pub(crate) fn framed(stream: BoxStream) -> Hop {
    Framed::new(stream, GatewayCodec::new())
}

/// Waits up to `wait` for one message.
pub(crate) async fn recv(hop: &mut Hop, wait: Duration) -> Result<Message, RecvError> {
    let frame = match timeout(wait, hop.next()).await {
        Err(_) => return Err(RecvError::Timeout),
        Ok(None) => return Err(RecvError::Closed),
        // At end of stream with part of a frame buffered, the codec reports an I/O
        // error; it is the peer's truncated frame.
        Ok(Some(Err(CodecError::Io(_)))) if !hop.read_buffer().is_empty() => {
            return Err(RecvError::Malformed("truncated frame".into()))
        }
        Ok(Some(Err(e))) => return Err(codec_error(e)),
        Ok(Some(Ok(frame))) => frame,
    };
    frame
        .message()
        .map_err(|e| RecvError::Malformed(e.to_string()))
}

/// Writes and flushes one message within [`SEND_TIMEOUT`].
pub(crate) async fn send(hop: &mut Hop, msg: Message) -> std::io::Result<()> {
    match timeout(SEND_TIMEOUT, hop.send(msg)).await {
        Ok(res) => res.map_err(|e| std::io::Error::other(e.to_string())),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "signalling write timed out",
        )),
    }
}

/// A short name of a message, for logs and ERROR texts.
pub(crate) fn name_of(msg: &Message) -> &'static str {
    match msg {
        Message::Hello(_) => "HELLO",
        Message::Register(_) => "REGISTER",
        Message::Registered(_) => "REGISTERED",
        Message::Queue(_) => "QUEUE",
        Message::QueueList(_) => "QUEUE_LIST",
        Message::Claim(_) => "CLAIM",
        Message::Paired(_) => "PAIRED",
        Message::Data(_) => "DATA",
        Message::Ping(_) => "PING",
        Message::Pong(_) => "PONG",
        Message::PeerGone(_) => "PEER_GONE",
        Message::Close(_) => "CLOSE",
        Message::Error(_) => "ERROR",
        _ => "another message",
    }
}

/// Unframes a hop for the relay core or the DATA tunnel: bytes the codec already read
/// are replayed first, so nothing is lost at the switch.
pub(crate) fn unframe(hop: Hop) -> Rewind<BoxStream> {
    let parts = hop.into_parts();
    Rewind::new(parts.read_buf.freeze(), parts.io)
}

fn codec_error(e: CodecError) -> RecvError {
    match e {
        CodecError::Io(io) => RecvError::Io(io),
        other => RecvError::Malformed(other.to_string()),
    }
}
