//! Signalling messages between a peer and the gateway (`PROTOCOL.md` section 3).
//!
//! One type per message, each with `decode(&[u8])` (the frame payload; trailing bytes
//! are rejected) and `encode<B: BufMut>` (appends the payload). [`Message`] is the enum
//! over all of them; its [`Message::encode`] writes a whole frame, header included.
//! Every variable-length field is checked against its limit before anything is copied.

use bytes::{BufMut, Bytes};

use super::frame::{FrameError, FrameType, Header, HEADER_LEN};
use super::limits::MAX_PAYLOAD;

mod claim;
mod end;
mod hello;
mod keepalive;
mod queue;
mod reader;
mod reattach;
mod register;
mod rendezvous;
mod types;

pub use claim::{Claim, Paired};
pub use end::{Close, ErrorMessage, PeerGone};
pub use hello::Hello;
pub use keepalive::{Ping, Pong};
pub use queue::{Queue, QueueEntry, QueueList};
pub use reattach::{PeerBack, Reattach, Resumed};
pub use register::{Register, Registered};
pub use rendezvous::{PeerAddr, Rendezvous, UdpToken};
pub use types::{
    AccountId, CloseReason, ErrorCode, ErrorText, RendezvousToken, ResumeSecret, Role, Speaker,
    TechnicianName,
};

/// Why a message payload was rejected. Every variant is the peer's fault: the receiver
/// answers `ERROR{protocol violation}` and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The frame header or buffer is invalid.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The payload ends before all fields are read.
    #[error("message truncated")]
    Truncated,
    /// The payload has bytes after its last field.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A length (text, ticket, list count, DATA payload) is outside its bounds.
    #[error("{field} length {len} out of bounds")]
    Length {
        /// Which field.
        field: &'static str,
        /// The length found.
        len: usize,
    },
    /// A text is not UTF-8.
    #[error("{field} is not UTF-8 text")]
    Text {
        /// Which field.
        field: &'static str,
    },
    /// A text holds a code point peer text may not hold (PROTOCOL.md 1.3).
    #[error(transparent)]
    PeerText(#[from] crate::text::PeerTextError),
    /// A code (role, error code, close reason, kind, address family) is not defined.
    #[error("unknown {field} {code:#x}")]
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// The code found.
        code: u32,
    },
    /// A reserved field is not zero.
    #[error("reserved bits set in {field}")]
    Reserved {
        /// Which field.
        field: &'static str,
    },
}

/// Any gateway-layer message, DATA included.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// HELLO.
    Hello(Hello),
    /// REGISTER.
    Register(Register),
    /// REGISTERED.
    Registered(Registered),
    /// QUEUE.
    Queue(Queue),
    /// QUEUE_LIST.
    QueueList(QueueList),
    /// CLAIM.
    Claim(Claim),
    /// PAIRED.
    Paired(Paired),
    /// DATA: 1 to [`MAX_PAYLOAD`] opaque bytes (inner TLS records).
    Data(Bytes),
    /// PING.
    Ping(Ping),
    /// PONG.
    Pong(Pong),
    /// PEER_GONE.
    PeerGone(PeerGone),
    /// CLOSE.
    Close(Close),
    /// ERROR.
    Error(ErrorMessage),
    /// REATTACH.
    Reattach(Reattach),
    /// RESUMED.
    Resumed(Resumed),
    /// PEER_BACK.
    PeerBack(PeerBack),
    /// RENDEZVOUS.
    Rendezvous(Rendezvous),
    /// UDP_TOKEN.
    UdpToken(UdpToken),
    /// PEER_ADDR.
    PeerAddr(PeerAddr),
}

/// Dispatches `$body` on every non-DATA variant with `$m` bound to the inner message.
macro_rules! each_signal {
    ($self:expr, $m:ident => $body:expr, $data:ident => $data_body:expr) => {
        match $self {
            Message::Hello($m) => $body,
            Message::Register($m) => $body,
            Message::Registered($m) => $body,
            Message::Queue($m) => $body,
            Message::QueueList($m) => $body,
            Message::Claim($m) => $body,
            Message::Paired($m) => $body,
            Message::Ping($m) => $body,
            Message::Pong($m) => $body,
            Message::PeerGone($m) => $body,
            Message::Close($m) => $body,
            Message::Error($m) => $body,
            Message::Reattach($m) => $body,
            Message::Resumed($m) => $body,
            Message::PeerBack($m) => $body,
            Message::Rendezvous($m) => $body,
            Message::UdpToken($m) => $body,
            Message::PeerAddr($m) => $body,
            Message::Data($data) => $data_body,
        }
    };
}

impl Message {
    /// Parses the payload of a frame of type `frame_type`. DATA is copied; use
    /// [`Message::decode_bytes`] to keep it zero-copy.
    pub fn decode(frame_type: FrameType, payload: &[u8]) -> Result<Self, SignalError> {
        if frame_type == FrameType::Data {
            check_data_len(payload.len())?;
            return Ok(Self::Data(Bytes::copy_from_slice(payload)));
        }
        decode_signal(frame_type, payload)
    }

