//! Property tests over the simulated link: every byte once and in order, clean close.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rescue_xtcp::sim::{LinkConfig, Sim};
use rescue_xtcp::{CloseReason, Config, CongestionKind};

/// Virtual-time bound of one transfer: generous, since 30 % loss with RTO backoff
/// is slow, but finite so a stall fails the test.
const LIMIT: Duration = Duration::from_secs(900);

fn config(mss: u16, recv_buffer: usize, cc: CongestionKind) -> Arc<Config> {
    let mut c = Config::default();
    c.mss = mss;
    c.recv_buffer = recv_buffer;
    c.send_buffer = 64 * 1024;
    c.congestion = cc;
    // Long enough that a run of losses at 30 % does not end the test early.
    c.user_timeout = Duration::from_secs(120);
    Arc::new(c)
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    loss: f64,
    dup: f64,
    reorder: f64,
    corrupt: f64,
    delay_ms: u64,
    jitter_ms: u64,
    mss: u16,
    recv_buffer: usize,
    cc: CongestionKind,
    a_to_b: usize,
    b_to_a: usize,
    bandwidth: Option<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        (0.0..0.3f64, 0.0..0.1f64, 0.0..0.3f64, 0.0..0.05f64),
        (1u64..150, 0u64..20),
        (200u16..1400, 2_000usize..200_000),
        prop_oneof![
            Just(CongestionKind::Cubic),
            Just(CongestionKind::NewReno),
            Just(CongestionKind::Bbr),
            Just(CongestionKind::BbrLossTolerant)
        ],
        (0usize..60_000, 0usize..20_000),
        prop_oneof![Just(None), (50_000u64..2_000_000).prop_map(Some)],
    )
        .prop_map(
            |(
                seed,
                (loss, dup, reorder, corrupt),
                (delay_ms, jitter_ms),
                (mss, rb),
                cc,
                (ab, ba),
                bw,
            )| Case {
                seed,
                loss,
                dup,
                reorder,
                corrupt,
                delay_ms,
                jitter_ms,
                mss,
                recv_buffer: rb,
                cc,
                a_to_b: ab,
                b_to_a: ba,
                bandwidth: bw,
            },
        )
}

fn link(c: &Case) -> LinkConfig {
    let mut l = LinkConfig::default();
    l.loss = c.loss;
    l.duplicate = c.dup;
    l.reorder = c.reorder;
    l.reorder_delay = Duration::from_millis(c.delay_ms);
    l.corrupt = c.corrupt;
    l.delay = Duration::from_millis(c.delay_ms);
    l.jitter = Duration::from_millis(c.jitter_ms);
    l.bandwidth = c.bandwidth;
    l
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let cfg = config(c.mss, c.recv_buffer, c.cc);
    let mut sim = Sim::new(cfg.clone(), cfg, link(c), link(c), c.seed);
    // At 30 % loss an unlucky SYN needs many backed-off retries (max RTO 10 s).
    let hs = sim.connect(Duration::from_secs(300));
    prop_assert!(hs.is_some(), "no handshake: {:?}", sim.stats);
    let out = sim.transfer(hs.unwrap(), c.a_to_b, c.b_to_a, LIMIT);
    prop_assert!(!sim.livelock, "virtual time stopped advancing");
    prop_assert_eq!(&out.error, &None, "{:?}", out);
    prop_assert_eq!(
        out.received,
        [c.a_to_b, c.b_to_a],
        "{:?} {:?}",
        out,
        sim.stats
    );
    prop_assert_eq!(out.finished, [true, true]);
    prop_assert_eq!(out.closed, [Some(CloseReason::Normal); 2], "{:?}", out);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_arrives_once_in_order_and_both_close_cleanly(c in case()) {
        run(&c)?;
    }
}

#[test]
fn thirty_percent_loss_both_ways_still_delivers() {
    let c = Case {
        seed: 3,
        loss: 0.3,
        dup: 0.05,
        reorder: 0.1,
        corrupt: 0.02,
        delay_ms: 20,
        jitter_ms: 5,
        mss: 1200,
        recv_buffer: 64 * 1024,
        cc: CongestionKind::Cubic,
        a_to_b: 100_000,
        b_to_a: 30_000,
        bandwidth: None,
    };
    run(&c).unwrap();
}

#[test]
fn simultaneous_open_then_transfer() {
    for seed in 0..8 {
        let cfg = config(1200, 64 * 1024, CongestionKind::Cubic);
        let mut l = LinkConfig::default();
        l.loss = 0.1;
        let mut sim = Sim::new(cfg.clone(), cfg, l.clone(), l, seed);
        let hs = sim
            .simultaneous_open(Duration::from_secs(60))
            .expect("simultaneous open");
        let out = sim.transfer(hs, 40_000, 40_000, LIMIT);
        assert_eq!(out.error, None);
        assert_eq!(out.received, [40_000, 40_000], "seed {seed}");
        assert_eq!(out.closed, [Some(CloseReason::Normal); 2], "seed {seed}");
        assert_eq!(sim.a.stats().incoming + sim.b.stats().incoming, 0);
    }
}
