//! BBR as draft-ietf-ccwg-bbr describes it ("BBRv3"): a model of the path (the
//! bottleneck bandwidth from delivery-rate samples, the round-trip propagation delay
//! from a windowed minimum) sets a pacing rate and a window, instead of reacting to
//! every loss.
//!
//! What is here, by section of the draft: the rate samples come from the connection's
//! scoreboard ([`RateSample`]); round counting; the BtlBw max filter over two ProbeBW
//! cycles; the min-RTT filter (10 s) with ProbeRTT (every 5 s, 200 ms, half a BDP); the
//! state machine Startup, Drain, ProbeBW (DOWN, CRUISE, REFILL, UP), ProbeRTT; the
//! full-pipe estimator, with the loss-based Startup exit; the ACK-aggregation
//! allowance (extra_acked); the long-term bounds `inflight_hi` (cut when a round
//! loses more than [`LOSS_THRESH`] of what was in flight, probed upward in UP) and the
//! short-term bounds `bw_lo` / `inflight_lo` (cut by [`BETA`] once per lossy round
//! when not probing); Reno-coexistence probe timing. Not here: ECN (XTCP carries no
//! ECN signal; docs/PERFORMANCE.md "ECN" says what it would take) and the
//! idle-restart pacing of §4.3.4.4 (an idle connection restarts from its model,
//! which the pacer's burst bound keeps modest).
//!
//! Every input is bounded before use: a rate sample above [`MAX_BW`] is clamped, the
//! window never exceeds [`crate::config::MAX_WINDOW`] nor falls below
//! [`MIN_PIPE_SEGMENTS`] segments, so forged ACKs cannot drive it anywhere the
//! connection's other limits do not already allow.
//!
//! The draft assumes the sender really sends at the pacing rate; the connection's
//! pacer (`conn::pacing`) keeps the average to it. When it did not (it forgave the
//! credit of segments sent a timer tick early), BBR ran above its rate, never
//! drained a shared queue in ProbeBW_DOWN and took 0.78 of a one-BDP bottleneck
//! against CUBIC (`tests/sim_fairness.rs`).

use std::time::{Duration, Instant};

use super::{initial_window, Controller, RateSample};
use crate::config::MAX_WINDOW;

/// Startup pacing gain: 4 ln 2 ≈ 2.77 doubles the delivery rate each round (§4.6.1).
const STARTUP_PACING_GAIN: f64 = 2.77;
/// Drain pacing gain: about 1 / 2.885, which drains Startup's queue in a round (§4.6.2).
const DRAIN_PACING_GAIN: f64 = 0.35;
/// Window gain outside ProbeBW_UP and ProbeRTT (§4.6.1).
const DEFAULT_CWND_GAIN: f64 = 2.0;
/// Window gain in ProbeBW_UP (BBRv3 raises it so probing is not window-limited).
const PROBE_UP_CWND_GAIN: f64 = 2.25;
/// ProbeBW_UP pacing gain (§4.6.3).
const PROBE_UP_PACING_GAIN: f64 = 1.25;
/// ProbeBW_DOWN pacing gain (§4.6.3).
const PROBE_DOWN_PACING_GAIN: f64 = 0.90;
/// ProbeRTT's window as a fraction of the BDP (§4.6.4).
const PROBE_RTT_CWND_GAIN: f64 = 0.5;
/// Fraction of the model's rate paced, leaving room for queues to drain (§4.6.6).
const PACING_MARGIN: f64 = 0.99;
/// Loss rate of a flight above which its volume is "too high" (§4.5.10.2): 2 %.
pub const LOSS_THRESH: f64 = 0.02;
/// Multiplicative cut of the bounds on congestion (§4.5.10): 0.7.
pub const BETA: f64 = 0.7;
/// Headroom left below `inflight_hi` when cruising, for other flows (§4.5.10.3).
const HEADROOM: f64 = 0.15;
/// Smallest window in segments (§4.6.5 BBRMinPipeCwnd).
pub const MIN_PIPE_SEGMENTS: usize = 4;
/// Rounds without 25 % bandwidth growth after which the pipe is full (§4.6.1.2).
const FULL_BW_ROUNDS: u32 = 3;
/// Growth that counts as "still growing" for the full-pipe estimator.
const FULL_BW_GROWTH: f64 = 1.25;
/// Loss events in a Startup round (beside a loss rate over [`LOSS_THRESH`]) that end
/// Startup (§4.6.1.2 BBRStartupFullLossCnt).
const STARTUP_FULL_LOSS_COUNT: u32 = 6;
/// Length of the min-RTT filter (§4.5.5).
const MIN_RTT_FILTER: Duration = Duration::from_secs(10);
/// How often ProbeRTT runs (§4.5.5 ProbeRTTInterval).
const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// How long ProbeRTT holds the reduced window (§4.6.4).
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// Rounds over which the ACK-aggregation allowance is a windowed maximum (§4.5.6):
/// two buckets of half this.
const EXTRA_ACKED_ROUNDS: u64 = 10;
/// Most rounds of Reno-coexistence wait before probing (§4.6.3.5).
const MAX_RENO_ROUNDS: u64 = 63;
/// Largest bandwidth the model believes (bytes/s, 8 Tbit/s): a bound on what forged
/// ACKs could claim.
pub const MAX_BW: u64 = 1 << 40;
/// Queueing delay, as a fraction of the minimum RTT, below which a loss-tolerant
/// BBR takes a round's losses as random.
pub const QUEUE_DELAY_SLACK: f64 = 0.125;
/// Least queueing delay that counts as a queue (timer and scheduling noise of a
/// userspace stack are about a millisecond).
pub const MIN_QUEUE_DELAY: Duration = Duration::from_millis(2);
/// Random part of the wait between bandwidth probes, on top of 2 s (§4.6.3.5).
const PROBE_WAIT_BASE: Duration = Duration::from_secs(2);

