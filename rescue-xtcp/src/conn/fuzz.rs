//! Fuzz entry point: an established connection fed arbitrary datagrams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Connection, State};
use crate::config::{Config, CongestionKind, MAX_WINDOW};
use crate::segment::{self, HEADER_LEN};
use crate::sim::Sim;

/// Feeds arbitrary datagrams to one side of an established in-memory pair while
/// the two also exchange real traffic, and checks the invariants after every step.
///
/// Input: one byte choosing the congestion controller (CUBIC, NewReno, BBR, BBR
/// loss-tolerant, by value mod 4), then a sequence of `[len u8][control u8][len
/// bytes]` records. Control bit 0:
/// patch the connection ids and the checksum so the datagram reaches the state
/// machine; bit 1: deliver to B instead of A; bits 2–7: advance the clock by that
/// many milliseconds first. Never panics unless an invariant breaks (a bug).
#[doc(hidden)]
pub fn fuzz_connection(data: &[u8]) {
    let Some((&kind, data)) = data.split_first() else {
        return;
    };
    let kinds = [
        CongestionKind::Cubic,
        CongestionKind::NewReno,
        CongestionKind::Bbr,
        CongestionKind::BbrLossTolerant,
    ];
    fuzz_with(kinds[usize::from(kind) % kinds.len()], data);
}

