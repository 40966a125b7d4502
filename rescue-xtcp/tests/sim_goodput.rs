//! Goodput matrix on the simulated link (loss × RTT), a deterministic snapshot of
//! performance under loss. Ignored by default (it moves ~100 MB through the
//! simulator); run it with
//! `cargo test --release -p rescue-xtcp --test sim_goodput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Duration;

use rescue_xtcp::sim::{LinkConfig, Sim};
use rescue_xtcp::{CloseReason, Config, CongestionKind};

/// Bottleneck: 100 Mbit/s with a queue of 256 KiB.
const RATE: u64 = 12_500_000;

fn goodput(loss: f64, rtt_ms: u64, cc: CongestionKind, bytes: usize, seed: u64) -> f64 {
    let mut c = Config::default();
    c.congestion = cc;
    let cfg = Arc::new(c);
    let mut l = LinkConfig::default();
    l.delay = Duration::from_millis(rtt_ms / 2);
    l.loss = loss;
    l.bandwidth = Some(RATE);
    l.queue_bytes = 256 * 1024;
    let mut back = l.clone();
    back.bandwidth = None;
    let mut sim = Sim::new(cfg.clone(), cfg, l, back, seed);
    let hs = sim.connect(Duration::from_secs(30)).expect("handshake");
    let out = sim.transfer(hs, bytes, 0, Duration::from_secs(3600));
    assert_eq!(out.error, None);
    assert_eq!(out.received[0], bytes);
    assert_eq!(out.closed[0], Some(CloseReason::Normal));
    bytes as f64 / out.completed.expect("completed").as_secs_f64()
}

#[test]
#[ignore]
fn goodput_matrix() {
    let bytes = 16 << 20;
    println!("goodput MB/s, 100 Mbit/s bottleneck, 16 MiB, handshake included, TIME-WAIT not");
    println!(
        "{:>8} {:>6} {:>8} {:>8} {:>8}",
        "loss", "rtt", "cubic", "newreno", "bbr"
    );
    for rtt in [20u64, 100] {
        for loss in [0.0, 0.001, 0.01, 0.02, 0.05] {
            let c = goodput(loss, rtt, CongestionKind::Cubic, bytes, 1) / 1e6;
            let n = goodput(loss, rtt, CongestionKind::NewReno, bytes, 1) / 1e6;
            let b = goodput(loss, rtt, CongestionKind::Bbr, bytes, 1) / 1e6;
            println!("{loss:>8} {rtt:>6} {c:>8.2} {n:>8.2} {b:>8.2}");
        }
    }
}

#[test]
fn one_percent_loss_reaches_the_mathis_rate() {
    // Loss-based congestion control cannot beat the Mathis et al. bound
    // 1.22 × MSS / (RTT × √p) (≈ 730 kB/s at 1 %, 20 ms, MSS 1200); a sound
    // recovery stays within a factor two of it.
    let g = goodput(0.01, 20, CongestionKind::Cubic, 2 << 20, 3);
    let mathis = 1.22 * 1200.0 / (0.020 * 0.01f64.sqrt());
    assert!(g > mathis / 2.0, "{g} vs {mathis}");
}

/// The sender's recovery statistics for one lossy transfer (`XTCP_LOSS`, default
/// 1 %; 20 ms RTT; 100 Mbit/s, or unlimited with `XTCP_UNLIMITED` set; `XTCP_CC` = bbr, bbr-lt, cubic or newreno picks the controller (default: the
/// default controller), `XTCP_MAX_MSS` the path-MTU probe ceiling, as through the
/// benchmark's proxy; `XTCP_JITTER_US` adds jitter, `XTCP_BATCH_US` delivers arrivals in
/// bursts of that period, as the proxy and `recvmmsg` do): congestion events
/// against losses, RTOs and TLPs.
/// A sound SACK recovery repairs almost every loss without an RTO and reduces the
/// window about once per loss burst.
#[test]
#[ignore]
fn recovery_statistics() {
    let loss: f64 = std::env::var("XTCP_LOSS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.01);
    let mut c = Config::default();
    match std::env::var("XTCP_CC").as_deref() {
        Ok("bbr") => c.congestion = CongestionKind::Bbr,
        Ok("bbr-lt") => c.congestion = CongestionKind::BbrLossTolerant,
        Ok("newreno") => c.congestion = CongestionKind::NewReno,
        Ok("cubic") => c.congestion = CongestionKind::Cubic,
        _ => {}
    }
    if let Some(m) = std::env::var("XTCP_MAX_MSS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.max_mss = m;
    }
    let cfg = Arc::new(c);
    let mut l = LinkConfig::default();
    l.delay = Duration::from_millis(10);
    l.jitter = Duration::from_micros(
        std::env::var("XTCP_JITTER_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    l.loss = loss;
    l.batch = Duration::from_micros(env_u64("XTCP_BATCH_US", 0));
    let mut back = l.clone();
    if std::env::var("XTCP_UNLIMITED").is_err() {
        l.bandwidth = Some(RATE);
        l.queue_bytes = 256 * 1024;
    }
    back.bandwidth = None;
    let mut sim = Sim::new(cfg.clone(), cfg, l, back, 7);
    let (ha, hb) = sim.connect(Duration::from_secs(30)).expect("handshake");
    let bytes = 16 << 20;
    let mut last = None;
    let mut dups = 0;
    let mut rstats = None;
    let out = sim.transfer_with((ha, hb), bytes, 0, Duration::from_secs(3600), |s| {
        if let Some(c) = s.a.connection(ha) {
            last = Some(c.stats().clone());
        }
        if let Some(c) = s.b.connection(hb) {
            dups = c.stats().duplicates;
            rstats = Some(c.stats().clone());
        }
    });
    assert_eq!(out.received[0], bytes);
    let st = last.expect("stats");
    if std::env::var("XTCP_RSTATS").is_ok() {
        eprintln!("receiver {rstats:?}\nsender {st:?}");
    }
    let secs = out.completed.expect("completed").as_secs_f64();
    println!(
        "loss {loss}: {:.2} MB/s, dropped {} of {} datagrams, congestion events {}, rto {}, tlp {}, fast retransmits {}, retransmits {}, duplicates at the receiver {dups}",
        bytes as f64 / secs / 1e6,
        sim.stats.dropped[0],
        sim.stats.sent[0],
        st.congestion_events,
        st.rto_count,
        st.tlp_count,
        st.fast_retransmits,
        st.retransmits
    );
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}
