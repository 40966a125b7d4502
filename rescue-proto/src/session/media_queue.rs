//! The latest-frame queue: a queue of encoded frames bounded in time and in bytes, with
//! the keyframe drop rule (PROTOCOL.md 9.1). The session's media sender and the Lens
//! relay's per-subscriber queues both use it.
//!
//! A frame is *late* once it has waited longer than [`QueueLimits::max_age`], and the
//! queue is *over* when it holds more than its byte or frame bound. Either way the
//! queue drops from the front up to (not including) the next keyframe; with no keyframe
//! left it drops everything and then every delta frame pushed until a keyframe comes,
//! because a delta frame whose reference was dropped cannot be decoded. Each drop raises
//! a keyframe request, taken once with [`FrameQueue::take_keyframe_request`].
//!
//! Sans-IO: time is an argument. Nothing grows past the limits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the queue needs to know about an item.
pub trait QueueItem {
    /// Whether the item is a keyframe (decodable without earlier frames).
    fn is_keyframe(&self) -> bool;
    /// Bytes the item counts against the queue's byte bound.
    fn cost(&self) -> usize;
}

/// Bounds of a [`FrameQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Longest a frame may wait: past it, it is late and dropped by the rule.
    pub max_age: Duration,
    /// Most bytes queued.
    pub max_bytes: usize,
    /// Most frames queued.
    pub max_frames: usize,
}

/// Default longest wait of a queued frame: 300 ms, about ten frames at 30 fps; older
/// video is worth less than a fresh keyframe (notes/lens.md 4.1).
pub const MAX_QUEUE_AGE: Duration = Duration::from_millis(300);
/// Default byte bound of a queue: a few keyframes of 720p video.
pub const MAX_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Default frame bound of a queue: about two seconds at 60 fps.
pub const MAX_QUEUE_FRAMES: usize = 128;

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_age: MAX_QUEUE_AGE,
            max_bytes: MAX_QUEUE_BYTES,
            max_frames: MAX_QUEUE_FRAMES,
        }
    }
}

/// What [`FrameQueue::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Dropped: a delta frame while the queue waits for a keyframe.
    Dropped,
    /// Refused: the item alone is larger than the byte bound.
    TooLarge,
}

/// A latest-frame queue (see the module docs).
#[derive(Debug)]
pub struct FrameQueue<T> {
    limits: QueueLimits,
    items: VecDeque<(Instant, T)>,
    bytes: usize,
    need_keyframe: bool,
    keyframe_request: bool,
    dropped: u64,
}

