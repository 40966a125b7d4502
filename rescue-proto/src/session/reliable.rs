//! The reliable core: sequencing, cumulative ACKs, replay, SWITCH and RESUME over any
//! number of paths (PROTOCOL.md 7.3). Sans-IO: time is an argument, bytes in and out.
//!
//! ```text
//!  path up, no send path ─► send RESUME{next_expected}; becomes the send path
//!  path up, send path P ──► SWITCH{next_seq} queued as P's last frame; new path sends
//!  path lost ─────────────► another path up? it becomes the send path (RESUME) : wait
//!  peer RESUME{x} on Q ───► replay [x, first_seq(Q)) on Q; Q becomes the send path
//!  END sent/received ─────► Ended ─► END acknowledged / ACK flushed / linger ─► Closed
//!  fatal error ───────────► Failed ─► one END{reason} on the send path, nothing else
//! ```
//!
//! Every direction has one sequence space shared by all channels; the receiver delivers
//! strictly in sequence order, drops duplicates and holds frames that arrive early on
//! another path (bounded by the sender's budget) until the gap is filled. Exactly-once
//! in-order delivery per channel follows from that, whatever the path history.
//! Nothing here panics on peer input or grows beyond the named limits.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::channels::{Channels, Lookup, Role, FIRST_APP_CHANNEL};
use super::frame::{encode_parts, ChannelId, EndReason, Frame, FrameError, FrameKind};
use super::frame::{HEADER_LEN, MAX_LABEL, MAX_PAYLOAD};
use super::path::{Path, PathControl};
use super::sendbuf::{Class, Outgoing, SendBuf, MAX_BUFFER_BYTES, MAX_BUFFER_FRAMES};

pub use super::events::{ChannelError, Event, PathError, PathLossReason, SendError, SessionError};

/// Most paths a session keeps at once (relay, direct, a spare being set up, one dying).
pub const MAX_PATHS: usize = 4;
/// After this many in-order frames the receiver sends a standalone ACK right away.
pub const ACK_EVERY_FRAMES: u32 = 16;

/// A path (one end-to-end TLS connection), named by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub u64);

/// Timers of the reliable core.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Interval between PINGs on every path (3–5 s, upgrade.md 7.12).
    pub keepalive_interval: Duration,
    /// Silence after which a path is dead (about three missed keepalives).
    pub path_dead_after: Duration,
    /// Longest delay before acknowledging received frames.
    pub ack_delay: Duration,
    /// How long unacknowledged frames may wait for an ACK on a live path before the
    /// peer counts as stalled and the session fails.
    pub stall_timeout: Duration,
    /// How long the session may have no path at all before it fails.
    pub no_path_timeout: Duration,
    /// How long to wait for the ACK of our END before closing anyway.
    pub end_linger: Duration,
}

/// Default keepalive interval: 3–5 s keeps NAT bindings warm and finds a dead path fast
/// (Tailscale 3 s, iroh 5 s; upgrade.md 7.12).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(4);
/// Default silence before a path is dead: three keepalive intervals.
pub const PATH_DEAD_AFTER: Duration = Duration::from_secs(12);
/// Default delayed-ACK time: short next to any RTT-scale timer, long enough to batch.
pub const ACK_DELAY: Duration = Duration::from_millis(20);
/// Default time unacknowledged frames may wait on a live path: well past a path's death
/// (12 s) plus a resume, so only a peer that truly stopped acknowledging trips it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time the session may have no path: room to reconnect through another
/// gateway (the gateway's own resume grace period bounds it as well).
pub const NO_PATH_TIMEOUT: Duration = Duration::from_secs(60);
/// Default wait for the ACK of our END before closing anyway.
pub const END_LINGER: Duration = Duration::from_secs(5);

