//! A per-source rate limit in front of password hashing (sans-IO: time is an argument).
//! Fixed windows per source address; the table of sources is bounded, and when it is
//! full of live entries new sources are refused (the limiter fails closed).
//!
//! This is per process, a first line only: the lockout itself is in the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Sources tracked at once: bounds the limiter's memory (~50 bytes an entry).
pub const MAX_TRACKED_SOURCES: usize = 100_000;

/// Counts attempts per source address per window.
#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    window: u64,
    table: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl RateLimiter {
    /// `per_window` attempts per `window` seconds for each source.
    pub fn new(per_window: u32, window: u64) -> Self {
        Self {
            per_window,
            window: window.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt by `ip` at `now`; `false` if it is over the limit.
    pub fn check(&self, ip: IpAddr, now: u64) -> bool {
        let win = now / self.window;
        let mut t = match self.table.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if t.len() >= MAX_TRACKED_SOURCES && !t.contains_key(&ip) {
            t.retain(|_, (w, _)| *w == win);
            if t.len() >= MAX_TRACKED_SOURCES {
                return false;
            }
        }
        let e = t.entry(ip).or_insert((win, 0));
        if e.0 != win {
            *e = (win, 0);
        }
        if e.1 >= self.per_window {
            return false;
        }
        e.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_limited_per_window_and_others_are_not() {
        let l = RateLimiter::new(3, 60);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| l.check(a, 1000)));
        assert!(!l.check(a, 1001));
        assert!(l.check(b, 1001));
        assert!(l.check(a, 1000 + 80), "next window");
    }
}
