//! Direct paths on loopback (issue 8 point 8), one process, gateway in-process:
//!
//! 1. time from the start of the session (just after PAIRED) to the first byte that
//!    crosses the direct path, TCP and UDP;
//! 2. a file through a session on each path type (relay, direct TCP, direct UDP) beside
//!    the same end-to-end TLS over the raw transport (kernel TCP, XTCP) in the same run;
//! 3. `DIRECT_BENCH_SWITCH_MIB` (default 1024) MiB across a forced relay -> direct switch:
//!    the receiver's MD5 and SHA-256 must equal the sender's (0 bytes lost).
//!
//! `cargo bench --bench direct` (sizes: `DIRECT_BENCH_MIB`, `DIRECT_BENCH_SWITCH_MIB`;
//! runs: `DIRECT_BENCH_RUNS`). Prints a table; no assertion on time.

use std::time::{Duration, Instant};

use rescue::portal::{Portal, SessionRequest};
use rescue::session::consent::ConsentFuture;
use rescue::session::{
    ConsentAnswer, ConsentConfig, ConsentRequest, DirectConfig, DirectPolicy, PathKind, Session,
    SessionConfig, SessionEvent,
};
use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::TicketSigner;
use rescue_proto::{Permission, PermissionSet, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;

struct Yes;
impl rescue::session::Consent for Yes {
    fn ask(&self, _: ConsentRequest) -> ConsentFuture<'_> {
        Box::pin(async { ConsentAnswer::Allow })
    }
}

struct World {
    pki: rescue::devpki::DevPki,
    gateway: rescue::Gateway,
    portal: Portal,
    account: AccountId,
}

async fn world() -> World {
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
    let signer = TicketSigner::from_pkcs8(pki.signer.pkcs8()).expect("signer");
    let portal = Portal::new(
        signer,
        vec![gateway.local_addr().to_string()],
        pki.gateway_ca.pin(),
    );
    World {
        pki,
        gateway,
        portal,
        account,
    }
}

struct Pair {
    applet: Session,
    console: Session,
    a_ev: Receiver<SessionEvent>,
    c_ev: Receiver<SessionEvent>,
    started: Instant,
}

async fn pair(w: &World, a_direct: DirectConfig, dir: &std::path::Path) -> Pair {
    let policy = Policy {
        allowed: [Permission::FileTransfer]
            .into_iter()
            .collect::<PermissionSet>(),
        ..Policy::default()
    };
    let issued = w
        .portal
        .issue(&SessionRequest::new(
            w.account,
            w.pki.account_ca.pin(),
            policy,
        ))
        .expect("issue");
    let applet = rescue::Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &w.pki.verify_key(),
    )
    .expect("applet");
    let registration = applet.register().await.expect("register");
    let console = rescue::Console::connect(
        &w.gateway.local_addr().to_string(),
        w.pki.gateway_ca.pin(),
        w.pki.console.clone(),
        rescue::PeerTimeouts::default(),
    )
    .await
    .expect("console");
    let (a, c) = tokio::join!(
        registration.wait_paired(),
        console.claim(issued.claim_key())
    );
    let (a, c) = (a.expect("paired"), c.expect("claimed"));
    let mut a_cfg = SessionConfig::applet(&a, policy);
    a_cfg.consent = Some(ConsentConfig::new(std::sync::Arc::new(Yes)));
    a_cfg.download_dir = Some(dir.to_owned());
    a_cfg.max_file_size = u64::MAX / 2;
    a_cfg.direct = a_direct;
    let c_cfg = SessionConfig::console(&c, policy);
    let started = Instant::now();
    let mut applet = Session::start(a, PathKind::Relay, a_cfg);
    let mut console = Session::start(c, PathKind::Relay, c_cfg);
    let (a_ev, c_ev) = (
        applet.events().expect("events"),
        console.events().expect("events"),
    );
    Pair {
        applet,
        console,
        a_ev,
        c_ev,
        started,
    }
}

async fn until<T>(
    ev: &mut Receiver<SessionEvent>,
    mut f: impl FnMut(SessionEvent) -> Option<T>,
) -> T {
    let fut = async {
        while let Some(e) = ev.recv().await {
            if let Some(t) = f(e) {
                return t;
            }
        }
        panic!("session ended")
    };
    tokio::time::timeout(Duration::from_secs(300), fut)
        .await
        .expect("bench step timed out")
}