/// The BBR states and ProbeBW phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BbrState {
    /// Exponential search for the bandwidth.
    Startup,
    /// Drain the queue Startup built.
    Drain,
    /// ProbeBW: pace below the model to drain any queue.
    ProbeBwDown,
    /// ProbeBW: hold at the model, with headroom.
    ProbeBwCruise,
    /// ProbeBW: refill the pipe before probing, one round.
    ProbeBwRefill,
    /// ProbeBW: probe above the model.
    ProbeBwUp,
    /// Shrink the window to measure the propagation delay.
    ProbeRtt,
}

/// Where a bandwidth probe's feedback stands (§4.6.3 ack_phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckPhase {
    Init,
    ProbeStopping,
    Refilling,
    ProbeStarting,
    ProbeFeedback,
}

/// The BBR controller.
#[derive(Debug, Clone)]
pub struct Bbr {
    mss: usize,
    iw: usize,
    state: BbrState,
    pacing_gain: f64,
    cwnd_gain: f64,
    cwnd: usize,
    pacing_rate: u64,
    /// The model's bandwidth: min(max_bw, bw_lo).
    bw: u64,
    /// Max filter of delivery rates over the last two ProbeBW cycles.
    bw_hi: [u64; 2],
    bw_lo: u64,
    bw_latest: u64,
    inflight_hi: usize,
    inflight_lo: usize,
    inflight_latest: usize,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Instant,
    probe_rtt_expired: bool,
    probe_rtt_done_stamp: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: usize,
    // Round counting.
    next_round_delivered: u64,
    round_start: bool,
    round_count: u64,
    rounds_since_bw_probe: u64,
    // Full pipe.
    full_bw: u64,
    full_bw_count: u32,
    full_bw_now: bool,
    full_bw_reached: bool,
    // Congestion signals of the current round.
    loss_round_delivered: u64,
    loss_round_start: bool,
    loss_in_round: bool,
    loss_events_in_round: u32,
    // ProbeBW cycle.
    cycle_stamp: Instant,
    /// The time of the sample being processed.
    now: Instant,
    ack_phase: AckPhase,
    bw_probe_wait: Duration,
    bw_probe_samples: bool,
    bw_probe_up_rounds: u32,
    bw_probe_up_acks: usize,
    probe_up_cnt: usize,
    // ACK aggregation.
    extra_acked: [usize; 2],
    extra_acked_slot: usize,
    extra_acked_slot_start: u64,
    extra_acked_interval_start: Instant,
    extra_acked_delivered: u64,
    // Loss recovery.
    in_recovery: bool,
    packet_conservation: bool,
    recovery_round_end: u64,
    delivered: u64,
    inflight: usize,
    rng: u64,
    /// Treat loss without queueing delay as random (see [`Bbr::loss_tolerant`]).
    loss_tolerant: bool,
    /// Least RTT sample of the current loss round.
    round_min_rtt: Option<Duration>,
    /// Whether the last complete round's losses came with a queue (always true
    /// unless loss-tolerant).
    congestive: bool,
}

