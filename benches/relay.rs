//! Relay throughput and frame codec rates (criterion).
//!
//! `relay_throughput`: one session's bytes per second in one direction over loopback TCP,
//! through four relays that sit between the same blocking sender and receiver threads:
//! - `direct`: no relay, the sender's socket is connected to the receiver (the ceiling);
//! - `splice`: a kernel relay, `splice(2)` through a pipe in a thread per direction;
//! - `tokio_copy_256k`: `tokio::io::copy_bidirectional_with_sizes` with 256 KiB buffers;
//! - `relay_core`: `rescue::relay::relay` (cut-through DATA forwarding, 256 KiB buffers).
//!
//! The stream is maximal DATA frames (64 KiB payloads), written in 256 KiB chunks, so the
//! relay core sees exactly what a gateway sees. `e2e_tls`: an end-to-end TLS session
//! (applet to console) through a real `Gateway` (outer TLS hops, relay core) against the
//! same inner TLS over a direct loopback socket. `codec`: `GatewayCodec` decode and encode
//! of maximal DATA frames. After criterion, an interleaved comparison (every round runs
//! every path in turn, so load changes on a shared machine hit all alike) prints medians
//! and ratios. Run: `cargo bench --bench relay` (about two minutes); the interleaved part
//! alone: `cargo bench --bench relay -- interleaved`.

// The splice baseline needs raw syscalls (pipe2, fcntl, splice); nothing else here does.
#![allow(unsafe_code)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use rescue::relay::{relay, RelayLimits};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::Guid;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

/// Bytes per measured iteration: long enough (≈ 50 ms at 10 Gbit/s) to swamp the
/// per-iteration signalling.
const ITER_BYTES: usize = 64 * FRAMES_PER_PATTERN * FRAME;
/// One maximal DATA frame on the wire.
const FRAME: usize = 4 + 65_536;
/// Frames in the sender's repeating pattern.
const FRAMES_PER_PATTERN: usize = 16;
/// Sender write and receiver read size.
const IO_CHUNK: usize = 256 * 1024;
/// The tokio baseline's buffers, and the pipe size of the splice baseline.
const BASELINE_BUFFER: usize = 256 * 1024;

/// A maximal-DATA-frame stream pattern.
fn pattern() -> Vec<u8> {
    let mut v = Vec::with_capacity(FRAMES_PER_PATTERN * FRAME);
    for i in 0..FRAMES_PER_PATTERN {
        v.extend_from_slice(&[0x08, 0x01, 0x00, 0x00]);
        v.extend((0..65_536u32).map(|j| (j as u8) ^ (i as u8)));
    }
    v
}

/// A sender and a receiver thread around some relay; `run` moves bytes through it.
struct Path {
    to_sender: mpsc::Sender<usize>,
    to_receiver: mpsc::Sender<usize>,
    done: mpsc::Receiver<()>,
    /// CPU clocks of the relay's threads (none for direct TCP).
    relay_threads: Vec<libc::clockid_t>,
    _keep: Vec<Box<dyn std::any::Any>>,
}

/// The CPU clock of the calling thread, readable from other threads.
fn this_thread_clock() -> libc::clockid_t {
    let mut id: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid; the out pointer is a local.
    unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
    id
}

/// CPU time consumed so far on `clock`.
fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the out pointer is a local; an invalid clock leaves it at zero.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Path {
    /// Starts the threads: the sender writes into `tx`, the receiver reads from `rx`.
    fn new(mut tx: TcpStream, mut rx: TcpStream, keep: Vec<Box<dyn std::any::Any>>) -> Self {
        let (to_sender, cmd_s) = mpsc::channel::<usize>();
        let (to_receiver, cmd_r) = mpsc::channel::<usize>();
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let pattern = pattern();
            while let Ok(total) = cmd_s.recv() {
                let mut sent = 0;
                while sent < total {
                    let at = sent % pattern.len();
                    let n = IO_CHUNK.min(pattern.len() - at).min(total - sent);
                    tx.write_all(&pattern[at..at + n]).expect("send");
                    sent += n;
                }
            }
        });
        thread::spawn(move || {
            let mut buf = vec![0; IO_CHUNK];
            while let Ok(total) = cmd_r.recv() {
                let mut got = 0;
                while got < total {
                    let n = rx
                        .read(&mut buf[..IO_CHUNK.min(total - got)])
                        .expect("recv");
                    assert!(n > 0, "path closed early");
                    got += n;
                }
                if done_tx.send(()).is_err() {
                    return;
                }
            }
        });
        Path {
            to_sender,
            to_receiver,
            done,
            relay_threads: Vec::new(),
            _keep: keep,
        }
    }

    fn with_relay_threads(mut self, clocks: Vec<libc::clockid_t>) -> Self {
        self.relay_threads = clocks;
        self
    }

    /// CPU time used by the relay's threads so far.
    fn relay_cpu(&self) -> Duration {
        self.relay_threads.iter().map(|c| cpu_time(*c)).sum()
    }

    /// Sends `iters` × [`ITER_BYTES`] and returns the time until all arrived.
    fn run(&self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.to_receiver.send(ITER_BYTES).expect("receiver");
            self.to_sender.send(ITER_BYTES).expect("sender");
            self.done.recv().expect("done");
        }
        start.elapsed()
    }
}