impl Default for Config {
    fn default() -> Self {
        Self {
            keepalive_interval: KEEPALIVE_INTERVAL,
            path_dead_after: PATH_DEAD_AFTER,
            ack_delay: ACK_DELAY,
            stall_timeout: STALL_TIMEOUT,
            no_path_timeout: NO_PATH_TIMEOUT,
            end_linger: END_LINGER,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// END sent (`by_peer == false`) or received.
    Ended {
        by_peer: bool,
    },
    Closed,
    Failed,
}

/// The sans-IO reliable session core. One per session, on each side.
#[derive(Debug)]
pub struct Reliable {
    cfg: Config,
    state: State,
    send: SendBuf,
    channels: Channels,
    next_expected: u64,
    early: BTreeMap<u64, Frame>,
    early_bytes: usize,
    rx_unacked: u32,
    ack_now: bool,
    ack_deadline: Option<Instant>,
    stall_since: Option<Instant>,
    no_path_since: Option<Instant>,
    end_seq: Option<u64>,
    linger_until: Option<Instant>,
    /// After a fatal error: the END still owed to the peer (PROTOCOL.md 7.1).
    farewell: Option<EndReason>,
    paths: Vec<Path>,
    send_path: Option<PathId>,
    ping_counter: u64,
    blocked: bool,
    events: VecDeque<Event>,
}

impl Reliable {
    /// A core for `role`, created at `now` with no path yet.
    pub fn new(role: Role, cfg: Config, now: Instant) -> Self {
        Self {
            cfg,
            state: State::Open,
            send: SendBuf::default(),
            channels: Channels::new(role),
            next_expected: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            rx_unacked: 0,
            ack_now: false,
            ack_deadline: None,
            stall_since: None,
            no_path_since: Some(now),
            end_seq: None,
            linger_until: None,
            farewell: None,
            paths: Vec::new(),
            send_path: None,
            ping_counter: 0,
            blocked: false,
            events: VecDeque::new(),
        }
    }

    /// Queues `payload` on `channel`. Control and chat go ahead of bulk channels.
    pub fn send(&mut self, channel: ChannelId, payload: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Ended);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge);
        }
        if self.channels.lookup(channel) != Lookup::Open {
            return Err(SendError::ChannelNotOpen);
        }
        let class = if channel <= super::channels::CHAT {
            Class::Control
        } else {
            Class::Bulk
        };
        self.queue(class, FrameKind::Data, channel, payload)
    }

    /// Whether a `send` of `len` bytes on `channel` would fit in the buffer now.
    pub fn can_send(&self, channel: ChannelId, len: usize) -> bool {
        let class = if channel <= super::channels::CHAT {
            Class::Control
        } else {
            Class::Bulk
        };
        self.state == State::Open && self.send.has_room(class, len)
    }

    /// Opens an application channel labelled `label` (at most `MAX_LABEL` bytes).
    pub fn open_channel(&mut self, label: &str) -> Result<ChannelId, SendError> {
        if self.state != State::Open {
            return Err(SendError::Ended);
        }
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(SendError::TooLarge);
        }
        if crate::text::check_peer_name("label", label).is_err() {
            return Err(SendError::BadLabel);
        }
        if !self.send.has_room(Class::Control, label.len()) {
            self.blocked = true;
            return Err(SendError::Backpressure);
        }
        let id = self
            .channels
            .alloc(label)
            .ok_or(SendError::TooManyChannels)?;
        let payload = Bytes::copy_from_slice(label.as_bytes());
        self.queue(Class::Control, FrameKind::Open, id, payload)?;
        Ok(id)
    }

    /// Closes an application channel; its queued data is still delivered first.
    pub fn close_channel(&mut self, channel: ChannelId) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Ended);
        }
        if channel < FIRST_APP_CHANNEL || self.channels.lookup(channel) != Lookup::Open {
            return Err(SendError::ChannelNotOpen);
        }
        self.queue(Class::Bulk, FrameKind::Close, channel, Bytes::new())?;
        self.channels.close(channel);
        self.events.push_back(Event::ChannelClosed {
            channel,
            by_peer: false,
        });
        Ok(())
    }

    /// Ends the session: unsent bulk data is dropped, END goes out after queued control
    /// frames, and [`Event::Ended`] is emitted at once. Never blocked by a full buffer.
    pub fn end(&mut self, reason: EndReason) {
        if self.state != State::Open {
            return;
        }
        self.state = State::Ended { by_peer: false };
        let o = Outgoing {
            kind: FrameKind::End,
            channel: 0,
            payload: Bytes::from(vec![reason as u8]),
        };
        // END is queued outside the budget on purpose: it is one frame, sent once.
        self.send.drop_bulk();
        self.send.push_unbounded(o);
        self.events.push_back(Event::Ended {
            reason,
            by_peer: false,
        });
    }

    /// The driver brought up (and bound) a new path at `now`.
    pub fn on_path_up(&mut self, now: Instant, path: PathId) -> Result<(), PathError> {
        if self.path(path).is_some() {
            return Err(PathError::Duplicate);
        }
        if self.paths.len() >= MAX_PATHS {
            return Err(PathError::TooMany);
        }
        let next_seq = self.send.next_seq();
        let mut p = Path::new(path, now, now + self.cfg.keepalive_interval, next_seq);
        self.no_path_since = None;
        let old = self.send_path;
        match old.and_then(|o| self.path_mut(o)) {
            Some(o) => o.switch_marker = Some(next_seq),
            None => {
                p.queue(PathControl::Resume);
                p.sent_resume = true;
            }
        }
        self.paths.push(p);
        self.activate(now, path, old);
        Ok(())
    }

    /// The driver lost (or closed) a path at `now`.
    pub fn on_path_lost(&mut self, now: Instant, path: PathId) -> Result<(), PathError> {
        self.drop_path(now, path, PathLossReason::Transport)
            .ok_or(PathError::Unknown)
    }

    /// The driver's frame splitter ([`frame::FrameCodec`](super::frame::FrameCodec))
    /// refused the byte stream of `path` (an unknown kind, an oversize length): as fatal
    /// as a frame [`Reliable::handle_frame`] refuses (PROTOCOL.md 7.1), not a lost path.
    /// Ignored, like its frames, for a path that is not up.
    pub fn on_bad_frame(&mut self, path: PathId, e: FrameError) -> Result<(), SessionError> {
        if self.state == State::Failed {
            return Err(SessionError::Failed);
        }
        if self.path(path).is_none() {
            return Ok(());
        }
        Err(self.fail(e.into()))
    }

    /// One whole frame (from [`frame::FrameCodec`](super::frame::FrameCodec)) received on
    /// `path` at `now`. A fatal error fails the session; close every path. Frames from a
    /// path that is not up (never announced, or already dropped) are ignored: anything
    /// they carried is replayed on a live path.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        path: PathId,
        bytes: Bytes,
    ) -> Result<(), SessionError> {
        if self.state == State::Failed {
            return Err(SessionError::Failed);
        }
        let Some(p) = self.path_mut(path) else {
            return Ok(());
        };
        p.last_rx = now;
        let path_max_ack = p.max_ack;
        let frame = Frame::decode(&bytes).map_err(|e| self.fail(e.into()))?;
        // PROTOCOL.md 7.3: a RESUME below an ACK the peer already sent on the same path
        // asks again for frames it acknowledged (and we discarded): the peer lost state.
        // Below an ACK from another path it is only stale (paths reorder), not fatal.
        let oldest = self.send.base();
        if frame.kind == FrameKind::Resume && frame.ack < oldest && frame.ack < path_max_ack {
            let requested = frame.ack;
            return Err(self.fail(SessionError::ResumeUnavailable { requested, oldest }));
        }
        if let Some(p) = self.path_mut(path) {
            p.max_ack = p.max_ack.max(frame.ack);
        }
        self.on_ack(now, frame.ack)?;
        match frame.kind {
            FrameKind::Ack | FrameKind::Pong => Ok(()),
            FrameKind::Ping => {
                let token = frame.token().unwrap_or(0);
                if let Some(p) = self.path_mut(path) {
                    p.queue(PathControl::Pong(token));
                }
                Ok(())
            }
            FrameKind::Switch => {
                self.on_switch(path);
                Ok(())
            }
            FrameKind::Resume => self.on_resume(path, frame.ack),
            _ => self.on_sequenced(now, frame),
        }
    }

    /// Appends the next frame for `path` to `out`; `false` when there is nothing to send
    /// on it now. Call until `false` after every input and timeout.
    pub fn poll_transmit(&mut self, now: Instant, path: PathId, out: &mut BytesMut) -> bool {
        if self.state == State::Failed {
            return self.transmit_farewell(path, out);
        }
        if self.state == State::Closed {
            return false;
        }
        let ack = self.next_expected;
        let is_send_path = self.send_path == Some(path);
        let Some(p) = self.paths.iter_mut().find(|p| p.id == path) else {
            return false;
        };
        if let Some(c) = p.control.pop_front() {
            let (kind, token) = match c {
                PathControl::Ping(t) => (FrameKind::Ping, Some(t)),
                PathControl::Pong(t) => (FrameKind::Pong, Some(t)),
                PathControl::Resume => (FrameKind::Resume, None),
            };
            let tok = token.map(u64::to_be_bytes);
            encode_parts(
                kind,
                0,
                0,
                ack,
                tok.as_ref().map_or(&[][..], |t| &t[..]),
                out,
            );
            return self.sent_ack(true);
        }
        if let Some((from, to)) = p.replay {
            let from = from.max(self.send.base());
            if let Some(o) = self.send.get(from).filter(|_| from < to) {
                encode_parts(o.kind, o.channel, from, ack, &o.payload, out);
                p.replay = (from + 1 < to).then_some((from + 1, to));
                return self.sent_ack(true);
            }
            p.replay = None;
        }
        if is_send_path && self.state != (State::Ended { by_peer: true }) {
            if let Some(sent) = self.transmit_new(now, out) {
                return sent;
            }
        }
        self.transmit_marker_or_ack(path, is_send_path, out)
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Reliable::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, State::Failed | State::Closed) {
            return None;
        }
        let stall = self.stall_since.filter(|_| self.send_path.is_some());
        let fixed = [
            self.ack_deadline,
            stall.map(|t| t + self.cfg.stall_timeout),
            self.no_path_since.map(|t| t + self.cfg.no_path_timeout),
            self.linger_until,
        ];
        let per_path = self
            .paths
            .iter()
            .flat_map(|p| [p.next_ping, p.last_rx + self.cfg.path_dead_after]);
        fixed.into_iter().flatten().chain(per_path).min()
    }

    /// Runs the timers due at `now`: ACK delay, keepalives, dead paths, stall, no path,
    /// END linger.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.state == State::Failed {
            return Err(SessionError::Failed);
        }
        if self.ack_deadline.is_some_and(|t| t <= now) {
            self.ack_now = true;
            self.ack_deadline = None;
        }
        let dead: Vec<PathId> = self
            .paths
            .iter()
            .filter(|p| now >= p.last_rx + self.cfg.path_dead_after)
            .map(|p| p.id)
            .collect();
        for id in dead {
            self.drop_path(now, id, PathLossReason::KeepaliveTimeout);
        }
        for p in &mut self.paths {
            if now >= p.next_ping {
                self.ping_counter += 1;
                p.queue(PathControl::Ping(self.ping_counter));
                p.next_ping = now + self.cfg.keepalive_interval;
            }
        }
        self.check_deadlines(now)
    }

    /// The path new frames go on.
    pub fn send_path(&self) -> Option<PathId> {
        self.send_path
    }

    /// Buffered bytes and frames (pending plus unacknowledged).
    pub fn buffered(&self) -> (usize, usize) {
        self.send.usage()
    }

    /// Whether the session has ended (END sent or received, or failed).
    pub fn is_ended(&self) -> bool {
        self.state != State::Open
    }

    /// Whether the END handshake is over (or the session failed): close every path.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed)
    }
}

