//! The congestion signals of each round (draft-ietf-ccwg-bbr §4.5.3, §4.5.10):
//! round counting and the max-bandwidth filter, the latest delivery rate and volume,
//! the short-term bounds `bw_lo` / `inflight_lo` cut once per lossy round, the loss
//! rate that makes a flight "too high", Startup's loss exit, and the loss-tolerant
//! variant's test for a queue.

use super::{
    Bbr, BbrState, RateSample, BETA, LOSS_THRESH, MAX_BW, MIN_QUEUE_DELAY, QUEUE_DELAY_SLACK,
    STARTUP_FULL_LOSS_COUNT,
};

impl Bbr {
    /// §4.5.3 round counting, then the max-bandwidth filter.
    pub(super) fn update_max_bw(&mut self, rs: &RateSample) {
        if rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.round_count += 1;
            self.rounds_since_bw_probe += 1;
            self.round_start = true;
        } else {
            self.round_start = false;
        }
        if let Some(rate) = rs.delivery_rate {
            let rate = rate.min(MAX_BW);
            if rate >= self.max_bw() || !rs.app_limited {
                self.bw_hi[1] = self.bw_hi[1].max(rate);
            }
        }
    }

    pub(super) fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        if let Some(rate) = rs.delivery_rate {
            self.bw_latest = self.bw_latest.max(rate.min(MAX_BW));
        }
        self.inflight_latest = self.inflight_latest.max(rs.delivered as usize);
        if let Some(rtt) = rs.rtt {
            self.round_min_rtt = Some(self.round_min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        if rs.prior_delivered >= self.loss_round_delivered {
            self.loss_round_delivered = self.delivered;
            self.loss_round_start = true;
            // A round without an RTT sample keeps the previous verdict.
            if self.round_min_rtt.is_some() {
                self.congestive = !self.loss_tolerant || self.round_saw_queue();
            }
            self.round_min_rtt = None;
        }
    }

    /// Whether the current round runs with a queue: its least RTT so far exceeds
    /// the minimum RTT by the slack (no sample or no minimum yet: no evidence).
    pub(super) fn round_saw_queue(&self) -> bool {
        let (Some(round), Some(min)) = (self.round_min_rtt, self.min_rtt) else {
            return false;
        };
        round > min + (min.mul_f64(QUEUE_DELAY_SLACK)).max(MIN_QUEUE_DELAY)
    }

    pub(super) fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate.unwrap_or(0).min(MAX_BW);
            self.inflight_latest = rs.delivered as usize;
        }
    }

    pub(super) fn update_congestion_signals(&mut self, rs: &RateSample) {
        self.update_max_bw(rs);
        if rs.newly_lost > 0 {
            self.loss_in_round = true;
            // Segments lost, standing in for the draft's discontiguous lost ranges
            // (one ACK may report many when the receiver answers a batch at once).
            let segs = rs.newly_lost.div_ceil(self.mss.max(1) as u64);
            let segs = u32::try_from(segs).unwrap_or(u32::MAX);
            self.loss_events_in_round = self.loss_events_in_round.saturating_add(segs);
        }
        if !self.loss_round_start {
            return;
        }
        // Once per round: the short-term bounds react to the round's losses.
        if !self.is_probing_bw() && self.loss_in_round && self.congestive {
            if self.bw_lo == u64::MAX {
                self.bw_lo = self.max_bw();
            }
            if self.inflight_lo == usize::MAX {
                self.inflight_lo = self.cwnd;
            }
            self.bw_lo = self.bw_latest.max((BETA * self.bw_lo as f64) as u64);
            self.inflight_lo = self
                .inflight_latest
                .max((BETA * self.inflight_lo as f64) as usize);
        }
        self.check_startup_high_loss(rs);
        self.loss_in_round = false;
        self.loss_events_in_round = 0;
    }

    pub(super) fn is_inflight_too_high(rs: &RateSample) -> bool {
        rs.tx_in_flight > 0 && rs.lost as f64 > rs.tx_in_flight as f64 * LOSS_THRESH
    }

    /// §4.6.1.2: Startup also ends after a round with many losses and a loss rate
    /// over the threshold.
    pub(super) fn check_startup_high_loss(&mut self, rs: &RateSample) {
        if self.full_bw_reached || self.state != BbrState::Startup {
            return;
        }
        if self.loss_events_in_round >= STARTUP_FULL_LOSS_COUNT
            && Self::is_inflight_too_high(rs)
            && self.congestive
        {
            self.full_bw_reached = true;
            self.inflight_hi = self
                .bdp_multiple(self.max_bw(), 1.0)
                .max(self.inflight_latest)
                .max(self.min_pipe());
        }
    }
}
