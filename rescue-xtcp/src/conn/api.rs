//! The public types of a connection: its states, why it closed, its events and
//! errors, the transmit descriptor and the counters.

use std::net::SocketAddr;

use thiserror::Error;

/// RFC 9293 §3.3.2 connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// SYN sent, waiting for the peer's SYN.
    SynSent,
    /// SYN received (and ours sent), waiting for the ACK of our SYN.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We sent FIN, not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN simultaneously; waiting for the ACK of ours.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Both FINs acknowledged; absorbing stray segments.
    TimeWait,
    /// Finished (see [`CloseReason`]).
    Closed,
}

impl State {
    /// Whether the handshake completed (data may be exchanged).
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both directions finished and were acknowledged.
    Normal,
    /// The peer reset the connection.
    Reset,
    /// The peer refused the connection (RST in answer to our SYN).
    Refused,
    /// Nothing valid heard from the peer for the user timeout.
    TimedOut,
    /// [`Connection::abort`](super::Connection::abort) was called.
    Aborted,
}

/// Events for the application, from [`Connection::poll`](super::Connection::poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// New bytes (or the end of the stream) can be read.
    Readable,
    /// Send-buffer space freed after a write returned [`WriteError::Blocked`].
    Writable,
    /// The peer finished sending; reads return `Some(0)` once drained.
    PeerFinished,
    /// The connection is closed; no more events follow.
    Closed(CloseReason),
}

/// Why a write failed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The send buffer is full; retry after [`Event::Writable`].
    #[error("send buffer full")]
    Blocked,
    /// [`Connection::close`](super::Connection::close) was called; no more data may be written.
    #[error("write side already closed")]
    Finished,
    /// The connection is closed.
    #[error("connection closed: {0:?}")]
    Closed(CloseReason),
}

/// Why a read failed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The connection closed before the peer finished its stream.
    #[error("connection closed: {0:?}")]
    Closed(CloseReason),
}

/// Datagrams ready to send, written by `poll_transmit` into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// Bytes written at the start of the buffer.
    pub size: usize,
    /// `Some(s)`: the buffer holds several datagrams of `s` bytes each (the last
    /// may be shorter), to send with GSO; `None`: one datagram.
    pub segment_size: Option<usize>,
}

/// Per-connection counters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Datagrams sent.
    pub segments_sent: u64,
    /// Valid segments received.
    pub segments_received: u64,
    /// Payload bytes sent for the first time.
    pub bytes_sent: u64,
    /// Payload bytes delivered to the receive buffer in order.
    pub bytes_received: u64,
    /// Segments retransmitted (any cause).
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub rto_count: u64,
    /// Tail-loss probes sent.
    pub tlp_count: u64,
    /// Segments declared lost by SACK/RACK (fast retransmit).
    pub fast_retransmits: u64,
    /// Congestion events (recovery episodes).
    pub congestion_events: u64,
    /// Datagrams dropped as malformed (parse or checksum error).
    pub malformed: u64,
    /// Segments dropped as out of window, forged ids or unacceptable ACKs.
    pub out_of_window: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Segments that carried only already-received data.
    pub duplicates: u64,
    /// Segments stored out of order.
    pub out_of_order: u64,
    /// Out-of-order segments dropped because of the range limit.
    pub ooo_dropped: u64,
    /// Keepalive probes sent.
    pub keepalives: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Payload bytes per segment now (path-MTU discovery raises it from the MSS).
    pub segment_size: usize,
    /// Path-MTU probes sent.
    pub mtu_probes: u64,
    /// Path-MTU probes lost.
    pub mtu_probes_lost: u64,
    /// Falls back to the base segment size after a black hole.
    pub mtu_fallbacks: u64,
}
