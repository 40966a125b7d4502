//! One direction of a session: reads one hop, forwards to the other.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use rescue_proto::wire::scan::{Direction, FrameScanner, Scan};
use rescue_proto::wire::signal::{CloseReason, ErrorCode, Message};

use super::frame::{self, Control};
use super::frame::{CONTROL_FRAME_MAX, HEADER_LEN};
use super::outbox::Outbox;
use super::throttle::Throttle;
use super::{DirectionStats, FrameViolation, MAX_SPINS, RELAY_BUFFER};

/// Zero bytes that complete a lost hop's partial DATA frame (reattach mode).
static ZEROS: [u8; 4096] = [0; 4096];

/// What a direction reports to the session.
#[derive(Debug)]
pub(super) enum DirEvent {
    /// The direction finished its final frames and shut its writer down.
    Done,
    /// The reading hop sent CLOSE with this reason.
    Closed(CloseReason),
    /// The reading hop's stream ended (EOF or error); `truncated` if inside a frame.
    ReadEnded {
        error: Option<io::ErrorKind>,
        truncated: bool,
    },
    /// The reading hop sent ERROR with this code.
    PeerError(ErrorCode),
    /// Writing to the other hop failed.
    WriteFailed(io::Error),
    /// The reading hop broke the protocol.
    Violation(FrameViolation),
    /// The reading hop sent RENDEZVOUS (only with a signalling hook; both outboxes
    /// have room for a frame).
    Rendezvous,
}

enum Phase {
    Running,
    /// Reattach mode, reading the lost hop: write what is checked, pad the current
    /// DATA frame with zeros, send the outbox and `last` (PEER_GONE), flush.
    Sealing {
        last: Option<Control>,
    },
    /// Reattach mode, reading the survivor: read its current DATA frame to its end
    /// and drop it (the lost hop cannot take it).
    Skipping,
    /// Drain, finish the current frame (reading only if `read`), send `last`, shut down.
    Finishing {
        last: Option<Control>,
        read: bool,
    },
    Done,
}

/// One direction's buffer: `[write_pos, validated)` is checked DATA not yet written,
/// `[validated, filled)` is read but not yet checked.
pub(super) struct Dir {
    buf: Box<[u8]>,
    write_pos: usize,
    validated: usize,
    filled: usize,
    /// The frame rules of what this direction reads (where the current frame ends).
    scanner: FrameScanner,
    read_eof: bool,
    need_flush: bool,
    phase: Phase,
    last_read: Instant,
    stats: DirectionStats,
    throttle: Option<Throttle>,
    /// A PING waits for the previous PONG to leave (the session re-polls on that).
    stalled: bool,
    /// Reattach mode: sealing or skipping failed (the survivor is gone too).
    lost: bool,
}

impl Dir {
    /// A direction reading a peer's hop; `rendezvous`: RENDEZVOUS is the gateway's
    /// (else a violation).
    pub(super) fn new(rate_limit: Option<u64>, now: Instant, rendezvous: bool) -> Self {
        let throttle = rate_limit.filter(|r| *r > 0).map(|rate| Throttle {
            rate,
            allowance: rate.min(RELAY_BUFFER as u64) as i64,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        });
        Self {
            buf: vec![0; RELAY_BUFFER].into_boxed_slice(),
            write_pos: 0,
            validated: 0,
            filled: 0,
            scanner: FrameScanner::new(Direction::FromPeer { rendezvous }, now.into_std()),
            read_eof: false,
            need_flush: false,
            phase: Phase::Running,
            last_read: now,
            stats: DirectionStats::default(),
            throttle,
            stalled: false,
            lost: false,
        }
    }

    /// Reattach mode: this direction reads the lost hop (see [`Phase::Sealing`]).
    pub(super) fn seal(&mut self, last: Control) {
        // Unchecked bytes of the lost hop are dropped: only whole frames go on.
        self.filled = self.validated;
        self.phase = Phase::Sealing { last: Some(last) };
    }

