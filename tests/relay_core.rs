//! The relay core over real loopback TCP sockets: peer A ⇄ relay ⇄ peer B.

use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use rescue::relay::{relay, FrameViolation, RelayEnd, RelayError, RelayLimits, RelayStats, Side};
use rescue_proto::wire::signal::ErrorCode;
use rescue_proto::Guid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DATA: u8 = 0x08;
const PING: u8 = 0x09;
const CLOSE: u8 = 0x0C;
const ERROR: u8 = 0x0D;

/// Bound on every wait in these tests, so a bug fails a test instead of hanging it
/// (virtual time in the paused tests, so longer than their limits).
const WAIT: Duration = Duration::from_secs(120);

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut f = vec![ty, len[1], len[2], len[3]];
    f.extend_from_slice(payload);
    f
}

/// A connected pair of loopback sockets.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.expect("connect"), s.expect("accept").0)
}

/// Peers A and B, and the relay between them running on a task.
async fn session(
    limits: RelayLimits,
    token: CancellationToken,
) -> (TcpStream, TcpStream, JoinHandle<RelayStats>) {
    let (peer_a, hop_a) = tcp_pair().await;
    let (peer_b, hop_b) = tcp_pair().await;
    let guid = Guid::from_bytes([7; 16]);
    let task = tokio::spawn(async move { relay(hop_a, hop_b, guid, &limits, token).await });
    (peer_a, peer_b, task)
}

async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut h))
        .await
        .expect("in time")
        .expect("header");
    let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
    let mut p = vec![0; len];
    s.read_exact(&mut p).await.expect("payload");
    (h[0], p)
}

async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut v))
        .await
        .expect("in time")
        .expect("read");
    v
}

async fn stats(task: JoinHandle<RelayStats>) -> RelayStats {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("relay ends")
        .expect("no panic")
}

/// Random DATA frames (sizes 1..=65536, biased to edges), concatenated.
fn random_stream(seed: u64, frames: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..frames {
        let len = match rng.gen_range(0..4) {
            0 => 65_536,
            1 => rng.gen_range(1..64),
            _ => rng.gen_range(1..=65_536),
        };
        let mut p = vec![0; len];
        rng.fill_bytes(&mut p);
        out.extend(frame(DATA, &p));
    }
    out
}

/// Writes `bytes` in random-sized chunks.
async fn write_chunked(w: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8], seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rng.gen_range(1..=rest.len().min(200_000));
        w.write_all(&rest[..n]).await.expect("write");
        rest = &rest[n..];
    }
}

#[tokio::test]
async fn forwards_bytes_exactly_both_ways_and_close_ends_cleanly() {
    for seed in 0..3u64 {
        let (peer_a, peer_b, task) =
            session(RelayLimits::default(), CancellationToken::new()).await;
        let a_to_b = random_stream(seed, 40);
        let b_to_a = random_stream(seed + 100, 40);
        let (mut ar, mut aw) = peer_a.into_split();
        let (mut br, mut bw) = peer_b.into_split();
        let (ab, ba) = (a_to_b.clone(), b_to_a.clone());
        let wa = tokio::spawn(async move {
            write_chunked(&mut aw, &ab, seed).await;
            aw
        });
        let wb = tokio::spawn(async move {
            write_chunked(&mut bw, &ba, seed + 1).await;
            bw
        });
        let mut got_b = vec![0; a_to_b.len()];
        let mut got_a = vec![0; b_to_a.len()];
        let (rb, ra) = tokio::join!(br.read_exact(&mut got_b), ar.read_exact(&mut got_a));
        rb.expect("b reads");
        ra.expect("a reads");
        assert!(got_b == a_to_b, "A→B bytes differ (seed {seed})");
        assert!(got_a == b_to_a, "B→A bytes differ (seed {seed})");

        let mut aw = wa.await.expect("writer a");
        let _bw = wb.await.expect("writer b");
        aw.write_all(&frame(CLOSE, &[0, 1])).await.expect("close");
        let mut b = br.reunite(_bw).expect("same socket");
        assert_eq!(
            read_to_end(&mut b).await,
            frame(CLOSE, &[0, 1]),
            "B gets A's CLOSE, then EOF"
        );
        // Closing the peers ends the relay's lingering reads.
        drop((b, aw, ar));
        let s = stats(task).await;
        assert_eq!(s.end, RelayEnd::Closed(Side::A));
        assert_eq!(s.a_to_b.bytes, a_to_b.len() as u64);
        assert_eq!(s.b_to_a.bytes, b_to_a.len() as u64);
        assert_eq!(s.a_to_b.data_frames, 40);
        assert!(!s.forced);
    }
}

fn vector(name: &str) -> Vec<u8> {
    rescue_proto::vectors::vector(include_str!("../PROTOCOL.md"), name)
        .expect("vector in PROTOCOL.md")
}

