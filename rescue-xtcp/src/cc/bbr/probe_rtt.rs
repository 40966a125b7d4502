//! The min-RTT filter and ProbeRTT (draft-ietf-ccwg-bbr §4.5.5, §4.6.4): the
//! propagation delay is the least RTT seen in [`MIN_RTT_FILTER`]; when no lower
//! sample came for [`PROBE_RTT_INTERVAL`], the window drops to half a BDP for
//! [`PROBE_RTT_DURATION`] and a round so the queue drains and the delay shows.

use std::time::Instant;

use super::{
    AckPhase, Bbr, BbrState, RateSample, MIN_RTT_FILTER, PROBE_RTT_CWND_GAIN, PROBE_RTT_DURATION,
    PROBE_RTT_INTERVAL,
};

impl Bbr {
    pub(super) fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired = now > self.probe_rtt_min_stamp + PROBE_RTT_INTERVAL;
        if let Some(rtt) = rs.rtt {
            if self.probe_rtt_min_delay.is_none_or(|d| rtt < d) || self.probe_rtt_expired {
                self.probe_rtt_min_delay = Some(rtt);
                self.probe_rtt_min_stamp = now;
            }
        }
        let expired = now > self.min_rtt_stamp + MIN_RTT_FILTER;
        if let Some(d) = self.probe_rtt_min_delay {
            if self.min_rtt.is_none_or(|m| d < m) || expired {
                self.min_rtt = Some(d);
                self.min_rtt_stamp = self.probe_rtt_min_stamp;
            }
        }
    }

    pub(super) fn probe_rtt_cwnd(&self) -> usize {
        self.bdp_multiple(self.bw, PROBE_RTT_CWND_GAIN)
            .max(self.min_pipe())
    }

    pub(super) fn check_probe_rtt(&mut self, now: Instant) {
        if self.state != BbrState::ProbeRtt && self.probe_rtt_expired {
            self.state = BbrState::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = PROBE_RTT_CWND_GAIN;
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
            self.probe_rtt_done_stamp = None;
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.state != BbrState::ProbeRtt {
            return;
        }
        if self.probe_rtt_done_stamp.is_none() && self.inflight <= self.probe_rtt_cwnd() {
            self.probe_rtt_done_stamp = Some(now + PROBE_RTT_DURATION);
            self.probe_rtt_round_done = false;
            self.start_round();
        } else if let Some(done) = self.probe_rtt_done_stamp {
            if self.round_start {
                self.probe_rtt_round_done = true;
            }
            if self.probe_rtt_round_done && now > done {
                self.probe_rtt_min_stamp = now;
                self.cwnd = self.cwnd.max(self.prior_cwnd);
                self.prior_cwnd = 0;
                self.reset_lower_bounds();
                if self.full_bw_reached {
                    self.start_probe_bw_down();
                    self.start_probe_bw_cruise();
                } else {
                    self.enter_startup();
                }
            }
        }
    }
}