impl Bbr {
    /// A controller at `now` with an initial window of `iw` segments of `mss` bytes;
    /// `seed` drives the randomised probe timing.
    pub fn new(now: Instant, mss: usize, iw: usize, seed: u64) -> Self {
        let cwnd = initial_window(mss, iw);
        let mut b = Bbr {
            mss,
            iw: cwnd,
            state: BbrState::Startup,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: DEFAULT_CWND_GAIN,
            cwnd,
            // Without an RTT: the initial window per millisecond, times the gain.
            pacing_rate: (STARTUP_PACING_GAIN * cwnd as f64 * 1000.0) as u64,
            bw: 0,
            bw_hi: [0; 2],
            bw_lo: u64::MAX,
            bw_latest: 0,
            inflight_hi: usize::MAX,
            inflight_lo: usize::MAX,
            inflight_latest: 0,
            min_rtt: None,
            min_rtt_stamp: now,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: now,
            probe_rtt_expired: false,
            probe_rtt_done_stamp: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            next_round_delivered: 0,
            round_start: false,
            round_count: 0,
            rounds_since_bw_probe: 0,
            full_bw: 0,
            full_bw_count: 0,
            full_bw_now: false,
            full_bw_reached: false,
            loss_round_delivered: 0,
            loss_round_start: false,
            loss_in_round: false,
            loss_events_in_round: 0,
            cycle_stamp: now,
            now,
            ack_phase: AckPhase::Init,
            bw_probe_wait: PROBE_WAIT_BASE,
            bw_probe_samples: false,
            bw_probe_up_rounds: 0,
            bw_probe_up_acks: 0,
            probe_up_cnt: usize::MAX,
            extra_acked: [0; 2],
            extra_acked_slot: 0,
            extra_acked_slot_start: 0,
            extra_acked_interval_start: now,
            extra_acked_delivered: 0,
            in_recovery: false,
            packet_conservation: false,
            recovery_round_end: 0,
            delivered: 0,
            inflight: 0,
            rng: seed | 1,
            loss_tolerant: false,
            round_min_rtt: None,
            congestive: true,
        };
        b.cwnd = b.cwnd.max(b.min_pipe());
        b
    }

    /// The loss-tolerant variant, a deviation from the draft for lossy links: a
    /// round whose least RTT stayed within [`QUEUE_DELAY_SLACK`] (at least
    /// [`MIN_QUEUE_DELAY`]) of the minimum RTT saw no queue, so its losses are
    /// taken as random (radio, not congestion): they cut neither the short-term
    /// bounds nor `inflight_hi` and do not end Startup. Loss with a standing queue
    /// (a full drop-tail buffer, as in the fairness tests) is answered as in the
    /// draft.
    pub fn loss_tolerant(now: Instant, mss: usize, iw: usize, seed: u64) -> Self {
        Bbr {
            loss_tolerant: true,
            congestive: false,
            ..Bbr::new(now, mss, iw, seed)
        }
    }

    /// The current state (diagnostics and tests).
    pub fn state(&self) -> BbrState {
        self.state
    }

    /// The model's bottleneck bandwidth in bytes per second (0 before any sample).
    pub fn bandwidth(&self) -> u64 {
        self.bw
    }

