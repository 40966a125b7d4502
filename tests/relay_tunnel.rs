//! `DataTunnel` over real loopback sockets: against a raw "gateway" socket, and end to
//! end through the relay core.

use std::io;
use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use rescue::relay::{relay, FrameViolation, RelayEnd, RelayLimits, Side};
use rescue::tunnel::{is_peer_gone, tunnel_error, DataTunnel, TunnelError};
use rescue_proto::wire::signal::ErrorCode;
use rescue_proto::Guid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const DATA: u8 = 0x08;
const PING: u8 = 0x09;
const CLOSE: u8 = 0x0C;

/// Bound on every wait (virtual time in the paused tests, so longer than their limits).
const WAIT: Duration = Duration::from_secs(120);

fn vector(name: &str) -> Vec<u8> {
    rescue_proto::vectors::vector(include_str!("../PROTOCOL.md"), name)
        .expect("vector in PROTOCOL.md")
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut f = vec![ty, len[1], len[2], len[3]];
    f.extend_from_slice(payload);
    f
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.expect("connect"), s.expect("accept").0)
}

async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    let r = tokio::time::timeout(WAIT, s.read_exact(&mut h)).await;
    r.expect("in time").expect("header");
    let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
    let mut p = vec![0; len];
    s.read_exact(&mut p).await.expect("payload");
    (h[0], p)
}

/// A tunnel on one end, the raw "gateway" socket on the other.
async fn tunnel_and_gateway() -> (DataTunnel<TcpStream>, TcpStream) {
    let (peer, gw) = tcp_pair().await;
    (DataTunnel::new(peer), gw)
}

async fn read_err(t: &mut DataTunnel<TcpStream>) -> io::Error {
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(WAIT, t.read(&mut buf)).await;
    r.expect("in time").expect_err("an error")
}

#[tokio::test]
async fn writes_become_data_frames_with_one_header_each() {
    let (mut t, mut gw) = tunnel_and_gateway().await;
    t.write_all(b"hello").await.expect("write");
    t.flush().await.expect("flush");
    let (ty, p) = read_frame(&mut gw).await;
    assert_eq!(frame(ty, &p), vector("frame.data"));
    // One poll_write takes at most one maximal frame.
    let big = vec![0xa5u8; 200 * 1024];
    let n = t.write(&big).await.expect("write");
    assert_eq!(n, 65_536);
    t.write_all(&big[n..]).await.expect("write rest");
    t.flush().await.expect("flush");
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while got.len() < big.len() {
        let (ty, p) = read_frame(&mut gw).await;
        assert_eq!(ty, DATA);
        sizes.push(p.len());
        got.extend(p);
    }
    assert_eq!(sizes, [65_536, 65_536, 65_536, 8_192]);
    assert!(got == big);
    assert_eq!(t.write(&[]).await.expect("empty write"), 0, "no empty DATA");
}

#[tokio::test]
async fn reads_return_payloads_and_ping_is_answered() {
    let (mut t, mut gw) = tunnel_and_gateway().await;
    let mut input = frame(DATA, b"abc");
    input.extend(vector("frame.ping"));
    input.extend(frame(DATA, &[7u8; 70_000 - 4][..65_536]));
    input.extend(frame(DATA, b"xyz"));
    gw.write_all(&input).await.expect("write");
    let mut got = vec![0; 3 + 65_536 + 3];
    tokio::time::timeout(WAIT, t.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&got[..3], b"abc");
    assert!(got[3..3 + 65_536].iter().all(|b| *b == 7));
    assert_eq!(&got[3 + 65_536..], b"xyz");
    let (ty, p) = read_frame(&mut gw).await;
    assert_eq!(frame(ty, &p), vector("frame.pong"));
}

#[tokio::test]
async fn close_is_end_of_stream_and_shutdown_sends_close() {
    let (mut t, mut gw) = tunnel_and_gateway().await;
    gw.write_all(&frame(DATA, b"last")).await.expect("write");
    gw.write_all(&vector("frame.close")).await.expect("write");
    let mut got = Vec::new();
    let r = tokio::time::timeout(WAIT, t.read_to_end(&mut got)).await;
    r.expect("in time").expect("clean end");
    assert_eq!(got, b"last");
    t.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    gw.read_to_end(&mut rest).await.expect("read");
    assert_eq!(rest, frame(CLOSE, &[0, 0]), "CLOSE(normal), then EOF");
}

#[tokio::test]
async fn peer_gone_error_and_other_frames_are_distinct_errors() {
    let cases: [(Vec<u8>, io::ErrorKind, TunnelError); 5] = [
        (
            vector("frame.peer_gone"),
            io::ErrorKind::ConnectionAborted,
            TunnelError::PeerGone { grace_secs: 30 },
        ),
        (
            vector("frame.error"),
            io::ErrorKind::ConnectionReset,
            TunnelError::Gateway(ErrorCode::GuidTaken),
        ),
        (
            frame(0x07, &[]),
            io::ErrorKind::InvalidData,
            TunnelError::Protocol(FrameViolation::UnexpectedType(0x07)),
        ),
        (
            vec![DATA, 0x01, 0x00, 0x01],
            io::ErrorKind::InvalidData,
            TunnelError::Protocol(FrameViolation::Oversize(65_537)),
        ),
        (
            frame(DATA, &[]),
            io::ErrorKind::InvalidData,
            TunnelError::Protocol(FrameViolation::EmptyData),
        ),
    ];
    for (input, kind, error) in cases {
        let (mut t, mut gw) = tunnel_and_gateway().await;
        gw.write_all(&input).await.expect("write");
        let e = read_err(&mut t).await;
        assert_eq!(e.kind(), kind, "{error:?}");
        assert_eq!(tunnel_error(&e), Some(&error));
        assert_eq!(
            is_peer_gone(&e),
            matches!(error, TunnelError::PeerGone { .. })
        );
        // Sticky: the next read fails the same way.
        assert_eq!(tunnel_error(&read_err(&mut t).await), Some(&error));
    }
}

