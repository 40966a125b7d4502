//! The retransmission scoreboard: SACK (RFC 2018 / RFC 6675) and RACK (RFC 8985).
//!
//! Every transmitted segment (SYN, data, FIN) has one entry, in sequence order,
//! from SND.UNA to SND.NXT. Entries keep their boundaries across retransmissions.
//! `pipe` (RFC 6675 §4) is the bytes of entries in flight: neither SACKed nor
//! marked lost and awaiting retransmission. Peer-supplied SACK blocks are checked
//! against `[SND.UNA, SND.NXT]` before use and are otherwise ignored.
//!
//! Each entry also carries the delivery-rate state at its (latest) transmission
//! ([`TxState`], draft-ietf-ccwg-bbr §4.5.2): how much was delivered and lost by
//! then, when, and how much was in flight. The scoreboard turns deliveries into one
//! [`RateSample`] per ACK. This costs a fixed few words per entry, and entries are
//! bounded by the send buffer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::cc::RateSample;
use crate::seq::Seq;

/// The state of one transmitted segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegState {
    /// Sent (or retransmitted) and not yet known delivered or lost.
    InFlight,
    /// Selectively acknowledged.
    Sacked,
    /// Declared lost; waits for retransmission.
    Lost,
}

/// The connection's delivery state when a segment was (re)transmitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxState {
    /// C.delivered at the send.
    pub(crate) delivered: u64,
    /// C.delivered_time at the send.
    pub(crate) delivered_time: Instant,
    /// C.first_sent_time at the send.
    pub(crate) first_sent_time: Instant,
    /// C.lost at the send.
    pub(crate) lost: u64,
    /// Bytes in flight at the send, this segment included.
    pub(crate) tx_in_flight: usize,
    /// The sender was application-limited.
    pub(crate) app_limited: bool,
}

impl TxState {
    /// A placeholder for entries that are stamped when actually sent.
    pub(crate) fn unsent(now: Instant) -> Self {
        TxState {
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            lost: 0,
            tx_in_flight: 0,
            app_limited: false,
        }
    }
}

/// Connection-wide delivery-rate state (C.* of the draft) and the sample being
/// built from the current ACK.
#[derive(Debug, Clone, Copy, Default)]
struct RateState {
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    lost: u64,
    /// C.app_limited: the delivered count after which the sender is no longer
    /// application-limited (0: not limited).
    app_limited: u64,
    /// `lost` when the previous sample was taken.
    lost_at_last_sample: u64,
    /// The newest delivered segment of the current ACK: its send state, its send
    /// time, and whether it was retransmitted.
    newest: Option<(TxState, Instant, bool)>,
    newly_acked: u64,
}

/// One transmitted segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) start: Seq,
    pub(crate) end: Seq,
    pub(crate) time: Instant,
    pub(crate) state: SegState,
    pub(crate) retransmitted: bool,
    pub(crate) syn: bool,
    pub(crate) fin: bool,
    /// Delivery-rate state at the latest transmission.
    pub(crate) tx: TxState,
}

impl Sent {
    pub(crate) fn len(&self) -> usize {
        self.end.since(self.start).unwrap_or(0)
    }
}

/// What an ACK did to the scoreboard.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AckOutcome {
    /// Bytes removed from the front (cumulatively acknowledged).
    pub(crate) acked: usize,
    /// Whether the ACK covered a SYN or FIN.
    pub(crate) acked_syn: bool,
    /// Whether our FIN is acknowledged.
    pub(crate) acked_fin: bool,
    /// The latest (re)transmission time among fully acknowledged entries.
    pub(crate) newest_sent: Option<Instant>,
    /// Whether any fully acknowledged entry had been retransmitted.
    pub(crate) any_retransmitted: bool,
}

/// The scoreboard and RACK state.
#[derive(Debug)]
pub(crate) struct Scoreboard {
    segs: VecDeque<Sent>,
    pipe: usize,
    sacked_bytes: usize,
    lost_count: usize,
    /// RACK.xmit_ts / RACK.end_seq: the most recently sent segment delivered.
    rack_time: Option<Instant>,
    rack_end: Seq,
    /// RACK.fack: highest delivered end.
    fack: Seq,
    /// Whether the peer was seen to deliver out of order (RFC 8985 §6.2 step 1).
    pub(crate) reordering_seen: bool,
    rate: RateState,
}

