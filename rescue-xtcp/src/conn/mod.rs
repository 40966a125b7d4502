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

mod api;
mod buffers;
pub(crate) mod fuzz;
mod input;
mod output;
mod pacing;
mod pmtud;
mod recovery;
mod rtt;
mod timeouts;
mod timers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cc::{self, Controller};
use crate::config::Config;
use crate::segment::SegmentRepr;
use crate::seq::Seq;
pub use api::{CloseReason, ConnectionStats, Event, ReadError, State, Transmit, WriteError};
use buffers::{RecvBuf, SendBuf};
use pacing::Pacer;
use pmtud::Pmtud;
use recovery::Scoreboard;
use rtt::RttEstimator;
use timers::Timers;

/// Most challenge ACKs (RFC 5961 §7) per connection per second; per connection,
/// not global, to avoid the CVE-2016-5696 side channel.
const CHALLENGE_ACKS_PER_SEC: u32 = 10;
/// A peer RTT sample above this is treated as forged and ignored.
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(60);
/// Least RACK reordering window (RFC 8985 §6.2 allows zero without reordering).
/// The copies of one ACK (see `conn::output`) and the ACKs of one received batch
/// arrive together but each carries only some SACK blocks; a segment must not be
/// declared lost on the first of them when the next one reports it delivered.
/// 1 ms covers a batch and is small against any RTT over the internet.
const MIN_REO_WND: Duration = Duration::from_millis(1);

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