/// A connected pair of blocking loopback sockets.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (s, _) = l.accept().expect("accept");
    c.set_nodelay(true).expect("nodelay");
    s.set_nodelay(true).expect("nodelay");
    (c, s)
}

fn direct() -> Path {
    let (tx, rx) = tcp_pair();
    Path::new(tx, rx, Vec::new())
}

/// Runs `f(hop_a, hop_b)` on a current-thread runtime in its own thread.
fn tokio_relay<F, Fut>(f: F) -> Path
where
    F: FnOnce(tokio::net::TcpStream, tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, hop_a) = tcp_pair();
    let (hop_b, rx) = tcp_pair();
    let (clock_tx, clock) = mpsc::channel();
    thread::spawn(move || {
        let _ = clock_tx.send(this_thread_clock());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            hop_a.set_nonblocking(true).expect("nonblocking");
            hop_b.set_nonblocking(true).expect("nonblocking");
            let a = tokio::net::TcpStream::from_std(hop_a).expect("tokio socket");
            let b = tokio::net::TcpStream::from_std(hop_b).expect("tokio socket");
            f(a, b).await;
        });
    });
    let clock = clock.recv().expect("relay thread clock");
    Path::new(tx, rx, Vec::new()).with_relay_threads(vec![clock])
}

fn tokio_copy() -> Path {
    tokio_relay(|mut a, mut b| async move {
        let _ = tokio::io::copy_bidirectional_with_sizes(
            &mut a,
            &mut b,
            BASELINE_BUFFER,
            BASELINE_BUFFER,
        )
        .await;
    })
}

fn relay_core() -> Path {
    tokio_relay(|a, b| async move {
        let limits = RelayLimits::default();
        let guid = Guid::from_bytes([1; 16]);
        let _ = relay(a, b, guid, &limits, CancellationToken::new()).await;
    })
}

/// Moves bytes from `from` to `to` with splice(2) through a pipe until EOF or error.
fn splice_loop(from: RawFd, to: RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let [r, w] = fds;
    // SAFETY: fcntl on a descriptor we own; failure leaves the default size.
    unsafe { libc::fcntl(w, libc::F_SETPIPE_SZ, BASELINE_BUFFER as libc::c_int) };
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE;
    let null = std::ptr::null_mut();
    'outer: loop {
        // SAFETY: valid descriptors, null offsets (both are a socket or a pipe).
        let n = unsafe { libc::splice(from, null, w, null, BASELINE_BUFFER, flags) };
        if n <= 0 {
            break;
        }
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe { libc::splice(r, null, to, null, left, flags) };
            if m <= 0 {
                break 'outer;
            }
            left -= m as usize;
        }
    }
    // SAFETY: closing the two pipe descriptors we created.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
}

fn splice() -> Path {
    let (tx, hop_a) = tcp_pair();
    let (hop_b, rx) = tcp_pair();
    let (fa, fb) = (hop_a.as_raw_fd(), hop_b.as_raw_fd());
    let (clock_tx, clock) = mpsc::channel();
    for (from, to) in [(fa, fb), (fb, fa)] {
        let clock_tx = clock_tx.clone();
        thread::spawn(move || {
            let _ = clock_tx.send(this_thread_clock());
            splice_loop(from, to)
        });
    }
    let clocks = vec![clock.recv().expect("clock"), clock.recv().expect("clock")];
    Path::new(tx, rx, vec![Box::new(hop_a), Box::new(hop_b)]).with_relay_threads(clocks)
}

