//! One XTCP connection: the sans-IO TCP state machine.
//!
//! The connection never reads a clock or a socket: every call takes `now`, and
//! datagrams go in through [`Connection::handle`] and out through
//! [`Connection::poll_transmit`]. It never panics on peer input and never grows
//! memory with it: the send and receive buffers are fixed at creation, the
//! scoreboard is bounded by the send buffer, and the event queue is a bit set.
//!
//! ```text
//!                          connect()                 passive (Endpoint, on SYN)
//!   CLOSED ──────────────► SYN-SENT ──rcv SYN──► SYN-RECEIVED ◄───────────────
//!                             │ rcv SYN+ACK           │ rcv ACK of SYN
//!                             └──────────────► ESTABLISHED ◄┘
//!            close(): send FIN │                      │ rcv FIN
//!                       FIN-WAIT-1 ──rcv FIN──► CLOSING       CLOSE-WAIT
//!                    ACK of FIN │                 │ ACK of FIN   │ close(): send FIN
//!                       FIN-WAIT-2 ──rcv FIN──► TIME-WAIT     LAST-ACK
//!                                                 │ timeout      │ ACK of FIN
//!                                               CLOSED ◄─────────┘
//! ```

mod buffers;
pub(crate) mod fuzz;
mod input;
mod output;
mod pacing;
mod pmtud;
mod recovery;
mod rtt;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::cc::{self, Controller};
use crate::config::Config;
use crate::segment::SegmentRepr;
use crate::seq::Seq;
use buffers::{RecvBuf, SendBuf};
use pacing::Pacer;
use pmtud::Pmtud;
use recovery::Scoreboard;
use rtt::RttEstimator;

/// Most challenge ACKs (RFC 5961 §7) per connection per second; per connection,
/// not global, to avoid the CVE-2016-5696 side channel.
const CHALLENGE_ACKS_PER_SEC: u32 = 10;
/// Shortest interval between zero-window probes (RFC 9293 §3.8.6.1 persist
/// timer; the RTO is used when larger).
const PERSIST_MIN: Duration = Duration::from_millis(200);
/// Longest interval between zero-window probes.
const PERSIST_MAX: Duration = Duration::from_secs(5);
/// A peer RTT sample above this is treated as forged and ignored.
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(60);
/// Least RACK reordering window (RFC 8985 §6.2 allows zero without reordering).
/// The copies of one ACK (see `conn::output`) and the ACKs of one received batch
/// arrive together but each carries only some SACK blocks; a segment must not be
/// declared lost on the first of them when the next one reports it delivered.
/// 1 ms covers a batch and is small against any RTT over the internet.
const MIN_REO_WND: Duration = Duration::from_millis(1);
/// The minimum tail-loss probe timeout (RFC 8985 §7.2 uses 2 × SRTT; this floors it
/// for loopback-scale RTTs so a probe does not race the delayed ACK).
const MIN_PTO: Duration = Duration::from_millis(10);

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
    /// [`Connection::abort`] was called.
    Aborted,
}

/// Events for the application, from [`Connection::poll`].
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
    /// [`Connection::close`] was called; no more data may be written.
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

/// One connection; create through [`crate::Endpoint`], or directly in tests.
#[derive(Debug)]
pub struct Connection {
    cfg: Arc<Config>,
    remote: SocketAddr,
    local_id: u32,
    peer_id: u32,
    state: State,
    epoch: Instant,
    snd: SendSide,
    rcv: RecvSide,
    board: Scoreboard,
    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    timers: Timers,
    events: EventSet,
    reason: Option<CloseReason>,
    stats: ConnectionStats,
    last_recv: Instant,
    last_send: Instant,
    challenge: (Instant, u32),
    rst_pending: bool,
    /// The RTT sample of the ACK being processed, for its rate sample.
    ack_rtt: Option<Duration>,
    pmtud: Pmtud,
}

