//! Events and errors of the reliable core (re-exported from [`super::reliable`]).

use bytes::Bytes;

use super::frame::{ChannelId, EndReason, FrameError};
use super::reliable::PathId;

/// What the core tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Payload received on an open channel, in order, exactly once.
    Data {
        /// The channel.
        channel: ChannelId,
        /// The payload.
        payload: Bytes,
    },
    /// The peer opened an application channel.
    ChannelOpened {
        /// The new channel.
        channel: ChannelId,
        /// Its label.
        label: String,
    },
    /// An application channel closed.
    ChannelClosed {
        /// The channel.
        channel: ChannelId,
        /// Whether the peer closed it.
        by_peer: bool,
    },
    /// A frame was rejected without ending the session (for example DATA on a channel
    /// this side already closed).
    Rejected {
        /// The frame's channel.
        channel: ChannelId,
        /// Why.
        error: ChannelError,
    },
    /// Room in the send buffer again after a `Backpressure` error.
    Writable,
    /// New frames now go on this path.
    PathActive {
        /// The path.
        path: PathId,
        /// The previous send path, when this was a graceful switch.
        switched_from: Option<PathId>,
    },
    /// Both SWITCH markers crossed on this path: it carries no more data and may be
    /// closed after a grace period (make before break).
    PathRetired {
        /// The path.
        path: PathId,
    },
    /// The core dropped a path; the driver closes its transport.
    PathLost {
        /// The path.
        path: PathId,
        /// Why.
        reason: PathLossReason,
    },
    /// The session ended: every grant is void from now on.
    Ended {
        /// Why.
        reason: EndReason,
        /// Whether the peer sent the END.
        by_peer: bool,
    },
    /// The END handshake finished (or lingered out): close every path.
    Closed,
}

/// Why a path was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathLossReason {
    /// The driver reported it ([`Reliable::on_path_lost`](super::reliable::Reliable::on_path_lost)).
    Transport,
    /// Nothing received for [`Config::path_dead_after`](super::reliable::Config::path_dead_after).
    KeepaliveTimeout,
}

/// A non-fatal reaction to a frame on a channel (PROTOCOL.md 7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// DATA on a channel this side closed: the frame is dropped.
    #[error("frame on a closed channel")]
    Closed,
    /// The peer opened more than `MAX_APP_CHANNELS`: the channel is closed at once.
    #[error("too many open channels")]
    TableFull,
}

/// A fatal error: the session fails and every path should be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A frame broke the byte format.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame named a channel that was never opened (or a reserved id).
    #[error("frame on unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// OPEN or CLOSE broke the channel id rules.
    #[error("bad OPEN/CLOSE of channel {0}")]
    BadChannelId(ChannelId),
    /// The peer acknowledged a frame that was never sent.
    #[error("ACK {ack} beyond next sequence number {next_seq}")]
    AckOutOfRange {
        /// The ACK received.
        ack: u64,
        /// Our next sequence number.
        next_seq: u64,
    },
    /// The peer sent further ahead than the buffer limits allow.
    #[error("peer exceeded the reorder window")]
    WindowExceeded,
    /// RESUME asked for frames no longer buffered (they were acknowledged before).
    #[error("RESUME from {requested}, but the oldest buffered frame is {oldest}")]
    ResumeUnavailable {
        /// The peer's next expected sequence number.
        requested: u64,
        /// Our oldest buffered sequence number.
        oldest: u64,
    },
    /// A second RESUME on the same path.
    #[error("duplicate RESUME on one path")]
    DuplicateResume,
    /// The peer stopped acknowledging for [`Config::stall_timeout`](super::reliable::Config::stall_timeout).
    #[error("peer stopped acknowledging")]
    PeerStalled,
    /// No path for [`Config::no_path_timeout`](super::reliable::Config::no_path_timeout).
    #[error("no path within the timeout")]
    NoPath,
    /// The sequence space ran out (2^64 frames).
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The session already failed; nothing more is processed.
    #[error("session already failed")]
    Failed,
}

impl SessionError {
    /// The END reason this failure is reported with, to the peer and the application:
    /// [`EndReason::Timeout`] for a stalled peer or a lost path, otherwise
    /// [`EndReason::ProtocolError`].
    pub fn end_reason(&self) -> EndReason {
        match self {
            Self::PeerStalled | Self::NoPath => EndReason::Timeout,
            _ => EndReason::ProtocolError,
        }
    }
}

/// Why [`Reliable::send`](super::reliable::Reliable::send) (or `open_channel`, `close_channel`) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The send buffer is full: wait for [`Event::Writable`].
    #[error("send buffer full")]
    Backpressure,
    /// The payload exceeds `MAX_PAYLOAD` (or a label `MAX_LABEL`).
    #[error("payload too large")]
    TooLarge,
    /// The channel is not open.
    #[error("channel not open")]
    ChannelNotOpen,
    /// The channel label holds what a name may not hold (PROTOCOL.md 1.3).
    #[error("channel label refused by the peer-text rule")]
    BadLabel,
    /// No more application channels can be opened.
    #[error("too many channels")]
    TooManyChannels,
    /// The session ended or failed.
    #[error("session ended")]
    Ended,
}

/// A driver mistake with paths; the session is unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path id is not (or no longer) known.
    #[error("unknown path")]
    Unknown,
    /// The path id is already up.
    #[error("path already up")]
    Duplicate,
    /// [`MAX_PATHS`](super::reliable::MAX_PATHS) are up.
    #[error("too many paths")]
    TooMany,
}
