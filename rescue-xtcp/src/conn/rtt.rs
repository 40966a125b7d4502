//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Samples come from the timestamp echo (tsecr) of ACKs that acknowledge new data,
//! so every sample names the transmission it measures: Karn's ambiguity cannot
//! arise, and the RTO backoff is reset only by such a fresh sample (RFC 6298 §5).

use std::time::Duration;

/// Clock granularity G of RFC 6298 §2.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Most RTO doublings (2^6 × min RTO is already beyond any sane max RTO).
const MAX_BACKOFF: u32 = 16;

/// The RTT estimator of one connection.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Duration,
    latest: Duration,
    backoff: u32,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    pub(crate) fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: Duration::MAX,
            latest: Duration::ZERO,
            backoff: 0,
            initial_rto,
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Adds a sample (RFC 6298 §2.2–2.3) and resets the backoff.
    pub(crate) fn sample(&mut self, r: Duration) {
        self.latest = r;
        self.min_rtt = self.min_rtt.min(r);
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        self.backoff = 0;
    }

    /// The smoothed RTT, if any sample was taken.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The smoothed RTT, or the initial RTO before any sample.
    pub(crate) fn srtt_or_initial(&self) -> Duration {
        self.srtt.unwrap_or(self.initial_rto)
    }

    /// The smallest RTT seen (the initial RTO before any sample).
    pub(crate) fn min_rtt(&self) -> Duration {
        if self.min_rtt == Duration::MAX {
            self.initial_rto
        } else {
            self.min_rtt
        }
    }

    /// The latest sample.
    pub(crate) fn latest(&self) -> Duration {
        self.latest
    }

    /// The RTO without backoff (RFC 6298 §2.3 and the configured clamps).
    pub(crate) fn base_rto(&self) -> Duration {
        match self.srtt {
            None => self.initial_rto,
            Some(srtt) => srtt + (self.rttvar * 4).max(GRANULARITY),
        }
        .clamp(self.min_rto, self.max_rto)
    }

    /// The current RTO including the exponential backoff (RFC 6298 §5.5).
    pub(crate) fn rto(&self) -> Duration {
        let factor = 1u32 << self.backoff.min(MAX_BACKOFF);
        self.base_rto()
            .checked_mul(factor)
            .unwrap_or(self.max_rto)
            .min(self.max_rto)
    }

    /// Doubles the RTO after a timeout.
    pub(crate) fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        // 100 + 4 × 50 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        // rttvar = 3/4 × 50 = 37.5; rto = 100 + 150.
        assert_eq!(e.rto(), Duration::from_millis(250));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_a_sample_resets_it() {
        let mut e = est();
        e.sample(Duration::from_millis(10));
        assert_eq!(e.rto(), Duration::from_millis(200));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(400));
        for _ in 0..40 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(10));
        e.sample(Duration::from_millis(10));
        assert_eq!(e.rto(), Duration::from_millis(200));
        assert_eq!(e.min_rtt(), Duration::from_millis(10));
    }
}
