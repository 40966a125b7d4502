//! Frame helpers over `rescue_proto::wire`: control frames held by value.

pub(crate) use rescue_proto::wire::frame::HEADER_LEN;
pub(crate) use rescue_proto::wire::frame::MAX_FRAME_LEN;
pub(crate) use rescue_proto::wire::scan::CONTROL_FRAME_MAX;
use rescue_proto::wire::signal::{Close, CloseReason, ErrorCode, ErrorMessage, Message};
use rescue_proto::wire::signal::{PeerGone, Pong};

/// A small encoded control frame held by value (no allocation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Control {
    bytes: [u8; CONTROL_FRAME_MAX],
    len: usize,
}

impl Control {
    /// Encodes `msg`; `None` if it is larger than [`CONTROL_FRAME_MAX`].
    pub(crate) fn new(msg: &Message) -> Option<Control> {
        let len = msg.frame_len();
        if len > CONTROL_FRAME_MAX {
            return None;
        }
        let mut bytes = [0; CONTROL_FRAME_MAX];
        // `len` fits, so the slice never runs out of room.
        msg.encode(&mut &mut bytes[..]).ok()?;
        Some(Control { bytes, len })
    }

    /// The encoded frame.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Encodes a message known to fit; an empty frame (nothing sent) otherwise.
fn fixed(msg: Message) -> Control {
    let empty = Control {
        bytes: [0; CONTROL_FRAME_MAX],
        len: 0,
    };
    Control::new(&msg).unwrap_or(empty)
}

/// `ERROR{code, empty message}`.
pub(crate) fn error(code: ErrorCode) -> Control {
    fixed(Message::Error(ErrorMessage::new(code)))
}

/// `CLOSE{reason}`.
pub(crate) fn close(reason: CloseReason) -> Control {
    fixed(Message::Close(Close { reason }))
}

/// `PEER_GONE{grace_secs 0}`: the other party is gone for good.
pub(crate) fn peer_gone() -> Control {
    fixed(Message::PeerGone(PeerGone { grace_secs: 0 }))
}

/// `PEER_GONE{grace_secs}` for a survivor that may see the other party back within
/// `grace` (whole seconds, saturating).
pub(crate) fn peer_gone_for(grace: std::time::Duration) -> Control {
    let grace_secs = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
    fixed(Message::PeerGone(PeerGone { grace_secs }))
}

/// `PONG{nonce}`.
pub(crate) fn pong(nonce: u64) -> Control {
    fixed(Message::Pong(Pong { nonce }))
}
