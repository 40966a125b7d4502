//! Blackouts, forged and malformed datagrams, replays: survived or cleanly ended.

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rescue_xtcp::segment::{Flags, SegmentRepr};
use rescue_xtcp::seq::Seq;
use rescue_xtcp::sim::{LinkConfig, Sim};
use rescue_xtcp::{CloseReason, Config, ReadError, State};

fn cfg(user_timeout: Duration) -> Arc<Config> {
    let mut c = Config::default();
    c.user_timeout = user_timeout;
    Arc::new(c)
}

fn slow_link(blackout: Option<(Duration, Duration)>) -> LinkConfig {
    let mut l = LinkConfig::default();
    l.delay = Duration::from_millis(20);
    l.bandwidth = Some(200_000);
    l.blackouts.extend(blackout);
    l
}

#[test]
fn blackout_shorter_than_user_timeout_is_survived() {
    for (seed, secs) in [(1, 5), (2, 12), (3, 18)] {
        let bo = Some((Duration::from_secs(1), Duration::from_secs(1 + secs)));
        let c = cfg(Duration::from_secs(30));
        let mut sim = Sim::new(c.clone(), c, slow_link(bo), slow_link(bo), seed);
        let hs = sim
            .connect(Duration::from_secs(1))
            .expect("handshake before the blackout");
        let out = sim.transfer(hs, 600_000, 100_000, Duration::from_secs(300));
        assert_eq!(out.error, None);
        assert_eq!(out.received, [600_000, 100_000], "blackout {secs}s");
        assert_eq!(
            out.closed,
            [Some(CloseReason::Normal); 2],
            "blackout {secs}s"
        );
        assert!(
            out.elapsed > Duration::from_secs(secs),
            "the blackout was crossed"
        );
        assert!(sim.stats.dropped[0] > 0 && sim.stats.dropped[1] > 0);
    }
}

#[test]
fn blackout_longer_than_user_timeout_ends_in_a_clean_timeout() {
    let bo = Some((Duration::from_secs(1), Duration::from_secs(10_000)));
    let c = cfg(Duration::from_secs(20));
    let mut sim = Sim::new(c.clone(), c, slow_link(bo), slow_link(bo), 9);
    let (ha, hb) = sim.connect(Duration::from_secs(1)).expect("handshake");
    let out = sim.transfer((ha, hb), 600_000, 0, Duration::from_secs(300));
    assert_eq!(out.error, None);
    assert!(out.received[0] < 600_000);
    assert_eq!(out.closed, [Some(CloseReason::TimedOut); 2]);
    // Both give up within the user timeout (plus one keepalive interval) of the
    // last thing they heard, which was just before the blackout began.
    assert!(
        out.elapsed <= Duration::from_secs(1 + 20 + 7),
        "{:?}",
        out.elapsed
    );
    let mut buf = [0u8; 64];
    // A had already read B's FIN (B sent nothing): end of stream stays readable.
    let a = sim.a.connection(ha).unwrap();
    assert_eq!(a.state(), State::Closed);
    assert_eq!(a.read(&mut buf), Ok(Some(0)));
    assert!(a.poll_timeout().is_none());
    // B never saw A's FIN: after the unread bytes, the timeout is reported.
    let b = sim.b.connection(hb).unwrap();
    assert_eq!(b.state(), State::Closed);
    while let Ok(Some(n)) = b.read(&mut buf) {
        assert!(n > 0);
    }
    assert_eq!(
        b.read(&mut buf),
        Err(ReadError::Closed(CloseReason::TimedOut))
    );
    assert!(b.poll_timeout().is_none());
}

