//! A token-bucket pacer: 1.25 × cwnd per smoothed RTT (quinn's `pacing.rs`, the
//! QUIC recovery RFC 9002 §7.7 rate) or the controller's own rate (BBR), with
//! bursts sized for a userspace timer.
//!
//! A segment whose wait would be shorter than a timer tick goes out at once, but
//! on credit: the bucket goes below zero by what it lacked, and the next segments
//! wait that much longer. So the average rate is the rate asked for, whatever the
//! timer granularity. (Forgiving that debt instead, as this pacer once did, let a
//! sender paced at 0.87 MB/s send 0.98 MB/s; BBR then never drained the queue it
//! shared with a CUBIC flow and took 0.78 of a one-BDP bottleneck, see
//! `tests/sim_fairness.rs`.) The debt is bounded by the bucket's size: only above
//! ~360 MB/s, where a timer tick's worth of the rate exceeds the largest burst
//! (loopback), is the excess forgiven, which keeps such a flow from stalling one
//! tick per burst.

use std::time::{Duration, Instant};

/// Pacing rate numerator/denominator: 5/4 = 1.25 × cwnd per RTT.
const RATE_NUM: u128 = 5;
const RATE_DEN: u128 = 4;
/// The burst is what the rate sends in this long: timers in userspace fire about
/// this late, so a smaller burst would under-use the link.
const BURST_INTERVAL: Duration = Duration::from_millis(2);
const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Smallest burst, in segments (IW10-sized bursts are always allowed).
const MIN_BURST_SEGMENTS: usize = 10;
/// Largest burst, in segments.
const MAX_BURST_SEGMENTS: usize = 256;
/// A wait shorter than this is not worth a timer: userspace timers (tokio's
/// wheel) fire about a millisecond late, so holding a segment back for less would
/// stall the flow for a whole timer tick (on loopback the pacing interval is
/// nanoseconds and this capped throughput near 300 MB/s). Such a segment goes out
/// on credit instead (see the module documentation).
const MIN_PACING_DELAY: Duration = Duration::from_millis(1);

/// The pacer of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// Bytes that may go out now; below zero: sent on credit, owed to the rate.
    /// Always within `[-capacity, capacity]`.
    tokens: i64,
    /// The bucket's size at the last [`Pacer::delay`].
    cap: i64,
    last: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Pacer {
            tokens: (MIN_BURST_SEGMENTS * 1500) as i64,
            cap: (MIN_BURST_SEGMENTS * 1500) as i64,
            last: None,
        }
    }

    /// The loss-based controllers' rate, 1.25 × `cwnd` per `srtt`, in bytes per second.
    pub(crate) fn cwnd_rate(cwnd: usize, srtt: Duration) -> u64 {
        let nanos = srtt.as_nanos().max(1);
        let rate = cwnd as u128 * RATE_NUM * NANOS_PER_SEC / (nanos * RATE_DEN);
        u64::try_from(rate).unwrap_or(u64::MAX)
    }

    /// The bucket's size in bytes: what `rate` sends in [`BURST_INTERVAL`],
    /// within [[`MIN_BURST_SEGMENTS`], [`MAX_BURST_SEGMENTS`]] segments of `mss`.
    fn capacity(rate: u64, mss: usize) -> i64 {
        let burst = u128::from(rate) * BURST_INTERVAL.as_nanos() / NANOS_PER_SEC;
        let lo = (MIN_BURST_SEGMENTS * mss) as u128;
        let hi = (MAX_BURST_SEGMENTS * mss) as u128;
        burst.clamp(lo, hi.max(lo)) as i64
    }

    /// When `bytes` may be sent at `rate` bytes per second: `None` if now, else the
    /// instant the bucket holds enough tokens. Refills the bucket up to `now`.
    pub(crate) fn delay(
        &mut self,
        now: Instant,
        rate: u64,
        mss: usize,
        bytes: usize,
    ) -> Option<Instant> {
        let cap = Self::capacity(rate, mss);
        self.cap = cap;
        let rate_num = u128::from(rate); // bytes per NANOS_PER_SEC nanoseconds
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let new = (elapsed * rate_num / NANOS_PER_SEC).min(2 * cap as u128);
            self.tokens = (self.tokens + new as i64).min(cap);
        } else {
            self.tokens = cap;
        }
        self.last = Some(now);
        self.tokens = self.tokens.clamp(-cap, cap);
        let want = i64::try_from(bytes).unwrap_or(i64::MAX).min(cap);
        if self.tokens >= want || rate_num == 0 {
            return None;
        }
        let missing = (want - self.tokens) as u128;
        let wait = (missing * NANOS_PER_SEC).div_ceil(rate_num);
        let wait = Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX));
        if wait < MIN_PACING_DELAY {
            return None;
        }
        Some(now + wait)
    }

    /// Takes tokens for a sent datagram, on credit if the bucket lacks them (the
    /// debt stops at the bucket's size).
    pub(crate) fn on_sent(&mut self, bytes: usize) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.tokens = self.tokens.saturating_sub(bytes).max(-self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_spaces_segments_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let srtt = Duration::from_millis(100);
        let mss = 1000;
        let cwnd = 10_000; // 125 kB/s → 1000 B every 8 ms
        let mut sent = 0;
        while p
            .delay(t0, Pacer::cwnd_rate(cwnd, srtt), mss, mss)
            .is_none()
        {
            p.on_sent(mss);
            sent += 1;
            assert!(sent <= MAX_BURST_SEGMENTS);
        }
        assert_eq!(sent, MIN_BURST_SEGMENTS);
        let at = p.delay(t0, Pacer::cwnd_rate(cwnd, srtt), mss, mss).unwrap();
        assert_eq!(at - t0, Duration::from_millis(8));
        assert!(p
            .delay(at, Pacer::cwnd_rate(cwnd, srtt), mss, mss)
            .is_none());
    }

    #[test]
    fn waits_shorter_than_a_timer_tick_are_not_imposed() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        // 10 MB per 50 µs: the next segment would be due in nanoseconds.
        let (srtt, cwnd, mss) = (Duration::from_micros(50), 10_000_000, 1200);
        for _ in 0..10_000 {
            assert!(p
                .delay(t0, Pacer::cwnd_rate(cwnd, srtt), mss, mss)
                .is_none());
            p.on_sent(mss);
        }
    }

    #[test]
    fn segments_sent_before_their_time_are_owed_so_the_average_rate_holds() {
        // 875 kB/s with 1,400-byte segments: one every 1.6 ms. Polled every
        // 100 µs (an ACK clock), most segments fall due less than a timer tick
        // away and go out early; the average must still be the rate.
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let (rate, mss) = (875_000u64, 1400);
        let mut sent = 0u64;
        let mut early = 0u32;
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(100) * i;
            while p.delay(now, rate, mss, mss).is_none() {
                if p.tokens < mss as i64 {
                    early += 1;
                }
                p.on_sent(mss);
                sent += mss as u64;
            }
        }
        assert!(early > 100, "the case under test: {early} early sends");
        let cap = Pacer::capacity(rate, mss) as u64;
        // One second of the rate, plus the initial bucket.
        assert!(sent <= rate + cap, "{sent} bytes in 1 s at {rate} B/s");
        assert!(sent >= rate - 2 * mss as u64, "{sent} bytes in 1 s");
    }
}
