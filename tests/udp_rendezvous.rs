//! The UDP rendezvous through a real gateway on loopback (PROTOCOL.md 3.13): the
//! console's RENDEZVOUS mid-relay brings each party its UDP_TOKEN between DATA frames,
//! both probe from the ports they punch from, both get the other's address in PEER_ADDR,
//! and an XTCP simultaneous open between those ports carries bytes both ways.
//!
//! Refusals, each with the relayed session still forwarding DATA afterwards: a forged
//! probe, a replayed one (the same datagram twice, or from another socket), a probe of
//! a third socket that beats the real party (its punch then fails cleanly), RENDEZVOUS
//! from the applet, a RENDEZVOUS flood, UDP garbage and a source over its rate; and a
//! stranger sending to a punched XTCP port gets no connection.
//!
//! The peers here speak the signalling protocol directly (raw outer TLS, the gateway
//! codec), so every frame the gateway sends is checked; the last test wraps the same
//! hops in `DataTunnel`s and uses their `TunnelSignals`.

mod common;
mod gateway_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{within, Setup};
use futures_util::StreamExt;
use gateway_support::{hello, raw_hop, register_raw, send, RawHop};
use rescue::tunnel::{DataTunnel, TunnelSignal};
use rescue_proto::wire::limits::MAX_PROBES_PER_SOURCE;
use rescue_proto::wire::probe::Probe;
use rescue_proto::wire::signal::{
    Claim, Message, PeerAddr, Ping, Pong, Rendezvous, RendezvousToken, Role, Speaker, UdpToken,
};
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket, XtcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// The next message on a hop (within a step); `None` when it closed.
async fn recv(hop: &mut RawHop) -> Option<Message> {
    match within(hop.next()).await {
        Some(Ok(f)) => Some(f.message().expect("the gateway sends valid frames")),
        _ => None,
    }
}

/// Registers and claims a session with raw hops: (applet, console), both PAIRED.
async fn pair(s: &Setup) -> (RawHop, RawHop) {
    let issued = s.issue();
    let pin = s.pki.gateway_ca.pin();
    let mut applet = register_raw(&s.addr, pin, &issued.ticket).await;
    assert!(matches!(recv(&mut applet).await, Some(Message::Hello(_))));
    assert!(matches!(
        recv(&mut applet).await,
        Some(Message::Registered(_))
    ));
    let mut console = raw_hop(&s.addr, pin, Some(&s.pki.console)).await;
    hello(&mut console, Speaker::Peer(Role::Console)).await;
    assert!(matches!(recv(&mut console).await, Some(Message::Hello(_))));
    send(&mut console, Message::Claim(Claim { guid: issued.guid })).await;
    assert!(matches!(recv(&mut console).await, Some(Message::Paired(_))));
    assert!(matches!(recv(&mut applet).await, Some(Message::Paired(_))));
    (applet, console)
}

/// DATA goes through the relay both ways (the session is unharmed).
async fn relay_forwards(a: &mut RawHop, c: &mut RawHop, tag: &'static [u8]) {
    send(a, Message::Data(Bytes::from_static(tag))).await;
    assert_eq!(recv(c).await, Some(Message::Data(Bytes::from_static(tag))));
    send(c, Message::Data(Bytes::from_static(tag))).await;
    assert_eq!(recv(a).await, Some(Message::Data(Bytes::from_static(tag))));
}

/// The console asks; both get their UDP_TOKEN.
async fn rendezvous(a: &mut RawHop, c: &mut RawHop) -> (UdpToken, UdpToken) {
    send(c, Message::Rendezvous(Rendezvous)).await;
    let Some(Message::UdpToken(ta)) = recv(a).await else {
        panic!("UDP_TOKEN to the applet");
    };
    let Some(Message::UdpToken(tc)) = recv(c).await else {
        panic!("UDP_TOKEN to the console");
    };
    assert_ne!(ta.token, tc.token, "one token per party");
    assert_eq!(ta.port, tc.port);
    (ta, tc)
}

fn probe(role: Role, t: &UdpToken) -> [u8; 22] {
    Probe {
        role,
        token: t.token.clone(),
    }
    .to_bytes()
}

async fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn gw_udp(s: &Setup) -> SocketAddr {
    s.gateway.udp_local_addr()
}

