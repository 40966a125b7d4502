//! The two ends of a camera stream on the media channel (PROTOCOL.md 9.1): the applet's
//! [`MediaSender`] (a latest-frame queue, splitting, the media window) and the console's
//! [`MediaReceiver`] (reassembly with limits, the keyframe rule, keyframe requests).
//!
//! ```text
//!  app ─► MediaSender (FrameQueue, ≤ 300 ms) ─feed(window)─► Reliable (bulk class) ─► path
//!  path ─► Reliable ─► MediaReceiver (one reassembly) ─► app queue; full ─► drop to keyframe
//!                                    └─ KEYFRAME_REQUEST (at most one per 200 ms) ─► applet
//! ```
//!
//! Control and chat are never queued behind media: they are control class in the core,
//! sent before any bulk frame, and [`feed`] lets media into the core only while the
//! core holds less than [`MEDIA_WINDOW`] bytes, so what can be ahead of a control frame
//! on the wire is at most one window plus one frame. Everything else waits in the
//! sender's queue, where the time bound and the keyframe rule apply.
//!
//! Sans-IO: time is an argument; nothing grows past the named limits.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::channels::MEDIA;
use super::frame::HEADER_LEN;
use super::media::{Fragment, MediaError, MediaMsg, MAX_FRAGMENT_DATA, MAX_MEDIA_FRAME};
use super::media_queue::{FrameQueue, Pushed, QueueItem, QueueLimits};
use super::reliable::{Reliable, SendError};
use super::sendbuf::{CONTROL_RESERVE_BYTES, CONTROL_RESERVE_FRAMES};
use super::sendbuf::{MAX_BUFFER_BYTES, MAX_BUFFER_FRAMES};

/// Most bytes (all channels) the core may hold before [`feed`] stops adding media: what
/// a control frame can find ahead of it on the wire. 256 KiB is 70 ms at 30 Mbit/s.
pub const MEDIA_WINDOW: usize = 256 * 1024;
/// Least time between two keyframe requests of a receiver: an encoder needs a moment to
/// answer, and a flood of requests only makes it send keyframes back to back (LiveKit's
/// `keyFrameIntervalMin` is 200 ms too).
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(200);
/// Longest a started frame may take to complete: a sender that stops in the middle of
/// a frame loses it, and its memory, after this.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(2);

/// An encoded camera frame as the application gives or gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFrame {
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// Capture time, microseconds on the sender's clock.
    pub capture_us: u64,
    /// The encoded bytes (for H.264: one Annex B access unit).
    pub data: Bytes,
}

/// A frame with its number, as queued and as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberedFrame {
    /// Frame number (counts captured frames; gaps are drops).
    pub frame_no: u32,
    /// The frame.
    pub frame: MediaFrame,
}

impl QueueItem for NumberedFrame {
    fn is_keyframe(&self) -> bool {
        self.frame.keyframe
    }
    fn cost(&self) -> usize {
        self.frame.data.len()
    }
}

/// Counters of one end of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Frames sent (sender) or delivered (receiver).
    pub frames: u64,
    /// Frames dropped by the latest-frame rule on this side.
    pub dropped: u64,
    /// Frames the receiver never saw (gaps in the frame numbers: sender drops).
    pub gaps: u64,
}

/// The applet's end: a latest-frame queue feeding the session core.
#[derive(Debug)]
pub struct MediaSender {
    queue: FrameQueue<NumberedFrame>,
    next_no: u32,
    keyframe_wanted: bool,
    sent: u64,
}

