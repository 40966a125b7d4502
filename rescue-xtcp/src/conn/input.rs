//! Segment arrival (RFC 9293 §3.10.7), split by state, with the RFC 5961 checks.
//!
//! Every check runs on a parsed, checksum-verified segment; every sequence and
//! acknowledgement number is compared wrap-safely against our own state before it
//! is used, so a forged or stale segment is dropped (and counted) or answered with
//! a rate-limited challenge ACK, and never moves the connection.

use std::time::{Duration, Instant};

use super::recovery::AckOutcome;
use super::{CloseReason, Connection, EventSet, State, MAX_RTT_SAMPLE};

/// Rounding slack when comparing a timestamp echo with a send time (the
/// timestamp clock ticks in microseconds).
const TS_SLACK: Duration = Duration::from_millis(1);
/// RTT samples per round before HyStart++ may act (RFC 9406 N_RTT_SAMPLE).
const HYSTART_MIN_SAMPLES: u32 = 8;
/// Smallest RTT rise that ends slow start (RFC 9406 MIN_RTT_THRESH).
const HYSTART_MIN_ETA: Duration = Duration::from_millis(4);
/// Largest RTT rise needed to end slow start (RFC 9406 MAX_RTT_THRESH).
const HYSTART_MAX_ETA: Duration = Duration::from_millis(16);
use crate::config::MAX_WINDOW;
use crate::segment::{Flags, SegmentRepr};
use crate::seq::Seq;

impl Connection {
    /// Processes a parsed segment addressed to this connection.
    pub(crate) fn handle_segment(&mut self, now: Instant, seg: &SegmentRepr, payload: &[u8]) {
        if !self.ids_match(seg) {
            self.stats.out_of_window += 1;
            return;
        }
        match self.state {
            State::Closed => return,
            State::SynSent => self.on_syn_sent(now, seg),
            _ => self.on_synchronized(now, seg, payload),
        }
        self.arm_timers(now);
    }

    /// The connection ids name this connection; a first SYN (dst 0) is allowed.
    fn ids_match(&self, seg: &SegmentRepr) -> bool {
        let first_syn =
            seg.dst_id == 0 && seg.flags.contains(Flags::SYN) && !seg.flags.contains(Flags::ACK);
        if seg.src_id == 0 || (seg.dst_id != self.local_id && !first_syn) {
            return false;
        }
        self.peer_id == 0 || seg.src_id == self.peer_id
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3), including simultaneous open.
    fn on_syn_sent(&mut self, now: Instant, seg: &SegmentRepr) {
        let f = seg.flags;
        let ack = f.contains(Flags::ACK);
        if ack && seg.ack != self.snd.iss.wrapping_add(1) {
            self.stats.out_of_window += 1;
            return;
        }
        if f.contains(Flags::RST) {
            if ack {
                self.finish(CloseReason::Refused);
            } else {
                self.stats.out_of_window += 1;
            }
            return;
        }
        if !f.contains(Flags::SYN) {
            self.stats.out_of_window += 1;
            return;
        }
        self.stats.segments_received += 1;
        self.last_recv = now;
        self.on_peer_syn(seg);
        if ack {
            self.on_new_ack(now, seg);
            self.establish();
        } else {
            // Simultaneous open: answer with SYN+ACK (our SYN, resent with ACK).
            self.state = State::SynReceived;
            self.board.mark_lost(0);
        }
    }

    fn establish(&mut self) {
        self.state = State::Established;
        self.events.0 |= EventSet::CONNECTED;
        if self.snd.buf.free() > 0 {
            self.events.0 |= EventSet::WRITABLE;
        }
        self.snd.tlp_armed = true;
    }

    /// Every state after SYN-SENT.
    fn on_synchronized(&mut self, now: Instant, seg: &SegmentRepr, payload: &[u8]) {
        let f = seg.flags;
        let mut seq = seg.seq;
        let mut syn = f.contains(Flags::SYN);
        if syn && seq == self.rcv.irs {
            // A retransmission of the peer's SYN (or its SYN+ACK in a simultaneous
            // open): the SYN itself is already accounted for.
            syn = false;
            seq = seq.wrapping_add(1);
            self.rcv.ack_now = true;
            if !f.contains(Flags::ACK) {
                self.on_duplicate_syn(now);
                return;
            }
        }
        let fin = f.contains(Flags::FIN);
        if f.contains(Flags::RST) {
            self.on_rst(now, seq);
            return;
        }
        let seg_len = payload.len() + usize::from(fin);
        if !self.acceptable(seq, seg_len) {
            self.on_unacceptable(now, seq);
            return;
        }
        self.stats.segments_received += 1;
        self.last_recv = now;
        if syn {
            // RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK.
            self.challenge_ack(now);
            return;
        }
        if !f.contains(Flags::ACK) {
            self.stats.out_of_window += 1;
            return;
        }
        if !self.on_ack_field(now, seg, seq) {
            return;
        }
        self.on_data(now, seg, seq, payload, fin);
    }