/// A named way to build a path.
type MakePath = (&'static str, fn() -> Path);

/// The four paths, ceiling first, the relay core last.
const PATHS: [MakePath; 4] = [
    ("direct", direct),
    ("splice", splice),
    ("tokio_copy_256k", tokio_copy),
    ("relay_core", relay_core),
];

/// Rounds of the interleaved comparison.
const ROUNDS: usize = 15;

/// Interleaved comparison: every round moves [`ITER_BYTES`] through each path in turn,
/// so that load changes on a shared machine hit all paths alike; prints the median
/// rate of each and the relay core's ratios.
fn interleaved() {
    let paths: Vec<(&str, Path)> = PATHS.iter().map(|(n, make)| (*n, make())).collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    // Per-round ratios of the relay core to each path: drift between rounds cancels.
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        for (i, (_, p)) in paths.iter().enumerate() {
            let before = p.relay_cpu();
            let rate = ITER_BYTES as f64 / p.run(1).as_secs_f64();
            let used = (p.relay_cpu() - before).as_secs_f64();
            rates[i].push(rate);
            cpu[i].push(used * 1e6 / (ITER_BYTES >> 20) as f64);
            round.push(rate);
        }
        for (i, r) in round.iter().enumerate() {
            ratios[i].push(round[3] / r);
        }
    }
    println!(
        "interleaved, {ROUNDS} rounds of {} MiB each, medians:",
        ITER_BYTES >> 20
    );
    println!("  path             Gbit/s  relay CPU µs/MiB  relay_core/path");
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "  {name:<16} {:>6.2}  {:>16.0}  {:>15.2}",
            median(&mut rates[i]) * 8.0 / 1e9,
            median(&mut cpu[i]),
            median(&mut ratios[i])
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_throughput");
    g.throughput(Throughput::Bytes(ITER_BYTES as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, make) in PATHS {
        let path = make();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| path.run(iters))
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let stream = Bytes::from(pattern());
    let mut g = c.benchmark_group("codec");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(2));
    // Decoding splits frames off the buffer without copying: count frames, not bytes.
    g.throughput(Throughput::Elements(FRAMES_PER_PATTERN as u64));
    g.bench_function("decode_data_64k", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut src| {
                let mut codec = GatewayCodec::new();
                let mut n = 0;
                while let Some(f) = codec.decode(&mut src).expect("valid") {
                    n += f.payload().len();
                }
                n
            },
            BatchSize::LargeInput,
        )
    });
    let payload = Bytes::from(vec![0x5a; 65_536]);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("encode_data_64k", |b| {
        let mut dst = BytesMut::with_capacity(stream.len());
        b.iter(|| {
            dst.clear();
            let mut codec = GatewayCodec::new();
            for _ in 0..FRAMES_PER_PATTERN {
                codec.encode(payload.clone(), &mut dst).expect("fits");
            }
            dst.len()
        })
    });
    g.finish();
}

/// Bytes per measured iteration of the end-to-end TLS comparison.
const E2E_BYTES: usize = 32 << 20;

/// An end-to-end TLS session through a real gateway (outer TLS hops, relay core) and the
/// same inner TLS (same configs, suites and certificates) over a direct loopback socket.
struct E2e {
    rt: tokio::runtime::Runtime,
    via_gateway: (rescue::AppletSession, rescue::ConsoleSession),
    direct: (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    ),
    _gateway: rescue::Gateway,
}

impl E2e {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (gateway, via_gateway, direct) = rt.block_on(e2e_setup());
        E2e {
            rt,
            via_gateway,
            direct,
            _gateway: gateway,
        }
    }

    fn run_gateway(&mut self, iters: u64) -> Duration {
        let (a, c) = &mut self.via_gateway;
        self.rt.block_on(pump(a, c, iters))
    }

    fn run_direct(&mut self, iters: u64) -> Duration {
        let (a, c) = &mut self.direct;
        self.rt.block_on(pump(a, c, iters))
    }
}

