//! CUBIC (RFC 9438): β = 0.7, C = 0.4, fast convergence, Reno-friendly region.
//!
//! Windows are kept in bytes; the cubic function works in segments as the RFC does.

use std::time::{Duration, Instant};

use super::{initial_window, min_window, Controller};

/// Multiplicative decrease factor (RFC 9438 §4.6).
const BETA: f64 = 0.7;
/// Cubic scaling constant (RFC 9438 §5).
const C: f64 = 0.4;
/// Reno-friendly additive increase per RTT, in segments (RFC 9438 §4.3).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The CUBIC controller.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Window before the last reduction, in segments.
    w_max: f64,
    /// Time to reach `w_max` again, in seconds.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch: Option<Instant>,
    /// The Reno-friendly estimate, in segments.
    w_est: f64,
    /// Bytes acknowledged but not yet turned into window growth.
    credit: f64,
    /// The window just before the last reduction (`cwnd_prior`), in segments.
    prior: f64,
}

impl Cubic {
    /// A controller with an initial window of `iw` segments.
    pub fn new(mss: usize, iw: usize) -> Self {
        Cubic {
            mss,
            cwnd: initial_window(mss, iw),
            ssthresh: usize::MAX,
            w_max: 0.0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
            credit: 0.0,
            prior: 0.0,
        }
    }

    fn segments(&self) -> f64 {
        self.cwnd as f64 / self.mss as f64
    }

    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    fn congestion_avoidance(&mut self, now: Instant, acked: usize, srtt: Duration) {
        let cwnd = self.segments();
        let epoch = *self.epoch.get_or_insert(now);
        if self.w_est == 0.0 {
            self.w_est = cwnd;
            // RFC 9438 §4.2 eq. 2, with W_max below cwnd meaning K = 0.
            self.k = ((self.w_max - cwnd).max(0.0) / C).cbrt();
            if self.w_max < cwnd {
                self.w_max = cwnd;
            }
        }
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        // §4.3: the Reno-friendly estimate grows ALPHA segments per window acked,
        // and one segment (Reno's rate) once it is back at the pre-reduction window.
        let alpha = if self.w_est >= self.prior { 1.0 } else { ALPHA };
        self.w_est += alpha * (acked as f64 / self.mss as f64) / cwnd;
        // §4.2: target W_cubic(t + RTT), bounded to [cwnd, 1.5 cwnd].
        let target = self.w_cubic(t + srtt.as_secs_f64()).clamp(cwnd, 1.5 * cwnd);
        let goal = if self.w_est > target {
            self.w_est
        } else {
            target
        };
        // Grow by (goal - cwnd) / cwnd segments per acked segment.
        self.credit += (goal - cwnd) / cwnd * acked as f64;
        if self.credit >= 1.0 {
            let add = self.credit.floor();
            self.credit -= add;
            self.cwnd += add as usize;
        }
    }
}

impl Controller for Cubic {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn on_ack(&mut self, now: Instant, acked: usize, srtt: Duration, app_limited: bool) {
        if app_limited {
            // §5.8: do not grow on an application-limited flow; restart the epoch.
            self.epoch = None;
            self.w_est = 0.0;
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += acked.min(2 * self.mss);
            return;
        }
        self.congestion_avoidance(now, acked, srtt);
    }

    fn on_congestion_event(&mut self, _now: Instant) {
        let cwnd = self.segments();
        self.prior = cwnd;
        // §4.7 fast convergence.
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        let reduced = (self.cwnd as f64 * BETA) as usize;
        self.ssthresh = reduced.max(min_window(self.mss));
        self.cwnd = self.ssthresh;
        self.epoch = None;
        self.w_est = 0.0;
        self.credit = 0.0;
    }

    fn on_rto(&mut self, now: Instant) {
        // §4.8: reduce as for a congestion event, then collapse to one segment.
        self.on_congestion_event(now);
        self.cwnd = self.mss;
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    fn exit_slow_start(&mut self) {
        self.ssthresh = self.cwnd;
        // Start the cubic epoch at the current window (no reduction happened).
        self.w_max = self.segments();
        self.prior = self.w_max;
        self.epoch = None;
        self.w_est = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_by_beta_and_regrows_to_w_max_in_about_k_seconds() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mss = 1000;
        let mut c = Cubic::new(mss, 10);
        // Slow start to 1000 segments (large enough that the cubic region, not
        // the Reno-friendly one, drives growth).
        while c.window() < 1_000_000 {
            c.on_ack(t0, mss, rtt, false);
        }
        let before = c.window();
        c.on_congestion_event(t0);
        assert_eq!(c.window(), (before as f64 * BETA) as usize);
        assert!(!c.in_slow_start());
        // Feed one window of ACKs per RTT; measure when cwnd is back at w_max.
        let mut now = t0;
        let mut rtts = 0;
        while c.window() < before && rtts < 1000 {
            now += rtt;
            let w = c.window();
            for _ in 0..w / mss {
                c.on_ack(now, mss, rtt, false);
            }
            rtts += 1;
        }
        // K = cbrt(W_max (1 - β) / C) = cbrt(1000 × 0.3 / 0.4) ≈ 9.1 s; the
        // target looks one RTT ahead.
        let secs = rtts as f64 * rtt.as_secs_f64();
        assert!((8.0..9.5).contains(&secs), "regrew in {secs} s");
    }

    #[test]
    fn reno_friendly_growth_is_alpha_then_one_segment_per_rtt_past_cwnd_prior() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(10);
        let mss = 1000;
        let mut c = Cubic::new(mss, 10);
        while c.window() < 20 * mss {
            c.on_ack(t0, mss, rtt, false);
        }
        c.on_congestion_event(t0);
        assert_eq!(c.window(), 14 * mss);
        // One window of ACKs per RTT; the cubic curve stays below the
        // Reno-friendly estimate here (K ≈ 2.5 s against 10 ms RTTs).
        let mut now = t0;
        let mut per_rtt = |c: &mut Cubic| {
            now += rtt;
            let before = c.window();
            for _ in 0..before / mss {
                c.on_ack(now, mss, rtt, false);
            }
            (c.window() - before) as f64 / mss as f64
        };
        let early: f64 = (0..5).map(|_| per_rtt(&mut c)).sum::<f64>() / 5.0;
        assert!((ALPHA - 0.15..ALPHA + 0.15).contains(&early), "{early}");
        while c.window() < 20 * mss {
            per_rtt(&mut c);
        }
        let late: f64 = (0..10).map(|_| per_rtt(&mut c)).sum::<f64>() / 10.0;
        assert!((0.85..1.15).contains(&late), "{late}");
    }

    #[test]
    fn fast_convergence_lowers_w_max_and_rto_collapses_the_window() {
        let t0 = Instant::now();
        let mut c = Cubic::new(1000, 10);
        c.on_congestion_event(t0);
        let w1 = c.w_max;
        c.on_congestion_event(t0);
        assert!(c.w_max < w1);
        c.on_rto(t0);
        assert_eq!(c.window(), 1000);
        assert!(c.in_slow_start());
        c.on_ack(t0, 1000, Duration::from_millis(10), true);
        assert_eq!(c.window(), 1000);
        c.exit_slow_start();
        assert!(!c.in_slow_start());
        assert_eq!(c.window(), 1000, "a delay-based exit does not reduce");
    }
}