    fn on_duplicate_syn(&mut self, now: Instant) {
        self.last_recv = now;
        if self.state == State::SynReceived {
            // Our SYN+ACK was probably lost: resend it.
            self.board.mark_lost(0);
        } else {
            self.challenge_ack(now);
        }
    }

    /// RFC 5961 §3.2: reset only on an exact RCV.NXT match; challenge ACK for
    /// any other in-window RST; silently drop the rest.
    fn on_rst(&mut self, now: Instant, seq: Seq) {
        if seq == self.rcv.nxt {
            self.finish(CloseReason::Reset);
        } else if seq.in_range(
            self.rcv.nxt,
            self.rcv.nxt.wrapping_add(self.rcv.buf.window().max(1)),
        ) {
            self.challenge_ack(now);
        } else {
            self.stats.out_of_window += 1;
        }
    }

    /// The RFC 9293 §3.10.7.4 acceptability test.
    fn acceptable(&self, seq: Seq, len: usize) -> bool {
        let nxt = self.rcv.nxt;
        let wnd = self.rcv.buf.window();
        let end = nxt.wrapping_add(wnd);
        match (len, wnd) {
            (0, 0) => seq == nxt,
            (0, _) => seq.in_range(nxt, end),
            // A zero window still accepts a segment at RCV.NXT for its ACK field
            // (RFC 9293 "special allowance"); the payload is dropped as too big.
            (_, 0) => seq == nxt,
            (_, _) => seq.in_range(nxt, end) || seq.wrapping_add(len - 1).in_range(nxt, end),
        }
    }

    fn on_unacceptable(&mut self, now: Instant, seq: Seq) {
        // A keepalive (RCV.NXT - 1) or a duplicate proves the peer is alive.
        if seq.wrapping_add(1) == self.rcv.nxt || seq < self.rcv.nxt {
            self.last_recv = now;
            self.stats.duplicates += 1;
        } else {
            self.stats.out_of_window += 1;
        }
        // RFC 9293 restarts TIME-WAIT on a retransmitted FIN; any retransmission
        // shows the peer still misses our last ACK, so restart on all of them.
        if self.state == State::TimeWait {
            self.timers.time_wait = Some(now + self.time_wait());
        }
        self.rcv.ack_now = true;
    }

    /// The ACK field (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5.2). Returns
    /// false when the segment must be dropped.
    fn on_ack_field(&mut self, now: Instant, seg: &SegmentRepr, seq: Seq) -> bool {
        let ack = seg.ack;
        if ack > self.snd.nxt {
            // Acknowledges something never sent.
            self.stats.out_of_window += 1;
            self.challenge_ack(now);
            return false;
        }
        let oldest = Seq(self.snd.una.0.wrapping_sub(self.snd.max_wnd as u32));
        if ack < oldest {
            self.stats.out_of_window += 1;
            self.challenge_ack(now);
            return false;
        }
        if self.state == State::SynReceived {
            if ack <= self.snd.una {
                self.stats.out_of_window += 1;
                return false;
            }
            self.establish();
        }
        let pipe_before = self.board.pipe();
        if ack > self.snd.una {
            self.on_new_ack(now, seg);
        }
        self.on_sack_blocks(now, seg);
        self.pmtud_feedback();
        self.on_rate_sample(now, pipe_before);
        self.update_window(seg, seq);
        self.on_fin_acked(now);
        self.state != State::Closed
    }