/// The next frame on a hop, which must be PEER_ADDR (any other frame fails the test).
async fn peer_addr(hop: &mut RawHop) -> SocketAddr {
    match recv(hop).await {
        Some(Message::PeerAddr(PeerAddr { addr })) => addr,
        other => panic!("PEER_ADDR expected, got {other:?}"),
    }
}

/// A PING answered by PONG next: nothing (no UDP_TOKEN, no PEER_ADDR) came before it.
async fn nothing_pending(hop: &mut RawHop, nonce: u64) {
    send(hop, Message::Ping(Ping { nonce })).await;
    assert_eq!(recv(hop).await, Some(Message::Pong(Pong { nonce })));
}

fn punch_config(timeout: Duration) -> SocketConfig {
    let mut c = SocketConfig::listening(false);
    c.connect_timeout = timeout;
    c
}

/// Waits until the gateway's counters satisfy `done` (the socket task is asynchronous).
async fn stats_until(s: &Setup, done: impl Fn(&rescue::GatewayStats) -> bool) {
    within(async {
        while !done(&s.gateway.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

async fn exchange(a: &mut XtcpStream, b: &mut XtcpStream) {
    within(async {
        a.write_all(b"applet to console").await.unwrap();
        a.flush().await.unwrap();
        let mut got = [0u8; 17];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"applet to console");
        b.write_all(b"console to applet").await.unwrap();
        b.flush().await.unwrap();
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"console to applet");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parties_get_tokens_probe_learn_each_other_and_punch() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    // DATA in flight around the RENDEZVOUS: the tokens come between frames.
    send(&mut a, Message::Data(Bytes::from_static(&[7; 60_000]))).await;
    send(&mut c, Message::Rendezvous(Rendezvous)).await;
    let Some(Message::UdpToken(ta)) = recv(&mut a).await else {
        panic!("UDP_TOKEN to the applet");
    };
    // The console gets the whole DATA frame and its token, whichever came first.
    let (mut tc, mut data) = (None, None);
    for _ in 0..2 {
        match recv(&mut c).await {
            Some(Message::UdpToken(t)) => tc = Some(t),
            Some(Message::Data(d)) => data = Some(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    let tc = tc.expect("UDP_TOKEN to the console");
    assert_eq!(data.as_deref(), Some(&[7u8; 60_000][..]));
    assert_ne!(ta.token, tc.token, "one token per party");
    assert_eq!(ta.port, gw_udp(&s).port());
    let (ua, uc) = (udp().await, udp().await);
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    // Nothing before both are in.
    nothing_pending(&mut a, 1).await;
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    let (pa, pc) = (peer_addr(&mut a).await, peer_addr(&mut c).await);
    assert_eq!(
        pa,
        uc.local_addr().unwrap(),
        "the applet learns the console's"
    );
    assert_eq!(
        pc,
        ua.local_addr().unwrap(),
        "the console learns the applet's"
    );
    let st = s.gateway.stats().rendezvous;
    assert_eq!(
        (
            st.requests,
            st.tokens_issued,
            st.probes_accepted,
            st.pairs_completed
        ),
        (1, 2, 2, 1)
    );
    // Punch from the probed ports.
    let (la, lc) = (ua.local_addr().unwrap(), uc.local_addr().unwrap());
    drop((ua, uc));
    let cfg = punch_config(Duration::from_secs(5));
    let xa = XtcpSocket::bind_with(la, cfg.clone()).unwrap();
    let xc = XtcpSocket::bind_with(lc, cfg).unwrap();
    let (mut sa, mut sc) = within(async { tokio::try_join!(xa.connect(pa), xc.connect(pc)) })
        .await
        .expect("simultaneous open");
    exchange(&mut sa, &mut sc).await;
    relay_forwards(&mut a, &mut c, b"still relayed").await;
}

#[tokio::test]
async fn forged_wrong_party_and_replayed_probes_are_refused_and_the_first_binds() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    let (ta, tc) = rendezvous(&mut a, &mut c).await;
    let (ua, uc, other) = (udp().await, udp().await, udp().await);
    let forged = UdpToken {
        token: RendezvousToken::from_bytes(rand::random()),
        port: ta.port,
    };
    ua.send_to(&probe(Role::Applet, &forged), gw_udp(&s))
        .await
        .unwrap();
    ua.send_to(&probe(Role::Console, &ta), gw_udp(&s))
        .await
        .unwrap();
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    // The same probe again, from the same socket and from another one.
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    other
        .send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    stats_until(&s, |st| st.rendezvous.probes_refused.total() == 4).await;
    let r = s.gateway.stats().rendezvous.probes_refused;
    assert_eq!((r.unknown_token, r.wrong_party, r.replayed), (1, 1, 2));
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    assert_eq!(peer_addr(&mut c).await, ua.local_addr().unwrap());
    assert_eq!(peer_addr(&mut a).await, uc.local_addr().unwrap());
    relay_forwards(&mut a, &mut c, b"unharmed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_socket_that_probes_first_only_makes_the_punch_fail() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    let (ta, tc) = rendezvous(&mut a, &mut c).await;
    let (ua, uc, thief) = (udp().await, udp().await, udp().await);
    // Someone who saw the applet's token (on path) races it to the gateway.
    thief
        .send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    stats_until(&s, |st| st.rendezvous.probes_accepted == 1).await;
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    let (pa, pc) = (peer_addr(&mut a).await, peer_addr(&mut c).await);
    assert_eq!(pc, thief.local_addr().unwrap(), "first probe wins");
    assert_eq!(s.gateway.stats().rendezvous.probes_refused.replayed, 1);
    // Both punch; the console dials the thief, who is no XTCP peer: both fail in time.
    let (la, lc) = (ua.local_addr().unwrap(), uc.local_addr().unwrap());
    drop((ua, uc));
    let cfg = punch_config(Duration::from_millis(1500));
    let xa = XtcpSocket::bind_with(la, cfg.clone()).unwrap();
    let xc = XtcpSocket::bind_with(lc, cfg).unwrap();
    let (ra, rc) = within(async { tokio::join!(xa.connect(pa), xc.connect(pc)) }).await;
    assert!(ra.is_err() && rc.is_err(), "no connection: {ra:?} {rc:?}");
    relay_forwards(&mut a, &mut c, b"the session still runs").await;
}

#[tokio::test]
async fn rendezvous_from_the_applet_and_a_flood_get_at_most_one_answer() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    send(&mut a, Message::Rendezvous(Rendezvous)).await;
    nothing_pending(&mut a, 1).await;
    nothing_pending(&mut c, 2).await;
    assert_eq!(s.gateway.stats().rendezvous.requests_ignored, 1);
    // A flood from the console: one rendezvous, the rest ignored.
    for _ in 0..50 {
        send(&mut c, Message::Rendezvous(Rendezvous)).await;
    }
    nothing_pending_after_token(&mut c, 3).await;
    nothing_pending_after_token(&mut a, 4).await;
    let st = s.gateway.stats().rendezvous;
    assert_eq!((st.requests, st.tokens_issued), (51, 2));
    assert_eq!(st.requests_ignored, 50);
    relay_forwards(&mut a, &mut c, b"unharmed").await;
}

/// One UDP_TOKEN, then a PING's PONG: exactly one token came.
async fn nothing_pending_after_token(hop: &mut RawHop, nonce: u64) {
    assert!(matches!(recv(hop).await, Some(Message::UdpToken(_))));
    nothing_pending(hop, nonce).await;
}

#[tokio::test]
async fn udp_garbage_and_a_source_over_its_rate_are_dropped() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    let g = udp().await;
    let mut wrong_version = *b"rsPB\x02\x01................";
    wrong_version[6] = 0;
    let garbage: [&[u8]; 6] = [b"", b"x", &[0; 21], &[0; 23], &[0xff; 1400], &wrong_version];
    for d in garbage {
        g.send_to(d, gw_udp(&s)).await.unwrap();
    }
    stats_until(&s, |st| st.rendezvous.probes_refused.malformed == 6).await;
    // A flood from one source: beyond its rate, datagrams are dropped unread.
    let flood = MAX_PROBES_PER_SOURCE as usize + 20;
    for _ in 0..flood {
        g.send_to(b"flood", gw_udp(&s)).await.unwrap();
    }
    stats_until(&s, |st| {
        let r = st.rendezvous.probes_refused;
        r.malformed + r.rate_limited == 6 + flood as u64
    })
    .await;
    assert!(s.gateway.stats().rendezvous.probes_refused.rate_limited >= 20);
    relay_forwards(&mut a, &mut c, b"unharmed").await;
    // The rendezvous still works for a session whose sources are within their rate.
    let (ta, tc) = rendezvous(&mut a, &mut c).await;
    // (Other loopback addresses: other sources.)
    let ua = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let uc = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    assert_eq!(peer_addr(&mut a).await, uc.local_addr().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_gets_no_connection_on_a_punched_port() {
    let s = Setup::start().await;
    let (mut a, mut c) = pair(&s).await;
    let (ta, tc) = rendezvous(&mut a, &mut c).await;
    let (ua, uc) = (udp().await, udp().await);
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    let (pa, pc) = (peer_addr(&mut a).await, peer_addr(&mut c).await);
    let (la, lc) = (ua.local_addr().unwrap(), uc.local_addr().unwrap());
    drop((ua, uc));
    let cfg = punch_config(Duration::from_secs(5));
    let xa = XtcpSocket::bind_with(la, cfg.clone()).unwrap();
    let xc = XtcpSocket::bind_with(lc, cfg).unwrap();
    let (mut sa, mut sc) = within(async { tokio::try_join!(xa.connect(pa), xc.connect(pc)) })
        .await
        .unwrap();
    // A stranger's XTCP SYN to the applet's punched port, and raw garbage there.
    let stranger = XtcpSocket::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        punch_config(Duration::from_millis(800)),
    )
    .unwrap();
    let refused = within(stranger.connect(la)).await;
    assert!(refused.is_err(), "a stranger must not connect: {refused:?}");
    let junk = udp().await;
    for _ in 0..20 {
        junk.send_to(&[0x42; 64], la).await.unwrap();
    }
    exchange(&mut sa, &mut sc).await;
    relay_forwards(&mut a, &mut c, b"unharmed").await;
}

#[tokio::test]
async fn tunnel_signals_carry_the_rendezvous_through_the_real_gateway() {
    let s = Setup::start().await;
    let (a, c) = pair(&s).await;
    let tunnel = |hop: RawHop| {
        let parts = hop.into_parts();
        assert!(parts.read_buf.is_empty(), "nothing read past PAIRED");
        let mut t = DataTunnel::new(parts.io);
        let signals = t.signals();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        // The session's reader: keeps the tunnel polled until told to stop.
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    r = t.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { break },
                    _ = &mut stopped => break,
                }
            }
            drop(t);
        });
        (signals, (stop, task))
    };
    let (sa, ta_task) = tunnel(a);
    let (sc, tc_task) = tunnel(c);
    sc.rendezvous().await.unwrap();
    let next = |s: rescue::tunnel::TunnelSignals| async move { within(s.recv()).await };
    let Some(TunnelSignal::UdpToken(ta)) = next(sa.clone()).await else {
        panic!("UDP_TOKEN for the applet");
    };
    let Some(TunnelSignal::UdpToken(tc)) = next(sc.clone()).await else {
        panic!("UDP_TOKEN for the console");
    };
    let (ua, uc) = (udp().await, udp().await);
    ua.send_to(&probe(Role::Applet, &ta), gw_udp(&s))
        .await
        .unwrap();
    uc.send_to(&probe(Role::Console, &tc), gw_udp(&s))
        .await
        .unwrap();
    assert_eq!(
        next(sa.clone()).await,
        Some(TunnelSignal::PeerAddr(PeerAddr {
            addr: uc.local_addr().unwrap()
        }))
    );
    assert_eq!(
        next(sc.clone()).await,
        Some(TunnelSignal::PeerAddr(PeerAddr {
            addr: ua.local_addr().unwrap()
        }))
    );
    assert_eq!((sa.dropped(), sc.dropped()), (0, 0));
    for (stop, task) in [ta_task, tc_task] {
        let _ = stop.send(());
        within(task).await.unwrap();
    }
    // The tunnels are gone: the handles say so.
    assert!(sc.rendezvous().await.is_err());
    assert_eq!(sa.recv().await, None);
}