/// Private helpers.
impl Reliable {
    fn path(&self, id: PathId) -> Option<&Path> {
        self.paths.iter().find(|p| p.id == id)
    }

    fn path_mut(&mut self, id: PathId) -> Option<&mut Path> {
        self.paths.iter_mut().find(|p| p.id == id)
    }

    /// The session failed: nothing more is sent or delivered, except one END telling
    /// the peer (unless an END already went out or came in), so that its grants die now
    /// and not when its own timers run out (PROTOCOL.md 7.1).
    fn fail(&mut self, e: SessionError) -> SessionError {
        let end_owed = match self.state {
            State::Open => true,
            State::Ended { by_peer } => !by_peer && self.end_seq.is_none(),
            State::Closed | State::Failed => false,
        };
        if end_owed && self.send_path.is_some() {
            self.farewell = Some(e.end_reason());
        }
        self.state = State::Failed;
        e
    }

    /// The END owed after a failure, once, on the send path; unbuffered (never replayed).
    fn transmit_farewell(&mut self, path: PathId, out: &mut BytesMut) -> bool {
        if self.send_path != Some(path) {
            return false;
        }
        let Some(reason) = self.farewell.take() else {
            return false;
        };
        let seq = self.send.next_seq();
        encode_parts(
            FrameKind::End,
            0,
            seq,
            self.next_expected,
            &[reason as u8],
            out,
        );
        true
    }

