//! Datagram packetization-layer path MTU discovery (DPLPMTUD, RFC 8899) with
//! data-carrying probes.
//!
//! The connection starts at the configured segment size (the base PLPMTU, 1200
//! bytes of payload by default: safe on any path that carries 1280-byte IPv6
//! packets) and probes upward with a segment of new data of the probe size (RFC
//! 8899 §4.1 allows probes to carry application data; the wire format needs no
//! marker, so peers without discovery interoperate). A probe confirmed by an ACK
//! or SACK raises the segment size; a probe declared lost costs no congestion
//! response and its bytes are resent in segments of the confirmed size.
//! [`MAX_PROBES`] losses at one size lower the search ceiling below it (binary
//! search, down to [`SEARCH_GRANULARITY`]). Black holes (§4.3): when
//! [`BLACK_HOLE_RTOS`] consecutive retransmission timeouts fire while segments are
//! larger than the base, the path may have shrunk: the size falls back to the base
//! and the search starts again. A completed search is repeated after
//! [`RAISE_INTERVAL`] (§5.1.1 PMTU_RAISE_TIMER).

use std::time::{Duration, Instant};

use crate::seq::Seq;

/// Losses of a probe of one size before that size is given up (RFC 8899 §5.1.2
/// MAX_PROBES: 3).
pub(crate) const MAX_PROBES: u32 = 3;
/// The search stops when the untested range is narrower than this (bytes).
pub(crate) const SEARCH_GRANULARITY: usize = 32;
/// Consecutive RTOs with segments above the base size that mean a black hole.
pub(crate) const BLACK_HOLE_RTOS: u32 = 2;
/// How long a completed search holds before probing again (RFC 8899 §5.1.1
/// PMTU_RAISE_TIMER: 600 s).
pub(crate) const RAISE_INTERVAL: Duration = Duration::from_secs(600);

/// One outstanding probe: where its data starts, and its size.
#[derive(Debug, Clone, Copy)]
struct Probe {
    start: Seq,
    size: usize,
}

/// What an ACK or a loss did to the outstanding probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeEvent {
    /// Confirmed: segments of this payload size reach the peer.
    Confirmed(usize),
    /// Declared lost.
    Lost,
}

/// The discovery state of one connection (payload sizes, not datagram sizes).
#[derive(Debug, Clone)]
pub(crate) struct Pmtud {
    base: usize,
    /// Largest size known to work.
    current: usize,
    /// Largest size not yet ruled out.
    ceiling: usize,
    /// The ceiling a new search starts from.
    max_ceiling: usize,
    losses_at_probe: u32,
    /// The size under test, kept until confirmed or lost [`MAX_PROBES`] times.
    trying: Option<usize>,
    /// The ceiling failed once: bisect instead of trying it.
    bisecting: bool,
    probe: Option<Probe>,
    /// The search is done until this time.
    done_until: Option<Instant>,
    consecutive_rtos: u32,
}

impl Pmtud {
    /// Discovery from `base` up to `ceiling` (equal: disabled).
    pub(crate) fn new(base: usize, ceiling: usize) -> Self {
        Pmtud {
            base,
            current: base,
            ceiling: ceiling.max(base),
            max_ceiling: ceiling.max(base),
            losses_at_probe: 0,
            trying: None,
            bisecting: false,
            probe: None,
            done_until: None,
            consecutive_rtos: 0,
        }
    }

    /// The confirmed segment size.
    pub(crate) fn current(&self) -> usize {
        self.current
    }

    /// Runs the raise timer (§5.1.1): a search completes into a wait, after which
    /// it starts again from the confirmed size.
    pub(crate) fn tick(&mut self, now: Instant) {
        match self.done_until {
            Some(until) if now >= until => {
                self.done_until = None;
                self.ceiling = self.max_ceiling;
                self.bisecting = false;
            }
            Some(_) => {}
            None => {
                let narrow = self.ceiling < self.current + SEARCH_GRANULARITY;
                if self.probe.is_none() && self.trying.is_none() && narrow {
                    self.done_until = Some(now + RAISE_INTERVAL);
                }
            }
        }
    }

    /// The size of the next probe, if one should be sent now: the ceiling first
    /// (the common case: the path takes the largest size), then bisection.
    pub(crate) fn next_probe(&self) -> Option<usize> {
        if self.probe.is_some() || self.done_until.is_some() {
            return None;
        }
        if let Some(size) = self.trying {
            return Some(size);
        }
        if self.ceiling < self.current + SEARCH_GRANULARITY {
            return None;
        }
        Some(if self.bisecting {
            self.current + (self.ceiling - self.current).div_ceil(2)
        } else {
            self.ceiling
        })
    }

    /// A probe of `size` bytes went out, its data starting at `start`.
    pub(crate) fn on_probe_sent(&mut self, start: Seq, size: usize) {
        self.probe = Some(Probe { start, size });
        self.trying = Some(size);
    }

    /// The outstanding probe's first sequence number.
    pub(crate) fn probe_start(&self) -> Option<Seq> {
        self.probe.map(|p| p.start)
    }

    /// The probe's range was acknowledged (cumulatively or selectively).
    pub(crate) fn on_delivered(&mut self, start: Seq, end: Seq) -> Option<ProbeEvent> {
        let p = self.probe?;
        if start <= p.start && p.start < end {
            self.probe = None;
            self.trying = None;
            self.losses_at_probe = 0;
            self.current = self.current.max(p.size);
            self.consecutive_rtos = 0;
            return Some(ProbeEvent::Confirmed(self.current));
        }
        None
    }

