//! Scripted segment-level tests of the connection state machine (smoltcp style).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::segment::{Flags, SegmentRepr, HEADER_LEN};

const ADDR_A: &str = "10.0.0.1:1";
const ADDR_B: &str = "10.0.0.2:2";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Pair {
    a: Connection,
    b: Connection,
    now: Instant,
    buf: Vec<u8>,
}

impl Pair {
    fn new(cfg_b: Config) -> Pair {
        let now = Instant::now();
        // Path-MTU discovery off on A, so scripted flights have fixed sizes, and
        // CUBIC, whose window rules the scripted recovery tests check.
        let cfg = Arc::new(Config {
            max_mss: 1200,
            congestion: crate::config::CongestionKind::Cubic,
            ..Config::default()
        });
        // ISNs just below the wrap, as smoltcp's tests do.
        let mut a = Connection::connect(cfg, now, addr(ADDR_B), 0xa, u32::MAX - 100);
        let mut buf = Vec::new();
        a.poll_transmit(now, 1, &mut buf).unwrap();
        let (syn, _) = SegmentRepr::parse(&buf).unwrap();
        assert_eq!(syn.flags, Flags::SYN);
        let b = Connection::accept_syn(Arc::new(cfg_b), now, addr(ADDR_A), 0xb, u32::MAX - 5, &syn);
        let mut p = Pair { a, b, now, buf };
        p.exchange();
        assert_eq!(p.a.state(), State::Established);
        assert_eq!(p.b.state(), State::Established);
        assert_eq!(p.a.poll(), Some(Event::Connected));
        p
    }

    /// Moves datagrams both ways until neither side has anything to send.
    fn exchange(&mut self) -> usize {
        let mut moved = 0;
        loop {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit(self.now, 10, &mut self.buf) {
                for d in self.buf[..t.size].chunks(t.segment_size.unwrap_or(t.size)) {
                    self.b.handle(self.now, d);
                }
                any = true;
                moved += 1;
            }
            while let Some(t) = self.b.poll_transmit(self.now, 10, &mut self.buf) {
                for d in self.buf[..t.size].chunks(t.segment_size.unwrap_or(t.size)) {
                    self.a.handle(self.now, d);
                }
                any = true;
                moved += 1;
            }
            if !any {
                return moved;
            }
        }
    }

