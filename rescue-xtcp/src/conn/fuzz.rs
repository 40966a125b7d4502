//! Fuzz entry point: an established connection fed arbitrary datagrams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Connection, State};
use crate::config::Config;
use crate::segment::{self, HEADER_LEN};
use crate::sim::Sim;

/// Feeds arbitrary datagrams to one side of an established in-memory pair while
/// the two also exchange real traffic, and checks the invariants after every step.
///
/// Input: a sequence of `[len u8][control u8][len bytes]` records. Control bit 0:
/// patch the connection ids and the checksum so the datagram reaches the state
/// machine; bit 1: deliver to B instead of A; bits 2–7: advance the clock by that
/// many milliseconds first. Never panics unless an invariant breaks (a bug).
#[doc(hidden)]
pub fn fuzz_connection(data: &[u8]) {
    let t0 = Instant::now();
    let cfg = Arc::new(Config {
        recv_buffer: 16 * 1024,
        send_buffer: 16 * 1024,
        ..Config::default()
    });
    let mut a = Connection::connect(cfg.clone(), t0, Sim::ADDR_B, 0xa1, u32::MAX - 3);
    let mut buf = Vec::new();
    let Some(t) = a.poll_transmit(t0, 1, &mut buf) else {
        return;
    };
    let Ok((syn, _)) = segment::SegmentRepr::parse(&buf[..t.size]) else {
        return;
    };
    let mut b = Connection::accept_syn(cfg, t0, Sim::ADDR_A, 0xb2, 7, &syn);
    let mut now = t0;
    exchange(&mut a, &mut b, now, &mut buf);
    let mut rest = data;
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
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
        exchange(&mut a, &mut b, now, &mut buf);
        a.check_invariants();
        b.check_invariants();
        while a.poll().is_some() {}
        while b.poll().is_some() {}
    }
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
        assert!(self.snd.wnd <= crate::config::MAX_WINDOW);
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

    #[test]
    fn patched_forgeries_reach_the_state_machine() {
        // A patched RST at a random sequence number, a patched SYN, garbage.
        let mut input = Vec::new();
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
