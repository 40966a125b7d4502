//! A token-bucket pacer: 1.25 × cwnd per smoothed RTT (quinn's `pacing.rs`, the
//! QUIC recovery RFC 9002 §7.7 rate), with bursts sized for a userspace timer.

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
/// nanoseconds and this capped throughput near 300 MB/s).
const MIN_PACING_DELAY: Duration = Duration::from_millis(1);

/// The pacer of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    tokens: usize,
    last: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Pacer {
            tokens: MIN_BURST_SEGMENTS * 1500,
            last: None,
        }
    }

    /// The loss-based controllers' rate, 1.25 × `cwnd` per `srtt`, in bytes per second.
    pub(crate) fn cwnd_rate(cwnd: usize, srtt: Duration) -> u64 {
        let nanos = srtt.as_nanos().max(1);
        let rate = cwnd as u128 * RATE_NUM * NANOS_PER_SEC / (nanos * RATE_DEN);
        u64::try_from(rate).unwrap_or(u64::MAX)
    }

    fn capacity(rate: u64, mss: usize) -> usize {
        let burst = u128::from(rate) * BURST_INTERVAL.as_nanos() / NANOS_PER_SEC;
        let burst = usize::try_from(burst).unwrap_or(usize::MAX);
        burst.clamp(MIN_BURST_SEGMENTS * mss, MAX_BURST_SEGMENTS * mss)
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
        let rate_num = u128::from(rate); // bytes per NANOS_PER_SEC nanoseconds
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let new = elapsed * rate_num / NANOS_PER_SEC;
            self.tokens = (self.tokens as u128 + new).min(cap as u128) as usize;
        } else {
            self.tokens = cap;
        }
        self.last = Some(now);
        self.tokens = self.tokens.min(cap);
        if self.tokens >= bytes.min(cap) || rate_num == 0 {
            return None;
        }
        let missing = (bytes.min(cap) - self.tokens) as u128;
        let wait = (missing * NANOS_PER_SEC).div_ceil(rate_num);
        let wait = Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX));
        if wait < MIN_PACING_DELAY {
            return None;
        }
        Some(now + wait)
    }

    /// Takes tokens for a sent datagram.
    pub(crate) fn on_sent(&mut self, bytes: usize) {
        self.tokens = self.tokens.saturating_sub(bytes);
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
}