impl Scoreboard {
    pub(crate) fn new() -> Self {
        Scoreboard {
            segs: VecDeque::new(),
            pipe: 0,
            sacked_bytes: 0,
            lost_count: 0,
            rack_time: None,
            rack_end: Seq(0),
            fack: Seq(0),
            reordering_seen: false,
            rate: RateState::default(),
        }
    }

    /// The delivery state to stamp on a segment sent at `now` (draft-ietf-ccwg-bbr
    /// §4.5.2.3 "upon sending"): with nothing in flight, the sample clocks restart.
    fn stamp(&mut self, now: Instant, len: usize) -> TxState {
        if self.pipe == 0 {
            self.rate.first_sent_time = Some(now);
            self.rate.delivered_time = Some(now);
        }
        TxState {
            delivered: self.rate.delivered,
            delivered_time: self.rate.delivered_time.unwrap_or(now),
            first_sent_time: self.rate.first_sent_time.unwrap_or(now),
            lost: self.rate.lost,
            tx_in_flight: self.pipe + len,
            app_limited: self.rate.app_limited != 0,
        }
    }

    /// The sender has nothing to send although the window has room: samples of
    /// what is in flight now are application-limited (§4.5.2.3).
    pub(crate) fn mark_app_limited(&mut self) {
        let mark = self.rate.delivered + self.pipe as u64;
        self.rate.app_limited = mark.max(1);
    }

    /// A segment counts as delivered (cumulatively or selectively, once).
    fn on_delivered(&mut self, s: &Sent, bytes: usize, now: Instant) {
        let r = &mut self.rate;
        r.delivered += bytes as u64;
        r.delivered_time = Some(now);
        r.newly_acked += bytes as u64;
        let newer = r.newest.is_none_or(|(tx, time, _)| {
            s.tx.delivered > tx.delivered || (s.tx.delivered == tx.delivered && s.time >= time)
        });
        if newer {
            r.newest = Some((s.tx, s.time, s.retransmitted));
            r.first_sent_time = Some(s.time);
        }
    }