    /// The model's propagation delay, once measured.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    fn min_pipe(&self) -> usize {
        MIN_PIPE_SEGMENTS * self.mss
    }

    fn random(&mut self) -> u64 {
        // xorshift64: deterministic per seed, good enough for probe jitter.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn max_bw(&self) -> u64 {
        self.bw_hi[0].max(self.bw_hi[1])
    }

    /// gain × BDP, or the initial window before an RTT is known (§4.6.4.2).
    fn bdp_multiple(&self, bw: u64, gain: f64) -> usize {
        let Some(rtt) = self.min_rtt else {
            return self.iw;
        };
        let bdp = bw as f64 * rtt.as_secs_f64();
        (gain * bdp).min(MAX_WINDOW as f64) as usize
    }

    fn target_inflight(&self) -> usize {
        self.bdp_multiple(self.bw, 1.0).min(self.cwnd)
    }

    fn inflight_with_headroom(&self) -> usize {
        if self.inflight_hi == usize::MAX {
            return usize::MAX;
        }
        let headroom = ((HEADROOM * self.inflight_hi as f64) as usize).max(self.mss);
        self.inflight_hi
            .saturating_sub(headroom)
            .max(self.min_pipe())
    }

    fn send_quantum(&self) -> usize {
        ((self.pacing_rate / 1000) as usize).clamp(2 * self.mss, 64 * 1024)
    }

    fn max_inflight(&self) -> usize {
        let extra = self.extra_acked[0].max(self.extra_acked[1]);
        let mut inflight = self
            .bdp_multiple(self.bw, self.cwnd_gain)
            .saturating_add(extra);
        inflight = inflight.max(3 * self.send_quantum());
        if self.state == BbrState::ProbeBwUp {
            inflight = inflight.saturating_add(2 * self.mss);
        }
        inflight
    }

    fn is_probing_bw(&self) -> bool {
        matches!(
            self.state,
            BbrState::Startup | BbrState::ProbeBwRefill | BbrState::ProbeBwUp
        )
    }

    fn in_probe_bw(&self) -> bool {
        matches!(
            self.state,
            BbrState::ProbeBwDown
                | BbrState::ProbeBwCruise
                | BbrState::ProbeBwRefill
                | BbrState::ProbeBwUp
        )
    }

    fn start_round(&mut self) {
        self.next_round_delivered = self.delivered;
    }

    fn enter_startup(&mut self) {
        self.state = BbrState::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn enter_drain(&mut self) {
        self.state = BbrState::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn reset_full_bw(&mut self) {
        self.full_bw = 0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    fn reset_congestion_signals(&mut self) {
        self.loss_in_round = false;
        self.loss_events_in_round = 0;
        self.bw_latest = 0;
        self.inflight_latest = 0;
    }

    fn reset_lower_bounds(&mut self) {
        self.bw_lo = u64::MAX;
        self.inflight_lo = usize::MAX;
    }

    fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample) {
        if self.round_start
            && self.round_count >= self.extra_acked_slot_start + EXTRA_ACKED_ROUNDS / 2
        {
            self.extra_acked_slot ^= 1;
            self.extra_acked[self.extra_acked_slot] = 0;
            self.extra_acked_slot_start = self.round_count;
        }
        let interval = now.saturating_duration_since(self.extra_acked_interval_start);
        let mut expected = (self.bw as f64 * interval.as_secs_f64()) as u64;
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = now;
            expected = 0;
        }
        self.extra_acked_delivered = self.extra_acked_delivered.saturating_add(rs.newly_acked);
        let extra = (self.extra_acked_delivered - expected).min(self.cwnd as u64) as usize;
        let slot = &mut self.extra_acked[self.extra_acked_slot];
        *slot = (*slot).max(extra);
    }

    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_now || rs.app_limited {
            return;
        }
        let Some(rate) = rs.delivery_rate else {
            return;
        };
        if rate as f64 >= self.full_bw as f64 * FULL_BW_GROWTH {
            self.reset_full_bw();
            self.full_bw = rate;
            return;
        }
        if !self.round_start {
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= FULL_BW_ROUNDS;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    fn check_startup_done(&mut self) {
        if self.state == BbrState::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    fn check_drain_done(&mut self) {
        if self.state == BbrState::Drain && self.inflight <= self.bdp_multiple(self.bw, 1.0) {
            self.enter_probe_bw();
        }
    }

    fn set_pacing_rate(&mut self) {
        let bw = if self.bw == 0 {
            return;
        } else {
            self.bw
        };
        let rate = (self.pacing_gain * bw as f64 * PACING_MARGIN) as u64;
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate.clamp(1, MAX_BW);
        }
    }

    fn set_cwnd(&mut self, rs: &RateSample) {
        let max_inflight = self.max_inflight();
        let acked = rs.newly_acked as usize;
        if self.packet_conservation {
            self.cwnd = self.cwnd.max(self.inflight.saturating_add(acked));
        } else if self.full_bw_reached {
            self.cwnd = self.cwnd.saturating_add(acked).min(max_inflight);
        } else if self.cwnd < max_inflight || self.delivered < self.iw as u64 {
            self.cwnd = self.cwnd.saturating_add(acked);
        }
        self.cwnd = self.cwnd.max(self.min_pipe());
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(self.probe_rtt_cwnd());
        }
        // §4.6.5 BBRBoundCwndForModel.
        let mut cap = usize::MAX;
        if self.in_probe_bw() && self.state != BbrState::ProbeBwCruise {
            cap = self.inflight_hi;
        } else if matches!(self.state, BbrState::ProbeRtt | BbrState::ProbeBwCruise) {
            cap = self.inflight_with_headroom();
        }
        cap = cap.min(self.inflight_lo).max(self.min_pipe());
        self.cwnd = self.cwnd.min(cap).min(MAX_WINDOW);
    }
}