/// Sending half of the state (RFC 9293 SND.* variables and the send buffer).
#[derive(Debug)]
struct SendSide {
    iss: Seq,
    una: Seq,
    nxt: Seq,
    wnd: usize,
    max_wnd: usize,
    wl1: Seq,
    wl2: Seq,
    mss: usize,
    peer_wscale: u8,
    buf: SendBuf,
    /// Sequence number of `buf`'s first byte.
    buf_seq: Seq,
    fin_queued: bool,
    fin_sent: bool,
    syn_sent: bool,
    /// End of the current recovery episode (RFC 6675 RecoveryPoint).
    recovery_point: Option<Seq>,
    /// The current recovery episode began with an RTO: the window slow-starts from
    /// one segment while the episode lasts (RFC 5681 §3.1) instead of holding still.
    rto_recovery: bool,
    /// HyStart++ round state: the round ends when SND.UNA passes this.
    ss_round_end: Seq,
    ss_round_min: Option<Duration>,
    ss_last_round_min: Option<Duration>,
    ss_samples: u32,
    write_blocked: bool,
    /// The next transmission is a tail-loss probe or zero-window probe.
    probe: bool,
    tlp_armed: bool,
    persist_backoff: u32,
    keepalive_due: bool,
}

/// Receiving half (RCV.* variables, the receive buffer, ACK policy).
#[derive(Debug)]
struct RecvSide {
    irs: Seq,
    nxt: Seq,
    wscale: u8,
    buf: RecvBuf,
    /// Right edge last advertised.
    adv_edge: Seq,
    /// The peer's FIN sequence number, once seen (possibly out of order).
    fin: Option<Seq>,
    fin_done: bool,
    ts_recent: u32,
    ack_now: bool,
    unacked_segments: u32,
    /// Data segments received since our last ACK (in order or not).
    segs_since_ack: u32,
    /// Which older SACK blocks the next ACK reports after the most recent one
    /// (redundant ACK copies report different ones).
    sack_rotation: usize,
}

/// Deadlines (one table, the earliest is `poll_timeout`).
#[derive(Debug, Default, Clone, Copy)]
struct Timers {
    rto: Option<Instant>,
    tlp: Option<Instant>,
    reorder: Option<Instant>,
    delayed_ack: Option<Instant>,
    persist: Option<Instant>,
    keepalive: Option<Instant>,
    idle: Option<Instant>,
    time_wait: Option<Instant>,
    pacing: Option<Instant>,
}

