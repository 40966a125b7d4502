//! Frames waiting to be sent and frames sent but not yet acknowledged.
//!
//! One budget covers both: a frame counts from `send` until the peer acknowledges it.
//! Bulk frames may use the budget minus a reserve kept for control frames, so a peer
//! that stops acknowledging blocks file data long before it blocks a revocation.
//! The buffer never grows past the budget: a full buffer is backpressure.

use std::collections::VecDeque;

use bytes::Bytes;

use super::frame::{ChannelId, FrameKind, HEADER_LEN};

/// Most bytes (payload plus header) buffered for sending and replay per session: bounds
/// memory and what a peer must be ready to reorder; about one bandwidth-delay product at
/// 300 Mbit/s and 100 ms.
pub const MAX_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Most frames buffered for sending and replay per session: bounds per-frame overhead
/// when frames are small.
pub const MAX_BUFFER_FRAMES: usize = 1024;
/// Bytes of the budget only control-class frames may use: a revocation or END always fits.
pub const CONTROL_RESERVE_BYTES: usize = 256 * 1024;
/// Frames of the budget only control-class frames may use.
pub const CONTROL_RESERVE_FRAMES: usize = 64;

/// Scheduling class: control-class frames are sent before any bulk frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Control,
    Bulk,
}

/// A sequenced frame without its seq and ack.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) kind: FrameKind,
    pub(crate) channel: ChannelId,
    pub(crate) payload: Bytes,
}

impl Outgoing {
    fn cost(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

#[derive(Debug, Default)]
pub(crate) struct SendBuf {
    control: VecDeque<Outgoing>,
    bulk: VecDeque<Outgoing>,
    /// Sent, unacknowledged frames; `unacked[i]` has seq `base + i`.
    unacked: VecDeque<Outgoing>,
    base: u64,
    bytes: usize,
    frames: usize,
}

impl SendBuf {
    /// Whether a frame of `len` payload bytes fits in the budget of `class`.
    pub(crate) fn has_room(&self, class: Class, len: usize) -> bool {
        let (max_b, max_f) = match class {
            Class::Control => (MAX_BUFFER_BYTES, MAX_BUFFER_FRAMES),
            Class::Bulk => (
                MAX_BUFFER_BYTES - CONTROL_RESERVE_BYTES,
                MAX_BUFFER_FRAMES - CONTROL_RESERVE_FRAMES,
            ),
        };
        self.bytes + HEADER_LEN + len <= max_b && self.frames < max_f
    }

    /// Queues a frame; `false` (nothing queued) when the budget is full.
    pub(crate) fn push(&mut self, class: Class, o: Outgoing) -> bool {
        if !self.has_room(class, o.payload.len()) {
            return false;
        }
        self.bytes += o.cost();
        self.frames += 1;
        match class {
            Class::Control => self.control.push_back(o),
            Class::Bulk => self.bulk.push_back(o),
        }
        true
    }

    /// The next sequence number to assign.
    pub(crate) fn next_seq(&self) -> u64 {
        self.base + self.unacked.len() as u64
    }

    /// The oldest unacknowledged sequence number (== `next_seq` when none).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn has_unacked(&self) -> bool {
        !self.unacked.is_empty()
    }

    /// Budget in use: (bytes, frames).
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.bytes, self.frames)
    }

    /// Moves the next pending frame (control first) to the unacked buffer; returns its seq.
    pub(crate) fn take_next(&mut self) -> Option<(u64, &Outgoing)> {
        let o = self.control.pop_front().or_else(|| self.bulk.pop_front())?;
        let seq = self.next_seq();
        self.unacked.push_back(o);
        self.unacked.back().map(|o| (seq, o))
    }

    /// The unacked frame with sequence number `seq`.
    pub(crate) fn get(&self, seq: u64) -> Option<&Outgoing> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.unacked.get(i)
    }

    /// Drops every frame below `next_expected`; `true` if anything was freed.
    /// The caller has checked `next_expected <= next_seq()`.
    pub(crate) fn ack(&mut self, next_expected: u64) -> bool {
        let mut freed = false;
        while self.base < next_expected {
            let Some(o) = self.unacked.pop_front() else {
                break;
            };
            self.bytes -= o.cost();
            self.frames -= 1;
            self.base += 1;
            freed = true;
        }
        freed
    }

    /// Queues a control-class frame even when the budget is full (END only: one frame,
    /// once per session, so it cannot grow the buffer without bound).
    pub(crate) fn push_unbounded(&mut self, o: Outgoing) {
        self.bytes += o.cost();
        self.frames += 1;
        self.control.push_back(o);
    }

    /// Drops pending (never sent) bulk frames, as when this side ends the session.
    pub(crate) fn drop_bulk(&mut self) {
        for o in self.bulk.drain(..) {
            self.bytes -= o.cost();
            self.frames -= 1;
        }
    }

    /// Drops every pending (never sent) frame, as when the peer ended the session.
    pub(crate) fn drop_pending(&mut self) {
        self.drop_bulk();
        for o in self.control.drain(..) {
            self.bytes -= o.cost();
            self.frames -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Outgoing {
        Outgoing {
            kind: FrameKind::Data,
            channel: 1,
            payload: Bytes::from(vec![0; len]),
        }
    }

    #[test]
    fn control_goes_first_and_acks_free_budget() {
        let mut s = SendBuf::default();
        assert!(s.push(Class::Bulk, data(1)));
        assert!(s.push(Class::Control, data(2)));
        assert_eq!(
            s.take_next().map(|(q, o)| (q, o.payload.len())),
            Some((0, 2))
        );
        assert_eq!(
            s.take_next().map(|(q, o)| (q, o.payload.len())),
            Some((1, 1))
        );
        assert_eq!(s.usage(), (2 * HEADER_LEN + 3, 2));
        assert!(s.ack(1));
        assert_eq!(s.get(0).map(|o| o.payload.len()), None);
        assert_eq!(s.get(1).map(|o| o.payload.len()), Some(1));
        assert!(s.ack(2));
        assert_eq!(s.usage(), (0, 0));
    }

    #[test]
    fn bulk_leaves_a_reserve_for_control() {
        let mut s = SendBuf::default();
        while s.push(Class::Bulk, data(60_000)) {}
        assert!(s.usage().0 <= MAX_BUFFER_BYTES - CONTROL_RESERVE_BYTES);
        assert!(s.push(Class::Control, data(100)));
    }
}
