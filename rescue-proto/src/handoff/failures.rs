//! Limits against guessing (PROTOCOL.md 4.3 and section 5): failed REGISTERs and
//! CLAIMs are counted per key (a source address, an account) in fixed windows; a key
//! over its limit is refused before its request is looked at, until its window ends.
//! Sans-IO: time is an argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures counted per key in fixed windows, for at most `max_keys` keys.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    keys: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    /// At most `max_failures` per key per `window`, tracking at most `max_keys` keys.
    pub fn new(max_failures: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            max_failures,
            window,
            max_keys,
            keys: HashMap::new(),
        }
    }

    /// Whether `key` is over its limit at `now` (its requests are refused).
    pub fn is_blocked(&self, key: &K, now: Instant) -> bool {
        match self.keys.get(key) {
            Some((start, n)) => {
                now.saturating_duration_since(*start) < self.window && *n >= self.max_failures
            }
            None => false,
        }
    }

    /// Counts a failure of `key` at `now`. When `max_keys` keys are tracked, ended
    /// windows are forgotten first; if none has ended, the failure is not counted (a
    /// flood from many keys is bounded by the other limits: the per-account one, the
    /// connection pools).
    pub fn record(&mut self, key: K, now: Instant) {
        let window = self.window;
        if let Some((start, n)) = self.keys.get_mut(&key) {
            if now.saturating_duration_since(*start) >= window {
                (*start, *n) = (now, 1);
            } else {
                *n = n.saturating_add(1);
            }
            return;
        }
        if self.keys.len() >= self.max_keys {
            self.keys
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if self.keys.len() >= self.max_keys {
                return;
            }
        }
        self.keys.insert(key, (now, 1));
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_after_its_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let mut l = FailureLimiter::new(3, w, 10);
        for i in 0..3 {
            assert!(!l.is_blocked(&"a", t0), "failure {i}");
            l.record("a", t0);
        }
        assert!(l.is_blocked(&"a", t0 + Duration::from_secs(59)));
        assert!(!l.is_blocked(&"b", t0), "other keys are not");
        assert!(!l.is_blocked(&"a", t0 + w), "the window ended");
        l.record("a", t0 + w);
        assert!(!l.is_blocked(&"a", t0 + w), "a new window starts at one");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_ended_windows_first() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut l = FailureLimiter::new(1, w, 2);
        l.record(1, t0);
        l.record(2, t0);
        l.record(3, t0);
        assert_eq!(l.len(), 2, "full: not tracked");
        assert!(!l.is_blocked(&3, t0));
        l.record(3, t0 + w);
        assert_eq!(l.len(), 1, "ended windows forgotten");
        assert!(l.is_blocked(&3, t0 + w));
    }
}