impl Timers {
    fn next(&self) -> Option<Instant> {
        [
            self.rto,
            self.tlp,
            self.reorder,
            self.delayed_ack,
            self.persist,
            self.keepalive,
            self.idle,
            self.time_wait,
            self.pacing,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Pending application events as a bit set (bounded, deduplicated).
#[derive(Debug, Default, Clone, Copy)]
struct EventSet(u8);

impl EventSet {
    const CONNECTED: u8 = 1;
    const READABLE: u8 = 2;
    const WRITABLE: u8 = 4;
    const PEER_FINISHED: u8 = 8;
    const CLOSED: u8 = 16;
}

impl Connection {
    /// A new active-open connection in SYN-SENT (its SYN goes out on the next
    /// `poll_transmit`).
    pub fn connect(
        cfg: Arc<Config>,
        now: Instant,
        remote: SocketAddr,
        local_id: u32,
        iss: u32,
    ) -> Connection {
        let mut c = Connection::new(cfg, now, remote, local_id, Seq(iss));
        c.state = State::SynSent;
        c.queue_syn(now);
        c
    }

    fn new(cfg: Arc<Config>, now: Instant, remote: SocketAddr, local_id: u32, iss: Seq) -> Self {
        let mss = usize::from(cfg.clamped_mss());
        let rcv_cap = cfg.clamped_recv_buffer();
        Connection {
            snd: SendSide {
                iss,
                una: iss,
                nxt: iss,
                wnd: mss,
                max_wnd: mss,
                wl1: Seq(0),
                wl2: iss,
                mss,
                peer_wscale: 0,
                buf: SendBuf::new(cfg.clamped_send_buffer()),
                buf_seq: iss.wrapping_add(1),
                fin_queued: false,
                fin_sent: false,
                syn_sent: false,
                recovery_point: None,
                rto_recovery: false,
                ss_round_end: iss,
                ss_round_min: None,
                ss_last_round_min: None,
                ss_samples: 0,
                write_blocked: false,
                probe: false,
                tlp_armed: false,
                persist_backoff: 0,
                keepalive_due: false,
            },
            rcv: RecvSide {
                irs: Seq(0),
                nxt: Seq(0),
                wscale: cfg.window_scale(),
                buf: RecvBuf::new(rcv_cap),
                adv_edge: Seq(0),
                fin: None,
                fin_done: false,
                ts_recent: 0,
                ack_now: false,
                unacked_segments: 0,
                segs_since_ack: 0,
                sack_rotation: 0,
            },
            board: Scoreboard::new(),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            cc: cc::build(
                cfg.congestion,
                now,
                mss,
                cfg.initial_window,
                u64::from(local_id) << 32 | u64::from(iss.0),
            ),
            pacer: Pacer::new(),
            timers: Timers {
                idle: Some(now + cfg.user_timeout),
                ..Timers::default()
            },
            events: EventSet::default(),
            reason: None,
            last_recv: now,
            last_send: now,
            challenge: (now, 0),
            rst_pending: false,
            ack_rtt: None,
            pmtud: Pmtud::new(mss, mss),
            stats: ConnectionStats {
                segment_size: mss,
                ..ConnectionStats::default()
            },
            cfg,
            remote,
            local_id,
            peer_id: 0,
            state: State::Closed,
            epoch: now,
        }
    }

    /// A passive-open connection for a received SYN (already parsed and checked
    /// by the endpoint): it enters SYN-RECEIVED and answers with SYN+ACK.
    pub(crate) fn accept_syn(
        cfg: Arc<Config>,
        now: Instant,
        remote: SocketAddr,
        local_id: u32,
        iss: u32,
        syn: &SegmentRepr,
    ) -> Connection {
        let mut c = Connection::new(cfg, now, remote, local_id, Seq(iss));
        c.state = State::SynReceived;
        c.on_peer_syn(syn);
        c.queue_syn(now);
        c
    }

    /// Processes one received datagram addressed to this connection.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) {
        match SegmentRepr::parse(datagram) {
            Ok((seg, payload)) => self.handle_segment(now, &seg, payload),
            Err(_) => self.stats.malformed += 1,
        }
    }

    /// Queues up to `data.len()` bytes for sending; returns how many were taken.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if let Some(r) = self.reason {
            return Err(WriteError::Closed(r));
        }
        if self.snd.fin_queued {
            return Err(WriteError::Finished);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.snd.buf.push(data);
        if n == 0 {
            self.snd.write_blocked = true;
            return Err(WriteError::Blocked);
        }
        Ok(n)
    }

    /// Reads received bytes: `Ok(None)` when nothing is ready yet, `Ok(Some(0))`
    /// once the peer's FIN is reached.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        if self.rcv.buf.readable() > 0 && !buf.is_empty() {
            let n = self.rcv.buf.read(buf);
            self.maybe_window_update();
            return Ok(Some(n));
        }
        if self.rcv.fin_done {
            return Ok(Some(0));
        }
        match self.reason {
            Some(r) => Err(ReadError::Closed(r)),
            None => Ok(None),
        }
    }

    /// Finishes the sending direction: a FIN follows the queued data.
    pub fn close(&mut self) {
        if self.reason.is_none() && !self.snd.fin_queued {
            self.snd.fin_queued = true;
        }
    }

    /// Resets the connection: an RST is sent and the connection closes now.
    pub fn abort(&mut self) {
        if self.reason.is_none() {
            if self.state != State::SynSent || self.snd.syn_sent {
                self.rst_pending = true;
            }
            self.finish(CloseReason::Aborted);
        }
    }

    /// The next application event.
    pub fn poll(&mut self) -> Option<Event> {
        let e = &mut self.events.0;
        let (bit, ev) = if *e & EventSet::CONNECTED != 0 {
            (EventSet::CONNECTED, Event::Connected)
        } else if *e & EventSet::READABLE != 0 {
            (EventSet::READABLE, Event::Readable)
        } else if *e & EventSet::WRITABLE != 0 {
            (EventSet::WRITABLE, Event::Writable)
        } else if *e & EventSet::PEER_FINISHED != 0 {
            (EventSet::PEER_FINISHED, Event::PeerFinished)
        } else if *e & EventSet::CLOSED != 0 {
            let r = self.reason.unwrap_or(CloseReason::Normal);
            (EventSet::CLOSED, Event::Closed(r))
        } else {
            return None;
        };
        *e &= !bit;
        Some(ev)
    }

    /// SND.UNA and RCV.NXT: changes when a segment made progress.
    pub(crate) fn progress_mark(&self) -> (Seq, Seq) {
        (self.snd.una, self.rcv.nxt)
    }

    /// Moves the connection to a new peer address (NAT rebinding).
    pub(crate) fn set_remote(&mut self, remote: SocketAddr) {
        self.remote = remote;
    }

    /// Whether an RST still waits to be sent.
    pub(crate) fn has_pending_rst(&self) -> bool {
        self.rst_pending
    }

    /// The RFC 9293 state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.reason
    }

    /// Counters.
    pub fn stats(&self) -> &ConnectionStats {
        &self.stats
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our connection id (the `dst_id` of segments the peer sends us).
    pub fn local_id(&self) -> u32 {
        self.local_id
    }

    /// The peer's connection id (0 until its SYN arrived).
    pub fn peer_id(&self) -> u32 {
        self.peer_id
    }

    /// RCV.NXT: the next sequence number expected from the peer (diagnostics).
    pub fn rcv_nxt(&self) -> Seq {
        self.rcv.nxt
    }

    /// SND.UNA: the oldest unacknowledged sequence number (diagnostics).
    pub fn snd_una(&self) -> Seq {
        self.snd.una
    }

    /// Bytes written but not yet acknowledged by the peer.
    pub fn unacked_bytes(&self) -> usize {
        self.snd.buf.len()
    }

    /// Payload bytes per segment in use (the MSS, raised by path-MTU discovery).
    pub fn segment_size(&self) -> usize {
        self.snd.mss
    }

    /// The congestion window in bytes.
    pub fn congestion_window(&self) -> usize {
        self.cc.window()
    }

    /// The smoothed RTT, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The earliest deadline at which [`Connection::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.timers.next()
    }

    /// Runs every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.timers;
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if due(t.idle) && self.last_recv + self.cfg.user_timeout <= now {
            self.finish(CloseReason::TimedOut);
            return;
        }
        if due(t.time_wait) {
            self.finish(CloseReason::Normal);
            return;
        }
        if due(t.delayed_ack) {
            self.timers.delayed_ack = None;
            self.rcv.ack_now = true;
        }
        if due(t.pacing) {
            self.timers.pacing = None;
        }
        if due(t.reorder) {
            self.timers.reorder = None;
            self.detect_losses(now);
        }
        if due(t.rto) {
            self.on_rto(now);
        } else if due(t.tlp) {
            self.timers.tlp = None;
            self.snd.probe = true;
            self.snd.tlp_armed = false;
            self.stats.tlp_count += 1;
        }
        if due(t.persist) {
            self.timers.persist = None;
            self.snd.probe = true;
            self.snd.persist_backoff = (self.snd.persist_backoff + 1).min(8);
            self.stats.window_probes += 1;
        }
        if due(t.keepalive) {
            self.timers.keepalive = None;
            self.snd.keepalive_due = true;
        }
        self.arm_timers(now);
    }

    fn on_rto(&mut self, now: Instant) {
        self.timers.rto = None;
        self.timers.tlp = None;
        if self.board.is_empty() {
            return;
        }
        self.stats.rto_count += 1;
        self.rtt.back_off();
        self.board.mark_all_lost();
        self.pmtud_on_rto();
        if self.state.is_synchronized() {
            self.cc.on_rto(now);
            self.stats.congestion_events += 1;
        }
        self.snd.recovery_point = Some(self.snd.nxt);
        self.snd.rto_recovery = true;
        self.timers.rto = Some(now + self.rtt.rto());
    }

    /// Closes the connection with `reason` (idempotent) and stops every timer.
    fn finish(&mut self, reason: CloseReason) {
        if self.reason.is_none() {
            self.reason = Some(reason);
            self.events.0 |= EventSet::CLOSED;
            if self.rcv.buf.readable() > 0 || self.rcv.fin_done {
                self.events.0 |= EventSet::READABLE;
            }
        }
        self.state = State::Closed;
        self.timers = Timers::default();
    }

    /// Queues our SYN (or SYN+ACK) as the first scoreboard entry.
    fn queue_syn(&mut self, now: Instant) {
        self.board.push_unsent(recovery::Sent {
            start: self.snd.iss,
            end: self.snd.iss.wrapping_add(1),
            time: now,
            state: recovery::SegState::Lost,
            retransmitted: false,
            syn: true,
            fin: false,
            tx: recovery::TxState::unsent(now),
        });
        self.snd.nxt = self.snd.iss.wrapping_add(1);
    }

    /// Records the peer's SYN parameters.
    fn on_peer_syn(&mut self, syn: &SegmentRepr) {
        self.peer_id = syn.src_id;
        self.rcv.irs = syn.seq;
        self.rcv.nxt = syn.seq.wrapping_add(1);
        self.rcv.adv_edge = self.rcv.nxt;
        self.rcv.ts_recent = syn.tsval;
        self.rcv.ack_now = true;
        let peer_mss = syn
            .mss
            .clamp(crate::config::MIN_MSS, crate::config::MAX_MSS);
        self.snd.mss = self.snd.mss.min(usize::from(peer_mss));
        self.stats.segment_size = self.snd.mss;
        let ceiling = usize::from(self.cfg.clamped_max_mss()).min(usize::from(peer_mss));
        self.pmtud = Pmtud::new(self.snd.mss, ceiling);
        self.snd.peer_wscale = syn.wscale.min(crate::segment::MAX_WINDOW_SCALE);
        self.snd.wnd = usize::from(syn.window);
        self.snd.max_wnd = self.snd.wnd;
        self.snd.wl1 = syn.seq;
    }

    /// Our timestamp clock: microseconds since the connection began, never 0.
    fn ts_now(&self, now: Instant) -> u32 {
        let us = now.saturating_duration_since(self.epoch).as_micros() as u32;
        us.wrapping_add(1).max(1)
    }

    /// Re-arms the timers after any event.
    fn arm_timers(&mut self, now: Instant) {
        if self.state == State::Closed {
            self.timers = Timers::default();
            return;
        }
        self.timers.idle = match self.state {
            State::TimeWait => None,
            _ => Some(self.last_recv + self.cfg.user_timeout),
        };
        let outstanding = !self.board.is_empty();
        if !outstanding {
            self.timers.rto = None;
            self.timers.tlp = None;
            self.timers.reorder = None;
        } else if self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }
        self.arm_tlp();
        self.arm_persist(now);
        self.timers.keepalive =
            if self.state.is_synchronized() && self.state != State::TimeWait && !outstanding {
                Some(self.last_send.max(self.last_recv) + self.cfg.effective_keepalive())
            } else {
                None
            };
    }

    /// RFC 8985 §7.2: arm a tail-loss probe when data is in flight and nothing
    /// waits for retransmission. Deliberately also during recovery: a probe makes
    /// RACK notice a lost retransmission without waiting for the RTO (in the
    /// simulator at 5 % loss this halves the RTOs and adds ~10 % goodput).
    fn arm_tlp(&mut self) {
        let Some(srtt) = self.rtt.srtt() else {
            self.timers.tlp = None;
            return;
        };
        // A lost segment that waits for window room (pipe ≥ cwnd after the
        // reduction) blocks transmission until ACKs free the pipe; when the ACKs of
        // what is in flight are lost too, only a probe (which sends the first lost
        // segment regardless of the window) avoids waiting for the RTO.
        let lost_waits = self.board.has_lost() && self.plan_retransmit().is_none();
        if !self.snd.tlp_armed
            || self.board.pipe() == 0
            || (self.board.has_lost() && !lost_waits)
            || !self.state.is_synchronized()
        {
            self.timers.tlp = None;
            return;
        }
        let mut pto = (srtt * 2).max(MIN_PTO);
        if self.board.pipe() <= self.snd.mss {
            pto += self.cfg.max_ack_delay;
        }
        let base = self.board.last_send_time().unwrap_or(self.last_send);
        let at = base + pto;
        self.timers.tlp = match self.timers.rto {
            Some(rto) if rto <= at => None,
            _ => Some(at),
        };
    }

    /// RFC 9293 §3.8.6.1: probe a zero window with backoff.
    fn arm_persist(&mut self, now: Instant) {
        let window_closed = self.usable_window() == 0;
        let has_data = self.unsent_bytes() > 0;
        if window_closed && has_data && self.board.is_empty() && self.state.is_synchronized() {
            if self.timers.persist.is_none() {
                let base = self.rtt.rto().clamp(PERSIST_MIN, PERSIST_MAX);
                let d = (base * (1 << self.snd.persist_backoff)).min(PERSIST_MAX);
                self.timers.persist = Some(now + d);
            }
        } else {
            self.timers.persist = None;
            if !window_closed {
                self.snd.persist_backoff = 0;
            }
        }
    }

    /// Bytes of the peer's window not yet used by SND.NXT.
    fn usable_window(&self) -> usize {
        let right = self.snd.una.wrapping_add(self.snd.wnd);
        right.since(self.snd.nxt).unwrap_or(0)
    }

    /// Bytes queued but never sent.
    fn unsent_bytes(&self) -> usize {
        let sent = self.snd.nxt.since(self.snd.buf_seq).unwrap_or(0);
        self.snd.buf.len().saturating_sub(sent)
    }

    /// RFC 8985 loss detection, then the congestion response.
    fn detect_losses(&mut self, now: Instant) {
        if !self.board.has_sacked() && self.timers.reorder.is_none() {
            return;
        }
        let rtt = self
            .rtt
            .latest()
            .max(self.rtt.min_rtt().min(self.rtt.latest()));
        let reo_wnd = if self.board.reordering_seen {
            (self.rtt.min_rtt() / 4).min(self.rtt.srtt_or_initial())
        } else {
            Duration::ZERO
        };
        let reo_wnd = reo_wnd.max(MIN_REO_WND);
        let (lost, timer) = self.board.detect_lost(now, rtt, reo_wnd);
        self.timers.reorder = timer;
        if lost > 0 {
            self.stats.fast_retransmits += lost as u64;
            // A lost path-MTU probe says nothing about congestion (RFC 8899 §4.4).
            let probe_lost = self.pmtud_feedback();
            // Segments sent before a fall-back may exceed the size in use.
            self.board.split_lost(self.snd.mss);
            if lost > usize::from(probe_lost) {
                self.enter_recovery(now);
            }
        }
    }

    /// Starts a recovery episode unless one is running (one reduction per window).
    fn enter_recovery(&mut self, now: Instant) {
        if self.snd.recovery_point.is_none() {
            self.snd.recovery_point = Some(self.snd.nxt);
            self.cc.on_congestion_event(now);
            self.stats.congestion_events += 1;
        }
    }

    /// Sends a window update when reading opened the window substantially
    /// (receiver-side silly-window avoidance, RFC 9293 §3.8.6.2.2).
    fn maybe_window_update(&mut self) {
        let cap = self.rcv.buf.capacity();
        let threshold = (cap / 4).max(self.snd.mss).min(cap / 2);
        let edge = self.rcv.nxt.wrapping_add(self.rcv.buf.window());
        if edge.since(self.rcv.adv_edge).unwrap_or(0) >= threshold {
            self.rcv.ack_now = true;
        }
        if self.state == State::Closed {
            self.rcv.ack_now = false;
        }
    }

    /// A challenge ACK, rate-limited per connection (RFC 5961 §7).
    fn challenge_ack(&mut self, now: Instant) {
        if now.saturating_duration_since(self.challenge.0) >= Duration::from_secs(1) {
            self.challenge = (now, 0);
        }
        if self.challenge.1 < CHALLENGE_ACKS_PER_SEC {
            self.challenge.1 += 1;
            self.rcv.ack_now = true;
            self.stats.challenge_acks += 1;
        }
    }
}

#[cfg(test)]
mod tests;
