//! Direct UDP paths (issue 8) through real NATs, in network namespaces the test builds
//! itself (tests/netns_support): the gateway on a public segment, the applet behind home
//! router A, the console behind home router B, each router masquerading its LAN and
//! dropping unsolicited inbound traffic. The applet's TCP candidates (its private
//! address) are unreachable from the console's home (router B has no route to them, so
//! the dials fail at once, at the latest when the 1 s TCP window ends), and the UDP
//! phase decides:
//!
//! - through port-preserving NATs the punch succeeds and the live session moves to
//!   direct-udp (a transfer crosses it, not the gateway);
//! - through NATs that randomise ports (`--random-fully`) the punch fails, the round ends
//!   with the UDP window, and the session stays on the relay, unharmed.
//! - two ends that also share a LAN, behind port-randomising NATs, with the applet's host
//!   dropping inbound TCP (the console's dials hang until the TCP window ends): the
//!   session goes direct-udp over the LAN addresses of UDP_CANDIDATES;
//! - a gateway that falls silent (every packet dropped, no connection closed) after the
//!   switch: both ends lose the relay path and the session goes on directly.
//!
//! Needs root, iproute2 and iptables (`.ci/run` installs them). A lab that cannot be
//! built fails the test: it never skips.

mod common;
mod netns_support;
mod session_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{fast_limits, fast_timeouts, ACCOUNT};
use netns_support::{spawn_in, Host, Lab, Nat, GATEWAY_IP};
use rescue::devpki::DevPki;
use rescue::gateway::GatewayStats;
use rescue::io::{Tap, TapDirection};
use rescue::portal::{Portal, SessionRequest};
use rescue::session::{
    ConsentAnswer, ConsentConfig, DirectConfig, DirectPolicy, PathKind, Session, SessionConfig,
    SessionEvent,
};
use rescue::{Applet, Console, Gateway, GatewayConfig};
use rescue_proto::{Permission, Policy};
use session_support::{content, digests, policy, wait_for, Recorder, WAIT};
use tokio::sync::{mpsc, oneshot};

/// The wait before a second round where a direct path is expected: on a loaded CI
/// machine a first round can miss its windows, and the test's event wait holds a second.
const RETRY_IF_LOADED: Duration = Duration::from_secs(2);

/// Longest wait for one set-up step of a party (connect, register, claim).
const SETUP: Duration = Duration::from_secs(10);

/// Counts every byte the gateway reads and writes on its TCP connections (live, unlike
/// the byte counters of [`GatewayStats`], which are added up when a relay ends).
#[derive(Default)]
struct ByteCount(AtomicU64);