    /// Advances to the earliest timer of either side and fires it.
    fn tick(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer");
        self.now = self.now.max(next);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// A forged-or-real segment from B's identity, as A expects it.
    fn segment_from_b(&self, flags: Flags, seq: Seq, ack: Seq) -> Vec<u8> {
        let repr = SegmentRepr {
            flags,
            dst_id: self.a.local_id(),
            src_id: self.b.local_id(),
            seq,
            ack,
            window: 100,
            ..SegmentRepr::default()
        };
        let mut out = Vec::new();
        repr.emit_to_vec(&[], &mut out);
        out
    }

    fn a_sends(&mut self) -> Option<SegmentRepr> {
        let t = self.a.poll_transmit(self.now, 1, &mut self.buf)?;
        Some(SegmentRepr::parse(&self.buf[..t.size]).unwrap().0)
    }
}

#[test]
fn handshake_then_data_both_ways() {
    let mut p = Pair::new(Config::default());
    assert_eq!(p.a.write(b"hello").unwrap(), 5);
    assert_eq!(p.b.write(b"world!").unwrap(), 6);
    p.exchange();
    let mut buf = [0u8; 16];
    assert_eq!(p.b.read(&mut buf).unwrap(), Some(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(p.a.read(&mut buf).unwrap(), Some(6));
    assert_eq!(p.a.read(&mut buf).unwrap(), None);
}

#[test]
fn rst_rules_of_rfc_5961() {
    let mut p = Pair::new(Config::default());
    let nxt = p.a.rcv_nxt();
    let una = p.a.snd_una();
    // Far outside the window: dropped silently.
    let d = p.segment_from_b(Flags::RST, nxt.wrapping_add(1 << 30), una);
    p.a.handle(p.now, &d);
    assert!(p.a_sends().is_none());
    assert_eq!(p.a.stats().out_of_window, 1);
    // In the window but not exact: a challenge ACK, no reset.
    let d = p.segment_from_b(Flags::RST, nxt.wrapping_add(10), una);
    p.a.handle(p.now, &d);
    let ack = p.a_sends().expect("challenge ACK");
    assert_eq!(ack.flags, Flags::ACK);
    assert_eq!(ack.ack, nxt);
    assert_eq!(p.a.state(), State::Established);
    // Exactly RCV.NXT: reset.
    let d = p.segment_from_b(Flags::RST, nxt, una);
    p.a.handle(p.now, &d);
    assert_eq!(p.a.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| p.a.poll()).collect();
    assert_eq!(events.last(), Some(&Event::Closed(CloseReason::Reset)));
    assert_eq!(p.a.write(b"x"), Err(WriteError::Closed(CloseReason::Reset)));
}

#[test]
fn syn_and_impossible_acks_get_rate_limited_challenge_acks() {
    let mut p = Pair::new(Config::default());
    let nxt = p.a.rcv_nxt();
    let una = p.a.snd_una();
    let d = p.segment_from_b(Flags::SYN, nxt, Seq(0));
    p.a.handle(p.now, &d);
    assert!(p.a_sends().is_some());
    // An ACK of data never sent.
    let d = p.segment_from_b(Flags::ACK, nxt, una.wrapping_add(5000));
    p.a.handle(p.now, &d);
    assert!(p.a_sends().is_some());
    assert_eq!(p.a.snd_una(), una);
    for _ in 0..100 {
        let d = p.segment_from_b(Flags::RST, nxt.wrapping_add(1), una);
        p.a.handle(p.now, &d);
    }
    assert_eq!(p.a.stats().challenge_acks, CHALLENGE_ACKS_PER_SEC as u64);
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn one_segment_waits_for_the_delayed_ack_two_are_acked_at_once() {
    let mut p = Pair::new(Config::default());
    p.a.write(&[1; 100]).unwrap();
    let t = p.a.poll_transmit(p.now, 10, &mut p.buf).unwrap();
    p.b.handle(p.now, &p.buf[..t.size]);
    assert!(p.b.poll_transmit(p.now, 10, &mut p.buf).is_none());
    let deadline = p.b.poll_timeout().unwrap();
    assert_eq!(deadline, p.now + Config::default().max_ack_delay);
    p.b.handle_timeout(deadline);
    assert!(p.b.poll_transmit(deadline, 10, &mut p.buf).is_some());
    // Two full segments: an immediate ACK.
    p.now = deadline;
    p.exchange();
    p.a.write(&[2; 2400]).unwrap();
    let t = p.a.poll_transmit(p.now, 10, &mut p.buf).unwrap();
    assert_eq!(
        t.segment_size,
        Some(HEADER_LEN + 1200),
        "one GSO batch of two"
    );
    let data = p.buf[..t.size].to_vec();
    for d in data.chunks(HEADER_LEN + 1200) {
        p.b.handle(p.now, d);
    }
    assert!(p.b.poll_transmit(p.now, 10, &mut p.buf).is_some());
}

#[test]
fn rto_backs_off_exponentially_up_to_the_cap() {
    let mut p = Pair::new(Config::default());
    p.a.write(&[7; 500]).unwrap();
    assert!(p.a.poll_transmit(p.now, 10, &mut p.buf).is_some()); // lost
    let mut last = p.now;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let t = p.a.poll_timeout().unwrap();
        gaps.push(t - last);
        last = t;
        p.a.handle_timeout(t);
        // Every expiry of the RTO (or the TLP) resends the segment.
        assert!(p.a.poll_transmit(t, 10, &mut p.buf).is_some());
    }
    let max = Config::default().max_rto;
    assert!(gaps.windows(2).skip(2).all(|w| w[1] >= w[0]), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= max), "{gaps:?}");
    assert_eq!(*gaps.last().unwrap(), max, "{gaps:?}");
    assert!(p.a.stats().rto_count >= 6);
    assert!(p.a.stats().retransmits >= 7);
}

#[test]
fn zero_window_is_probed_and_reopened() {
    let small = Config {
        recv_buffer: 2400, // the smallest allowed: two segments
        ..Config::default()
    };
    let mut p = Pair::new(small);
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let mut written = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 700];
    for round in 0..4000 {
        if written < data.len() {
            written += p.a.write(&data[written..]).unwrap_or(0);
        }
        p.exchange();
        // The reader is slow: it reads only every 25th round, so the writer
        // meets a zero window and must probe it.
        if round % 25 == 0 {
            if let Ok(Some(n)) = p.b.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        if got.len() == data.len() {
            break;
        }
        p.tick();
    }
    assert_eq!(got, data);
    assert!(p.a.stats().window_probes > 0, "{:?}", p.a.stats());
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn idle_connection_keeps_alive_and_never_times_out() {
    let mut p = Pair::new(Config::default());
    let start = p.now;
    while p.now - start < Config::default().user_timeout * 3 {
        p.exchange();
        p.tick();
    }
    assert!(p.a.stats().keepalives >= 3);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
}

#[test]
fn close_goes_through_fin_states_to_closed() {
    let mut p = Pair::new(Config::default());
    p.a.write(b"bye").unwrap();
    p.a.close();
    assert_eq!(p.a.write(b"more"), Err(WriteError::Finished));
    p.exchange();
    assert_eq!(p.a.state(), State::FinWait2);
    assert_eq!(p.b.state(), State::CloseWait);
    let mut buf = [0u8; 8];
    assert_eq!(p.b.read(&mut buf).unwrap(), Some(3));
    assert_eq!(p.b.read(&mut buf).unwrap(), Some(0));
    p.b.close();
    p.exchange();
    assert_eq!(p.b.state(), State::Closed);
    assert_eq!(p.a.state(), State::TimeWait);
    while p.a.state() != State::Closed {
        p.tick();
    }
    assert_eq!(p.a.close_reason(), Some(CloseReason::Normal));
    assert_eq!(p.b.close_reason(), Some(CloseReason::Normal));
}

#[test]
fn abort_sends_rst_that_resets_the_peer() {
    let mut p = Pair::new(Config::default());
    p.a.abort();
    p.exchange();
    assert_eq!(p.a.close_reason(), Some(CloseReason::Aborted));
    assert_eq!(p.b.close_reason(), Some(CloseReason::Reset));
}

#[test]
fn pacer_holds_segments_back_and_poll_timeout_names_when() {
    let mut p = Pair::new(Config::default());
    let rtt = std::time::Duration::from_millis(100);
    // A few round trips of 100 ms to measure the RTT and open the window.
    for _ in 0..4 {
        p.a.write(&[9; 24_000]).unwrap();
        let mut flights = Vec::new();
        while let Some(t) = p.a.poll_transmit(p.now, 10, &mut p.buf) {
            flights.push((p.buf[..t.size].to_vec(), t.segment_size.unwrap_or(t.size)));
        }
        p.now += rtt / 2;
        for (f, s) in &flights {
            for d in f.chunks(*s) {
                p.b.handle(p.now, d);
            }
        }
        let mut acks = Vec::new();
        p.b.handle_timeout(p.now + Config::default().max_ack_delay);
        while let Some(t) = p.b.poll_transmit(p.now, 10, &mut p.buf) {
            let stride = t.segment_size.unwrap_or(t.size);
            acks.extend(p.buf[..t.size].chunks(stride).map(<[u8]>::to_vec));
        }
        p.now += rtt / 2;
        for d in &acks {
            p.a.handle(p.now, d);
        }
        let mut sink = [0u8; 65536];
        while let Ok(Some(n)) = p.b.read(&mut sink) {
            assert!(n > 0);
        }
    }
    // The smoothed RTT moves towards 100 ms from the ~0 of the handshake.
    assert!(p.a.rtt().is_some_and(|r| r >= rtt / 4));
    // Now a large write: the pacer lets a burst out, then holds back.
    p.a.write(&[1; 200_000]).unwrap();
    let mut sent = 0;
    while let Some(t) = p.a.poll_transmit(p.now, 10, &mut p.buf) {
        sent += t.size;
    }
    let room = p.a.congestion_window().saturating_sub(p.a.board.pipe());
    assert!(
        room > 0 && p.a.unsent_bytes() > 0,
        "held back by the pacer, not cwnd"
    );
    assert!(sent > 0);
    let deadline = p.a.poll_timeout().unwrap();
    assert_eq!(Some(deadline), p.a.timers.pacing);
    assert!(deadline > p.now && deadline < p.now + rtt);
    assert!(p.a.poll_transmit(p.now, 10, &mut p.buf).is_none());
    p.a.handle_timeout(deadline);
    assert!(p.a.poll_transmit(deadline, 10, &mut p.buf).is_some());
}

#[test]
fn data_past_an_out_of_order_fin_is_refused() {
    let mut p = Pair::new(Config::default());
    let nxt = p.a.rcv_nxt();
    let una = p.a.snd_una();
    let seg = |flags: Flags, seq: Seq, payload: &[u8], p: &Pair| {
        let repr = SegmentRepr {
            flags,
            dst_id: p.a.local_id(),
            src_id: p.b.local_id(),
            seq,
            ack: una,
            window: 100,
            ..SegmentRepr::default()
        };
        let mut out = Vec::new();
        repr.emit_to_vec(payload, &mut out);
        out
    };
    // FIN at +10 arrives first, then 5 bytes claiming to follow it, then the data.
    let fin = seg(Flags::ACK.with(Flags::FIN), nxt.wrapping_add(10), b"", &p);
    let past = seg(Flags::ACK, nxt.wrapping_add(10), b"xxxxx", &p);
    let data = seg(Flags::ACK, nxt, b"0123456789", &p);
    for d in [fin, past, data] {
        p.a.handle(p.now, &d);
    }
    let mut buf = [0u8; 32];
    assert_eq!(p.a.read(&mut buf), Ok(Some(10)));
    assert_eq!(&buf[..10], b"0123456789");
    assert_eq!(p.a.read(&mut buf), Ok(Some(0)));
    assert_eq!(p.a.state(), State::CloseWait);
}

#[test]
fn the_window_slow_starts_after_an_rto_before_the_recovery_point() {
    let mut p = Pair::new(Config::default());
    let mss = usize::from(Config::default().mss);
    assert_eq!(p.a.write(&[7; 24_000]).unwrap(), 24_000);
    // The initial window goes out and is lost entirely.
    let mut lost = 0;
    while let Some(t) = p.a.poll_transmit(p.now, 10, &mut p.buf) {
        lost += t.size;
    }
    assert!(lost > 5 * mss, "{lost}");
    // Tail-loss probes are lost too, until the RTO fires.
    while p.a.stats().rto_count == 0 {
        p.now = p.a.poll_timeout().expect("RTO armed");
        p.a.handle_timeout(p.now);
        if p.a.stats().rto_count == 0 {
            while p.a.poll_transmit(p.now, 10, &mut p.buf).is_some() {}
        }
    }
    assert_eq!(p.a.congestion_window(), mss);
    // One retransmission arrives; its (delayed) ACK is below the recovery point.
    p.exchange();
    p.tick();
    p.exchange();
    assert!(
        p.a.congestion_window() >= 4 * mss,
        "cwnd {} stayed near one segment during RTO recovery",
        p.a.congestion_window()
    );
}

#[test]
fn a_batch_is_answered_by_ack_copies_that_together_report_every_hole() {
    let mut p = Pair::new(Config::default());
    p.a.write(&[7; 24_000]).unwrap();
    // A's first flight (IW10); every second segment is lost, so B holds five
    // out-of-order ranges, more than one ACK's four SACK blocks.
    let mut segs = Vec::new();
    while let Some(t) = p.a.poll_transmit(p.now, 10, &mut p.buf) {
        let stride = t.segment_size.unwrap_or(t.size);
        segs.extend(p.buf[..t.size].chunks(stride).map(<[u8]>::to_vec));
    }
    assert_eq!(segs.len(), 10);
    for d in segs.iter().skip(1).step_by(2) {
        p.b.handle(p.now, d);
    }
    let t = p.b.poll_transmit(p.now, 10, &mut p.buf).expect("an ACK");
    let stride = t.segment_size.expect("several copies");
    let mut blocks = std::collections::BTreeSet::new(); // (start, end) as u32 pairs
    let mut copies = 0;
    for d in p.buf[..t.size].chunks(stride) {
        let (ack, _) = SegmentRepr::parse(d).unwrap();
        assert_eq!(ack.ack, p.b.rcv_nxt());
        // RFC 2018: the block of the most recent segment always comes first.
        assert_eq!(ack.sack_blocks()[0], ack_first_block(&segs[9]));
        blocks.extend(ack.sack_blocks().iter().map(|(s, e)| (s.0, e.0)));
        copies += 1;
    }
    // Five segments received: three copies (one per two segments, rounded up).
    assert_eq!(copies, 3);
    assert_eq!(blocks.len(), 5, "{blocks:?}");
    assert!(p.b.poll_transmit(p.now, 10, &mut p.buf).is_none());
}

/// The SACK block a lone received segment forms.
fn ack_first_block(d: &[u8]) -> (Seq, Seq) {
    let (s, payload) = SegmentRepr::parse(d).unwrap();
    (s.seq, s.seq.wrapping_add(payload.len()))
}