impl MediaSender {
    /// A sender whose queue has `limits`.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            queue: FrameQueue::new(limits),
            next_no: 0,
            keyframe_wanted: true,
            sent: 0,
        }
    }

    /// The application captured `frame` at `now`.
    pub fn push(&mut self, now: Instant, frame: MediaFrame) -> Result<(), MediaError> {
        if frame.data.is_empty() || frame.data.len() > MAX_MEDIA_FRAME {
            return Err(MediaError::FrameTooLarge(frame.data.len() as u64));
        }
        let frame_no = self.next_no;
        self.next_no = self.next_no.wrapping_add(1);
        match self.queue.push(now, NumberedFrame { frame_no, frame }) {
            Pushed::TooLarge => Err(MediaError::QueueTooSmall),
            Pushed::Queued | Pushed::Dropped => Ok(()),
        }
    }

    /// The receiver asked for a keyframe.
    pub fn on_keyframe_request(&mut self) {
        self.keyframe_wanted = true;
    }

    /// Whether the encoder should make the next frame a keyframe (the receiver asked, or
    /// the queue dropped frames); true once per request.
    pub fn take_keyframe_wanted(&mut self) -> bool {
        let q = self.queue.take_keyframe_request();
        std::mem::take(&mut self.keyframe_wanted) || q
    }

    /// The next frame at `now` as its encoded fragments, if `fits(bytes, frames)` says
    /// the core has room for all of them (a frame is never split across a pause).
    pub fn poll_frame(
        &mut self,
        now: Instant,
        fits: impl FnOnce(usize, usize) -> bool,
    ) -> Option<Vec<Bytes>> {
        let f = self.queue.peek(now)?;
        let n = f.frame.data.len().div_ceil(MAX_FRAGMENT_DATA);
        let bytes = f.frame.data.len() + n * (HEADER_LEN + super::media::FRAGMENT_HEADER_LEN);
        if !fits(bytes, n) {
            return None;
        }
        let f = self.queue.pop(now)?;
        self.sent += 1;
        Some(split(&f))
    }

    /// When the front frame becomes late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            frames: self.sent,
            dropped: self.queue.dropped(),
            gaps: 0,
        }
    }
}

/// The fragments of one frame, in order.
pub fn split(f: &NumberedFrame) -> Vec<Bytes> {
    let total = f.frame.data.len();
    let mut out = Vec::with_capacity(total.div_ceil(MAX_FRAGMENT_DATA));
    let mut offset = 0;
    while offset < total {
        let end = (offset + MAX_FRAGMENT_DATA).min(total);
        let m = MediaMsg::Fragment(Fragment {
            keyframe: f.frame.keyframe,
            frame_no: f.frame_no,
            capture_us: f.frame.capture_us,
            // Both fit: total <= MAX_MEDIA_FRAME (checked in push).
            total: total as u32,
            offset: offset as u32,
            data: f.frame.data.slice(offset..end),
        });
        out.push(m.encode());
        offset = end;
    }
    out
}

/// Moves what fits from `sender` into `core` at `now` under the media window; returns
/// the frames moved. A send error other than backpressure is returned (the session
/// ended).
pub fn feed(
    now: Instant,
    sender: &mut MediaSender,
    core: &mut Reliable,
) -> Result<usize, SendError> {
    let mut moved = 0;
    loop {
        let (bytes, frames) = core.buffered();
        if bytes >= MEDIA_WINDOW {
            return Ok(moved);
        }
        // The bulk budget of the core (sendbuf.rs), so every fragment is accepted.
        let fits = |b: usize, n: usize| {
            bytes + b <= MAX_BUFFER_BYTES - CONTROL_RESERVE_BYTES
                && frames + n < MAX_BUFFER_FRAMES - CONTROL_RESERVE_FRAMES
        };
        let Some(frags) = sender.poll_frame(now, fits) else {
            return Ok(moved);
        };
        for f in frags {
            core.send(MEDIA, f)?;
        }
        moved += 1;
    }
}

#[derive(Debug)]
struct Partial {
    started: Instant,
    first: Fragment,
    data: BytesMut,
}

/// The console's end: reassembly, the keyframe rule and keyframe requests.
#[derive(Debug)]
pub struct MediaReceiver {
    partial: Option<Partial>,
    last_no: Option<u32>,
    need_keyframe: bool,
    request_pending: bool,
    last_request: Option<Instant>,
    stats: MediaStats,
}

impl Default for MediaReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaReceiver {
    /// A receiver waiting for its first keyframe.
    pub fn new() -> Self {
        Self {
            partial: None,
            last_no: None,
            need_keyframe: true,
            request_pending: false,
            last_request: None,
            stats: MediaStats::default(),
        }
    }