    fn queue(
        &mut self,
        class: Class,
        kind: FrameKind,
        channel: ChannelId,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if self.send.push(
            class,
            Outgoing {
                kind,
                channel,
                payload,
            },
        ) {
            Ok(())
        } else {
            self.blocked = true;
            Err(SendError::Backpressure)
        }
    }

    /// `path` becomes the send path.
    fn activate(&mut self, now: Instant, path: PathId, switched_from: Option<PathId>) {
        self.send_path = Some(path);
        if self.send.has_unacked() {
            // A new path gets a full stall period to resume.
            self.stall_since = Some(now);
        }
        self.events.push_back(Event::PathActive {
            path,
            switched_from,
        });
    }

    fn drop_path(&mut self, now: Instant, id: PathId, reason: PathLossReason) -> Option<()> {
        let i = self.paths.iter().position(|p| p.id == id)?;
        self.paths.remove(i);
        self.events.push_back(Event::PathLost { path: id, reason });
        // An ACK sent on the lost path may be gone too: repeat it on a live one.
        self.ack_now = self.next_expected > 0;
        if let Some(send) = self.send_path.filter(|s| *s != id) {
            // Frames sent on the lost path may be gone: replay what the send path did
            // not carry itself (the peer drops duplicates).
            let (base, to) = (self.send.base(), self.path(send).map_or(0, |p| p.first_seq));
            self.extend_replay(send, base, to);
            return Some(());
        }
        self.send_path = None;
        let next_seq = self.send.next_seq();
        // Fall back to the newest remaining path, announcing where we are with RESUME.
        match self.paths.last_mut() {
            Some(p) => {
                p.switch_marker = None;
                p.first_seq = next_seq;
                if !p.sent_resume {
                    p.queue(PathControl::Resume);
                    p.sent_resume = true;
                }
                let fallback = p.id;
                // Whatever went on the lost path may be gone: replay every unacked frame.
                let base = self.send.base();
                self.extend_replay(fallback, base, next_seq);
                self.activate(now, fallback, None);
            }
            None => self.no_path_since = Some(now),
        }
        Some(())
    }