fn direct(policy: DirectPolicy) -> DirectConfig {
    DirectConfig {
        policy,
        ..DirectConfig::default()
    }
}

/// Start of the session to the first chat byte that crossed the direct path.
async fn time_to_direct(w: &World, policy: DirectPolicy, dir: &std::path::Path) -> Duration {
    let mut p = pair(w, direct(policy), dir).await;
    until(&mut p.c_ev, |e| match e {
        SessionEvent::PathChanged(i) if i.kind != PathKind::Relay => Some(()),
        _ => None,
    })
    .await;
    p.console.chat("first").await.expect("chat");
    until(&mut p.a_ev, |e| match e {
        SessionEvent::Chat { .. } => Some(()),
        _ => None,
    })
    .await;
    let t = p.started.elapsed();
    assert_ne!(p.applet.path().map(|i| i.kind), Some(PathKind::Relay));
    p.applet.end();
    t
}

/// A file of `bytes` through a session whose path is `kind` when the file starts.
async fn file_rate(
    w: &World,
    policy: DirectPolicy,
    bytes: u64,
    dir: &std::path::Path,
) -> (f64, PathKind) {
    let mut p = pair(w, direct(policy), dir).await;
    if policy != DirectPolicy::Off {
        until(&mut p.a_ev, |e| match e {
            SessionEvent::PathChanged(i) if i.kind != PathKind::Relay => Some(()),
            _ => None,
        })
        .await;
    }
    let kind = p.console.path().map_or(PathKind::Relay, |i| i.kind);
    // The sender's progress events are not needed: discard them (an unread queue would
    // stop the session, by design).
    drop(std::mem::replace(
        &mut p.c_ev,
        tokio::sync::mpsc::channel(1).1,
    ));
    let grant = p
        .console
        .request(Permission::FileTransfer)
        .await
        .expect("grant");
    let start = Instant::now();
    p.console
        .send_file(
            tokio::io::repeat(0x5a).take(bytes),
            "bench.bin",
            bytes,
            &grant,
        )
        .await
        .expect("send");
    let file = until(&mut p.a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    let rate = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
    let _ = std::fs::remove_file(&file.path);
    p.applet.end();
    (rate, kind)
}

/// The same end-to-end TLS over a raw transport: `bytes` one way, MB/s.
async fn raw_tls_rate<S>(client: S, server: S, w: &World, bytes: u64) -> f64
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ccfg =
        rescue_crypto::tls::inner_client_config_account(w.pki.account_ca.pin()).expect("client");
    let scfg = rescue_crypto::tls::inner_server_config(&w.pki.console).expect("server");
    let (c, s) = tokio::join!(
        tokio_rustls::TlsConnector::from(ccfg).connect(rescue_crypto::tls::server_name(), client),
        tokio_rustls::TlsAcceptor::from(scfg).accept(server)
    );
    let (mut c, mut s) = (c.expect("tls"), s.expect("tls"));
    let start = Instant::now();
    let send = async move {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sent = 0u64;
        while sent < bytes {
            let n = chunk.len().min((bytes - sent) as usize);
            s.write_all(&chunk[..n]).await.expect("write");
            sent += n as u64;
        }
        s.flush().await.expect("flush");
        s
    };
    let recv = async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < bytes {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "early EOF");
            got += n as u64;
        }
    };
    let (_s, ()) = tokio::join!(send, recv);
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (c, s) = tokio::join!(
        tokio::net::TcpStream::connect(l.local_addr().expect("addr")),
        l.accept()
    );
    (c.expect("connect"), s.expect("accept").0)
}