    /// One FRAGMENT payload at `now`; a whole frame that passes the keyframe rule comes
    /// back. An error is a protocol violation by the sender (close the stream).
    pub fn handle(
        &mut self,
        now: Instant,
        payload: &Bytes,
    ) -> Result<Option<NumberedFrame>, MediaError> {
        let f = match MediaMsg::decode(payload)? {
            MediaMsg::Fragment(f) => f,
            _ => return Err(MediaError::Direction),
        };
        self.handle_fragment(now, f)
    }

    /// [`MediaReceiver::handle`] for a decoded fragment.
    pub fn handle_fragment(
        &mut self,
        now: Instant,
        f: Fragment,
    ) -> Result<Option<NumberedFrame>, MediaError> {
        let done = match self.partial.take() {
            None => {
                // PROTOCOL.md 9.1: "a frame starts at offset 0; frame numbers increase".
                if f.offset != 0 {
                    return Err(MediaError::OutOfOrder);
                }
                if let Some(last) = self.last_no {
                    if f.frame_no <= last {
                        return Err(MediaError::FrameNumber {
                            last,
                            got: f.frame_no,
                        });
                    }
                    self.stats.gaps += u64::from(f.frame_no - last - 1);
                }
                self.last_no = Some(f.frame_no);
                let mut data = BytesMut::with_capacity(f.data.len());
                data.extend_from_slice(&f.data);
                Partial {
                    started: now,
                    first: f,
                    data,
                }
            }
            Some(mut p) => {
                let same = p.first.frame_no == f.frame_no
                    && p.first.keyframe == f.keyframe
                    && p.first.capture_us == f.capture_us
                    && p.first.total == f.total
                    && f.offset as usize == p.data.len();
                if !same {
                    return Err(MediaError::OutOfOrder);
                }
                p.data.extend_from_slice(&f.data);
                p
            }
        };
        if done.data.len() < done.first.total as usize {
            self.partial = Some(done);
            return Ok(None);
        }
        let frame = NumberedFrame {
            frame_no: done.first.frame_no,
            frame: MediaFrame {
                keyframe: done.first.keyframe,
                capture_us: done.first.capture_us,
                data: done.data.freeze(),
            },
        };
        if self.need_keyframe && !frame.frame.keyframe {
            self.stats.dropped += 1;
            self.want_keyframe();
            return Ok(None);
        }
        self.need_keyframe = false;
        self.stats.frames += 1;
        Ok(Some(frame))
    }

    /// The application could not take the last frame: drop every delta frame up to the
    /// next keyframe and ask for one.
    pub fn on_lost(&mut self) {
        self.stats.frames = self.stats.frames.saturating_sub(1);
        self.stats.dropped += 1;
        self.need_keyframe = true;
        self.want_keyframe();
    }

    /// Runs the reassembly timer at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .partial
            .as_ref()
            .is_some_and(|p| now >= p.started + REASSEMBLY_TIMEOUT)
        {
            self.partial = None;
            self.stats.dropped += 1;
            self.need_keyframe = true;
            self.want_keyframe();
        }
    }

    /// The earliest instant a timer or a held keyframe request is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reasm = self
            .partial
            .as_ref()
            .map(|p| p.started + REASSEMBLY_TIMEOUT);
        let req = self
            .request_pending
            .then(|| self.last_request.map(|t| t + KEYFRAME_REQUEST_INTERVAL))
            .flatten();
        match (reasm, req) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A KEYFRAME_REQUEST to send at `now`, if one is owed and the rate limit allows.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if !self.request_pending {
            return None;
        }
        if self
            .last_request
            .is_some_and(|t| now < t + KEYFRAME_REQUEST_INTERVAL)
        {
            return None;
        }
        self.request_pending = false;
        self.last_request = Some(now);
        Some(MediaMsg::KeyframeRequest.encode())
    }

    /// Bytes held in an incomplete frame.
    pub fn reassembly_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    fn want_keyframe(&mut self) {
        self.request_pending = true;
    }
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