    /// Parses a payload held in `Bytes`; a DATA payload is shared, not copied.
    pub fn decode_bytes(frame_type: FrameType, payload: Bytes) -> Result<Self, SignalError> {
        if frame_type == FrameType::Data {
            check_data_len(payload.len())?;
            return Ok(Self::Data(payload));
        }
        decode_signal(frame_type, &payload)
    }

    /// Parses exactly one whole frame (header and payload) and nothing after it.
    pub fn decode_frame(frame: &[u8]) -> Result<Self, SignalError> {
        let header = Header::parse(frame)?;
        let payload = frame
            .get(HEADER_LEN..)
            .ok_or(FrameError::Truncated { needed: HEADER_LEN })?;
        if payload.len() < header.payload_len {
            return Err(FrameError::Truncated {
                needed: header.payload_len - payload.len(),
            }
            .into());
        }
        if payload.len() > header.payload_len {
            return Err(SignalError::TrailingBytes(
                payload.len() - header.payload_len,
            ));
        }
        Self::decode(header.frame_type, payload)
    }

    /// The frame type of this message.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::Register(_) => FrameType::Register,
            Self::Registered(_) => FrameType::Registered,
            Self::Queue(_) => FrameType::Queue,
            Self::QueueList(_) => FrameType::QueueList,
            Self::Claim(_) => FrameType::Claim,
            Self::Paired(_) => FrameType::Paired,
            Self::Data(_) => FrameType::Data,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::PeerGone(_) => FrameType::PeerGone,
            Self::Close(_) => FrameType::Close,
            Self::Error(_) => FrameType::Error,
            Self::Reattach(_) => FrameType::Reattach,
            Self::Resumed(_) => FrameType::Resumed,
            Self::PeerBack(_) => FrameType::PeerBack,
            Self::Rendezvous(_) => FrameType::Rendezvous,
            Self::UdpToken(_) => FrameType::UdpToken,
            Self::PeerAddr(_) => FrameType::PeerAddr,
        }
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        each_signal!(self, m => m.payload_len(), d => d.len())
    }

    /// Header plus payload length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Appends the whole frame, header included. Fails only for a DATA payload that is
    /// empty or larger than [`MAX_PAYLOAD`]; every other message is bounded by its types.
    pub fn encode<B: BufMut>(&self, dst: &mut B) -> Result<(), SignalError> {
        if let Self::Data(d) = self {
            check_data_len(d.len())?;
        }
        Header::new(self.frame_type(), self.payload_len())?.encode(dst);
        each_signal!(self, m => m.encode(dst), d => dst.put_slice(d));
        Ok(())
    }
}

/// PROTOCOL.md 3.8: "The payload is 1 to 65536 opaque bytes"; "an empty DATA is rejected".
fn check_data_len(len: usize) -> Result<(), SignalError> {
    if len == 0 || len > MAX_PAYLOAD {
        return Err(SignalError::Length { field: "data", len });
    }
    Ok(())
}

fn decode_signal(frame_type: FrameType, p: &[u8]) -> Result<Message, SignalError> {
    Ok(match frame_type {
        FrameType::Hello => Message::Hello(Hello::decode(p)?),
        FrameType::Register => Message::Register(Register::decode(p)?),
        FrameType::Registered => Message::Registered(Registered::decode(p)?),
        FrameType::Queue => Message::Queue(Queue::decode(p)?),
        FrameType::QueueList => Message::QueueList(QueueList::decode(p)?),
        FrameType::Claim => Message::Claim(Claim::decode(p)?),
        FrameType::Paired => Message::Paired(Paired::decode(p)?),
        FrameType::Ping => Message::Ping(Ping::decode(p)?),
        FrameType::Pong => Message::Pong(Pong::decode(p)?),
        FrameType::PeerGone => Message::PeerGone(PeerGone::decode(p)?),
        FrameType::Close => Message::Close(Close::decode(p)?),
        FrameType::Error => Message::Error(ErrorMessage::decode(p)?),
        FrameType::Reattach => Message::Reattach(Reattach::decode(p)?),
        FrameType::Resumed => Message::Resumed(Resumed::decode(p)?),
        FrameType::PeerBack => Message::PeerBack(PeerBack::decode(p)?),
        FrameType::Rendezvous => Message::Rendezvous(Rendezvous::decode(p)?),
        FrameType::UdpToken => Message::UdpToken(UdpToken::decode(p)?),
        FrameType::PeerAddr => Message::PeerAddr(PeerAddr::decode(p)?),
        FrameType::Data => {
            check_data_len(p.len())?;
            Message::Data(Bytes::copy_from_slice(p))
        }
    })
}

/// Fuzz entry point: parses `data` as one frame and, if it parses, re-encodes it and
/// checks that the bytes are identical (every accepted encoding is canonical).
#[doc(hidden)]
pub fn fuzz_decode_frame(data: &[u8]) {
    if let Ok(msg) = Message::decode_frame(data) {
        let mut out = Vec::with_capacity(msg.frame_len());
        assert!(msg.encode(&mut out).is_ok(), "a decoded message encodes");
        assert_eq!(out, data, "decode then encode reproduces the input");
    }
}