async fn xtcp_pair() -> (
    rescue_xtcp::tokio::XtcpStream,
    rescue_xtcp::tokio::XtcpStream,
    [rescue_xtcp::tokio::XtcpSocket; 2],
) {
    use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
    // A simultaneous open, as on a punched path.
    let config = SocketConfig::listening(false);
    let a =
        XtcpSocket::bind_with("127.0.0.1:0".parse().expect("addr"), config.clone()).expect("bind");
    let b = XtcpSocket::bind_with("127.0.0.1:0".parse().expect("addr"), config).expect("bind");
    let (ab, ba) = tokio::join!(a.connect(b.local_addr()), b.connect(a.local_addr()));
    (ab.expect("xtcp"), ba.expect("xtcp"), [a, b])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runs = env("DIRECT_BENCH_RUNS", 5) as usize;
    let mib = env("DIRECT_BENCH_MIB", 256);
    let switch_mib = env("DIRECT_BENCH_SWITCH_MIB", 1024);
    let shm = std::path::Path::new("/dev/shm");
    let dir = tempfile::tempdir_in(if shm.is_dir() {
        shm
    } else {
        std::path::Path::new(".")
    })
    .expect("dir");
    rt.block_on(async {
        let w = world().await;
        println!("direct paths on loopback, medians of {runs} runs");
        for (name, policy) in [("direct-tcp", DirectPolicy::Tcp), ("direct-udp", DirectPolicy::Udp)] {
            let mut t = Vec::new();
            for _ in 0..runs {
                t.push(time_to_direct(&w, policy, dir.path()).await.as_secs_f64() * 1e3);
            }
            println!("session start -> first byte on {name}: {:.1} ms (min {:.1}, max {:.1})", median(t.clone()), t.iter().cloned().fold(f64::MAX, f64::min), t.iter().cloned().fold(0.0, f64::max));
        }
        let bytes = mib << 20;
        let mut rows = Vec::new();
        for (name, policy) in [("session over relay", DirectPolicy::Off), ("session over direct-tcp", DirectPolicy::Tcp), ("session over direct-udp", DirectPolicy::Udp)] {
            let mut r = Vec::new();
            for _ in 0..runs {
                let (rate, kind) = file_rate(&w, policy, bytes, dir.path()).await;
                r.push(rate);
                let _ = kind;
            }
            rows.push((name, median(r)));
        }
        let mut tcp = Vec::new();
        let mut xtcp = Vec::new();
        for _ in 0..runs {
            let (c, s) = tcp_pair().await;
            tcp.push(raw_tls_rate(c, s, &w, bytes).await);
            let (c, s, _sockets) = xtcp_pair().await;
            xtcp.push(raw_tls_rate(c, s, &w, bytes).await);
        }
        let (tcp, xtcp) = (median(tcp), median(xtcp));
        println!("{mib} MiB one way, MB/s:");
        println!("  TLS over kernel TCP (baseline)    {tcp:8.0}");
        println!("  TLS over XTCP (baseline)          {xtcp:8.0}");
        for (name, rate) in rows {
            let base = if name.ends_with("udp") { xtcp } else { tcp };
            println!("  {name:<32} {rate:8.0}  ({:.2}x its raw transport)", rate / base);
        }
        // A forced switch under a long transfer: starts on the relay, the applet's path
        // manager begins after 1 s.
        let mut p = pair(&w, DirectConfig { first_round_after: Duration::from_secs(1), ..direct(DirectPolicy::Tcp) }, dir.path()).await;
        let grant = p.console.request(Permission::FileTransfer).await.expect("grant");
        let bytes = switch_mib << 20;
        let before = w.gateway.stats().bytes_forwarded();
        let start = Instant::now();
        p.console.send_file(tokio::io::repeat(0x33).take(bytes), "switch.bin", bytes, &grant).await.expect("send");
        let (sent, file) = tokio::join!(
        until(&mut p.c_ev, |e| match e {
            SessionEvent::FileSent { digests, .. } => Some(digests),
            SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
            _ => None,
        }),
        until(&mut p.a_ev, |e| match e {
            SessionEvent::FileReceived { file, .. } => Some(file),
            _ => None,
        })
    );
    let kind = p.applet.path().map(|i| i.kind);
        p.applet.end();
        let _ = std::fs::remove_file(&file.path);
        println!(
            "{switch_mib} MiB across a relay -> direct switch in {:.1} s: digests equal: {}, size {} of {bytes}, final path {kind:?}, gateway relayed (counted at relay end) {} bytes before",
            start.elapsed().as_secs_f64(),
            file.digests == sent,
            file.size,
            w.gateway.stats().bytes_forwarded().saturating_sub(before)
        );
    });
}
