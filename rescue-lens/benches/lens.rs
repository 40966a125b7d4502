//! Lens measurements for docs/PERFORMANCE.md (`cargo bench -p rescue-lens --bench lens`):
//!
//! 1. frame latency (capture timestamp to delivery) through the relay on loopback at
//!    30 fps, 1 and 8 subscribers, and the relay's CPU (its own runtime thread, from
//!    /proc/thread-self/schedstat) per subscriber;
//! 2. the same with one of the 8 subscribers stuck (never reads);
//! 3. memory per idle meeting (RSS over 1000 meetings) and the per-subscriber bound;
//! 4. the session's camera stream (latest-frame rule) against plain in-order delivery of
//!    the same frames on an application channel, over XTCP through the impairment proxy
//!    at 1 % loss and 20 ms RTT: latency p50/p99 and frames dropped.
//!
//! Synthetic frames: a 40 KB keyframe every 30 frames, deltas 3–8 KB (about 1.2 Mbit/s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rescue::session::consent::{Consent, ConsentFuture, ConsentRequest};
use rescue::session::{
    ConsentAnswer, ConsentConfig, MediaFrame, PathKind, Role, Session, SessionConfig, SessionEvent,
};
use rescue_crypto::ticket::TicketSigner;
use rescue_lens::client::{generate_key, Publisher, Subscriber};
use rescue_lens::wire::{read_msg, write_msg, MsgType};
use rescue_lens::{Lens, LensConfig, LensRole};
use rescue_proto::{Permission, PermissionSet, Policy};
use rescue_xtcp::tokio::impair::{ImpairConfig, ImpairProxy, Impairment};
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpSocket};

const FPS_TICK: Duration = Duration::from_micros(33_333);

/// Frame size scale: 1 is about 1.2 Mbit/s; 8 is about 10 Mbit/s, past what a lossy
/// path carries (Mathis: 1200-byte segments, 20 ms RTT, 1 % loss: about 6 Mbit/s).
static SCALE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

fn synthetic(i: usize) -> (bool, Bytes) {
    let key = i.is_multiple_of(30);
    let scale = SCALE.load(std::sync::atomic::Ordering::Relaxed);
    let len = scale
        * if key {
            40_000
        } else {
            3_000 + (i * 977) % 5_000
        };
    (key, Bytes::from(vec![(i % 251) as u8; len]))
}

fn pct(v: &mut [u64], p: usize) -> f64 {
    v.sort_unstable();
    v.get((v.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or(0) as f64
        / 1000.0
}

/// CPU nanoseconds of the calling thread.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// A relay on its own single-threaded runtime thread; returns its address and a way to
/// read that thread's CPU time.
fn relay_thread(
    lens: Lens,
) -> (
    String,
    std::sync::mpsc::Sender<std::sync::mpsc::Sender<u64>>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (cpu_tx, cpu_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<u64>>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap().to_string()).unwrap();
            let serve = tokio::spawn(async move { lens.serve_relay(l).await });
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                while let Ok(reply) = cpu_rx.try_recv() {
                    let _ = reply.send(thread_cpu_ns());
                }
                if serve.is_finished() {
                    return;
                }
            }
        });
    });
    (addr_rx.recv().unwrap(), cpu_tx)
}

fn relay_cpu(q: &std::sync::mpsc::Sender<std::sync::mpsc::Sender<u64>>) -> u64 {
    let (tx, rx) = std::sync::mpsc::channel();
    q.send(tx).unwrap();
    rx.recv().unwrap()
}

struct RelayRun {
    p50: f64,
    p99: f64,
    cpu_ms: f64,
    received: usize,
}