    /// An ACK that advances SND.UNA.
    fn on_new_ack(&mut self, now: Instant, seg: &SegmentRepr) {
        let ack = seg.ack;
        let pipe_before = self.board.pipe();
        let out = self.board.on_ack(ack, now, self.rtt.min_rtt());
        let data_end = self.snd.buf_seq.wrapping_add(self.snd.buf.len());
        let upto = ack.min(data_end).max(self.snd.buf_seq);
        if let Some(n) = upto.since(self.snd.buf_seq) {
            self.snd.buf.consume(n);
        }
        self.snd.buf_seq = upto;
        self.snd.una = ack;
        if let Some(r) = self.rtt_sample(now, seg.tsecr, &out) {
            self.rtt.sample(r);
            self.hystart(r);
            self.ack_rtt = Some(r);
        }
        let grow = match self.snd.recovery_point {
            Some(rp) if ack >= rp => {
                self.snd.recovery_point = None;
                self.snd.rto_recovery = false;
                self.cc.on_recovery_exit();
                false
            }
            // After an RTO the window restarts at one segment and slow-starts while
            // the lost flight is retransmitted (RFC 5681 §3.1, RFC 6675 §5.1); only
            // a SACK recovery episode holds the reduced window still.
            Some(_) => self.snd.rto_recovery,
            None => true,
        };
        if grow && self.state.is_synchronized() && !out.acked_syn {
            let app_limited = pipe_before + 2 * self.snd.mss < self.cc.window() / 2;
            let srtt = self.rtt.srtt_or_initial();
            self.cc.on_ack(now, out.acked, srtt, app_limited);
        }
        self.pmtud.on_progress();
        // RFC 6298 §5.3: restart the timer on an ACK of new data.
        self.timers.rto = (!self.board.is_empty()).then(|| now + self.rtt.rto());
        self.snd.tlp_armed = true;
        self.timers.tlp = None;
        self.snd.persist_backoff = 0;
        if self.snd.write_blocked && self.snd.buf.free() > 0 {
            self.snd.write_blocked = false;
            self.events.0 |= EventSet::WRITABLE;
        }
    }

    /// An RTT sample for a new ACK (RFC 7323 RTTM with Karn's rule made exact):
    /// the timestamp echo counts only if it is not older than the latest
    /// transmission of the data it acknowledges (else it echoes an earlier
    /// transmission, or a lost ACK's segment, and would inflate the RTO); without a
    /// usable echo, the send time counts if nothing acknowledged was retransmitted.
    fn rtt_sample(&self, now: Instant, tsecr: u32, out: &AckOutcome) -> Option<Duration> {
        let newest = out.newest_sent?;
        if tsecr != 0 {
            let age = Duration::from_micros(u64::from(self.ts_now(now).wrapping_sub(tsecr)));
            let echoed = now.checked_sub(age);
            if age < MAX_RTT_SAMPLE && echoed.is_some_and(|e| e + TS_SLACK >= newest) {
                return Some(age.max(Duration::from_micros(1)));
            }
        }
        (!out.any_retransmitted).then(|| now.saturating_duration_since(newest))
    }

    /// HyStart++ (RFC 9406 §4.2) delay increase detection, without its
    /// conservative-slow-start phase: per round trip, compare the minimum RTT of
    /// the first [`HYSTART_MIN_SAMPLES`] samples with the previous round's; a rise
    /// of at least clamp(last / 8, 4 ms, 16 ms) ends slow start.
    fn hystart(&mut self, rtt: Duration) {
        if !self.cc.in_slow_start() || self.snd.recovery_point.is_some() {
            return;
        }
        let s = &mut self.snd;
        if s.una >= s.ss_round_end {
            s.ss_last_round_min = s.ss_round_min.take().or(s.ss_last_round_min);
            s.ss_samples = 0;
            s.ss_round_end = s.nxt;
        }
        s.ss_samples += 1;
        s.ss_round_min = Some(s.ss_round_min.map_or(rtt, |m| m.min(rtt)));
        let (Some(cur), Some(last)) = (s.ss_round_min, s.ss_last_round_min) else {
            return;
        };
        if s.ss_samples >= HYSTART_MIN_SAMPLES {
            let eta = (last / 8).clamp(HYSTART_MIN_ETA, HYSTART_MAX_ETA);
            if cur >= last + eta {
                self.cc.exit_slow_start();
            }
        }
    }

    /// Hands the ACK's delivery-rate sample to the controller.
    fn on_rate_sample(&mut self, now: Instant, pipe_before: usize) {
        let rtt = self.ack_rtt.take();
        let min_rtt = self
            .rtt
            .srtt()
            .map_or(Duration::ZERO, |_| self.rtt.min_rtt());
        let Some(mut rs) = self.board.take_sample(now, min_rtt) else {
            return;
        };
        if !self.state.is_synchronized() {
            return;
        }
        rs.rtt = rs.rtt.or(rtt).filter(|r| *r < MAX_RTT_SAMPLE);
        rs.cwnd_limited = pipe_before + self.snd.mss >= self.cc.window();
        self.cc.on_rate_sample(now, &rs);
    }

    fn on_sack_blocks(&mut self, now: Instant, seg: &SegmentRepr) {
        let min_rtt = self.rtt.min_rtt();
        for &block in seg.sack_blocks() {
            let (una, nxt) = (self.snd.una, self.snd.nxt);
            self.board.on_sack(block, una, nxt, now, min_rtt);
        }
        self.detect_losses(now);
    }