    fn on_ack(&mut self, now: Instant, ack: u64) -> Result<(), SessionError> {
        let next_seq = self.send.next_seq();
        if ack > next_seq {
            return Err(self.fail(SessionError::AckOutOfRange { ack, next_seq }));
        }
        if !self.send.ack(ack) {
            return Ok(());
        }
        self.stall_since = self.send.has_unacked().then_some(now);
        if self.blocked && self.send.has_room(Class::Bulk, 0) {
            self.blocked = false;
            self.events.push_back(Event::Writable);
        }
        if self.end_seq.is_some_and(|s| ack > s) {
            self.close();
        }
        Ok(())
    }

    fn on_switch(&mut self, path: PathId) {
        // PROTOCOL.md 7.3: SWITCH only says "nothing more from me on this path"; frames
        // below next_seq may still be replayed elsewhere after an earlier loss, and the
        // receiver orders by sequence number whatever path a frame came on.
        if let Some(p) = self.path_mut(path) {
            p.got_switch = true;
        }
        self.check_retired(path);
    }

    fn on_resume(&mut self, path: PathId, x: u64) -> Result<(), SessionError> {
        let Some(p) = self.path_mut(path) else {
            return Ok(());
        };
        if p.got_resume {
            return Err(self.fail(SessionError::DuplicateResume));
        }
        p.got_resume = true;
        if !p.sent_resume {
            p.queue(PathControl::Resume);
            p.sent_resume = true;
        }
        // Frames below first_seq(path) went on earlier paths and may be lost: replay them
        // on the send path (duplicates are dropped by the peer). A RESUME on a path that
        // is no longer the send path is stale or a fallback: either way the frames sent
        // on later paths reach the peer there, or are replayed when that path dies.
        let to = p.first_seq;
        if let Some(target) = self.send_path {
            self.extend_replay(target, x, to);
        }
        Ok(())
    }

