//! [`establish`] over real sockets on loopback, against a stand-in gateway: two framed
//! in-memory hops, a real UDP socket and the sans-IO rendezvous table (the real
//! gateway's rendezvous is tested end to end in tests/udp_rendezvous.rs).

use super::*;
use std::time::Instant as StdInstant;

use futures_util::{SinkExt, StreamExt};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::handoff::rendezvous::{Limits, ProbeAccepted, RendezvousTable};
use rescue_proto::wire::signal::{Message, PeerAddr, RendezvousToken};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::Framed;

use crate::tunnel::DataTunnel;

const STEP: Duration = Duration::from_secs(20);

/// How the stand-in gateway behaves.
#[derive(Clone, Copy)]
enum Mode {
    /// As the protocol says.
    Honest,
    /// Never answers RENDEZVOUS.
    Silent,
    /// Sends this address in both PEER_ADDRs instead of the probes' sources.
    Lie(SocketAddr),
}

type Hop = Framed<DuplexStream, GatewayCodec>;

async fn gateway(mut applet: Hop, mut console: Hop, udp: tokio::net::UdpSocket, mode: Mode) {
    let mut table: RendezvousTable<u8, ()> = RendezvousTable::new(Limits::default());
    let port = udp.local_addr().unwrap().port();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            f = console.next() => {
                let Some(Ok(f)) = f else { return };
                if matches!(f.message(), Ok(Message::Rendezvous(_))) && !matches!(mode, Mode::Silent) {
                    let tokens = [RendezvousToken::from_bytes(rand::random()), RendezvousToken::from_bytes(rand::random())];
                    table.start(StdInstant::now(), 1, Role::Console, (), tokens.clone()).unwrap();
                    let [a, c] = tokens;
                    applet.send(Message::UdpToken(UdpToken { token: a, port })).await.unwrap();
                    console.send(Message::UdpToken(UdpToken { token: c, port })).await.unwrap();
                }
            }
            f = applet.next() => if f.is_none() { return },
            r = udp.recv_from(&mut buf) => {
                let (n, src) = r.unwrap();
                if let Ok(ProbeAccepted::Complete { applet: a, console: c, .. }) =
                    table.probe(StdInstant::now(), &buf[..n], src)
                {
                    let (to_applet, to_console) = match mode {
                        Mode::Lie(x) => (x, x),
                        _ => (c, a),
                    };
                    applet.send(Message::PeerAddr(PeerAddr { addr: to_applet })).await.unwrap();
                    console.send(Message::PeerAddr(PeerAddr { addr: to_console })).await.unwrap();
                }
            }
        }
    }
}

/// A peer's tunnel over a hop of the stand-in gateway, read by a task (as the session's
/// reader would), and its signals.
fn peer() -> (TunnelSignals, Hop) {
    let (mine, theirs) = tokio::io::duplex(64 * 1024);
    let mut tunnel = DataTunnel::new(mine);
    let signals = tunnel.signals();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while matches!(tunnel.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    (signals, Framed::new(theirs, GatewayCodec::new()))
}

async fn setup(mode: Mode) -> (TunnelSignals, TunnelSignals) {
    let (a, a_hop) = peer();
    let (c, c_hop) = peer();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(gateway(a_hop, c_hop, udp, mode));
    (a, c)
}

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_punch_and_the_xtcp_stream_carries_bytes_both_ways() {
    let (a, c) = setup(Mode::Honest).await;
    let cfg = UdpPathConfig::default();
    let (pa, pc) = tokio::time::timeout(STEP, async {
        tokio::join!(
            establish(&a, Role::Applet, localhost(), &cfg),
            establish(&c, Role::Console, localhost(), &cfg)
        )
    })
    .await
    .expect("the punch ends in time");
    let (mut pa, mut pc) = (pa.expect("applet side"), pc.expect("console side"));
    // Each was told the port the other probed from, and punched from it.
    assert_eq!(pa.peer.port(), pc.socket.local_addr().port());
    assert_eq!(pc.peer.port(), pa.socket.local_addr().port());
    tokio::time::timeout(STEP, async {
        pa.stream.write_all(b"from the applet").await.unwrap();
        pa.stream.flush().await.unwrap();
        let mut got = [0u8; 15];
        pc.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from the applet");
        pc.stream.write_all(b"from the console").await.unwrap();
        pc.stream.flush().await.unwrap();
        let mut got = [0u8; 16];
        pa.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from the console");
    })
    .await
    .expect("bytes both ways in time");
}

#[tokio::test]
async fn no_token_is_a_timeout_not_a_hang() {
    let (a, c) = setup(Mode::Silent).await;
    let cfg = UdpPathConfig {
        token_timeout: Duration::from_millis(200),
        ..UdpPathConfig::default()
    };
    let (ra, rc) = tokio::join!(
        establish(&a, Role::Applet, localhost(), &cfg),
        establish(&c, Role::Console, localhost(), &cfg)
    );
    assert!(matches!(ra, Err(UdpPathError::NoToken)), "{ra:?}");
    assert!(matches!(rc, Err(UdpPathError::NoToken)), "{rc:?}");
}

#[tokio::test]
async fn an_unusable_peer_addr_gets_nothing_sent() {
    let (a, c) = setup(Mode::Lie("0.0.0.0:9".parse().unwrap())).await;
    let cfg = UdpPathConfig::default();
    let (ra, rc) = tokio::join!(
        establish(&a, Role::Applet, localhost(), &cfg),
        establish(&c, Role::Console, localhost(), &cfg)
    );
    for r in [ra, rc] {
        assert!(
            matches!(r, Err(UdpPathError::PeerAddr(PeerAddrError::Unusable(_)))),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_punch_toward_a_silent_address_sends_a_bounded_number_of_syns_and_fails() {
    // The lying gateway points both at a socket that counts what it gets.
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (a, c) = setup(Mode::Lie(sink.local_addr().unwrap())).await;
    let cfg = UdpPathConfig {
        punch_timeout: Duration::from_secs(2),
        ..UdpPathConfig::default()
    };
    let counted = tokio::spawn(async move {
        let mut syns = std::collections::HashMap::<SocketAddr, u32>::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, src))) =
            tokio::time::timeout(Duration::from_secs(3), sink.recv_from(&mut buf)).await
        {
            let seg = rescue_xtcp::segment::SegmentRepr::parse(&buf[..n]);
            if seg.is_ok_and(|(s, _)| s.flags.contains(rescue_xtcp::segment::Flags::SYN)) {
                *syns.entry(src).or_default() += 1;
            }
        }
        syns
    });
    let (ra, rc) = tokio::join!(
        establish(&a, Role::Applet, localhost(), &cfg),
        establish(&c, Role::Console, localhost(), &cfg)
    );
    for r in [ra, rc] {
        assert!(matches!(r, Err(UdpPathError::Punch(_))), "{r:?}");
    }
    // Two sides, each SYNs at 0, 0.5 and 1.5 s within the 2 s (the backoff doubles).
    let syns = counted.await.unwrap();
    assert_eq!(syns.len(), 2, "{syns:?}");
    assert!(syns.values().all(|n| (1..=3).contains(n)), "{syns:?}");
}