async fn e2e_setup() -> (
    rescue::Gateway,
    (rescue::AppletSession, rescue::ConsoleSession),
    (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    ),
) {
    use rescue::portal::{Portal, SessionRequest};
    use rescue_crypto::pki::AccountId;
    use rescue_crypto::ticket::TicketSigner;

    let account = AccountId(1);
    let pki = rescue::devpki::DevPki::generate(["127.0.0.1"], account, "bench").expect("dev pki");
    let config = rescue::GatewayConfig::new(
        pki.gateway.clone(),
        [(account, pki.account_ca.cert().clone())],
        pki.verify_key(),
    );
    let gateway = rescue::Gateway::bind("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("gateway");
    let addr = gateway.local_addr().to_string();
    let signer = TicketSigner::from_pkcs8(pki.signer.pkcs8()).expect("signer");
    let portal = Portal::new(signer, vec![addr.clone()], pki.gateway_ca.pin());
    let policy = rescue_proto::Policy::default();
    let request = SessionRequest::new(account, pki.account_ca.pin(), policy);
    let issued = portal.issue(&request).expect("issue");
    let applet = rescue::Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &pki.verify_key(),
    )
    .expect("applet");
    let registration = applet.register().await.expect("register");
    let console = rescue::Console::connect(
        &addr,
        pki.gateway_ca.pin(),
        pki.console.clone(),
        rescue::PeerTimeouts::default(),
    )
    .await
    .expect("console");
    let (a, c) = tokio::join!(
        registration.wait_paired(),
        console.claim(issued.claim_key())
    );
    let via_gateway = (a.expect("applet paired"), c.expect("console claimed"));

    let client = rescue_crypto::tls::inner_client_config_account(pki.account_ca.pin())
        .expect("client config");
    let server = rescue_crypto::tls::inner_server_config(&pki.console).expect("server config");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tcp_c, tcp_s) = tokio::join!(
        tokio::net::TcpStream::connect(l.local_addr().expect("addr")),
        l.accept()
    );
    let (tls_c, tls_s) = tokio::join!(
        tokio_rustls::TlsConnector::from(client)
            .connect(rescue_crypto::tls::server_name(), tcp_c.expect("connect")),
        tokio_rustls::TlsAcceptor::from(server).accept(tcp_s.expect("accept").0)
    );
    let direct = (tls_c.expect("tls client"), tls_s.expect("tls server"));
    (gateway, via_gateway, direct)
}

/// Writes `iters` × [`E2E_BYTES`] into `w` while reading them from `r`.
async fn pump<W, R>(w: &mut W, r: &mut R, iters: u64) -> Duration
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chunk = vec![0x42u8; IO_CHUNK];
    let total = E2E_BYTES * iters as usize;
    let start = Instant::now();
    let send = async {
        let mut sent = 0;
        while sent < total {
            let n = IO_CHUNK.min(total - sent);
            w.write_all(&chunk[..n]).await.expect("send");
            sent += n;
        }
        w.flush().await.expect("flush");
    };
    let recv = async {
        let mut buf = vec![0u8; IO_CHUNK];
        let mut got = 0;
        while got < total {
            let n = r.read(&mut buf).await.expect("recv");
            assert!(n > 0, "stream ended early");
            got += n;
        }
    };
    tokio::join!(send, recv);
    start.elapsed()
}

fn e2e_tls(c: &mut Criterion) {
    let mut e2e = E2e::new();
    let mut g = c.benchmark_group("e2e_tls");
    g.throughput(Throughput::Bytes(E2E_BYTES as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("direct", |b| b.iter_custom(|iters| e2e.run_direct(iters)));
    g.bench_function("through_gateway", |b| {
        b.iter_custom(|iters| e2e.run_gateway(iters))
    });
    g.finish();
}

/// Interleaved rounds of the end-to-end TLS session, direct and through the gateway.
fn e2e_interleaved() {
    let mut e2e = E2e::new();
    let (mut direct, mut gateway, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let d = E2E_BYTES as f64 / e2e.run_direct(1).as_secs_f64();
        let g = E2E_BYTES as f64 / e2e.run_gateway(1).as_secs_f64();
        direct.push(d);
        gateway.push(g);
        ratio.push(g / d);
    }
    println!(
        "end-to-end TLS, {ROUNDS} rounds of {} MiB each, medians:",
        E2E_BYTES >> 20
    );
    println!(
        "  direct           {:>6.2} Gbit/s",
        median(&mut direct) * 8.0 / 1e9
    );
    println!(
        "  through_gateway  {:>6.2} Gbit/s",
        median(&mut gateway) * 8.0 / 1e9
    );
    println!("  through_gateway/direct {:.2}", median(&mut ratio));
}

criterion_group!(benches, throughput, e2e_tls, codec);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // With a name filter (`cargo bench --bench relay -- codec`) only "interleaved" runs it.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| "interleaved".contains(f.as_str())) {
        interleaved();
        e2e_interleaved();
    }
}