    /// RFC 9293 §3.10.7.4: take the window from the newest segment (SND.WL1/WL2).
    fn update_window(&mut self, seg: &SegmentRepr, seq: Seq) {
        let (wl1, wl2, shift) = (self.snd.wl1, self.snd.wl2, self.snd.peer_wscale);
        if wl1 < seq || (wl1 == seq && wl2 <= seg.ack) {
            let wnd = if seg.flags.contains(Flags::SYN) {
                usize::from(seg.window)
            } else {
                usize::from(seg.window) << shift
            };
            self.snd.wnd = wnd.min(MAX_WINDOW);
            self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
            self.snd.wl1 = seq;
            self.snd.wl2 = seg.ack;
        }
    }

    fn on_fin_acked(&mut self, now: Instant) {
        if !(self.snd.fin_sent && self.snd.una == self.snd.nxt) {
            return;
        }
        match self.state {
            State::FinWait1 => self.state = State::FinWait2,
            State::Closing => self.enter_time_wait(now),
            State::LastAck => self.finish(CloseReason::Normal),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.time_wait = Some(now + self.time_wait());
    }

    /// TIME-WAIT lasts long enough to re-ACK what the peer retransmits after a
    /// fully backed-off RTO (the role 2 × MSL plays in RFC 9293), and at least the
    /// user timeout, after which the peer gives up anyway: otherwise a lost last
    /// ACK leaves the peer in LAST-ACK or CLOSING until its user timeout.
    fn time_wait(&self) -> Duration {
        self.cfg
            .time_wait
            .max(self.cfg.max_rto * 2)
            .max(self.cfg.user_timeout)
    }

    /// Payload and FIN (RFC 9293 §3.10.7.4 seventh and eighth checks).
    fn on_data(&mut self, now: Instant, seg: &SegmentRepr, seq: Seq, payload: &[u8], fin: bool) {
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if !receiving {
            return;
        }
        if fin && self.rcv.fin.is_none() {
            self.rcv.fin = Some(seq.wrapping_add(payload.len()));
        }
        if !payload.is_empty() {
            self.store(now, seg, seq, payload);
        }
        self.maybe_fin(now);
    }

    fn store(&mut self, now: Instant, seg: &SegmentRepr, seq: Seq, payload: &[u8]) {
        self.rcv.segs_since_ack = self.rcv.segs_since_ack.saturating_add(1);
        let skip = self.rcv.nxt.since(seq).unwrap_or(0).min(payload.len());
        let data = &payload[skip..];
        let start = seq.wrapping_add(skip);
        let Some(off) = start.since(self.rcv.nxt) else {
            return;
        };
        // Never accept data past the peer's FIN.
        let limit = match self.rcv.fin {
            Some(f) => f.since(start).unwrap_or(0),
            None => data.len(),
        };
        let data = &data[..data.len().min(limit)];
        let room = self.rcv.buf.window().saturating_sub(off);
        let data = &data[..data.len().min(room)];
        if data.is_empty() {
            self.stats.duplicates += 1;
            self.rcv.ack_now = true;
            return;
        }
        let had_ooo = self.rcv.buf.has_ooo();
        if off == 0 && self.rcv.unacked_segments == 0 {
            self.rcv.ts_recent = seg.tsval;
        }
        match self.rcv.buf.insert(off, data) {
            Some(0) => {
                self.stats.out_of_order += 1;
                self.rcv.ack_now = true;
            }
            Some(adv) => {
                self.rcv.nxt = self.rcv.nxt.wrapping_add(adv);
                self.stats.bytes_received += adv as u64;
                self.events.0 |= EventSet::READABLE;
                self.rcv.unacked_segments += 1;
                if had_ooo || self.rcv.unacked_segments >= 2 || skip > 0 {
                    self.rcv.ack_now = true;
                } else if self.timers.delayed_ack.is_none() {
                    self.timers.delayed_ack = Some(now + self.cfg.max_ack_delay);
                }
            }
            None => {
                self.stats.ooo_dropped += 1;
                self.rcv.ack_now = true;
            }
        }
    }

    fn maybe_fin(&mut self, now: Instant) {
        if self.rcv.fin_done || self.rcv.fin != Some(self.rcv.nxt) {
            return;
        }
        self.rcv.nxt = self.rcv.nxt.wrapping_add(1);
        self.rcv.fin_done = true;
        self.rcv.ack_now = true;
        self.events.0 |= EventSet::PEER_FINISHED | EventSet::READABLE;
        match self.state {
            State::Established => self.state = State::CloseWait,
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }
}
