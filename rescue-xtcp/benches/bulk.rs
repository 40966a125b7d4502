//! Bulk transfer on loopback: XTCP against kernel TCP and quinn, with and without TLS,
//! lossless and through the impairment proxy (20 ms RTT; 0.1 %, 1 % and 5 % random
//! loss, and 2 % loss in bursts of 4 on average), each XTCP controller under TLS.
//!
//! One client writes `XTCP_BENCH_BYTES` (default 1 GiB) in 256 KiB writes and closes;
//! the server reads until end of stream and checks the count. Every case runs
//! `XTCP_BENCH_REPEATS` times (default 3) in this process; the table shows medians of
//! throughput and of CPU time per GiB (user + system of the whole process, sender,
//! receiver and proxy together, from /proc/self/stat), and ratios against quinn and kernel
//! TCP measured in the same run.
//!
//! Environment: `XTCP_BENCH_BYTES` (bytes, or with a K/M/G suffix), `XTCP_BENCH_LOSSY_BYTES`
//! (transfers through the proxy; default 8 MiB, since a lossy 20 ms path runs at about a
//! MB/s; 0 skips the lossy links), `XTCP_BENCH_REPEATS`, `XTCP_BENCH_ONLY` (comma-separated case names).
//! `XTCP_BENCH_STATS` (set: the plain `xtcp` case prints its sender's `ConnectionStats`:
//! retransmits, RTOs, TLPs, congestion events), `XTCP_BENCH_NOPACE` (set: pacing off).
//! Quick run: `XTCP_BENCH_BYTES=64M XTCP_BENCH_LOSSY_BYTES=8M cargo bench -p rescue-xtcp --bench bulk`.

#[path = "support/cases.rs"]
mod cases;
#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{median, parse_size, Link, Outcome};

/// Default transfer size of the lossless cases.
const DEFAULT_BYTES: u64 = 1 << 30;
/// Default transfer size through the impairment proxy.
const DEFAULT_LOSSY_BYTES: u64 = 8 << 20;
/// Default number of runs per case.
const DEFAULT_REPEATS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run tiny.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env_size = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(if smoke { 1 << 20 } else { d })
    };
    let bytes = env_size("XTCP_BENCH_BYTES", DEFAULT_BYTES);
    let lossy_bytes = env_size("XTCP_BENCH_LOSSY_BYTES", DEFAULT_LOSSY_BYTES);
    let repeats = std::env::var("XTCP_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 1 } else { DEFAULT_REPEATS })
        .max(1);
    let only: Option<Vec<String>> = std::env::var("XTCP_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let links = [
        (Link::Loopback, bytes),
        (Link::Lossy(0.001), lossy_bytes),
        (Link::Lossy(0.01), lossy_bytes),
        (Link::Lossy(0.05), lossy_bytes),
        (Link::Bursty(0.02, 4.0), lossy_bytes),
    ];
    println!(
        "bulk: {} MiB lossless, {} MiB lossy, {} repeats, medians",
        bytes >> 20,
        lossy_bytes >> 20,
        repeats
    );
    for (link, size) in links {
        if size == 0 {
            continue;
        }
        let cases: Vec<cases::Case> = cases::ALL
            .iter()
            .copied()
            .filter(|c| c.runs_on(link))
            .filter(|c| {
                only.as_ref()
                    .is_none_or(|o| o.iter().any(|n| n == c.name()))
            })
            .collect();
        // Rounds of every case in turn, so load from elsewhere hits all cases alike.
        let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); cases.len()];
        for _ in 0..repeats {
            for (case, runs) in cases.iter().zip(runs.iter_mut()) {
                match rt.block_on(case.run(link, size)) {
                    Ok(o) => runs.push(o),
                    Err(e) => eprintln!("{} on {}: {e}", case.name(), link.name()),
                }
            }
        }
        let rows: Vec<(&'static str, Outcome)> = cases
            .iter()
            .zip(&runs)
            .filter_map(|(c, r)| median(r).map(|o| (c.name(), o)))
            .collect();
        print_table(link, size, &rows);
    }
    // Let the runtime wind down lingering drivers and proxies.
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn print_table(link: Link, size: u64, rows: &[(&'static str, Outcome)]) {
    let find = |n: &str| {
        rows.iter()
            .find(|(name, _)| *name == n)
            .map(|(_, o)| o.mbps())
    };
    let quinn = find("quinn");
    let quinn_bbr = find("quinn-bbr");
    let tcp_tls = find("tcp+tls");
    println!("\n{} ({} MiB)", link.name(), size >> 20);
    println!(
        "{:<17} {:>9} {:>10} {:>9} {:>10} {:>11}",
        "case", "MB/s", "CPU s/GiB", "vs quinn", "vs q-bbr", "vs tcp+tls"
    );
    for (name, o) in rows {
        let ratio = |b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2}x", o.mbps() / b));
        println!(
            "{:<17} {:>9.2} {:>10.2} {:>9} {:>10} {:>11}",
            name,
            o.mbps(),
            o.cpu_per_gib(),
            ratio(quinn),
            ratio(quinn_bbr),
            ratio(tcp_tls)
        );
    }
}
