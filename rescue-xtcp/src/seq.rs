//! Wrap-safe 32-bit sequence numbers (RFC 9293 §3.4, RFC 1982 serial arithmetic).
//!
//! A [`Seq`] never panics: addition wraps modulo 2^32 and comparisons use the
//! signed distance, so they are correct as long as the two numbers are less than
//! 2^31 apart, which every window in this crate guarantees (windows are capped
//! far below 2^31 by [`crate::config::MAX_WINDOW`]).

use std::cmp::Ordering;
use std::fmt;

/// A 32-bit TCP-style sequence number that wraps modulo 2^32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// `self + n`, wrapping. `n` is truncated to 32 bits (callers only add lengths
    /// bounded by a window, which is far below 2^31).
    #[inline]
    #[must_use]
    pub fn wrapping_add(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }

    /// The signed distance `self - other`, correct while the two are within 2^31.
    #[inline]
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self - earlier` as a length, or `None` if `earlier` is after `self`.
    #[inline]
    pub fn since(self, earlier: Seq) -> Option<usize> {
        let d = self.diff(earlier);
        usize::try_from(d).ok()
    }

    /// The later of two sequence numbers.
    #[inline]
    #[must_use]
    pub fn max(self, other: Seq) -> Seq {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    #[inline]
    #[must_use]
    pub fn min(self, other: Seq) -> Seq {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }

    /// `start <= self < end` in sequence space.
    #[inline]
    pub fn in_range(self, start: Seq, end: Seq) -> bool {
        self >= start && self < end
    }
}

impl PartialOrd for Seq {
    #[inline]
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compares_across_the_wrap() {
        let a = Seq(u32::MAX - 5);
        let b = a.wrapping_add(10);
        assert_eq!(b, Seq(4));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.since(a), Some(10));
        assert_eq!(a.since(b), None);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(Seq(u32::MAX).in_range(a, b));
        assert!(!b.in_range(a, b));
    }

    proptest! {
        #[test]
        fn add_then_since_round_trips(start: u32, n in 0usize..(1 << 30)) {
            let s = Seq(start);
            prop_assert_eq!(s.wrapping_add(n).since(s), Some(n));
            prop_assert!(s.wrapping_add(n) >= s);
            if n > 0 {
                prop_assert!(s.wrapping_add(n) > s);
                prop_assert_eq!(s.since(s.wrapping_add(n)), None);
            }
        }
    }
}
