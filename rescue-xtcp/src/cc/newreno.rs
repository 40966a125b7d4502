//! NewReno (RFC 5681 slow start / congestion avoidance, RFC 6582 recovery).

use std::time::{Duration, Instant};

use super::{initial_window, min_window, Controller};

/// The NewReno controller.
#[derive(Debug, Clone)]
pub struct NewReno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    acked_in_ca: usize,
}

impl NewReno {
    /// A controller with an initial window of `iw` segments.
    pub fn new(mss: usize, iw: usize) -> Self {
        NewReno {
            mss,
            cwnd: initial_window(mss, iw),
            ssthresh: usize::MAX,
            acked_in_ca: 0,
        }
    }
}

impl Controller for NewReno {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn on_ack(&mut self, _now: Instant, acked: usize, _srtt: Duration, app_limited: bool) {
        if app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 with appropriate byte counting (RFC 3465, L = 2).
            self.cwnd += acked.min(2 * self.mss);
        } else {
            // cwnd += MSS once per cwnd of acknowledged bytes.
            self.acked_in_ca += acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant) {
        self.ssthresh = (self.cwnd / 2).max(min_window(self.mss));
        self.cwnd = self.ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_rto(&mut self, _now: Instant) {
        self.ssthresh = (self.cwnd / 2).max(min_window(self.mss));
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    fn exit_slow_start(&mut self) {
        self.ssthresh = self.cwnd;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_halving_then_linear_growth() {
        let now = Instant::now();
        let rtt = Duration::from_millis(10);
        let mut c = NewReno::new(1000, 10);
        assert_eq!(c.window(), 10_000);
        c.on_ack(now, 1000, rtt, false);
        assert_eq!(c.window(), 11_000);
        c.on_ack(now, 1000, rtt, true);
        assert_eq!(c.window(), 11_000, "app-limited ACKs do not grow cwnd");
        c.on_congestion_event(now);
        assert_eq!(c.window(), 5_500);
        assert!(!c.in_slow_start());
        for _ in 0..5 {
            c.on_ack(now, 1100, rtt, false);
        }
        assert_eq!(c.window(), 6_500);
        c.on_rto(now);
        assert_eq!(c.window(), 1000);
        assert!(c.in_slow_start());
        c.exit_slow_start();
        assert!(!c.in_slow_start());
        assert_eq!(c.window(), 1000, "a delay-based exit does not reduce");
    }
}