    /// Reattach mode: this direction reads the survivor (see [`Phase::Skipping`]).
    pub(super) fn skip(&mut self) {
        self.phase = Phase::Skipping;
    }

    /// Whether sealing or skipping failed.
    pub(super) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Bytes read after the frame boundary that skipping stopped at.
    pub(super) fn read_ahead(&self) -> Vec<u8> {
        self.buf
            .get(self.validated..self.filled)
            .unwrap_or_default()
            .to_vec()
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    pub(super) fn last_read(&self) -> Instant {
        self.last_read
    }

    pub(super) fn stats(&self) -> DirectionStats {
        self.stats
    }

    /// Starts ending this direction (keeps the first final frame if called twice).
    pub(super) fn finish(&mut self, last: Option<Control>, read: bool) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Running => Phase::Finishing { last, read },
            Phase::Finishing { last: l, read: r } => Phase::Finishing {
                last: l,
                read: r && read,
            },
            // A detach in progress is not interrupted (it is bounded by the grace).
            p @ (Phase::Done | Phase::Sealing { .. } | Phase::Skipping) => p,
        };
    }

    /// Stops without writing anything more (the writer failed).
    pub(super) fn abandon(&mut self) {
        self.phase = Phase::Done;
    }

    /// Drives the direction; `out` holds control frames for the writing hop, `back`
    /// for the reading hop (PONGs).
    pub(super) fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: Pin<&mut R>,
        w: Pin<&mut W>,
        out: &mut Outbox,
        back: &mut Outbox,
    ) -> Poll<DirEvent>
    where
        R: AsyncRead,
        W: AsyncWrite,
    {
        match self.phase {
            Phase::Done => Poll::Pending,
            Phase::Running => self.poll_running(cx, r, w, out, back),
            Phase::Sealing { .. } | Phase::Skipping => {
                let done = if matches!(self.phase, Phase::Skipping) {
                    ready!(self.poll_skipping(cx, r))
                } else {
                    ready!(self.poll_sealing(cx, w, out))
                };
                self.phase = Phase::Done;
                if let Err(e) = done {
                    tracing::debug!(error = %e, "the surviving hop failed too");
                    self.lost = true;
                }
                Poll::Ready(DirEvent::Done)
            }
            Phase::Finishing { .. } => {
                let done = ready!(self.poll_finishing(cx, r, w, out));
                self.phase = Phase::Done;
                if let Err(e) = done {
                    tracing::debug!(error = %e, "final frames not delivered");
                }
                Poll::Ready(DirEvent::Done)
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.write_pos == self.validated && self.scanner.at_boundary()
    }

    fn poll_running<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
        out: &mut Outbox,
        back: &mut Outbox,
    ) -> Poll<DirEvent>
    where
        R: AsyncRead,
        W: AsyncWrite,
    {
        for _ in 0..MAX_SPINS {
            let mut progress = match self.poll_write_data(cx, w.as_mut()) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                Poll::Pending => false,
            };
            if self.at_boundary() && !out.is_empty() {
                match out.poll_write(cx, w.as_mut()) {
                    Poll::Ready(Ok(())) => (progress, self.need_flush) = (true, true),
                    Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                    Poll::Pending => {}
                }
            }
            match self.poll_fill(cx, r.as_mut(), usize::MAX) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(e)) => {
                    let error = Some(e.kind());
                    let truncated = !self.at_boundary();
                    return Poll::Ready(DirEvent::ReadEnded { error, truncated });
                }
                Poll::Pending => {}
            }
            match self.scan(!out.is_empty(), back) {
                Ok(scanned) => progress |= scanned,
                Err(ev) => return Poll::Ready(ev),
            }
            // A PING waiting for the previous PONG is not the end of the input.
            if self.read_eof && !progress && !self.stalled && self.write_pos == self.validated {
                let truncated = !self.scanner.at_boundary() || self.validated < self.filled;
                let error = None;
                return Poll::Ready(DirEvent::ReadEnded { error, truncated });
            }
            self.compact();
            if !progress {
                if self.need_flush && self.write_pos == self.validated {
                    match w.as_mut().poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.need_flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                        Poll::Pending => {}
                    }
                }
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Ends the direction: drain, finish the current frame, send the final frame,
    /// shut the writer down. An error means the final frames were not delivered.
    fn poll_finishing<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
        out: &mut Outbox,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead,
        W: AsyncWrite,
    {
        loop {
            if self.write_pos < self.validated {
                ready!(self.poll_write_data(cx, w.as_mut()))?;
                continue;
            }
            if self.scanner.at_boundary() {
                if !out.is_empty() {
                    ready!(out.poll_write(cx, w.as_mut()))?;
                    continue;
                }
                if let Phase::Finishing { last, .. } = &mut self.phase {
                    if let Some(last) = last.take() {
                        out.put(last);
                        continue;
                    }
                }
                return w.as_mut().poll_shutdown(cx);
            }
            // Inside a DATA frame: its end must arrive before anything else is sent.
            let read = matches!(self.phase, Phase::Finishing { read: true, .. });
            if !read || self.read_eof {
                ready!(w.as_mut().poll_shutdown(cx))?;
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.compact();
            ready!(self.poll_fill(cx, r.as_mut(), self.scanner.remaining()))?;
            let now = Instant::now().into_std();
            self.validated += self.scanner.take_payload(self.filled - self.validated, now);
        }
    }

    /// See [`Phase::Sealing`]; `w` is the survivor.
    fn poll_sealing<W: AsyncWrite>(
        &mut self,
        cx: &mut Context<'_>,
        mut w: Pin<&mut W>,
        out: &mut Outbox,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.write_pos < self.validated {
                ready!(self.poll_write_data(cx, w.as_mut()))?;
                continue;
            }
            if !self.scanner.at_boundary() {
                let pad = ZEROS.get(..self.scanner.remaining().min(ZEROS.len()));
                let n = ready!(w.as_mut().poll_write(cx, pad.unwrap_or_default()))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                // The zeros complete the lost hop's frame.
                self.scanner.take_payload(n, Instant::now().into_std());
                continue;
            }
            if !out.is_empty() {
                ready!(out.poll_write(cx, w.as_mut()))?;
                continue;
            }
            if let Phase::Sealing { last } = &mut self.phase {
                if let Some(last) = last.take() {
                    out.put(last);
                    continue;
                }
            }
            return w.as_mut().poll_flush(cx);
        }
    }

    /// See [`Phase::Skipping`]; `r` is the survivor.
    fn poll_skipping<R: AsyncRead>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
    ) -> Poll<io::Result<()>> {
        loop {
            // Nothing more goes to the lost hop.
            self.write_pos = self.validated;
            if self.scanner.at_boundary() {
                return Poll::Ready(Ok(()));
            }
            let now = Instant::now().into_std();
            let take = self.scanner.take_payload(self.filled - self.validated, now);
            if take > 0 {
                self.validated += take;
                continue;
            }
            if self.read_eof {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.compact();
            ready!(self.poll_fill(cx, r.as_mut(), self.scanner.remaining()))?;
        }
    }

    /// Writes checked bytes; ready with `Ok` after writing some.
    fn poll_write_data<W: AsyncWrite>(
        &mut self,
        cx: &mut Context<'_>,
        w: Pin<&mut W>,
    ) -> Poll<io::Result<()>> {
        let Some(data) = self.buf.get(self.write_pos..self.validated) else {
            return Poll::Ready(Err(io::ErrorKind::InvalidInput.into()));
        };
        if data.is_empty() {
            return Poll::Pending;
        }
        let n = ready!(w.poll_write(cx, data))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.write_pos += n.min(data.len());
        self.stats.bytes += n as u64;
        self.need_flush = true;
        Poll::Ready(Ok(()))
    }

    /// Reads at most `max` bytes into free space; ready after a read (or EOF).
    fn poll_fill<R: AsyncRead>(
        &mut self,
        cx: &mut Context<'_>,
        r: Pin<&mut R>,
        max: usize,
    ) -> Poll<io::Result<()>> {
        if self.read_eof || self.filled == self.buf.len() {
            return Poll::Pending;
        }
        let mut max = max;
        if let Some(t) = self.throttle.as_mut() {
            max = max.min(ready!(t.poll_allowance(cx)));
        }
        let end = self.buf.len().min(self.filled.saturating_add(max));
        let Some(space) = self.buf.get_mut(self.filled..end) else {
            return Poll::Pending;
        };
        let mut rb = ReadBuf::new(space);
        ready!(r.poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            self.read_eof = true;
            return Poll::Ready(Ok(()));
        }
        self.filled += n;
        self.last_read = Instant::now();
        if let Some(t) = self.throttle.as_mut() {
            t.allowance = t.allowance.saturating_sub(n as i64);
        }
        Poll::Ready(Ok(()))
    }

    /// Checks frames in `[validated, filled)` with the scanner (rescue-proto's rules);
    /// handles control frames once every byte before them is written. `hold` stops at
    /// the next frame boundary so that a queued control frame can go out (so `out` is
    /// empty when a control frame is handled). Ok(true) if anything advanced.
    fn scan(&mut self, hold: bool, back: &mut Outbox) -> Result<bool, DirEvent> {
        let mut advanced = false;
        self.stalled = false;
        let now = Instant::now().into_std();
        loop {
            if !self.scanner.at_boundary() {
                let take = self.scanner.take_payload(self.filled - self.validated, now);
                if take == 0 {
                    return Ok(advanced);
                }
                self.validated += take;
                advanced = true;
                continue;
            }
            let input = self
                .buf
                .get(self.validated..self.filled)
                .unwrap_or_default();
            if hold && input.len() >= HEADER_LEN {
                return Ok(advanced);
            }
            let (msg, len) = match self.scanner.scan(input, now) {
                Scan::Incomplete => return Ok(advanced),
                Scan::Violation(v) => return Err(DirEvent::Violation(v)),
                Scan::Forward(_) => {
                    self.validated += HEADER_LEN;
                    self.stats.data_frames += 1;
                    advanced = true;
                    continue;
                }
                Scan::Control { msg, len } => (msg, len),
                _ => return Ok(advanced),
            };
            // Control frames are cut out of the stream: everything before must be out
            // (the frame is scanned again then; nothing of it was consumed).
            if self.write_pos != self.validated {
                return Ok(advanced);
            }
            let end = self.validated + len;
            let event = match msg {
                Message::Ping(_) | Message::Rendezvous(_) if !back.has_room() => {
                    // Earlier answers are still going out: wait for them.
                    self.stalled = true;
                    return Ok(advanced);
                }
                Message::Ping(ping) => {
                    back.put(frame::pong(ping.nonce));
                    self.stats.pings += 1;
                    None
                }
                // PROTOCOL.md 3.13: answered (or ignored) by the gateway's hook.
                Message::Rendezvous(_) => Some(DirEvent::Rendezvous),
                Message::Close(close) => Some(DirEvent::Closed(close.reason)),
                Message::Error(e) => Some(DirEvent::PeerError(e.code)),
                _ => None,
            };
            (self.validated, self.write_pos) = (end, end);
            advanced = true;
            if let Some(event) = event {
                return Err(event);
            }
        }
    }

    /// Reads and discards until the hop's EOF or error (after the session ended).
    pub(super) fn poll_discard<R: AsyncRead>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
    ) -> Poll<()> {
        for _ in 0..MAX_SPINS {
            if self.read_eof {
                return Poll::Ready(());
            }
            let mut rb = ReadBuf::new(&mut self.buf);
            match r.as_mut().poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => self.read_eof = rb.filled().is_empty(),
                Poll::Ready(Err(_)) => self.read_eof = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reclaims buffer space once everything checked is written.
    fn compact(&mut self) {
        if self.write_pos != self.validated || self.validated == 0 {
            return;
        }
        let rest = self.filled - self.validated;
        if rest <= CONTROL_FRAME_MAX {
            self.buf.copy_within(self.validated..self.filled, 0);
            (self.write_pos, self.validated, self.filled) = (0, 0, rest);
        }
    }
}
