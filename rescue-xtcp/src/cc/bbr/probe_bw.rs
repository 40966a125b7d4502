//! ProbeBW (draft-ietf-ccwg-bbr §4.6.3): the DOWN, CRUISE, REFILL and UP phases,
//! the timing of bandwidth probes (randomised wall-clock wait or Reno-coexistence
//! rounds), and the long-term bound `inflight_hi` that probing raises and loss cuts.

use std::time::{Duration, Instant};

use super::{
    AckPhase, Bbr, BbrState, RateSample, BETA, DEFAULT_CWND_GAIN, MAX_RENO_ROUNDS,
    PROBE_DOWN_PACING_GAIN, PROBE_UP_CWND_GAIN, PROBE_UP_PACING_GAIN, PROBE_WAIT_BASE,
};
use crate::config::MAX_WINDOW;

impl Bbr {
    pub(super) fn start_probe_bw_down(&mut self) {
        self.reset_congestion_signals();
        self.probe_up_cnt = usize::MAX;
        // §4.6.3.5 BBRPickProbeWait: 0 or 1 rounds, 2 to 3 s.
        self.rounds_since_bw_probe = self.random() % 2;
        let frac = (self.random() % 1000) as u32;
        self.bw_probe_wait = PROBE_WAIT_BASE + Duration::from_millis(u64::from(frac));
        self.cycle_stamp = self.now;
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.state = BbrState::ProbeBwDown;
        self.pacing_gain = PROBE_DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    pub(super) fn start_probe_bw_cruise(&mut self) {
        self.state = BbrState::ProbeBwCruise;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    pub(super) fn start_probe_bw_refill(&mut self) {
        self.reset_lower_bounds();
        self.bw_probe_up_rounds = 0;
        self.bw_probe_up_acks = 0;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.state = BbrState::ProbeBwRefill;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    pub(super) fn start_probe_bw_up(&mut self, rs: &RateSample) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate.unwrap_or(0);
        self.state = BbrState::ProbeBwUp;
        self.pacing_gain = PROBE_UP_PACING_GAIN;
        self.cwnd_gain = PROBE_UP_CWND_GAIN;
        self.raise_inflight_hi_slope();
    }

    pub(super) fn raise_inflight_hi_slope(&mut self) {
        let growth = (self.mss << self.bw_probe_up_rounds.min(30)).max(1);
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        // Bytes acknowledged per segment of inflight_hi growth.
        self.probe_up_cnt = (self.cwnd.saturating_mul(self.mss) / growth).max(self.mss);
    }

    pub(super) fn enter_probe_bw(&mut self) {
        self.start_probe_bw_down();
    }

    pub(super) fn advance_max_bw_filter(&mut self) {
        self.bw_hi[0] = self.bw_hi[1];
        self.bw_hi[1] = 0;
    }

    pub(super) fn is_reno_coexistence_probe_time(&self) -> bool {
        let rounds = ((self.target_inflight() / self.mss.max(1)) as u64).min(MAX_RENO_ROUNDS);
        self.rounds_since_bw_probe >= rounds
    }

    pub(super) fn is_time_to_probe_bw(&mut self, now: Instant) -> bool {
        if now > self.cycle_stamp + self.bw_probe_wait || self.is_reno_coexistence_probe_time() {
            self.start_probe_bw_refill();
            return true;
        }
        false
    }

    pub(super) fn is_time_to_cruise(&self) -> bool {
        self.inflight <= self.inflight_with_headroom()
            && self.inflight <= self.bdp_multiple(self.max_bw(), 1.0)
    }

    pub(super) fn is_time_to_go_down(&mut self, rs: &RateSample) -> bool {
        if rs.cwnd_limited && self.cwnd >= self.inflight_hi {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate.unwrap_or(0);
        } else if self.full_bw_now {
            return true;
        }
        false
    }

    pub(super) fn handle_inflight_too_high(&mut self, rs: &RateSample) {
        self.bw_probe_samples = false;
        if !rs.app_limited {
            let floor = (self.target_inflight() as f64 * BETA) as usize;
            self.inflight_hi = rs.tx_in_flight.max(floor).max(self.min_pipe());
        }
        if self.state == BbrState::ProbeBwUp {
            self.start_probe_bw_down();
        }
    }

    pub(super) fn probe_inflight_hi_upward(&mut self, rs: &RateSample) {
        if !rs.cwnd_limited || self.cwnd < self.inflight_hi {
            return;
        }
        self.bw_probe_up_acks = self
            .bw_probe_up_acks
            .saturating_add(rs.newly_acked as usize);
        if self.bw_probe_up_acks >= self.probe_up_cnt {
            let delta = self.bw_probe_up_acks / self.probe_up_cnt;
            self.bw_probe_up_acks -= delta * self.probe_up_cnt;
            self.inflight_hi = self
                .inflight_hi
                .saturating_add(delta.saturating_mul(self.mss))
                .min(MAX_WINDOW);
        }
        if self.round_start {
            self.raise_inflight_hi_slope();
        }
    }

    /// §4.5.10.2 BBRAdaptUpperBounds.
    pub(super) fn adapt_upper_bounds(&mut self, rs: &RateSample) {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            // The end of the probe's samples: forget the previous cycle's.
            self.bw_probe_samples = false;
            self.ack_phase = AckPhase::Init;
            if self.in_probe_bw() && !rs.app_limited {
                self.advance_max_bw_filter();
            }
        }
        // CheckInflightTooHigh: a lossy flight never raises the bound, and cuts it
        // when it was a probe's.
        if Self::is_inflight_too_high(rs) && (self.congestive || self.round_saw_queue()) {
            if self.bw_probe_samples {
                self.handle_inflight_too_high(rs);
            }
            return;
        }
        if self.inflight_hi == usize::MAX {
            return;
        }
        if rs.tx_in_flight > self.inflight_hi {
            self.inflight_hi = rs.tx_in_flight.min(MAX_WINDOW);
        }
        if self.state == BbrState::ProbeBwUp {
            self.probe_inflight_hi_upward(rs);
        }
    }

    pub(super) fn update_probe_bw_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if !self.full_bw_reached {
            return;
        }
        self.adapt_upper_bounds(rs);
        match self.state {
            BbrState::ProbeBwDown => {
                if self.is_time_to_probe_bw(now) {
                    return;
                }
                if self.is_time_to_cruise() {
                    self.start_probe_bw_cruise();
                }
            }
            BbrState::ProbeBwCruise => {
                self.is_time_to_probe_bw(now);
            }
            BbrState::ProbeBwRefill if self.round_start => {
                self.bw_probe_samples = true;
                self.start_probe_bw_up(rs);
            }
            BbrState::ProbeBwUp => {
                let down = self.is_time_to_go_down(rs);
                if down {
                    self.start_probe_bw_down();
                }
            }
            _ => {}
        }
    }
}