    fn extend_replay(&mut self, path: PathId, from: u64, to: u64) {
        if from >= to {
            return;
        }
        if let Some(p) = self.path_mut(path) {
            p.replay = Some(match p.replay {
                Some((f, t)) => (f.min(from), t.max(to)),
                None => (from, to),
            });
        }
    }

    fn transmit_new(&mut self, now: Instant, out: &mut BytesMut) -> Option<bool> {
        let ack = self.next_expected;
        let was_empty = !self.send.has_unacked();
        let (seq, o) = self.send.take_next()?;
        encode_parts(o.kind, o.channel, seq, ack, &o.payload, out);
        if o.kind == FrameKind::End {
            self.end_seq = Some(seq);
            self.linger_until = Some(now + self.cfg.end_linger);
        }
        if was_empty {
            self.stall_since = Some(now);
        }
        Some(self.sent_ack(true))
    }

    fn transmit_marker_or_ack(&mut self, path: PathId, send: bool, out: &mut BytesMut) -> bool {
        let ack = self.next_expected;
        if let Some(p) = self.path_mut(path) {
            if let Some(n) = p.switch_marker.take() {
                encode_parts(FrameKind::Switch, 0, n, ack, &[], out);
                p.sent_switch = true;
                self.check_retired(path);
                return self.sent_ack(true);
            }
        }
        if self.ack_now && (send || self.send_path.is_none()) {
            encode_parts(FrameKind::Ack, 0, 0, ack, &[], out);
            return self.sent_ack(true);
        }
        false
    }

    /// Every frame carries the cumulative ACK: nothing more is owed.
    fn sent_ack(&mut self, sent: bool) -> bool {
        self.rx_unacked = 0;
        self.ack_now = false;
        self.ack_deadline = None;
        if self.state == (State::Ended { by_peer: true }) {
            self.close();
        }
        sent
    }

    fn check_retired(&mut self, path: PathId) {
        let send_path = self.send_path;
        if let Some(p) = self.path_mut(path) {
            if p.drained() && !p.retired && send_path != Some(path) {
                p.retired = true;
                self.events.push_back(Event::PathRetired { path });
            }
        }
    }

    fn close(&mut self) {
        if self.state != State::Closed && self.state != State::Failed {
            self.state = State::Closed;
            self.events.push_back(Event::Closed);
        }
    }

    fn check_deadlines(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.linger_until.is_some_and(|t| t <= now) {
            self.close();
            return Ok(());
        }
        let stalled = self
            .stall_since
            .is_some_and(|t| t + self.cfg.stall_timeout <= now);
        if stalled && self.send_path.is_some() && self.send.has_unacked() {
            return Err(self.fail(SessionError::PeerStalled));
        }
        if self
            .no_path_since
            .is_some_and(|t| t + self.cfg.no_path_timeout <= now)
        {
            return Err(self.fail(SessionError::NoPath));
        }
        Ok(())
    }
}

mod receive;

#[cfg(test)]
#[path = "reliable_tests.rs"]
mod tests;