#[tokio::test]
async fn ping_is_answered_on_the_same_hop_and_cut_out_of_the_stream() {
    let (mut a, mut b, task) = session(RelayLimits::default(), CancellationToken::new()).await;
    let mut burst = frame(DATA, b"first");
    burst.extend(vector("frame.ping"));
    burst.extend(frame(DATA, b"second"));
    a.write_all(&burst).await.expect("write");
    let (ty, p) = read_frame(&mut a).await;
    assert_eq!(frame(ty, &p), vector("frame.pong"));
    assert_eq!(read_frame(&mut b).await, (DATA, b"first".to_vec()));
    assert_eq!(read_frame(&mut b).await, (DATA, b"second".to_vec()));
    b.write_all(&vector("frame.close")).await.expect("close");
    assert_eq!(read_to_end(&mut a).await, vector("frame.close"));
    drop((a, b));
    let s = stats(task).await;
    assert_eq!(s.a_to_b.pings, 1);
    assert_eq!(
        s.a_to_b.bytes,
        (frame(DATA, b"first").len() + frame(DATA, b"second").len()) as u64
    );
    assert_eq!(s.end, RelayEnd::Closed(Side::B));
}

#[tokio::test]
async fn a_peer_vanishing_mid_relay_gives_the_other_peer_gone() {
    let (a, mut b, task) = session(RelayLimits::default(), CancellationToken::new()).await;
    let mut a = a;
    let data = frame(DATA, &[0x55; 1000]);
    a.write_all(&data).await.expect("write");
    drop(a);
    let mut expect = data;
    expect.extend(vector_peer_gone_0());
    assert_eq!(read_to_end(&mut b).await, expect);
    drop(b);
    assert_eq!(stats(task).await.end, RelayEnd::Vanished(Side::A));
}

/// Sends `bytes` from A (then shuts A's write side) and returns what A and B then read.
async fn bad_input(bytes: &[u8]) -> (Vec<u8>, Vec<u8>, RelayStats) {
    let (mut a, mut b, task) = session(RelayLimits::default(), CancellationToken::new()).await;
    a.write_all(bytes).await.expect("write");
    a.shutdown().await.expect("shutdown");
    let (ra, rb) = tokio::join!(read_to_end(&mut a), read_to_end(&mut b));
    drop((a, b));
    (ra, rb, stats(task).await)
}

fn protocol(hop: Side, violation: FrameViolation) -> RelayEnd {
    RelayEnd::Failed(RelayError::Protocol { hop, violation })
}

#[tokio::test]
async fn oversize_frame_is_a_typed_violation() {
    let (a, b, s) = bad_input(&[DATA, 0x01, 0x00, 0x01]).await;
    assert_eq!(
        a,
        frame(ERROR, &[0x00, 0x07, 0]),
        "offender gets ERROR(ProtocolViolation)"
    );
    assert_eq!(b, vector_peer_gone_0());
    assert_eq!(s.end, protocol(Side::A, FrameViolation::Oversize(65_537)));
}

#[tokio::test]
async fn unknown_and_signalling_frames_after_pairing_are_violations() {
    for ty in [0x00, 0x01, 0x07, 0x0B, 0x0E, 0x11, 0x14, 0xff] {
        let mut input = frame(DATA, b"ok");
        input.extend(frame(ty, &[]));
        let (a, b, s) = bad_input(&input).await;
        assert_eq!(a, frame(ERROR, &[0x00, 0x07, 0]), "type {ty:#x}");
        let mut expect = frame(DATA, b"ok");
        expect.extend(vector_peer_gone_0());
        assert_eq!(b, expect, "type {ty:#x}");
        assert_eq!(s.end, protocol(Side::A, FrameViolation::UnexpectedType(ty)));
    }
}

#[tokio::test]
async fn bad_control_and_empty_data_frames_are_violations() {
    let cases = [
        (
            frame(PING, &[0; 200]),
            FrameViolation::ControlTooLong { ty: PING, len: 200 },
        ),
        (vector("bad.trailing"), FrameViolation::Malformed(PING)),
        (vector("bad.truncated"), FrameViolation::Malformed(PING)),
        (
            frame(CLOSE, &[0x77, 0x77]),
            FrameViolation::Malformed(CLOSE),
        ),
        (frame(DATA, &[]), FrameViolation::EmptyData),
    ];
    for (input, violation) in cases {
        let (a, b, s) = bad_input(&input).await;
        assert_eq!(a, frame(ERROR, &[0x00, 0x07, 0]), "{violation:?}");
        assert_eq!(b, vector_peer_gone_0(), "{violation:?}");
        assert_eq!(s.end, protocol(Side::A, violation));
    }
}

#[tokio::test]
async fn a_peer_error_ends_the_session_with_peer_gone() {
    let (a, b, s) = bad_input(&vector("frame.error")).await;
    assert!(a.is_empty(), "nothing more for the hop that failed");
    assert_eq!(b, vector_peer_gone_0());
    assert_eq!(
        s.end,
        RelayEnd::PeerError {
            hop: Side::A,
            code: ErrorCode::GuidTaken
        }
    );
}