#[tokio::test]
async fn hop_ending_without_close_is_unexpected_eof() {
    let (mut t, gw) = tunnel_and_gateway().await;
    drop(gw);
    assert_eq!(read_err(&mut t).await.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_a_silent_gateway_then_times_out() {
    let (peer, mut gw) = tcp_pair().await;
    let interval = Duration::from_secs(15);
    let mut t = DataTunnel::new(peer).with_keepalive(interval);
    let start = tokio::time::Instant::now();
    let reader = tokio::spawn(async move { read_err(&mut t).await });
    let (ty, p) = read_frame(&mut gw).await;
    assert_eq!((ty, p.len()), (PING, 8));
    assert!(start.elapsed() >= interval);
    // An answer counts as liveness: the next PING comes an interval after it.
    let answered = tokio::time::Instant::now();
    gw.write_all(&frame(0x0A, &p)).await.expect("pong");
    let (ty, _) = read_frame(&mut gw).await;
    assert_eq!(ty, PING);
    assert!(answered.elapsed() >= interval);
    // Silence from now on: dead after three intervals without a frame.
    let e = tokio::time::timeout(WAIT, reader)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(answered.elapsed() >= interval * 3);
    assert!(answered.elapsed() < interval * 4);
}

#[tokio::test]
async fn two_tunnels_through_the_relay_carry_bytes_exactly_both_ways() {
    let (applet, hop_a) = tcp_pair().await;
    let (console, hop_b) = tcp_pair().await;
    let guid = Guid::from_bytes([3; 16]);
    let task = tokio::spawn(async move {
        let limits = RelayLimits::default();
        relay(hop_a, hop_b, guid, &limits, CancellationToken::new()).await
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut up = vec![0u8; 3 << 20];
    let mut down = vec![0u8; (1 << 20) + 17];
    rng.fill_bytes(&mut up);
    rng.fill_bytes(&mut down);
    let (mut ar, mut aw) = tokio::io::split(DataTunnel::new(applet));
    let (mut cr, mut cw) = tokio::io::split(DataTunnel::new(console));
    let (u, d) = (up.clone(), down.clone());
    let chunk = rng.gen_range(1000..200_000);
    let (read_all_tx, read_all) = tokio::sync::oneshot::channel::<()>();
    let wa = tokio::spawn(async move {
        for c in u.chunks(chunk) {
            aw.write_all(c).await.expect("applet writes");
        }
        // CLOSE ends both directions: close only after everything arrived.
        read_all.await.expect("applet read all");
        aw.shutdown().await.expect("applet closes");
    });
    let wc = tokio::spawn(async move {
        cw.write_all(&d).await.expect("console writes");
        cw.flush().await.expect("flush");
        cw
    });
    let mut got_up = Vec::new();
    let mut got_down = vec![0; down.len()];
    let applet_reads = async {
        ar.read_exact(&mut got_down).await.expect("applet reads");
        read_all_tx.send(()).expect("writer waits");
    };
    let (r1, ()) = tokio::join!(cr.read_to_end(&mut got_up), applet_reads);
    r1.expect("console reads to the applet's CLOSE");
    assert!(got_up == up, "applet → console differs");
    assert!(got_down == down, "console → applet differs");
    wa.await.expect("applet writer");
    drop(wc.await.expect("console writer"));
    drop((ar, cr));
    let stats = tokio::time::timeout(WAIT, task)
        .await
        .expect("ends")
        .expect("task");
    assert_eq!(stats.end, RelayEnd::Closed(Side::A));
}

/// The frame rules after PAIRED are rescue-proto's scanner, used by both ends: a frame
/// of a type not allowed there that also announces a long payload gets the same error
/// from the relay core (reading a peer) and from the tunnel (reading the gateway). The
/// two copies used to check type and length in opposite orders (the tunnel said
/// `ControlTooLong`, the relay `UnexpectedType`).
#[tokio::test]
async fn one_bad_frame_gets_one_error_from_the_relay_and_from_the_tunnel() {
    // REGISTER (0x02), never allowed after PAIRED, announcing 4,096 bytes.
    let bad = [0x02, 0x00, 0x10, 0x00];
    let expected = FrameViolation::UnexpectedType(0x02);

    let (mut t, mut gw) = tunnel_and_gateway().await;
    gw.write_all(&bad).await.expect("write");
    let e = read_err(&mut t).await;
    assert_eq!(tunnel_error(&e), Some(&TunnelError::Protocol(expected)));

    let (mut peer_a, hop_a) = tcp_pair().await;
    let (_peer_b, hop_b) = tcp_pair().await;
    let guid = Guid::from_bytes([4; 16]);
    let task = tokio::spawn(async move {
        let limits = RelayLimits::default().with_close_grace(Duration::from_secs(1));
        relay(hop_a, hop_b, guid, &limits, CancellationToken::new()).await
    });
    peer_a.write_all(&bad).await.expect("write");
    let stats = tokio::time::timeout(WAIT, task)
        .await
        .expect("relay ends in time")
        .expect("relay task");
    assert_eq!(
        stats.end,
        RelayEnd::Failed(rescue::relay::RelayError::Protocol {
            hop: Side::A,
            violation: expected,
        })
    );
}
