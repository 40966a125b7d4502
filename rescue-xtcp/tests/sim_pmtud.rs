//! Path-MTU discovery (RFC 8899 DPLPMTUD) on the simulated link: the segment size
//! grows from the 1,200-byte base to what the path carries, a probe lost to a small
//! MTU is not taken as congestion, and a path whose MTU drops mid-connection (a
//! black hole for the larger segments) is survived by falling back.

use std::sync::Arc;
use std::time::Duration;

use rescue_xtcp::segment::HEADER_LEN;
use rescue_xtcp::sim::{LinkConfig, Sim};
use rescue_xtcp::{CloseReason, Config, ConnectionStats};

/// A one-way transfer of `bytes` over a link with datagram limit `mtu`; `hook`
/// may change the link mid-run. Returns the sender's counters.
fn transfer(mtu: usize, bytes: usize, mut hook: impl FnMut(&mut Sim)) -> ConnectionStats {
    let cfg = Arc::new(Config::default());
    let mut l = LinkConfig::default();
    // A 2.5 MB/s bottleneck whose queue never overflows: every loss here is an
    // MTU drop, none is congestion, and a transfer lasts enough round trips.
    l.mtu = mtu;
    l.bandwidth = Some(2_500_000);
    l.queue_bytes = 64 << 20;
    let mut sim = Sim::new(cfg.clone(), cfg, l.clone(), l, 5);
    let (ha, hb) = sim.connect(Duration::from_secs(10)).expect("handshake");
    let mut last = None;
    let out = sim.transfer_with((ha, hb), bytes, 0, Duration::from_secs(600), |s| {
        hook(s);
        if let Some(c) = s.a.connection(ha) {
            last = Some(c.stats().clone());
        }
    });
    assert_eq!(out.error, None);
    assert_eq!(out.received[0], bytes);
    assert!(out.finished[0]);
    assert_eq!(out.closed[0], Some(CloseReason::Normal));
    last.expect("stats")
}

#[test]
fn segments_grow_to_the_probe_ceiling_on_a_large_mtu_path() {
    let st = transfer(65_535, 1 << 20, |_| {});
    assert_eq!(st.segment_size, 1400);
    assert_eq!(st.mtu_probes_lost, 0);
    assert_eq!(st.congestion_events, 0);
}

#[test]
fn the_largest_size_a_1300_byte_path_takes_is_found_without_congestion_response() {
    let mtu = 1300;
    let st = transfer(mtu, 2 << 20, |_| {});
    // The sender's data segments carry no SACK blocks here: header + payload.
    let best = mtu - HEADER_LEN;
    assert!(
        st.segment_size <= best && st.segment_size + 32 >= best,
        "settled at {} for a best of {best}",
        st.segment_size
    );
    assert!(st.mtu_probes_lost >= 3, "{st:?}");
    // Lost probes are not congestion: the lossless link saw no reduction.
    assert_eq!(st.congestion_events, 0, "{st:?}");
}

#[test]
fn an_mtu_that_drops_mid_connection_is_survived_by_falling_back() {
    let mut dropped = false;
    let st = transfer(65_535, 4 << 20, |s| {
        if !dropped && s.elapsed() > Duration::from_millis(500) {
            dropped = true;
            s.link_mut(true).mtu = 1250;
            s.link_mut(false).mtu = 1250;
        }
    });
    assert!(dropped);
    assert!(st.mtu_fallbacks >= 1, "{st:?}");
    assert!(st.segment_size + HEADER_LEN <= 1250, "{st:?}");
}