async fn relay_run(subs: usize, stuck: usize, frames: usize) -> RelayRun {
    let lens = Lens::new(LensConfig::default(), TicketSigner::generate().unwrap());
    let (addr, cpu) = relay_thread(lens.clone());
    let m = lens.create("bench").unwrap();
    let key = generate_key(m, 1);
    let t0 = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..subs {
        let (_, tok) = lens.join(&m, LensRole::Console).unwrap();
        let mut s = Subscriber::connect(&addr, &tok, &key).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Ok(Some(f))) = tokio::time::timeout(Duration::from_secs(2), s.recv()).await
            {
                lat.push(t0.elapsed().as_micros() as u64 - f.frame.capture_us);
                if lat.len() == frames {
                    break;
                }
            }
            lat
        }));
    }
    let mut stuck_conns = Vec::new();
    for _ in 0..stuck {
        let (_, tok) = lens.join(&m, LensRole::Console).unwrap();
        let s = TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        let mut s = s.connect(addr.parse().unwrap()).await.unwrap();
        write_msg(&mut s, MsgType::Join, &tok).await.unwrap();
        read_msg(&mut s).await.unwrap();
        stuck_conns.push(s);
    }
    let (_, tok) = lens.join(&m, LensRole::App).unwrap();
    let mut app = Publisher::connect(&addr, &tok, &key).await.unwrap();
    let cpu0 = relay_cpu(&cpu);
    let mut tick = tokio::time::interval(FPS_TICK);
    for i in 0..frames {
        tick.tick().await;
        let (keyframe, data) = synthetic(i);
        let f = MediaFrame {
            keyframe,
            capture_us: t0.elapsed().as_micros() as u64,
            data,
        };
        app.send(&f).await.unwrap();
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.unwrap());
    }
    let cpu1 = relay_cpu(&cpu);
    RelayRun {
        received: all.len(),
        p50: pct(&mut all, 50),
        p99: pct(&mut all, 99),
        cpu_ms: (cpu1 - cpu0) as f64 / 1e6,
    }
}

struct Allow;
impl Consent for Allow {
    fn ask(&self, _: ConsentRequest) -> ConsentFuture<'_> {
        Box::pin(async { ConsentAnswer::Allow })
    }
}

/// An applet and console session over XTCP through a 1 % loss, 10 ms one-way proxy.
async fn impaired_sessions() -> (Session, Session, ImpairProxy) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = XtcpSocket::bind(any).unwrap();
    let imp = Impairment::lossy(0.01, Duration::from_millis(10));
    let proxy = ImpairProxy::start(any, server.local_addr(), ImpairConfig::symmetric(imp, 7))
        .await
        .unwrap();
    let client = XtcpSocket::bind_with(any, SocketConfig::listening(false)).unwrap();
    let (a, c) = tokio::join!(client.connect(proxy.local_addr()), server.accept());
    let policy = Policy {
        allowed: PermissionSet::EMPTY.with(Permission::Camera),
        ..Policy::default()
    };
    let mut acfg = SessionConfig::new(Role::Applet, policy);
    acfg.consent = Some(ConsentConfig::new(Arc::new(Allow)));
    let applet = Session::start(a.unwrap(), PathKind::DirectUdp, acfg);
    let console = Session::start(
        c.unwrap(),
        PathKind::DirectUdp,
        SessionConfig::new(Role::Console, policy),
    );
    // Keep the sockets' drivers alive with the sessions.
    std::mem::forget(server);
    std::mem::forget(client);
    (applet, console, proxy)
}

struct LossRun {
    p50: f64,
    p99: f64,
    delivered: usize,
}

async fn loss_latest(frames: usize) -> LossRun {
    let (applet, console, _proxy) = impaired_sessions().await;
    let grant = console.request(Permission::Camera).await.unwrap();
    let mut stream = console.camera_stream(&grant).await.unwrap();
    while !applet
        .grants()
        .iter()
        .any(|(_, s)| s.contains(Permission::Camera))
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cam = applet.start_camera().await.unwrap();
    let t0 = Instant::now();
    let reader = tokio::spawn(async move {
        let mut lat = Vec::new();
        while let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(3), stream.recv()).await {
            lat.push(t0.elapsed().as_micros() as u64 - f.frame.capture_us);
        }
        lat
    });
    let mut tick = tokio::time::interval(FPS_TICK);
    for i in 0..frames {
        tick.tick().await;
        let (keyframe, data) = synthetic(i);
        let f = MediaFrame {
            keyframe,
            capture_us: t0.elapsed().as_micros() as u64,
            data,
        };
        cam.send(f).await.unwrap();
    }
    let mut lat = reader.await.unwrap();
    LossRun {
        delivered: lat.len(),
        p50: pct(&mut lat, 50),
        p99: pct(&mut lat, 99),
    }
}