/// One forged datagram aimed at connection ids the attacker observed, from the
/// peer's (spoofed) address, with sequence numbers outside the receive window.
fn forged(rng: &mut ChaCha8Rng, dst: u32, src: u32, rcv_nxt: Seq) -> Vec<u8> {
    let flags = [
        Flags::RST,
        Flags::SYN,
        Flags::ACK,
        Flags::ACK.with(Flags::FIN),
        Flags::RST.with(Flags::ACK),
        Flags::SYN.with(Flags::ACK),
    ];
    // 1 GiB away from RCV.NXT: outside any window of this crate.
    let off = rng.gen_range(1usize << 30..3usize << 30);
    let mut repr = SegmentRepr {
        flags: flags[rng.gen_range(0..flags.len())],
        dst_id: dst,
        src_id: src,
        seq: rcv_nxt.wrapping_add(off),
        ack: Seq(rng.gen()),
        window: rng.gen(),
        tsval: rng.gen(),
        tsecr: rng.gen(),
        ..SegmentRepr::default()
    };
    if rng.gen_bool(0.3) {
        repr.sack_count = 2;
        repr.sack[0] = (Seq(rng.gen()), Seq(rng.gen()));
        repr.sack[1] = (Seq(rng.gen()), Seq(rng.gen()));
    }
    let mut out = Vec::new();
    repr.emit_to_vec(&[0xee; 100][..rng.gen_range(0..100)], &mut out);
    out
}

#[test]
fn forged_malformed_and_replayed_datagrams_never_desynchronise() {
    let c = cfg(Duration::from_secs(30));
    let mut link = LinkConfig::default();
    link.loss = 0.02;
    // Stale copies arrive seconds later: replays of old segments.
    link.duplicate = 0.05;
    link.reorder = 0.02;
    link.reorder_delay = Duration::from_secs(3);
    link.corrupt = 0.05;
    let mut sim = Sim::new(c.clone(), c, link.clone(), link, 5);
    let (ha, hb) = sim.connect(Duration::from_secs(5)).expect("handshake");
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut counts = [0u64; 4];
    let out = sim.transfer_with((ha, hb), 600_000, 600_000, Duration::from_secs(300), |s| {
        let now = s.now;
        let (a_id, b_id, a_nxt, b_nxt, open) = {
            let a = s.a.connection(ha).unwrap();
            let (a_id, a_nxt, open) = (a.local_id(), a.rcv_nxt(), a.state() != State::Closed);
            let b = s.b.connection(hb).unwrap();
            (
                a_id,
                b.local_id(),
                a_nxt,
                b.rcv_nxt(),
                open && b.state() != State::Closed,
            )
        };
        if !open {
            return;
        }
        for (kind, count) in counts.iter_mut().enumerate() {
            *count += 1;
            match kind {
                0 => {
                    let d = forged(&mut rng, b_id, a_id, b_nxt);
                    s.b.handle(now, Sim::ADDR_A, &d);
                }
                1 => {
                    let d = forged(&mut rng, a_id, b_id, a_nxt);
                    s.a.handle(now, Sim::ADDR_B, &d);
                }
                2 => {
                    let len = rng.gen_range(0..200);
                    let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    s.a.handle(now, Sim::ADDR_B, &junk);
                }
                _ => {
                    // Right destination id, wrong source id.
                    let d = forged(&mut rng, b_id, a_id ^ 1, b_nxt);
                    s.b.handle(now, Sim::ADDR_A, &d);
                }
            }
        }
    });
    assert_eq!(out.error, None);
    assert_eq!(out.received, [600_000, 600_000]);
    assert_eq!(out.closed, [Some(CloseReason::Normal); 2]);
    assert!(counts[0] > 100, "{counts:?}");
    let (ea, eb) = (sim.a.stats().clone(), sim.b.stats().clone());
    // Every junk datagram is counted as malformed (random bytes never carry a
    // valid checksum), plus the link's corrupted datagrams.
    assert!(ea.malformed >= counts[2], "{ea:?} {counts:?}");
    assert!(eb.malformed > 0, "corrupted datagrams are counted: {eb:?}");
    let a = sim.a.connection(ha).unwrap().stats().clone();
    let b = sim.b.connection(hb).unwrap().stats().clone();
    // Forged segments are dropped as out of window (or as stale duplicates).
    assert!(
        b.out_of_window + b.duplicates >= counts[0] + counts[3],
        "{b:?}"
    );
    assert!(a.out_of_window + a.duplicates >= counts[1], "{a:?}");
}