    /// New data was acknowledged: the path works at the current size.
    pub(crate) fn on_progress(&mut self) {
        self.consecutive_rtos = 0;
    }

    /// The probe was declared lost.
    pub(crate) fn on_probe_lost(&mut self) -> Option<ProbeEvent> {
        let p = self.probe.take()?;
        self.losses_at_probe += 1;
        if self.losses_at_probe >= MAX_PROBES {
            self.losses_at_probe = 0;
            self.trying = None;
            self.bisecting = true;
            self.ceiling = p.size.saturating_sub(1).max(self.current);
        }
        Some(ProbeEvent::Lost)
    }

    /// A retransmission timeout fired. Returns the size to fall back to when this
    /// looks like a black hole (§4.3).
    pub(crate) fn on_rto(&mut self) -> Option<usize> {
        if self.probe.is_some() {
            self.on_probe_lost();
        }
        self.consecutive_rtos += 1;
        if self.current > self.base && self.consecutive_rtos >= BLACK_HOLE_RTOS {
            self.consecutive_rtos = 0;
            // Search again below the size that stopped working.
            self.ceiling = self.current.saturating_sub(1).max(self.base);
            self.current = self.base;
            self.losses_at_probe = 0;
            self.trying = None;
            self.bisecting = false;
            self.done_until = None;
            return Some(self.base);
        }
        None
    }
}

impl super::Connection {
    /// After an ACK or a loss detection: settle the outstanding probe. Returns
    /// whether the probe was just declared lost (so the loss is not taken as
    /// congestion).
    pub(super) fn pmtud_feedback(&mut self) -> bool {
        let Some(start) = self.pmtud.probe_start() else {
            return false;
        };
        match self.board.state_at(start) {
            // Acknowledged and gone, or SACKed: the size works.
            None | Some(super::recovery::SegState::Sacked) => {
                let end = self.snd.una.max(start.wrapping_add(1));
                if let Some(ProbeEvent::Confirmed(_)) = self.pmtud.on_delivered(start, end) {
                    self.snd.mss = self.pmtud.current();
                    self.stats.segment_size = self.snd.mss;
                }
                false
            }
            Some(super::recovery::SegState::Lost) => {
                self.pmtud.on_probe_lost();
                self.stats.mtu_probes_lost += 1;
                self.board.split_lost(self.snd.mss);
                true
            }
            Some(super::recovery::SegState::InFlight) => false,
        }
    }

    /// On a retransmission timeout: black-hole detection (RFC 8899 §4.3).
    pub(super) fn pmtud_on_rto(&mut self) {
        if self.pmtud.probe_start().is_some() {
            self.stats.mtu_probes_lost += 1;
        }
        if let Some(base) = self.pmtud.on_rto() {
            self.snd.mss = base;
            self.stats.segment_size = base;
            self.stats.mtu_fallbacks += 1;
        }
        self.board.split_lost(self.snd.mss);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_the_ceiling_then_bisects_after_max_probes_losses() {
        let now = Instant::now();
        let mut p = Pmtud::new(1200, 1400);
        assert_eq!(
            {
                p.tick(now);
                p.next_probe()
            },
            Some(1400)
        );
        for _ in 0..MAX_PROBES {
            assert_eq!(
                {
                    p.tick(now);
                    p.next_probe()
                },
                Some(1400),
                "the same size until MAX_PROBES"
            );
            p.on_probe_sent(Seq(0), 1400);
            assert_eq!(
                {
                    p.tick(now);
                    p.next_probe()
                },
                None,
                "one probe at a time"
            );
            assert_eq!(p.on_probe_lost(), Some(ProbeEvent::Lost));
        }
        // 1400 ruled out: bisect between 1200 and 1399.
        let next = {
            p.tick(now);
            p.next_probe()
        }
        .unwrap();
        assert_eq!(next, 1300);
        p.on_probe_sent(Seq(5000), next);
        assert_eq!(
            p.on_delivered(Seq(5000), Seq(6300)),
            Some(ProbeEvent::Confirmed(1300))
        );
        assert_eq!(p.current(), 1300);
        // Then 1350, 1375; then the range is narrow and the search completes.
        assert_eq!(
            {
                p.tick(now);
                p.next_probe()
            },
            Some(1350)
        );
        p.on_probe_sent(Seq(9000), 1350);
        p.on_delivered(Seq(9000), Seq(10350));
        assert_eq!(
            {
                p.tick(now);
                p.next_probe()
            },
            Some(1375)
        );
        p.on_probe_sent(Seq(20000), 1375);
        p.on_delivered(Seq(20000), Seq(21375));
        assert_eq!(
            {
                p.tick(now);
                p.next_probe()
            },
            None
        );
        assert_eq!(p.current(), 1375);
    }

    #[test]
    fn two_rtos_above_the_base_fall_back_and_search_below() {
        let now = Instant::now();
        let mut p = Pmtud::new(1200, 1400);
        p.on_probe_sent(Seq(0), 1400);
        p.on_delivered(Seq(0), Seq(1400));
        assert_eq!(p.current(), 1400);
        assert_eq!(p.on_rto(), None);
        assert_eq!(p.on_rto(), Some(1200));
        assert_eq!(p.current(), 1200);
        assert_eq!(
            {
                p.tick(now);
                p.next_probe()
            },
            Some(1399)
        );
        // A completed search waits for the raise timer.
        let mut q = Pmtud::new(1200, 1210);
        assert_eq!(
            {
                q.tick(now);
                q.next_probe()
            },
            None
        );
        assert_eq!(
            {
                q.tick(now + RAISE_INTERVAL);
                q.next_probe()
            },
            None
        );
    }
}