/// The same frames as a plain ordered byte stream on an application channel.
async fn loss_in_order(frames: usize) -> LossRun {
    let (applet, mut console, _proxy) = impaired_sessions().await;
    let mut events = console.events().unwrap();
    let mut ch = applet.open_channel("video").await.unwrap();
    let mut rx = loop {
        match events.recv().await {
            Some(SessionEvent::ChannelOpened(c)) => break c,
            Some(_) => continue,
            None => panic!("no channel"),
        }
    };
    let t0 = Instant::now();
    let reader = tokio::spawn(async move {
        let mut lat = Vec::new();
        for _ in 0..frames {
            let mut h = [0u8; 12];
            if rx.read_exact(&mut h).await.is_err() {
                break;
            }
            let cap = u64::from_be_bytes(h[..8].try_into().unwrap());
            let len = u32::from_be_bytes(h[8..].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len];
            rx.read_exact(&mut body).await.unwrap();
            lat.push(t0.elapsed().as_micros() as u64 - cap);
        }
        lat
    });
    let mut tick = tokio::time::interval(FPS_TICK);
    for i in 0..frames {
        tick.tick().await;
        let (_, data) = synthetic(i);
        let mut msg = (t0.elapsed().as_micros() as u64).to_be_bytes().to_vec();
        msg.extend_from_slice(&(data.len() as u32).to_be_bytes());
        msg.extend_from_slice(&data);
        ch.write_all(&msg).await.unwrap();
    }
    let mut lat = reader.await.unwrap();
    drop(console);
    LossRun {
        delivered: lat.len(),
        p50: pct(&mut lat, 50),
        p99: pct(&mut lat, 99),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let only = std::env::var("LENS_BENCH_ONLY").unwrap_or_default();
    let frames = 300; // 10 s at 30 fps
    if only != "loss" {
        println!("## relay on loopback, 30 fps, {frames} frames, ~1.2 Mbit/s");
        println!(
            "| subscribers | stuck | received | p50 ms | p99 ms | relay CPU ms | relay CPU % |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let secs = frames as f64 / 30.0;
        let mut cpu = Vec::new();
        for (subs, stuck) in [(1, 0), (8, 0), (7, 1)] {
            let r = relay_run(subs, stuck, frames).await;
            println!(
                "| {} | {stuck} | {} | {:.2} | {:.2} | {:.1} | {:.2} |",
                subs + stuck,
                r.received,
                r.p50,
                r.p99,
                r.cpu_ms,
                r.cpu_ms / secs / 10.0
            );
            cpu.push(r.cpu_ms);
        }
        println!(
            "relay CPU per added subscriber: {:.2} ms per second of video",
            (cpu[1] - cpu[0]) / 7.0 / secs
        );

        let lens = Lens::new(LensConfig::default(), TicketSigner::generate().unwrap());
        let before = rss_kib();
        for i in 0..1000 {
            let m = lens.create(&format!("s{i}")).unwrap();
            lens.join(&m, LensRole::App).unwrap();
            lens.join(&m, LensRole::Console).unwrap();
        }
        let after = rss_kib();
        println!(
        "memory: {} B per idle meeting with 2 participants (RSS over 1000); queues add at most {} B per connected subscriber",
        (after.saturating_sub(before)) * 1024 / 1000,
        rescue_lens::SUBSCRIBER_QUEUE_BYTES
    );
    }
    let scales: Vec<usize> = std::env::var("LENS_BENCH_SCALES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(vec![1, 8]);
    for scale in scales {
        SCALE.store(scale, std::sync::atomic::Ordering::Relaxed);
        println!(
            "## session over XTCP, 1 % loss each way, 20 ms RTT, 30 fps, {frames} frames, ~{:.1} Mbit/s",
            1.2 * scale as f64
        );
        println!("| delivery | delivered | dropped | p50 ms | p99 ms |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        let l = loss_latest(frames).await;
        println!(
            "| camera stream (latest frame) | {} | {} | {:.1} | {:.1} |",
            l.delivered,
            frames - l.delivered,
            l.p50,
            l.p99
        );
        let o = loss_in_order(frames).await;
        println!(
            "| plain in order (app channel) | {} | {} | {:.1} | {:.1} |",
            o.delivered,
            frames - o.delivered,
            o.p50,
            o.p99
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(0);
}