    /// The rate sample of the ACK just processed, if it delivered anything.
    /// `min_rtt` (zero if unknown) rejects intervals too short to be real (§4.5.2.3).
    pub(crate) fn take_sample(&mut self, now: Instant, min_rtt: Duration) -> Option<RateSample> {
        let r = &mut self.rate;
        let newly_lost = r.lost - r.lost_at_last_sample;
        r.lost_at_last_sample = r.lost;
        let newly_acked = std::mem::take(&mut r.newly_acked);
        let (tx, sent, retransmitted) = r.newest.take()?;
        if r.app_limited != 0 && r.delivered > r.app_limited {
            r.app_limited = 0;
        }
        let delivered = r.delivered - tx.delivered;
        let send_elapsed = sent.saturating_duration_since(tx.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(tx.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        let delivery_rate = (!interval.is_zero() && interval >= min_rtt).then(|| {
            let rate = u128::from(delivered) * 1_000_000_000 / interval.as_nanos().max(1);
            u64::try_from(rate).unwrap_or(u64::MAX)
        });
        Some(RateSample {
            delivered_total: r.delivered,
            prior_delivered: tx.delivered,
            delivered,
            interval,
            delivery_rate,
            newly_acked,
            newly_lost,
            lost: r.lost - tx.lost,
            tx_in_flight: tx.tx_in_flight,
            inflight: self.pipe,
            // §4.5.2.2 rs.rtt: the newest delivered segment's round trip, unless it
            // was retransmitted (Karn: the delivery may be of either transmission).
            rtt: (!retransmitted).then(|| {
                now.saturating_duration_since(sent)
                    .max(Duration::from_micros(1))
            }),
            app_limited: tx.app_limited,
            cwnd_limited: false,
        })
    }

    /// Bytes in flight (RFC 6675 pipe).
    pub(crate) fn pipe(&self) -> usize {
        self.pipe
    }

    /// Whether any entry is outstanding.
    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Whether an entry waits for retransmission.
    pub(crate) fn has_lost(&self) -> bool {
        self.lost_count > 0
    }

    /// Whether any SACKed data is held above SND.UNA.
    pub(crate) fn has_sacked(&self) -> bool {
        self.sacked_bytes > 0
    }

    /// Records a new transmission at the top of the sequence space.
    pub(crate) fn on_sent(&mut self, mut s: Sent) {
        s.tx = self.stamp(s.time, s.len());
        self.pipe += s.len();
        self.segs.push_back(s);
    }

    /// Records an entry that still has to be sent (our SYN before its first
    /// transmission): it starts as lost, outside `pipe`.
    pub(crate) fn push_unsent(&mut self, mut s: Sent) {
        s.state = SegState::Lost;
        self.lost_count += 1;
        self.segs.push_back(s);
    }

    /// The first entry marked lost, with its index.
    pub(crate) fn first_lost(&self) -> Option<(usize, Sent)> {
        if self.lost_count == 0 {
            return None;
        }
        self.segs
            .iter()
            .position(|s| s.state == SegState::Lost)
            .map(|i| (i, self.segs[i]))
    }

    /// Marks entry `i` as retransmitted at `now`.
    pub(crate) fn on_retransmitted(&mut self, i: usize, now: Instant) {
        let Some(len) = self.segs.get(i).map(Sent::len) else {
            return;
        };
        let tx = self.stamp(now, len);
        if let Some(s) = self.segs.get_mut(i) {
            match s.state {
                SegState::Lost => {
                    self.lost_count -= 1;
                    self.pipe += s.len();
                }
                SegState::InFlight => {}
                SegState::Sacked => return,
            }
            s.state = SegState::InFlight;
            s.time = now;
            s.retransmitted = true;
            s.tx = tx;
        }
    }

    /// Index of the last entry, for a tail-loss probe retransmission.
    pub(crate) fn last_index(&self) -> Option<usize> {
        self.segs.len().checked_sub(1)
    }

    /// Entry `i`.
    pub(crate) fn get(&self, i: usize) -> Option<Sent> {
        self.segs.get(i).copied()
    }

    fn set_state(&mut self, i: usize, state: SegState) {
        let Some(s) = self.segs.get_mut(i) else {
            return;
        };
        let len = s.len();
        match s.state {
            SegState::InFlight => self.pipe -= len,
            SegState::Sacked => self.sacked_bytes -= len,
            SegState::Lost => self.lost_count -= 1,
        }
        if state == SegState::Lost && s.state == SegState::InFlight {
            self.rate.lost += len as u64;
        }
        match state {
            SegState::InFlight => self.pipe += len,
            SegState::Sacked => self.sacked_bytes += len,
            SegState::Lost => self.lost_count += 1,
        }
        s.state = state;
    }

    fn rack_update(&mut self, s: &Sent, now: Instant, min_rtt: Duration) {
        // RFC 8985 §6.2 step 2: ignore a delivery that may be of an earlier
        // transmission of a retransmitted segment.
        if s.retransmitted && now.saturating_duration_since(s.time) < min_rtt {
            return;
        }
        if self.rack_time.is_none_or(|t| s.time >= t) {
            self.rack_time = Some(s.time);
            self.rack_end = s.end;
        }
        if s.end < self.fack && !s.retransmitted {
            self.reordering_seen = true;
        }
        self.fack = self.fack.max(s.end);
    }

    /// Applies a cumulative ACK `ack` (already validated against SND.UNA..SND.NXT).
    pub(crate) fn on_ack(&mut self, ack: Seq, now: Instant, min_rtt: Duration) -> AckOutcome {
        let mut out = AckOutcome::default();
        while let Some(front) = self.segs.front().copied() {
            if front.end <= ack {
                if front.state != SegState::Sacked && !front.syn {
                    self.on_delivered(&front, front.len(), now);
                }
                self.set_state(0, SegState::Sacked); // leaves counters consistent
                self.sacked_bytes -= front.len();
                self.segs.pop_front();
                out.acked += front.len();
                out.acked_syn |= front.syn;
                out.acked_fin |= front.fin;
                out.any_retransmitted |= front.retransmitted;
                out.newest_sent = out.newest_sent.max(Some(front.time));
                self.rack_update(&front, now, min_rtt);
            } else if front.start < ack {
                // A partial ACK inside a segment: shrink the entry.
                let cut = ack.since(front.start).unwrap_or(0);
                if front.state == SegState::InFlight {
                    self.pipe -= cut;
                } else if front.state == SegState::Sacked {
                    self.sacked_bytes -= cut;
                }
                if front.state != SegState::Sacked {
                    self.rate.delivered += cut as u64;
                    self.rate.newly_acked += cut as u64;
                }
                if let Some(f) = self.segs.front_mut() {
                    f.start = ack;
                    f.syn = false;
                }
                out.acked += cut;
                break;
            } else {
                break;
            }
        }
        out
    }

    /// Applies one SACK block; ignored unless `una <= start < end <= nxt`.
    pub(crate) fn on_sack(
        &mut self,
        (start, end): (Seq, Seq),
        una: Seq,
        nxt: Seq,
        now: Instant,
        min_rtt: Duration,
    ) -> usize {
        if !(una <= start && start < end && end <= nxt) {
            return 0;
        }
        let mut i = self.segs.partition_point(|s| s.start < start);
        let mut newly = 0;
        while let Some(s) = self.segs.get(i).copied() {
            if s.end > end {
                break;
            }
            if s.state != SegState::Sacked {
                self.set_state(i, SegState::Sacked);
                self.on_delivered(&s, s.len(), now);
                newly += s.len();
                self.rack_update(&s, now, min_rtt);
            }
            i += 1;
        }
        newly
    }

    /// RACK loss detection (RFC 8985 §6.2 step 5). Marks lost every in-flight
    /// segment sent before the most recently delivered one and older than
    /// `rtt + reo_wnd`; returns the number marked and the earliest time a
    /// not-yet-lost candidate would expire (the reorder timer).
    pub(crate) fn detect_lost(
        &mut self,
        now: Instant,
        rtt: Duration,
        reo_wnd: Duration,
    ) -> (usize, Option<Instant>) {
        let Some(rack_time) = self.rack_time else {
            return (0, None);
        };
        let mut marked = 0;
        let mut timer: Option<Instant> = None;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.start >= self.rack_end {
                break;
            }
            if s.state != SegState::InFlight || s.time > rack_time {
                continue;
            }
            let deadline = s.time + rtt + reo_wnd;
            if deadline <= now {
                self.set_state(i, SegState::Lost);
                marked += 1;
            } else {
                timer = Some(timer.map_or(deadline, |t| t.min(deadline)));
            }
        }
        (marked, timer)
    }

    /// RTO: every in-flight entry is lost (RFC 6298 §5.4 retransmits from SND.UNA;
    /// SACKed entries stay SACKed, RFC 6675 §5.1).
    pub(crate) fn mark_all_lost(&mut self) {
        for i in 0..self.segs.len() {
            if self.segs[i].state == SegState::InFlight {
                self.set_state(i, SegState::Lost);
            }
        }
    }

    /// Marks entry `i` lost (used to resend a SYN with a new flag set).
    pub(crate) fn mark_lost(&mut self, i: usize) {
        if self
            .segs
            .get(i)
            .is_some_and(|s| s.state == SegState::InFlight)
        {
            self.set_state(i, SegState::Lost);
        }
    }

    /// The state of the entry starting at `start`, if it is still outstanding.
    pub(crate) fn state_at(&self, start: Seq) -> Option<SegState> {
        let i = self.segs.partition_point(|s| s.start < start);
        self.segs
            .get(i)
            .filter(|s| s.start == start)
            .map(|s| s.state)
    }

    /// Splits every entry waiting for retransmission whose payload exceeds `mss`
    /// into pieces of at most `mss` (a lost path-MTU probe, or segments sent before
    /// a black-hole fallback), so they are resent at a size the path takes. Each
    /// piece keeps the entry's send state; a FIN stays on the last piece.
    pub(crate) fn split_lost(&mut self, mss: usize) {
        let mss = mss.max(1);
        let oversize =
            |s: &Sent| s.state == SegState::Lost && !s.syn && s.len() - usize::from(s.fin) > mss;
        if !self.segs.iter().any(oversize) {
            return;
        }
        let old = std::mem::take(&mut self.segs);
        for s in old {
            if !oversize(&s) {
                self.segs.push_back(s);
                continue;
            }
            let data_end = s.end.wrapping_add(0);
            let data_end = if s.fin {
                Seq(data_end.0.wrapping_sub(1))
            } else {
                data_end
            };
            let mut at = s.start;
            while at < data_end {
                let len = data_end.since(at).unwrap_or(0).min(mss);
                let end = at.wrapping_add(len);
                let last = end == data_end;
                let piece = Sent {
                    start: at,
                    end: if last { s.end } else { end },
                    fin: last && s.fin,
                    ..s
                };
                if at != s.start {
                    self.lost_count += 1;
                }
                self.segs.push_back(piece);
                at = end;
            }
        }
    }

    /// The send time of the newest transmission in flight, for the TLP timer.
    pub(crate) fn last_send_time(&self) -> Option<Instant> {
        self.segs
            .iter()
            .rev()
            .take(8)
            .filter(|s| s.state == SegState::InFlight)
            .map(|s| s.time)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u32, len: u32, t: Instant) -> Sent {
        Sent {
            start: Seq(start),
            end: Seq(start.wrapping_add(len)),
            time: t,
            state: SegState::InFlight,
            retransmitted: false,
            syn: false,
            fin: false,
            tx: TxState::unsent(t),
        }
    }

    fn board(t: Instant) -> Scoreboard {
        let mut b = Scoreboard::new();
        for i in 0..5u32 {
            // Sequence numbers straddle the 2^32 wrap.
            b.on_sent(seg(
                (u32::MAX - 199).wrapping_add(i * 100),
                100,
                t + Duration::from_millis(u64::from(i)),
            ));
        }
        b
    }

    #[test]
    fn cumulative_ack_removes_whole_and_partial_segments() {
        let t = Instant::now();
        let mut b = board(t);
        assert_eq!(b.pipe(), 500);
        let out = b.on_ack(Seq(u32::MAX - 199).wrapping_add(150), t, Duration::ZERO);
        assert_eq!(out.acked, 150);
        assert_eq!(b.pipe(), 350);
        let out = b.on_ack(Seq(u32::MAX - 199).wrapping_add(500), t, Duration::ZERO);
        assert_eq!(out.acked, 350);
        assert!(b.is_empty());
        assert_eq!(b.pipe(), 0);
    }

    #[test]
    fn sack_then_rack_marks_the_hole_lost_after_the_reorder_window() {
        let t = Instant::now();
        let mut b = board(t);
        let una = Seq(u32::MAX - 199);
        let nxt = una.wrapping_add(500);
        let rtt = Duration::from_millis(10);
        // RFC 2018 case: segments 2..5 SACKed, segment 1 missing.
        let n = b.on_sack((una.wrapping_add(100), nxt), una, nxt, t + rtt, rtt);
        assert_eq!(n, 400);
        assert_eq!(b.pipe(), 100);
        let reo = Duration::from_millis(2);
        let (lost, timer) = b.detect_lost(t + rtt, rtt, reo);
        assert_eq!(lost, 0);
        assert_eq!(timer, Some(t + rtt + reo));
        let (lost, _) = b.detect_lost(t + rtt + reo, rtt, reo);
        assert_eq!(lost, 1);
        assert_eq!(b.pipe(), 0);
        assert_eq!(b.first_lost().map(|(i, s)| (i, s.start)), Some((0, una)));
        b.on_retransmitted(0, t + rtt + reo);
        assert_eq!(b.pipe(), 100);
        assert!(!b.has_lost());
    }

    #[test]
    fn forged_sack_blocks_are_ignored() {
        let t = Instant::now();
        let mut b = board(t);
        let una = Seq(u32::MAX - 199);
        let nxt = una.wrapping_add(500);
        for block in [
            (una.wrapping_add(100), nxt.wrapping_add(1)),
            (una.wrapping_add(300), una.wrapping_add(200)),
            (Seq(una.0.wrapping_sub(1)), una.wrapping_add(100)),
            (Seq(12345678), Seq(12345679)),
        ] {
            assert_eq!(b.on_sack(block, una, nxt, t, Duration::ZERO), 0);
        }
        assert_eq!(b.pipe(), 500);
    }

    #[test]
    fn rto_marks_in_flight_lost_but_keeps_sacked() {
        let t = Instant::now();
        let mut b = board(t);
        let una = Seq(u32::MAX - 199);
        b.on_sack(
            (una.wrapping_add(200), una.wrapping_add(300)),
            una,
            una.wrapping_add(500),
            t,
            Duration::ZERO,
        );
        b.mark_all_lost();
        assert_eq!(b.pipe(), 0);
        assert_eq!(b.lost_count, 4);
        assert!(b.has_sacked());
    }
}
