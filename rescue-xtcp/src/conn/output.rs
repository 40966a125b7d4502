//! Segment transmission: retransmissions first, then new data, then a bare ACK.
//!
//! `poll_transmit` fills up to `max_datagrams` equal-size datagrams (the last may
//! be shorter) for one GSO send, honouring the congestion window, the peer's
//! window, silly-window avoidance (RFC 9293 §3.8.6.2.1) and the pacer. Nothing is
//! allocated per segment: payload bytes are copied from the send ring straight
//! into the caller's buffer.

use std::time::Instant;

use super::pacing::Pacer;
use super::recovery::{SegState, Sent};
use super::{Connection, State, Transmit};
use crate::segment::{self, Flags, SegmentRepr, MAX_SACK_BLOCKS};
use crate::seq::Seq;

/// Data segments per ACK the receiver owes (RFC 9293 §3.8.6.3, RFC 5681 §4.2: at
/// least every second full segment).
const ACK_EVERY_SEGMENTS: u32 = 2;
/// Most copies of one bare ACK sent together. A batch of received datagrams (GRO,
/// `recvmmsg`, a proxy that flushes its queue at once) is answered by one ACK where
/// one-per-two-segments were owed; losing that one ACK would hide the whole batch
/// from the sender, which then waits for a probe or the RTO. Copies (one GSO send)
/// restore the redundancy; each reports different older SACK blocks.
const MAX_ACK_COPIES: u32 = 16;

/// One planned datagram; planning has no side effects until it is emitted.
#[derive(Debug, Clone, Copy)]
pub(super) enum Plan {
    /// Resend scoreboard entry `index`.
    Retransmit { index: usize, entry: Sent },
    /// Send `len` new bytes at SND.NXT, with FIN if `fin`.
    New { len: usize, fin: bool },
    /// A bare ACK (also window updates and challenge ACKs).
    Ack,
    /// A keepalive: a bare ACK with SEQ = SND.NXT - 1, which the peer must answer.
    Keepalive,
    /// An RST after `abort`.
    Reset,
}

