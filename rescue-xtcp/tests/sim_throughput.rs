//! Core-only throughput: two connections in memory, no sockets, no loss. Measures
//! the CPU cost of the sans-IO core per byte (the upper bound for the driver).
//! Run: `cargo test --release -p rescue-xtcp --test sim_throughput -- --ignored --nocapture`
//! (`XTCP_BYTES` sets the size, default 256 MiB).

use std::sync::Arc;
use std::time::Instant;

use rescue_xtcp::sim::Sim;
use rescue_xtcp::{Config, Endpoint};

fn pump(bytes: usize) -> (f64, u64) {
    let cfg = Arc::new(Config::default());
    let mut a = Endpoint::new(cfg.clone(), 1);
    let mut b = Endpoint::new(cfg, 2);
    b.set_listening(true);
    let t0 = Instant::now();
    let ha = a.connect(t0, Sim::ADDR_B).unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut hb = None;
    let chunk = vec![0x5a; 256 * 1024];
    let mut rbuf = vec![0; 256 * 1024];
    let (mut written, mut read) = (0usize, 0usize);
    let mut datagrams = 0u64;
    while read < bytes {
        let now = Instant::now();
        if let Some(h) = hb {
            if let Some(c) = a.connection(ha) {
                while written < bytes {
                    let n = (bytes - written).min(chunk.len());
                    match c.write(&chunk[..n]) {
                        Ok(w) => written += w,
                        Err(_) => break,
                    }
                }
            }
            let c = b.connection(h).unwrap();
            while let Ok(Some(n)) = c.read(&mut rbuf) {
                if n == 0 {
                    break;
                }
                read += n;
            }
        }
        while let Some(t) = a.poll_transmit(now, 10, &mut buf) {
            for d in buf[..t.size].chunks(t.segment_size.unwrap_or(t.size)) {
                b.handle(now, Sim::ADDR_A, d);
                datagrams += 1;
            }
        }
        while let Some(t) = b.poll_transmit(now, 10, &mut buf) {
            for d in buf[..t.size].chunks(t.segment_size.unwrap_or(t.size)) {
                a.handle(now, Sim::ADDR_B, d);
            }
        }
        if hb.is_none() {
            hb = b.accept();
        }
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        if b.poll_timeout().is_some_and(|t| t <= now) {
            b.handle_timeout(now);
        }
    }
    (t0.elapsed().as_secs_f64(), datagrams)
}

#[test]
#[ignore]
fn core_only_bulk_throughput() {
    let bytes: usize = std::env::var("XTCP_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 << 20);
    let (secs, datagrams) = pump(bytes);
    println!(
        "core-only: {} MiB in {:.3} s = {:.0} MiB/s ({} data datagrams)",
        bytes >> 20,
        secs,
        bytes as f64 / secs / (1 << 20) as f64,
        datagrams
    );
}

#[test]
fn core_only_small_transfer_completes() {
    let (_, datagrams) = pump(1 << 20);
    // Segments grow to the largest size path-MTU discovery probes for.
    let largest = usize::from(Config::default().max_mss) as u64;
    assert!(datagrams >= (1 << 20) / largest);
}