impl Tap for ByteCount {
    fn observe(&self, _: TapDirection, bytes: &[u8]) {
        self.0.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

impl ByteCount {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gateway on its thread in the public namespace; asked for its counters over a
/// channel, shut down when the handle is dropped.
struct GatewayParty {
    addr: SocketAddr,
    /// The bytes it has relayed so far.
    relayed: Arc<ByteCount>,
    stats: Option<mpsc::Sender<oneshot::Sender<GatewayStats>>>,
    thread: Option<JoinHandle<()>>,
}

impl GatewayParty {
    async fn start(lab: &Lab, pki: &DevPki) -> Self {
        let mut config = GatewayConfig::new(
            pki.gateway.clone(),
            [(ACCOUNT, pki.account_ca.cert().clone())],
            pki.verify_key(),
        );
        config.limits = fast_limits();
        let relayed = Arc::new(ByteCount::default());
        config.tap = Some(relayed.clone());
        let (addr_tx, addr_rx) = oneshot::channel();
        let (stats_tx, mut stats_rx) = mpsc::channel::<oneshot::Sender<GatewayStats>>(4);
        let thread = spawn_in(&lab.ns(Host::Gateway), move || async move {
            let gateway = Gateway::bind(SocketAddr::new(GATEWAY_IP, 0), config)
                .await
                .expect("bind the gateway on the public segment");
            let _ = addr_tx.send(gateway.local_addr());
            while let Some(reply) = stats_rx.recv().await {
                let _ = reply.send(gateway.stats());
            }
            gateway.shutdown().await;
        });
        let addr = tokio::time::timeout(SETUP, addr_rx)
            .await
            .expect("gateway start timed out")
            .expect("gateway thread failed");
        Self {
            addr,
            relayed,
            stats: Some(stats_tx),
            thread: Some(thread),
        }
    }

    async fn stats(&self) -> GatewayStats {
        let (tx, rx) = oneshot::channel();
        self.stats
            .as_ref()
            .expect("gateway running")
            .send(tx)
            .await
            .expect("gateway thread gone");
        rx.await.expect("gateway thread gone")
    }
}

impl Drop for GatewayParty {
    fn drop(&mut self) {
        self.stats = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the gateway thread panicked");
            }
        }
    }
}

/// One end of the session, running on its thread in its namespace; the test drives the
/// [`Session`] handle from the main thread (its driver and sockets stay on the party's
/// thread). Stopped, and its thread joined, on drop.
struct Party {
    session: Option<Session>,
    events: mpsc::Receiver<SessionEvent>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    name: &'static str,
}

impl Party {
    fn session(&self) -> &Session {
        self.session.as_ref().expect("session running")
    }

    fn path(&self) -> Option<PathKind> {
        self.session().path().map(|p| p.kind)
    }
}

impl Drop for Party {
    fn drop(&mut self) {
        self.session = None;
        self.stop = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the {} thread panicked", self.name);
            }
        }
    }
}

/// Runs `start` in `ns`: it connects and starts the [`Session`], which is handed to the
/// test; the thread then keeps its runtime (the session's driver) until the party stops.
async fn party<F, Fut>(ns: &str, name: &'static str, start: F) -> Party
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Session>,
{
    let (session_tx, session_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = spawn_in(ns, move || async move {
        let _ = session_tx.send(start().await);
        let _ = stop_rx.await;
    });
    let mut session = tokio::time::timeout(SETUP + SETUP, session_rx)
        .await
        .unwrap_or_else(|_| panic!("{name}: session set-up timed out"))
        .unwrap_or_else(|_| panic!("{name}: its thread failed"));
    Party {
        events: session.events().expect("first call"),
        session: Some(session),
        stop: Some(stop_tx),
        thread: Some(thread),
        name,
    }
}

/// The lab, the gateway and a paired session with these direct-path settings.
struct World {
    // Field order is drop order: the parties stop before the gateway, the lab goes last.
    applet: Party,
    console: Party,
    gateway: GatewayParty,
    _downloads: tempfile::TempDir,
    lab: Lab,
}

/// Keepalives on every path every 500 ms, a path dead after 2 s of silence (so a silenced
/// gateway is noticed within the test).
fn quick_core() -> rescue_proto::session::reliable::Config {
    rescue_proto::session::reliable::Config {
        keepalive_interval: Duration::from_millis(500),
        path_dead_after: Duration::from_secs(2),
        ..rescue_proto::session::reliable::Config::default()
    }
}

async fn world(lab: Lab, direct: DirectConfig) -> World {
    let pki = DevPki::generate(&[GATEWAY_IP.to_string()], ACCOUNT, "alice").unwrap();
    let gateway = GatewayParty::start(&lab, &pki).await;
    let portal = Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap(),
        vec![gateway.addr.to_string()],
        pki.gateway_ca.pin(),
    );
    let issued = portal
        .issue(&SessionRequest::new(
            ACCOUNT,
            pki.account_ca.pin(),
            Policy::default(),
        ))
        .unwrap();
    let pol = policy(&[Permission::FileTransfer], false);
    let downloads = tempfile::tempdir().unwrap();

    let applet = Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &pki.verify_key(),
    )
    .unwrap()
    .with_timeouts(fast_timeouts());
    let (registered_tx, registered_rx) = oneshot::channel();
    let dir = downloads.path().to_owned();
    let a_direct = direct;
    let applet = async {
        party(&lab.ns(Host::Applet), "applet", move || async move {
            let registration = tokio::time::timeout(SETUP, applet.register())
                .await
                .expect("register timed out")
                .expect("register");
            let _ = registered_tx.send(());
            let a = tokio::time::timeout(SETUP, registration.wait_paired())
                .await
                .expect("pairing timed out")
                .expect("paired");
            let mut cfg = SessionConfig::applet(&a, pol);
            cfg.consent = Some(
                ConsentConfig::new(Recorder::new(Some(ConsentAnswer::Allow)))
                    .with_timeout(Duration::from_secs(5)),
            );
            cfg.download_dir = Some(dir);
            cfg.direct = a_direct;
            cfg.core = quick_core();
            Session::start(a, PathKind::Relay, cfg)
        })
        .await
    };
    let (addr, pin, identity, key) = (
        gateway.addr.to_string(),
        pki.gateway_ca.pin(),
        pki.console.clone(),
        issued.claim_key(),
    );
    let console_ns = lab.ns(Host::Console);
    let console = async {
        // The console claims once the applet is registered.
        tokio::time::timeout(SETUP, registered_rx)
            .await
            .expect("applet registration timed out")
            .expect("applet thread failed");
        party(&console_ns, "console", move || async move {
            let c = tokio::time::timeout(SETUP, async {
                Console::connect(&addr, pin, identity, fast_timeouts())
                    .await
                    .expect("console connect")
                    .claim(key)
                    .await
                    .expect("claim")
            })
            .await
            .expect("claim timed out");
            let mut cfg = SessionConfig::console(&c, pol);
            cfg.direct = direct;
            cfg.core = quick_core();
            Session::start(c, PathKind::Relay, cfg)
        })
        .await
    };
    let (applet, console) = tokio::join!(applet, console);
    World {
        applet,
        console,
        gateway,
        _downloads: downloads,
        lab,
    }
}

