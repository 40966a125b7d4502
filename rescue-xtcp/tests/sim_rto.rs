//! Retransmission timeouts under random loss when a burst of segments arrives at
//! once (no bottleneck spreads them out), as through the benchmark's impairment
//! proxy, which flushes its queue in one go, read with `recvmmsg`.
//!
//! Issue 10 point 3: at 5 % loss the real-socket path took about three times the
//! RTOs of the simulator with a bottleneck. Two causes, both reproduced here:
//! a burst that arrives together is answered by one ACK (where one per two
//! segments was owed), so one lost ACK hid the whole burst; and a segment marked
//! lost that waited for window room disarmed the tail-loss probe, so when the ACKs
//! of what was in flight were lost nothing but the RTO could move the connection.

use std::sync::Arc;
use std::time::Duration;

use rescue_xtcp::sim::{LinkConfig, Sim};
use rescue_xtcp::{Config, CongestionKind, ConnectionStats};

/// One 2 MiB transfer at `loss` in both directions, 20 ms RTT, no bottleneck;
/// returns the sender's counters.
fn lossy_transfer(loss: f64, cc: CongestionKind, seed: u64) -> ConnectionStats {
    let mut c = Config::default();
    c.congestion = cc;
    let cfg = Arc::new(c);
    let mut l = LinkConfig::default();
    l.delay = Duration::from_millis(10);
    l.loss = loss;
    let mut sim = Sim::new(cfg.clone(), cfg, l.clone(), l, seed);
    let (ha, hb) = sim.connect(Duration::from_secs(30)).expect("handshake");
    let syn_rtos = sim.a.connection(ha).map_or(0, |c| c.stats().rto_count);
    let bytes = 2 << 20;
    let mut last = None;
    let out = sim.transfer_with((ha, hb), bytes, 0, Duration::from_secs(600), |s| {
        if let Some(c) = s.a.connection(ha) {
            last = Some(c.stats().clone());
        }
    });
    assert_eq!(out.error, None);
    assert_eq!(out.received[0], bytes);
    let mut st = last.expect("stats");
    st.rto_count -= syn_rtos;
    st
}

#[test]
fn bursts_under_five_percent_loss_recover_without_rtos() {
    let (mut rtos, mut tlps) = (0, 0);
    for seed in 1..=4 {
        let st = lossy_transfer(0.05, CongestionKind::Cubic, seed);
        rtos += st.rto_count;
        tlps += st.tlp_count;
    }
    // Before the fix: 14 RTOs and 91 TLPs over these 8 MiB; either half of the
    // fix alone (ACK copies, or probing while a lost segment waits) leaves 7;
    // with both, 2.
    assert!(rtos <= 4, "{rtos} RTOs, {tlps} TLPs");
}