impl Connection {
    /// Writes the next datagrams into `buf` (cleared first): up to
    /// `max_datagrams` segments of equal size (the last may be shorter).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        self.pmtud.tick(now);
        let max = max_datagrams.max(1);
        let mut count = 0;
        let mut seg_size = 0;
        while count < max {
            let Some(plan) = self.plan(count) else { break };
            let size = self.planned_size(&plan);
            if count > 0 && size > seg_size {
                break;
            }
            if self.paced(&plan) {
                let rate = self.cc.pacing_rate().unwrap_or_else(|| {
                    Pacer::cwnd_rate(self.cc.window(), self.rtt.srtt_or_initial())
                });
                if let Some(at) = self.pacer.delay(now, rate, self.snd.mss, size) {
                    self.timers.pacing = Some(at);
                    break;
                }
                self.pacer.on_sent(size);
            }
            let start = buf.len();
            let copies = match plan {
                Plan::Ack => self.ack_copies().min(max),
                _ => 1,
            };
            self.emit(now, plan, buf);
            debug_assert_eq!(buf.len() - start, size);
            if count == 0 {
                seg_size = size;
            }
            count += 1;
            for _ in 1..copies {
                self.rcv.sack_rotation = self.rcv.sack_rotation.wrapping_add(MAX_SACK_BLOCKS - 1);
                let at = buf.len();
                self.emit_bare(now, self.snd.nxt, buf);
                debug_assert_eq!(buf.len() - at, size);
                count += 1;
            }
            self.rcv.sack_rotation = 0;
            if size < seg_size {
                break;
            }
        }
        self.note_app_limited();
        if count == 0 {
            return None;
        }
        self.stats.segments_sent += count as u64;
        self.last_send = now;
        self.arm_timers(now);
        Some(Transmit {
            destination: self.remote,
            size: buf.len(),
            segment_size: (count > 1).then_some(seg_size),
        })
    }

    /// Rate samples of what is in flight now are application-limited when nothing
    /// waits to be sent although the window has room (draft-ietf-ccwg-bbr §4.5.2.3).
    fn note_app_limited(&mut self) {
        let idle = self.unsent_bytes() == 0 && !self.board.has_lost();
        if idle && self.board.pipe() < self.cc.window() {
            self.board.mark_app_limited();
        }
    }

    /// How many copies of a bare ACK to send now: one per [`ACK_EVERY_SEGMENTS`]
    /// (or part of it) received since the last ACK, at least one, at most
    /// [`MAX_ACK_COPIES`].
    fn ack_copies(&self) -> usize {
        let owed = self.rcv.segs_since_ack.div_ceil(ACK_EVERY_SEGMENTS);
        owed.clamp(1, MAX_ACK_COPIES) as usize
    }

    fn paced(&self, plan: &Plan) -> bool {
        self.cfg.pacing
            && self.rtt.srtt().is_some()
            && matches!(plan, Plan::Retransmit { .. } | Plan::New { .. })
    }

    /// Chooses the next datagram, or `None` if nothing may be sent now.
    fn plan(&self, count: usize) -> Option<Plan> {
        if self.rst_pending {
            return (count == 0).then_some(Plan::Reset);
        }
        if self.state == State::Closed {
            return None;
        }
        if let Some(p) = self.plan_retransmit() {
            return Some(p);
        }
        if let Some(p) = self.plan_new() {
            return Some(p);
        }
        if self.snd.probe {
            if let Some(index) = self.board.last_index() {
                let entry = self.board.get(index)?;
                if entry.state == SegState::InFlight {
                    return Some(Plan::Retransmit { index, entry });
                }
            }
        }
        if count > 0 {
            return None;
        }
        if self.rcv.ack_now && self.state != State::SynSent {
            return Some(Plan::Ack);
        }
        if self.snd.keepalive_due && self.state.is_synchronized() {
            return Some(Plan::Keepalive);
        }
        None
    }

    pub(super) fn plan_retransmit(&self) -> Option<Plan> {
        let (index, entry) = self.board.first_lost()?;
        let fits = self.board.pipe() + entry.len() <= self.cc.window();
        if entry.syn || fits || self.snd.probe || self.board.pipe() == 0 {
            Some(Plan::Retransmit { index, entry })
        } else {
            None
        }
    }

    fn plan_new(&self) -> Option<Plan> {
        let sending = matches!(self.state, State::Established | State::CloseWait);
        if !sending || self.snd.fin_sent {
            return None;
        }
        let unsent = self.unsent_bytes();
        let usable = self.usable_window();
        let cwnd_room = self.cc.window().saturating_sub(self.board.pipe());
        let mut len = unsent.min(self.snd.mss).min(usable);
        if !self.snd.probe {
            len = len.min(cwnd_room);
        }
        // A path-MTU probe: one segment of new data of the probe size (RFC 8899
        // §4.1), when there is enough data and room for it.
        if let Some(size) = self.pmtud.next_probe() {
            let room = cwnd_room.min(usable);
            if !self.snd.probe && size > self.snd.mss && unsent > size && room >= size {
                return Some(Plan::New {
                    len: size,
                    fin: false,
                });
            }
        }
        let probe_zero_window = self.snd.probe && usable == 0 && unsent > 0;
        if probe_zero_window {
            len = 1;
        }
        let fin = self.snd.fin_queued && len == unsent && (cwnd_room > 0 || self.snd.probe);
        if len == 0 && !fin {
            return None;
        }
        // Sender silly-window avoidance: full segments, the tail of the data
        // (no Nagle delay: this is an interactive transport), half the largest
        // window the peer offered, or a probe.
        // With nothing in flight, a segment cut short by the congestion window alone
        // (not the peer's) is also sent: that window may be smaller than a segment (the
        // base size after an RTO, when path-MTU discovery raised the segment size), and
        // waiting would never end. A small peer window still waits (SWS avoidance).
        let cwnd_cut = self.board.pipe() == 0 && usable >= self.snd.mss.min(unsent);
        let sws_ok = len == self.snd.mss
            || len == unsent
            || len >= self.snd.max_wnd / 2
            || self.snd.probe
            || cwnd_cut;
        sws_ok.then_some(Plan::New { len, fin })
    }

    fn planned_size(&self, plan: &Plan) -> usize {
        let header = segment::HEADER_LEN + segment::SACK_BLOCK_LEN * self.sack_count();
        match *plan {
            Plan::Retransmit { entry, .. } => {
                header + entry.len() - usize::from(entry.syn) - usize::from(entry.fin)
            }
            Plan::New { len, .. } => header + len,
            Plan::Ack | Plan::Keepalive => header,
            Plan::Reset => segment::HEADER_LEN,
        }
    }

    fn sack_count(&self) -> usize {
        if self.state == State::SynSent {
            return 0;
        }
        self.rcv.buf.sack_ranges().take(MAX_SACK_BLOCKS).count()
    }

    fn emit(&mut self, now: Instant, plan: Plan, buf: &mut Vec<u8>) {
        match plan {
            Plan::Retransmit { index, entry } => self.emit_retransmit(now, index, entry, buf),
            Plan::New { len, fin } => self.emit_new(now, len, fin, buf),
            Plan::Ack => self.emit_bare(now, self.snd.nxt, buf),
            Plan::Keepalive => {
                self.snd.keepalive_due = false;
                self.stats.keepalives += 1;
                let seq = Seq(self.snd.nxt.0.wrapping_sub(1));
                self.emit_bare(now, seq, buf);
            }
            Plan::Reset => {
                self.rst_pending = false;
                let mut h = self.header(now, Flags::RST.with(Flags::ACK), self.snd.nxt);
                h.sack_count = 0;
                h.emit_to_vec(&[], buf);
            }
        }
        self.snd.probe = false;
    }

    fn emit_bare(&mut self, now: Instant, seq: Seq, buf: &mut Vec<u8>) {
        let h = self.header(now, Flags::ACK, seq);
        self.on_ack_sent();
        h.emit_to_vec(&[], buf);
    }

    fn emit_retransmit(&mut self, now: Instant, index: usize, entry: Sent, buf: &mut Vec<u8>) {
        let first_syn = entry.syn && !self.snd.syn_sent;
        if !first_syn {
            self.stats.retransmits += 1;
        }
        self.board.on_retransmitted(index, now);
        if entry.syn {
            self.snd.syn_sent = true;
            let flags = if self.state == State::SynSent {
                Flags::SYN
            } else {
                Flags::SYN.with(Flags::ACK)
            };
            let h = self.header(now, flags, entry.start);
            self.on_ack_sent();
            h.emit_to_vec(&[], buf);
            return;
        }
        let data_len = entry.len() - usize::from(entry.fin);
        let flags = if entry.fin {
            Flags::ACK.with(Flags::FIN)
        } else {
            Flags::ACK
        };
        self.emit_data(now, flags, entry.start, data_len, buf);
    }

    fn emit_new(&mut self, now: Instant, len: usize, fin: bool, buf: &mut Vec<u8>) {
        let start = self.snd.nxt;
        let flags = if fin {
            Flags::ACK.with(Flags::FIN)
        } else {
            Flags::ACK
        };
        self.emit_data(now, flags, start, len, buf);
        let end = start.wrapping_add(len + usize::from(fin));
        self.board.on_sent(Sent {
            start,
            end,
            time: now,
            state: SegState::InFlight,
            retransmitted: false,
            syn: false,
            fin,
            tx: super::recovery::TxState::unsent(now),
        });
        self.snd.nxt = end;
        self.stats.bytes_sent += len as u64;
        if len > self.snd.mss {
            self.pmtud.on_probe_sent(start, len);
            self.stats.mtu_probes += 1;
        }
        if fin {
            self.snd.fin_sent = true;
            self.state = match self.state {
                State::CloseWait => State::LastAck,
                _ => State::FinWait1,
            };
        }
    }

    /// Header + `len` payload bytes from the send ring starting at `seq`.
    fn emit_data(&mut self, now: Instant, flags: Flags, seq: Seq, len: usize, buf: &mut Vec<u8>) {
        let h = self.header(now, flags, seq);
        self.on_ack_sent();
        let at = buf.len();
        buf.resize(at + h.header_len(), 0);
        h.emit(&mut buf[at..]);
        let offset = seq.since(self.snd.buf_seq).unwrap_or(0);
        self.snd.buf.copy_to(offset, len, buf);
        segment::fill_checksum(&mut buf[at..]);
    }

    /// A header carrying our current ACK state.
    fn header(&mut self, now: Instant, flags: Flags, seq: Seq) -> SegmentRepr {
        let syn = flags.contains(Flags::SYN);
        let mut h = SegmentRepr {
            flags,
            dst_id: self.peer_id,
            src_id: self.local_id,
            seq,
            ack: if flags.contains(Flags::ACK) {
                self.rcv.nxt
            } else {
                Seq(0)
            },
            tsval: self.ts_now(now),
            tsecr: self.rcv.ts_recent,
            ..SegmentRepr::default()
        };
        if syn {
            h.wscale = self.rcv.wscale;
            h.mss = self.cfg.clamped_max_mss();
            h.window = self.rcv.buf.window().min(usize::from(u16::MAX)) as u16;
            self.rcv.adv_edge = self.rcv.nxt.wrapping_add(usize::from(h.window));
            return h;
        }
        if flags.contains(Flags::ACK) {
            h.window = self.advertised_window();
            // RFC 2018 §4: the most recent block first, then older ones; copies of
            // one ACK rotate through the older blocks, so together they report more.
            let nxt = self.rcv.nxt;
            let mut ranges = self.rcv.buf.sack_ranges();
            if let Some(first) = ranges.next() {
                let older = self.rcv.buf.ooo_ranges().saturating_sub(1);
                let skip = if older == 0 {
                    0
                } else {
                    self.rcv.sack_rotation % older
                };
                let rest = ranges
                    .cycle()
                    .skip(skip)
                    .take(older.min(MAX_SACK_BLOCKS - 1));
                for (i, (s, e)) in std::iter::once(first).chain(rest).enumerate() {
                    h.sack[i] = (nxt.wrapping_add(s), nxt.wrapping_add(e));
                    h.sack_count = i as u8 + 1;
                }
            }
        }
        h
    }

    /// The scaled window field; the right edge moves only by at least
    /// min(MSS, buffer / 2) (receiver SWS avoidance) and never shrinks.
    fn advertised_window(&mut self) -> u16 {
        let shift = self.rcv.wscale;
        let free = self.rcv.buf.window();
        let old = self.rcv.adv_edge.since(self.rcv.nxt).unwrap_or(0);
        let step = self.snd.mss.min(self.rcv.buf.capacity() / 2);
        let wnd = if free >= old + step || old > free {
            free
        } else {
            old
        };
        let field = (wnd >> shift).min(usize::from(u16::MAX));
        self.rcv.adv_edge = self.rcv.nxt.wrapping_add(field << shift);
        field as u16
    }

    fn on_ack_sent(&mut self) {
        self.rcv.ack_now = false;
        self.rcv.unacked_segments = 0;
        self.rcv.segs_since_ack = 0;
        self.timers.delayed_ack = None;
    }
}