/// A short TCP window (the applet's listener is unreachable behind its NAT anyway), the
/// UDP window and the wait before the next round as given.
fn short_windows(udp_window: Duration, retry_base: Duration) -> DirectConfig {
    DirectConfig {
        policy: DirectPolicy::Any,
        tcp_window: Duration::from_secs(1),
        udp_window,
        retry_base,
        ..DirectConfig::default()
    }
}

/// Sends `len` bytes from the console to the applet and checks that they arrive whole
/// (digests and content) without crossing the gateway.
async fn transfer_skips_the_gateway(w: &mut World, len: usize) {
    let before = w.gateway.relayed.get();
    let grant = w
        .console
        .session()
        .request(Permission::FileTransfer)
        .await
        .unwrap();
    let data = content(len, Some((b"behind NATs", len / 3 * 2)));
    w.console
        .session()
        .send_file(
            std::io::Cursor::new(data.clone()),
            "nat.bin",
            data.len() as u64,
            &grant,
        )
        .await
        .unwrap();
    let file = wait_for(&mut w.applet.events, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data), "MD5 and SHA-256 match");
    assert_eq!(std::fs::read(&file.path).unwrap(), data, "each byte once");
    let after = w.gateway.relayed.get();
    assert!(
        after - before < 64 * 1024,
        "the gateway relayed {} bytes of a {len}-byte transfer on a direct path",
        after - before
    );
}

