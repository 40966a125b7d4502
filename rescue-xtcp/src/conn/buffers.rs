//! Send and receive byte buffers: fixed-capacity rings, no per-segment allocation.
//!
//! The receive buffer is one ring of `capacity` bytes. In-order data sits at the
//! front (readable); out-of-order data is written in place after it and tracked
//! as at most [`MAX_OOO_RANGES`] ranges (an assembler, like smoltcp's).

use std::collections::VecDeque;

/// Most separate out-of-order ranges kept: a segment that would need more is
/// dropped (the peer retransmits it), so a peer cannot make us track unbounded
/// holes. A tail-dropping bottleneck in slow start easily makes a few hundred
/// holes in a 4 MiB window; keeping them all avoids retransmitting what arrived.
/// Insertion is O(ranges), so this also bounds the per-segment cost.
pub(crate) const MAX_OOO_RANGES: usize = 1024;

/// Bytes queued for sending, from SND.UNA (after the SYN) onwards.
#[derive(Debug)]
pub(crate) struct SendBuf {
    data: VecDeque<u8>,
    capacity: usize,
}

impl SendBuf {
    pub(crate) fn new(capacity: usize) -> Self {
        SendBuf {
            data: VecDeque::new(),
            capacity,
        }
    }

    /// Bytes buffered (unacknowledged plus unsent).
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Free space.
    pub(crate) fn free(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        self.data.extend(&bytes[..n]);
        n
    }

    /// Drops `n` acknowledged bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
    }

    /// Appends `len` bytes starting at `offset` to `out`. The caller keeps
    /// `offset + len <= self.len()`; anything beyond is silently cut.
    pub(crate) fn copy_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        let end = offset.saturating_add(len).min(self.data.len());
        let offset = offset.min(end);
        let (a, b) = self.data.as_slices();
        if offset < a.len() {
            out.extend_from_slice(&a[offset..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[offset.saturating_sub(a.len())..end - a.len()]);
        }
    }
}

/// Received bytes: a readable prefix and out-of-order ranges after it.
#[derive(Debug)]
pub(crate) struct RecvBuf {
    /// The ring, allocated on the first stored byte (so a half-open connection
    /// created by a SYN costs no buffer).
    data: Vec<u8>,
    capacity: usize,
    head: usize,
    readable: usize,
    /// Out-of-order ranges `[start, end)` as offsets from the end of the readable
    /// prefix (that is, from RCV.NXT), sorted, disjoint, not adjacent.
    ooo: Vec<(usize, usize)>,
    /// Offset of the most recently stored out-of-order segment (for SACK order).
    recent: Option<usize>,
}