impl<T: QueueItem> FrameQueue<T> {
    /// An empty queue with `limits`. It waits for a keyframe first: a delta frame
    /// before any keyframe cannot be decoded.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            limits,
            items: VecDeque::new(),
            bytes: 0,
            need_keyframe: true,
            keyframe_request: false,
            dropped: 0,
        }
    }

    /// Queues `item` at `now`, applying the drop rule first.
    pub fn push(&mut self, now: Instant, item: T) -> Pushed {
        if item.cost() > self.limits.max_bytes {
            self.drop_all();
            return Pushed::TooLarge;
        }
        if self.need_keyframe && !item.is_keyframe() {
            self.dropped += 1;
            self.keyframe_request = true;
            return Pushed::Dropped;
        }
        if item.is_keyframe() {
            self.need_keyframe = false;
        }
        self.bytes += item.cost();
        self.items.push_back((now, item));
        self.expire(now);
        Pushed::Queued
    }

    /// The next frame to send at `now` (late frames are dropped first).
    pub fn pop(&mut self, now: Instant) -> Option<T> {
        self.expire(now);
        let (_, item) = self.items.pop_front()?;
        self.bytes -= item.cost();
        Some(item)
    }

    /// The next frame at `now` without taking it.
    pub fn peek(&mut self, now: Instant) -> Option<&T> {
        self.expire(now);
        self.items.front().map(|(_, t)| t)
    }

    /// The receiver of this queue's frames lost one (it could not take it): every delta
    /// frame up to the next keyframe is useless now.
    pub fn on_lost(&mut self) {
        self.drop_until_keyframe();
    }

    /// Whether a keyframe was asked for since the last call (once per drop episode).
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// When the front frame becomes late (for a timer), if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.front().map(|(t, _)| *t + self.limits.max_age)
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queued (frames, bytes).
    pub fn len(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether delta frames are dropped until a keyframe arrives.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.need_keyframe
    }

    fn over(&self, now: Instant) -> bool {
        let late = self
            .items
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.limits.max_age);
        late || self.bytes > self.limits.max_bytes || self.items.len() > self.limits.max_frames
    }

    fn expire(&mut self, now: Instant) {
        while self.over(now) {
            self.drop_until_keyframe();
        }
    }

    /// Drops the front frame and every delta after it, up to the next keyframe.
    fn drop_until_keyframe(&mut self) {
        self.keyframe_request = true;
        if let Some((_, first)) = self.items.pop_front() {
            self.bytes -= first.cost();
            self.dropped += 1;
        }
        while let Some((_, t)) = self.items.front() {
            if t.is_keyframe() {
                return;
            }
            self.drop_front();
        }
        self.need_keyframe = true;
    }

    fn drop_front(&mut self) {
        if let Some((_, t)) = self.items.pop_front() {
            self.bytes -= t.cost();
            self.dropped += 1;
        }
    }

    fn drop_all(&mut self) {
        while !self.items.is_empty() {
            self.drop_front();
        }
        self.dropped += 1;
        self.need_keyframe = true;
        self.keyframe_request = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct F(bool, usize, u32);
    impl QueueItem for F {
        fn is_keyframe(&self) -> bool {
            self.0
        }
        fn cost(&self) -> usize {
            self.1
        }
    }

    fn q() -> FrameQueue<F> {
        FrameQueue::new(QueueLimits {
            max_age: Duration::from_millis(100),
            max_bytes: 1000,
            max_frames: 8,
        })
    }

    #[test]
    fn late_frames_drop_to_the_next_keyframe() {
        let t0 = Instant::now();
        let mut q = q();
        assert_eq!(q.push(t0, F(false, 10, 0)), Pushed::Dropped, "delta first");
        assert!(q.take_keyframe_request());
        q.push(t0, F(true, 10, 1));
        q.push(t0, F(false, 10, 2));
        q.push(t0 + Duration::from_millis(50), F(true, 10, 3));
        q.push(t0 + Duration::from_millis(60), F(false, 10, 4));
        // At 120 ms frames 1 and 2 are late: both go, 3 is next.
        let at = t0 + Duration::from_millis(120);
        assert_eq!(q.pop(at), Some(F(true, 10, 3)));
        assert!(q.take_keyframe_request());
        assert!(!q.take_keyframe_request(), "taken once");
        assert_eq!(q.pop(at), Some(F(false, 10, 4)));
        assert_eq!(q.dropped(), 3);
    }

    #[test]
    fn no_keyframe_left_drops_deltas_until_one_comes() {
        let t0 = Instant::now();
        let mut q = q();
        q.push(t0, F(true, 10, 1));
        q.push(t0, F(false, 10, 2));
        let late = t0 + Duration::from_millis(200);
        assert_eq!(q.pop(late), None);
        assert_eq!(q.push(late, F(false, 10, 3)), Pushed::Dropped);
        assert_eq!(q.push(late, F(true, 10, 4)), Pushed::Queued);
        assert_eq!(q.pop(late), Some(F(true, 10, 4)));
    }

    #[test]
    fn byte_and_frame_bounds_hold() {
        let t0 = Instant::now();
        let mut q = q();
        q.push(t0, F(true, 600, 1));
        q.push(t0, F(false, 100, 2));
        q.push(t0, F(true, 600, 3));
        assert_eq!(q.len(), (1, 600));
        assert_eq!(q.push(t0, F(true, 1001, 4)), Pushed::TooLarge);
        assert!(q.is_empty());
    }
}