/// [`fuzz_connection`] with the controller given; returns the bytes B read from A.
pub(crate) fn fuzz_with(kind: CongestionKind, data: &[u8]) -> usize {
    let t0 = Instant::now();
    let cfg = Arc::new(Config {
        recv_buffer: 16 * 1024,
        send_buffer: 16 * 1024,
        congestion: kind,
        ..Config::default()
    });
    let mut a = Connection::connect(cfg.clone(), t0, Sim::ADDR_B, 0xa1, u32::MAX - 3);
    let mut buf = Vec::new();
    let Some(t) = a.poll_transmit(t0, 1, &mut buf) else {
        return 0;
    };
    let Ok((syn, _)) = segment::SegmentRepr::parse(&buf[..t.size]) else {
        return 0;
    };
    let mut b = Connection::accept_syn(cfg, t0, Sim::ADDR_A, 0xb2, 7, &syn);
    let mut now = t0;
    exchange(&mut a, &mut b, now, &mut buf);
    let mut rest = data;
    let mut b_read = 0;
    while let [len, control, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (d, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(control >> 2));
        let to_b = control & 2 != 0;
        let mut d = d.to_vec();
        let (target, peer) = if to_b { (&mut b, &a) } else { (&mut a, &b) };
        if control & 1 != 0 && d.len() >= HEADER_LEN {
            d[4..8].copy_from_slice(&target.local_id().to_be_bytes());
            d[8..12].copy_from_slice(&peer.local_id().to_be_bytes());
            segment::fill_checksum(&mut d);
        }
        target.handle(now, &d);
        let _ = a.write(&[0x42; 3000]);
        let _ = b.write(&[0x24; 3000]);
        let mut sink = [0u8; 4096];
        while let Ok(Some(n)) = a.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        while let Ok(Some(n)) = b.read(&mut sink) {
            if n == 0 {
                break;
            }
            b_read += n;
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
        exchange(&mut a, &mut b, now, &mut buf);
        a.check_invariants();
        b.check_invariants();
        while a.poll().is_some() {}
        while b.poll().is_some() {}
    }
    b_read
}

fn exchange(a: &mut Connection, b: &mut Connection, now: Instant, buf: &mut Vec<u8>) {
    for _ in 0..64 {
        let mut any = false;
        while let Some(t) = a.poll_transmit(now, 10, buf) {
            for d in buf[..t.size].chunks(t.segment_size.unwrap_or(t.size).max(1)) {
                b.handle(now, d);
            }
            any = true;
        }
        while let Some(t) = b.poll_transmit(now, 10, buf) {
            for d in buf[..t.size].chunks(t.segment_size.unwrap_or(t.size).max(1)) {
                a.handle(now, d);
            }
            any = true;
        }
        if !any {
            return;
        }
    }
}

impl Connection {
    /// Internal consistency, checked by the fuzz target and tests.
    pub(crate) fn check_invariants(&self) {
        assert!(self.snd.una <= self.snd.nxt, "SND.UNA beyond SND.NXT");
        let outstanding = self.snd.nxt.since(self.snd.una).unwrap_or(usize::MAX);
        assert!(
            self.board.pipe() <= outstanding,
            "pipe exceeds outstanding bytes"
        );
        assert!(self.snd.buf.len() <= self.cfg.clamped_send_buffer());
        assert!(self.rcv.buf.readable() <= self.rcv.buf.capacity());
        assert!(self.snd.wnd <= MAX_WINDOW);
        // Whatever the peer claims, the controller stays within its bounds and
        // the sender within its buffer.
        let cwnd = self.cc.window();
        assert!(cwnd <= MAX_WINDOW && cwnd >= self.snd.mss, "cwnd {cwnd}");
        if let Some(rate) = self.cc.pacing_rate() {
            assert!(rate <= crate::cc::bbr::MAX_BW, "pacing rate {rate}");
        }
        assert!(outstanding <= self.cfg.clamped_send_buffer() + 2);
        if self.state == State::Closed {
            assert!(self.reason.is_some());
            assert!(self.poll_timeout().is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_datagrams_never_panic_or_break_invariants(
            data in proptest::collection::vec(any::<u8>(), 0..4000)
        ) {
            super::fuzz_connection(&data);
        }
    }

    /// Forged ACKs from B's identity: SACK blocks claiming data never sent,
    /// cumulative ACKs beyond SND.NXT, absurd timestamp echoes. With every
    /// controller the pair keeps its invariants and keeps moving data afterwards.
    #[test]
    fn forged_acks_sacks_and_timestamps_neither_break_nor_stall_any_controller() {
        use crate::config::CongestionKind;
        use crate::segment::{Flags, SegmentRepr};
        use crate::seq::Seq;
        let mut forged = Vec::new();
        for i in 0..200u32 {
            let mut seg = SegmentRepr {
                flags: Flags::ACK,
                seq: Seq(7u32.wrapping_add(1 + i)),
                ack: Seq((u32::MAX - 3).wrapping_add(i.wrapping_mul(977))),
                window: u16::MAX,
                tsval: i,
                tsecr: [0, 1, u32::MAX, i.wrapping_mul(0x9e37_79b9)][i as usize % 4],
                ..SegmentRepr::default()
            };
            seg.sack_count = 4;
            for k in 0..4 {
                let s = i.wrapping_mul(31 + k).wrapping_add(k * 1000);
                seg.sack[k as usize] = (Seq(s), Seq(s.wrapping_add(1 + i * 13)));
            }
            let mut d = Vec::new();
            seg.emit_to_vec(&[], &mut d);
            forged.push(d.len() as u8);
            forged.push(1 | (((i % 3) as u8) << 2)); // patched, to A, 0-2 ms
            forged.extend_from_slice(&d);
        }
        // Then quiet time, so real traffic must carry on by itself.
        for _ in 0..200 {
            forged.extend_from_slice(&[0, 40 << 2]);
        }
        for kind in [
            CongestionKind::Cubic,
            CongestionKind::NewReno,
            CongestionKind::Bbr,
            CongestionKind::BbrLossTolerant,
        ] {
            let read = super::fuzz_with(kind, &forged);
            assert!(
                read > 100_000,
                "{kind:?}: only {read} bytes after forgeries"
            );
        }
    }

    #[test]
    fn patched_forgeries_reach_the_state_machine() {
        // A patched RST at a random sequence number, a patched SYN, garbage.
        let mut input = vec![2u8]; // BBR
        for (flags, ctl) in [(0x04u8, 1u8), (0x02, 3), (0x0c, 1), (0x09, 5)] {
            let mut seg = vec![0u8; 40];
            seg[0] = 1;
            seg[1] = flags;
            seg[12..16].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            input.push(seg.len() as u8);
            input.push(ctl);
            input.extend_from_slice(&seg);
        }
        super::fuzz_connection(&input);
    }
}
