//! Per-path state of the reliable core: keepalive clocks, path-local control frames,
//! the replay cursor and the SWITCH marker.

use std::collections::VecDeque;
use std::time::Instant;

use super::reliable::PathId;

/// Most path-local control frames (PING, PONG, RESUME) queued on one path: a peer that
/// floods PINGs gets its extra PONGs dropped instead of growing memory.
pub(crate) const MAX_PATH_CONTROL: usize = 8;

/// A queued path-local frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathControl {
    Ping(u64),
    Pong(u64),
    Resume,
}

#[derive(Debug)]
pub(crate) struct Path {
    pub(crate) id: PathId,
    pub(crate) last_rx: Instant,
    pub(crate) next_ping: Instant,
    pub(crate) control: VecDeque<PathControl>,
    /// Frames `[from, to)` to replay on this path after the peer's RESUME.
    pub(crate) replay: Option<(u64, u64)>,
    /// SWITCH{next_seq} to send once the replay cursor is done.
    pub(crate) switch_marker: Option<u64>,
    /// Next seq when this path became the send path (frames below it were not sent here).
    pub(crate) first_seq: u64,
    /// Highest ACK received on this path (ACKs on one path never go down).
    pub(crate) max_ack: u64,
    pub(crate) sent_resume: bool,
    pub(crate) got_resume: bool,
    pub(crate) sent_switch: bool,
    pub(crate) got_switch: bool,
    pub(crate) retired: bool,
}

impl Path {
    pub(crate) fn new(id: PathId, now: Instant, first_ping: Instant, first_seq: u64) -> Self {
        Self {
            id,
            last_rx: now,
            next_ping: first_ping,
            control: VecDeque::new(),
            replay: None,
            switch_marker: None,
            first_seq,
            max_ack: 0,
            sent_resume: false,
            got_resume: false,
            sent_switch: false,
            got_switch: false,
            retired: false,
        }
    }

    /// Queues a path-local frame; `false` when the queue is full (the frame is dropped).
    pub(crate) fn queue(&mut self, c: PathControl) -> bool {
        if self.control.len() >= MAX_PATH_CONTROL {
            return false;
        }
        self.control.push_back(c);
        true
    }

    /// Whether both SWITCH markers crossed on this path (it carries no more data).
    pub(crate) fn drained(&self) -> bool {
        self.sent_switch && self.got_switch
    }
}