/// `PEER_GONE{0}`: the vector has a 30 s grace; the relay core always sends 0.
fn vector_peer_gone_0() -> Vec<u8> {
    let mut v = vector("frame.peer_gone");
    let n = v.len();
    v[n - 4..].copy_from_slice(&[0; 4]);
    v
}

#[tokio::test]
async fn truncated_frames_are_typed_errors() {
    // Inside a payload: the bytes that came are forwarded, the frame cannot be completed,
    // so B's hop is shut down without PEER_GONE (it would corrupt the framing).
    let mut cut = frame(DATA, &[9; 100]);
    cut.truncate(54);
    let (_, b, s) = bad_input(&cut).await;
    assert_eq!(b, cut);
    assert_eq!(s.end, protocol(Side::A, FrameViolation::Truncated));
    // Inside a header: B is at a frame boundary and gets PEER_GONE.
    let (_, b, s) = bad_input(&[DATA, 0]).await;
    assert_eq!(b, vector_peer_gone_0());
    assert_eq!(s.end, protocol(Side::A, FrameViolation::Truncated));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fires_and_both_hops_get_close() {
    let idle = Duration::from_secs(45);
    let limits = RelayLimits::default().with_idle_timeout(idle);
    let (mut a, mut b, task) = session(limits, CancellationToken::new()).await;
    let start = tokio::time::Instant::now();
    // Traffic half-way through pushes the deadline back.
    tokio::time::sleep(idle / 2).await;
    a.write_all(&frame(DATA, b"x")).await.expect("write");
    assert_eq!(read_frame(&mut b).await, (DATA, b"x".to_vec()));
    let close_idle = frame(CLOSE, &[0x00, 0x03]);
    assert_eq!(read_frame(&mut a).await, (CLOSE, close_idle[4..].to_vec()));
    assert_eq!(read_frame(&mut b).await, (CLOSE, close_idle[4..].to_vec()));
    let fired = start.elapsed();
    drop((a, b));
    let s = stats(task).await;
    assert_eq!(s.end, RelayEnd::Failed(RelayError::IdleTimeout(idle)));
    assert!(fired >= idle / 2 + idle, "fired after {fired:?}");
    assert!(fired < idle * 2, "fired after {fired:?}");
}

#[tokio::test(start_paused = true)]
async fn lifetime_limit_ends_a_busy_session() {
    let life = Duration::from_secs(60);
    let limits = RelayLimits::default()
        .with_max_lifetime(life)
        .with_idle_timeout(life * 10);
    let (mut a, mut b, task) = session(limits, CancellationToken::new()).await;
    let timeout_error = frame(ERROR, &[0x00, 0x09, 0]);
    loop {
        a.write_all(&frame(DATA, b"tick")).await.expect("write");
        let (ty, p) = read_frame(&mut b).await;
        if ty == ERROR {
            assert_eq!(p, timeout_error[4..]);
            break;
        }
        assert_eq!((ty, p), (DATA, b"tick".to_vec()));
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    drop((a, b));
    let s = stats(task).await;
    assert_eq!(s.end, RelayEnd::Failed(RelayError::LifetimeExceeded(life)));
    assert!(!s.forced);
    assert!(s.duration >= life);
}

#[tokio::test]
async fn cancellation_sends_shutting_down_to_both_hops() {
    let token = CancellationToken::new();
    let (mut a, mut b, task) = session(RelayLimits::default(), token.clone()).await;
    a.write_all(&frame(DATA, b"before")).await.expect("write");
    assert_eq!(read_frame(&mut b).await, (DATA, b"before".to_vec()));
    token.cancel();
    let shutting_down = frame(ERROR, &[0x00, 0x0B, 0]);
    assert_eq!(read_to_end(&mut a).await, shutting_down);
    assert_eq!(read_to_end(&mut b).await, shutting_down);
    drop((a, b));
    assert_eq!(stats(task).await.end, RelayEnd::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn peers_that_never_close_do_not_hold_the_relay_past_the_grace_period() {
    let grace = Duration::from_secs(5);
    let limits = RelayLimits::default().with_close_grace(grace);
    let (mut a, mut b, task) = session(limits, CancellationToken::new()).await;
    a.write_all(&vector("frame.close")).await.expect("close");
    assert_eq!(read_frame(&mut b).await.0, CLOSE);
    let closed = tokio::time::Instant::now();
    // Neither peer reads nor closes from here on.
    let s = stats(task).await;
    assert_eq!(s.end, RelayEnd::Closed(Side::A));
    assert!(!s.forced, "both write sides were shut down in time");
    assert!(closed.elapsed() >= grace && closed.elapsed() < grace * 2);
    drop((a, b));
}