impl Controller for Bbr {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn on_ack(&mut self, _now: Instant, _acked: usize, _srtt: Duration, _app_limited: bool) {
        // The model moves on rate samples (`on_rate_sample`), not on byte counts.
    }

    fn on_congestion_event(&mut self, _now: Instant) {
        // §4.6.5.4: packet conservation for the first round of recovery.
        if !self.in_recovery {
            self.in_recovery = true;
            self.prior_cwnd = self.cwnd;
            self.cwnd = self
                .inflight
                .saturating_add(self.mss)
                .clamp(self.min_pipe(), MAX_WINDOW);
            self.packet_conservation = true;
            self.recovery_round_end = self.round_count + 1;
        }
    }

    fn on_rto(&mut self, _now: Instant) {
        self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        self.in_recovery = true;
        self.packet_conservation = false;
        self.cwnd = self.min_pipe();
    }

    fn on_recovery_exit(&mut self) {
        if self.in_recovery {
            self.in_recovery = false;
            self.packet_conservation = false;
            self.cwnd = self.cwnd.max(self.prior_cwnd);
            self.prior_cwnd = 0;
        }
    }

    fn in_slow_start(&self) -> bool {
        self.state == BbrState::Startup
    }

    fn exit_slow_start(&mut self) {
        // HyStart++ is for loss-based controllers; BBR has its own full-pipe test.
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample) {
        self.now = self.now.max(now);
        self.delivered = rs.delivered_total;
        self.inflight = rs.inflight.min(MAX_WINDOW);
        // §4.2 BBRUpdateModelAndState.
        self.update_latest_delivery_signals(rs);
        self.update_congestion_signals(rs);
        self.update_ack_aggregation(now, rs);
        self.check_full_bw_reached(rs);
        self.check_startup_done();
        self.check_drain_done();
        self.update_probe_bw_cycle_phase(now, rs);
        self.update_min_rtt(now, rs);
        self.check_probe_rtt(now);
        self.advance_latest_delivery_signals(rs);
        self.bw = self.max_bw().min(self.bw_lo);
        if self.packet_conservation && self.round_count >= self.recovery_round_end {
            self.packet_conservation = false;
        }
        // §4.2 BBRUpdateControlParameters.
        self.set_pacing_rate();
        self.set_cwnd(rs);
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }
}

mod probe_bw;
mod probe_rtt;
mod signals;
#[cfg(test)]
mod tests;
