//! The per-direction rate limit of the relay.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

use super::RELAY_BUFFER;

/// A token bucket limiting the bytes read per second.
pub(super) struct Throttle {
    pub(super) rate: u64,
    pub(super) allowance: i64,
    pub(super) last: Instant,
    pub(super) sleep: Pin<Box<Sleep>>,
}

impl Throttle {
    /// How many bytes may be read now; pending while the bucket is empty.
    pub(super) fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        loop {
            let now = Instant::now();
            let nanos = now.saturating_duration_since(self.last).as_nanos();
            let earned = nanos.saturating_mul(u128::from(self.rate)) / 1_000_000_000;
            let burst = self.rate.max(RELAY_BUFFER as u64);
            let total = (self.allowance as i128).saturating_add(earned as i128);
            self.allowance = total.min(burst as i128) as i64;
            self.last = now;
            if self.allowance > 0 {
                return Poll::Ready(self.allowance as usize);
            }
            let deficit = self.allowance.unsigned_abs().saturating_add(1);
            let wait = u128::from(deficit) * 1_000_000_000 / u128::from(self.rate);
            let wait = std::time::Duration::from_nanos(wait.min(u64::MAX as u128) as u64);
            self.sleep.as_mut().reset(now + wait);
            ready!(self.sleep.as_mut().poll(cx));
        }
    }
}