/// Waits until both ends are on a direct path and returns its kind (the same on both).
async fn both_go_direct(w: &mut World) -> PathKind {
    let mut kinds = Vec::new();
    for (party, events) in [
        ("applet", &mut w.applet.events),
        ("console", &mut w.console.events),
    ] {
        kinds.push(
            wait_for(events, |e| match e {
                SessionEvent::PathChanged(p) if p.kind != PathKind::Relay => Some(p.kind),
                SessionEvent::Ended { .. } => panic!("the {party}'s session ended"),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(kinds[0], kinds[1], "both ends on the same kind of path");
    kinds[0]
}

/// Sends a chat line each way and checks that both arrive.
async fn chat_both_ways(w: &mut World, tag: &str) {
    let to_applet = format!("hello applet, {tag}");
    w.console.session().chat(&to_applet).await.unwrap();
    let got = wait_for(&mut w.applet.events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        SessionEvent::Ended { .. } => panic!("the applet's session ended"),
        _ => None,
    })
    .await;
    assert_eq!(got, to_applet);
    let to_console = format!("hello console, {tag}");
    w.applet.session().chat(&to_console).await.unwrap();
    let got = wait_for(&mut w.console.events, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        SessionEvent::Ended { .. } => panic!("the console's session ended"),
        _ => None,
    })
    .await;
    assert_eq!(got, to_console);
}

#[tokio::test]
async fn through_port_preserving_nats_the_session_goes_direct_udp() {
    let started = Instant::now();
    let mut w = world(
        Lab::build(Nat::PortPreserving),
        short_windows(Duration::from_secs(8), RETRY_IF_LOADED),
    )
    .await;
    for (party, events) in [
        ("applet", &mut w.applet.events),
        ("console", &mut w.console.events),
    ] {
        let kind = wait_for(events, |e| match e {
            SessionEvent::PathChanged(p) if p.kind != PathKind::Relay => Some(p.kind),
            SessionEvent::Ended { .. } => panic!("the {party}'s session ended"),
            _ => None,
        })
        .await;
        assert_eq!(
            kind,
            PathKind::DirectUdp,
            "{party}: the only direct path through two NATs is the punched one"
        );
    }
    let switched = started.elapsed();
    assert_eq!(w.applet.path(), Some(PathKind::DirectUdp));
    assert_eq!(w.console.path(), Some(PathKind::DirectUdp));
    let stats = w.gateway.stats().await;
    assert!(
        (1..=2).contains(&stats.rendezvous.pairs_completed),
        "{:?}\nrouter A:\n{}",
        stats.rendezvous,
        w.lab.dump(Host::RouterA)
    );

    chat_both_ways(&mut w, "through both NATs").await;

    transfer_skips_the_gateway(&mut w, 1_500_000).await;
    assert_eq!(w.applet.path(), Some(PathKind::DirectUdp));
    eprintln!(
        "direct-udp through two NATs after {:.1} s, test {:.1} s",
        switched.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn through_port_randomising_nats_the_session_stays_on_the_relay() {
    let started = Instant::now();
    // Round 1's UDP phase ends after 3 s; round 2 starts 1 s later. That the gateway sees
    // round 2's rendezvous proves round 1 is over.
    let mut w = world(
        Lab::build(Nat::RandomFully),
        short_windows(Duration::from_secs(3), Duration::from_secs(1)),
    )
    .await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let stats = w.gateway.stats().await;
        if stats.rendezvous.pairs_completed >= 2 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "no second rendezvous within {WAIT:?}: {:?}",
            stats.rendezvous
        );
        for (party, events) in [
            ("applet", &mut w.applet.events),
            ("console", &mut w.console.events),
        ] {
            while let Ok(e) = events.try_recv() {
                seen.push((party, format!("{e:?}")));
                match e {
                    SessionEvent::PathChanged(p) => assert_eq!(
                        p.kind,
                        PathKind::Relay,
                        "{party} left the relay through a port-randomising NAT\nrouter A:\n{}",
                        w.lab.dump(Host::RouterA)
                    ),
                    SessionEvent::Ended { .. } => panic!("the {party}'s session ended"),
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settled = started.elapsed();
    // Both probed in round 1 (the gateway paired them): it was the punch that failed.
    assert!(
        stats.rendezvous.probes_accepted >= 2,
        "{:?}",
        stats.rendezvous
    );
    assert_eq!(w.applet.path(), Some(PathKind::Relay), "{seen:?}");
    assert_eq!(w.console.path(), Some(PathKind::Relay), "{seen:?}");
    let before = w.gateway.relayed.get();
    chat_both_ways(&mut w, "over the relay").await;
    assert!(
        w.gateway.relayed.get() > before,
        "the chat crossed the gateway"
    );
    assert_eq!(w.applet.path(), Some(PathKind::Relay));
    eprintln!(
        "round 1 over after {:.1} s, test {:.1} s",
        settled.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn on_one_lan_behind_a_port_randomising_nat_the_session_goes_direct_udp_over_the_lan() {
    let started = Instant::now();
    // The applet and the console also share a LAN of their own (as two machines on one
    // office network do), but the applet's host drops every inbound TCP connection (a
    // host firewall that lets UDP through): the console's dials hang, unanswered, until
    // the TCP window ends. The reflexive punch cannot work through port-randomising NATs
    // without hairpinning; only the LAN addresses of UDP_CANDIDATES can carry the path.
    let lab = Lab::build(Nat::RandomFully);
    lab.side_lan();
    lab.drop_inbound_tcp(Host::Applet);
    let tcp_window = Duration::from_secs(2);
    let direct = DirectConfig {
        tcp_window,
        ..short_windows(Duration::from_secs(8), RETRY_IF_LOADED)
    };
    let mut w = world(lab, direct).await;
    let lan_before = w.lab.rx_bytes(Host::Applet, "side");
    let kind = both_go_direct(&mut w).await;
    let switched = started.elapsed();
    assert_eq!(
        kind,
        PathKind::DirectUdp,
        "the applet's host takes no TCP: UDP over the LAN is the only direct path"
    );
    assert!(
        switched >= tcp_window,
        "the UDP phase starts only when the window of the hanging dials ends ({switched:?})"
    );
    let stats = w.gateway.stats().await;
    assert!(
        (1..=2).contains(&stats.rendezvous.pairs_completed),
        "{:?}",
        stats.rendezvous
    );
    chat_both_ways(&mut w, "over the LAN").await;
    transfer_skips_the_gateway(&mut w, 1_500_000).await;
    let lan = w.lab.rx_bytes(Host::Applet, "side") - lan_before;
    assert!(
        lan >= 1_500_000,
        "the transfer came in over the shared LAN ({lan} bytes received there)"
    );
    assert_eq!(w.applet.path(), Some(PathKind::DirectUdp));
    eprintln!(
        "direct-udp over the LAN after {:.1} s, test {:.1} s",
        switched.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_gateway_that_falls_silent_after_the_switch_leaves_the_session_running_directly() {
    // Not a clean shutdown: the gateway's host stops answering at all (every packet in
    // and out dropped, as when its site loses power or its uplink), so the relay path
    // dies of silence, not of a closed connection.
    let mut w = world(
        Lab::build(Nat::PortPreserving),
        short_windows(Duration::from_secs(8), RETRY_IF_LOADED),
    )
    .await;
    assert_eq!(both_go_direct(&mut w).await, PathKind::DirectUdp);
    w.lab.silence(Host::Gateway);
    for (party, events) in [
        ("applet", &mut w.applet.events),
        ("console", &mut w.console.events),
    ] {
        wait_for(events, |e| match e {
            SessionEvent::PathLost { .. } => Some(()),
            SessionEvent::PathChanged(p) => panic!("{party} moved to {:?}", p.kind),
            SessionEvent::Ended { reason, .. } => panic!("the {party}'s session ended: {reason:?}"),
            _ => None,
        })
        .await;
    }
    chat_both_ways(&mut w, "with the gateway silent").await;
    transfer_skips_the_gateway(&mut w, 500_000).await;
    assert_eq!(w.applet.path(), Some(PathKind::DirectUdp));
    assert_eq!(w.console.path(), Some(PathKind::DirectUdp));
}
