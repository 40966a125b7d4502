//! Keepalive of one hop: PING after [`PING_INTERVAL`] of silence, dead after
//! [`IDLE_TIMEOUT`] of silence. Used by both ends of a hop.

use std::time::{Duration, Instant};

use crate::wire::limits::{IDLE_TIMEOUT, PING_INTERVAL};
use crate::wire::signal::Ping;

/// Tracks when the hop last carried a frame in, and when to ping.
#[derive(Debug, Clone)]
pub struct Keepalive {
    last_rx: Instant,
    next_ping: Instant,
    interval: Duration,
    idle: Duration,
    nonce: u64,
}

/// The hop has been silent for the idle timeout: close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hop idle since {0:?}")]
pub struct Idle(pub Instant);

impl Keepalive {
    /// A keepalive with the protocol's interval and idle timeout, starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self::with_timing(now, PING_INTERVAL, IDLE_TIMEOUT)
    }

    /// A keepalive with other timing (tests, or a direct path's faster heartbeat).
    pub fn with_timing(now: Instant, interval: Duration, idle: Duration) -> Self {
        Self {
            last_rx: now,
            next_ping: now + interval,
            interval,
            idle,
            nonce: 0,
        }
    }

    /// Any frame arrived: the hop is alive.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_rx = now;
        self.next_ping = now + self.interval;
    }

    /// When [`Keepalive::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_ping.min(self.last_rx + self.idle)
    }

    /// A PING to send if one is due, or [`Idle`] if the hop is dead.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<Ping>, Idle> {
        if now >= self.last_rx + self.idle {
            return Err(Idle(self.last_rx));
        }
        if now < self.next_ping {
            return Ok(None);
        }
        self.next_ping = now + self.interval;
        self.nonce = self.nonce.wrapping_add(1);
        Ok(Some(Ping { nonce: self.nonce }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_when_silent_and_declares_idle_after_the_timeout() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0);
        assert_eq!(k.poll_timeout(), t0 + PING_INTERVAL);
        assert_eq!(k.handle_timeout(t0 + Duration::from_secs(1)), Ok(None));
        assert_eq!(
            k.handle_timeout(t0 + PING_INTERVAL),
            Ok(Some(Ping { nonce: 1 }))
        );
        k.on_receive(t0 + Duration::from_secs(20));
        assert_eq!(k.poll_timeout(), t0 + Duration::from_secs(35));
        assert_eq!(
            k.handle_timeout(t0 + Duration::from_secs(65)),
            Err(Idle(t0 + Duration::from_secs(20)))
        );
    }
}