impl RecvBuf {
    pub(crate) fn new(capacity: usize) -> Self {
        RecvBuf {
            data: Vec::new(),
            capacity: capacity.max(1),
            head: 0,
            readable: 0,
            ooo: Vec::new(),
            recent: None,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes ready for the application.
    pub(crate) fn readable(&self) -> usize {
        self.readable
    }

    /// Space after the readable prefix: the receive window.
    pub(crate) fn window(&self) -> usize {
        self.capacity() - self.readable
    }

    /// Whether out-of-order data is held.
    pub(crate) fn has_ooo(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// How many out-of-order ranges are held.
    pub(crate) fn ooo_ranges(&self) -> usize {
        self.ooo.len()
    }

    /// The out-of-order ranges, the one holding the most recent segment first, then
    /// from the highest down, as offsets from RCV.NXT.
    pub(crate) fn sack_ranges(&self) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
        let recent = self
            .recent
            .and_then(|r| self.ooo.iter().position(|&(s, e)| s <= r && r < e));
        let first = recent.map(|i| self.ooo[i]);
        // Then the highest ranges: RFC 2018 §4 has the later blocks repeat the
        // most recently reported ones, and data arrives at the top, so the highest
        // ranges are the newest; the low ones were reported while they were new.
        first.into_iter().chain(
            self.ooo
                .iter()
                .enumerate()
                .rev()
                .filter(move |(i, _)| Some(*i) != recent)
                .map(|(_, r)| *r),
        )
    }

    /// Stores `bytes` at `offset` from RCV.NXT. Returns how many bytes became
    /// readable (RCV.NXT advances by that), or `None` if the segment was not
    /// stored because it falls outside the window or would exceed
    /// [`MAX_OOO_RANGES`]. The caller trims segments to the window first.
    pub(crate) fn insert(&mut self, offset: usize, bytes: &[u8]) -> Option<usize> {
        let end = offset.checked_add(bytes.len())?;
        if end > self.window() || bytes.is_empty() {
            return None;
        }
        if !self.add_range(offset, end) {
            return None;
        }
        if self.data.is_empty() {
            self.data = vec![0; self.capacity];
        }
        self.copy_in(offset, bytes);
        if offset > 0 {
            self.recent = Some(offset);
        }
        let advance = match self.ooo.first() {
            Some(&(0, e)) => e,
            _ => 0,
        };
        if advance > 0 {
            self.ooo.remove(0);
            for r in &mut self.ooo {
                r.0 -= advance;
                r.1 -= advance;
            }
            self.recent = self.recent.and_then(|r| r.checked_sub(advance));
            self.readable += advance;
        }
        Some(advance)
    }

    /// Merges `[start, end)` into the range list; false if it would need a new
    /// range beyond the limit.
    fn add_range(&mut self, start: usize, end: usize) -> bool {
        let first = self.ooo.partition_point(|&(_, e)| e < start);
        let last = self.ooo.partition_point(|&(s, _)| s <= end);
        if first == last {
            if self.ooo.len() >= MAX_OOO_RANGES && start > 0 {
                return false;
            }
            self.ooo.insert(first, (start, end));
            return true;
        }
        let s = start.min(self.ooo[first].0);
        let e = end.max(self.ooo[last - 1].1);
        self.ooo.drain(first + 1..last);
        self.ooo[first] = (s, e);
        true
    }

    fn copy_in(&mut self, offset: usize, bytes: &[u8]) {
        let cap = self.capacity();
        let pos = (self.head + self.readable + offset) % cap;
        let first = bytes.len().min(cap - pos);
        self.data[pos..pos + first].copy_from_slice(&bytes[..first]);
        let rest = bytes.len() - first;
        self.data[..rest].copy_from_slice(&bytes[first..]);
    }

    /// Copies readable bytes into `out`; returns how many.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> usize {
        let cap = self.capacity();
        let n = out.len().min(self.readable);
        if n == 0 {
            return 0;
        }
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.data[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.data[..n - first]);
        self.head = (self.head + n) % cap;
        self.readable -= n;
        if self.readable == 0 && self.ooo.is_empty() {
            self.head = 0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn send_buf_copies_across_the_ring_seam() {
        let mut b = SendBuf::new(8);
        assert_eq!(b.push(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.push(b"ghijkl"), 6);
        assert_eq!(b.push(b"z"), 0);
        let mut out = Vec::new();
        b.copy_to(1, 5, &mut out);
        assert_eq!(out, b"fghij");
    }

    #[test]
    fn out_of_order_data_becomes_readable_when_the_hole_fills() {
        let mut r = RecvBuf::new(16);
        assert_eq!(r.insert(4, b"efgh"), Some(0));
        assert_eq!(r.insert(10, b"kl"), Some(0));
        assert_eq!(r.sack_ranges().next(), Some((10, 12)));
        assert_eq!(r.insert(0, b"abcd"), Some(8));
        assert_eq!(r.sack_ranges().collect::<Vec<_>>(), vec![(2, 4)]);
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        assert_eq!(r.insert(0, b"ij"), Some(4));
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out[..4], b"ijkl");
        assert_eq!(r.insert(0, &[0; 17]), None);
    }

    #[test]
    fn too_many_holes_are_refused() {
        let mut r = RecvBuf::new(4 * MAX_OOO_RANGES);
        for i in 0..MAX_OOO_RANGES {
            assert_eq!(r.insert(2 + i * 2, b"x"), Some(0));
        }
        assert_eq!(r.insert(4 * MAX_OOO_RANGES - 2, b"x"), None);
        // Filling from the front still works (and merges with the first range).
        assert_eq!(r.insert(0, b"ab"), Some(3));
    }

    proptest! {
        #[test]
        fn any_arrival_order_reassembles_the_stream(
            cuts in proptest::collection::vec(1usize..50, 1..40),
            order in proptest::collection::vec(any::<u16>(), 40),
            cap_extra in 0usize..64,
        ) {
            let total: usize = cuts.iter().sum();
            let stream: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in &cuts { pieces.push((at, at + c)); at += c; }
            let mut idx: Vec<usize> = (0..pieces.len()).collect();
            idx.sort_by_key(|&i| order[i % order.len()]);
            let mut r = RecvBuf::new(total + cap_extra + 1);
            let mut nxt = 0;
            for i in idx {
                let (s, e) = pieces[i];
                if e <= nxt { continue; }
                let s2 = s.max(nxt);
                if let Some(adv) = r.insert(s2 - nxt, &stream[s2..e]) { nxt += adv; }
            }
            // Re-deliver everything in order to fill holes refused earlier.
            for &(s, e) in &pieces {
                if e <= nxt { continue; }
                let s2 = s.max(nxt);
                if let Some(adv) = r.insert(s2 - nxt, &stream[s2..e]) { nxt += adv; }
            }
            prop_assert_eq!(nxt, total);
            let mut out = vec![0; total];
            prop_assert_eq!(r.read(&mut out), total);
            prop_assert_eq!(out, stream);
        }
    }
}
