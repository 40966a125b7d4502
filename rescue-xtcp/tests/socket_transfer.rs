//! XTCP over real loopback UDP sockets: bulk transfers in both directions with exact
//! bytes, simultaneous open, the GSO-off path, connect timeouts and resets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rescue_xtcp::tokio::{SocketConfig, XtcpSocket, XtcpStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Upper bound on any test step; loopback transfers of a few MiB take well under a second.
const WAIT: Duration = Duration::from_secs(30);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The `i`-th byte of the test stream `seed` (cheap, position-dependent, not periodic
/// at any power of two, so a lost, duplicated or reordered chunk changes what is read).
fn pattern(seed: u64, i: u64) -> u8 {
    let x = (i ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i % 251) as u8
}

async fn write_pattern(mut w: impl AsyncWrite + Unpin, seed: u64, len: u64) -> io::Result<()> {
    let mut pos = 0u64;
    // Odd-sized writes so segment boundaries never line up with write boundaries.
    let mut buf = vec![0u8; 70_001];
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(seed, pos + k as u64);
        }
        w.write_all(&buf[..n]).await?;
        pos += n as u64;
    }
    w.shutdown().await
}

/// Reads to end of stream and checks every byte against the pattern.
async fn read_pattern(mut r: impl AsyncRead + Unpin, seed: u64, len: u64) -> io::Result<()> {
    let mut pos = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            let want = pattern(seed, pos + k as u64);
            if *b != want {
                return Err(io::Error::other(format!(
                    "byte {} is {b}, want {want}",
                    pos + k as u64
                )));
            }
        }
        pos += n as u64;
    }
    if pos != len {
        return Err(io::Error::other(format!("read {pos} bytes, want {len}")));
    }
    Ok(())
}

/// Sends `len` bytes each way at once and checks both streams.
async fn exchange(a: XtcpStream, b: XtcpStream, len: u64) {
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let all = async {
        tokio::try_join!(
            write_pattern(aw, 1, len),
            read_pattern(br, 1, len),
            write_pattern(bw, 2, len),
            read_pattern(ar, 2, len),
        )
    };
    tokio::time::timeout(WAIT, all)
        .await
        .expect("transfer timed out")
        .expect("transfer failed");
}

async fn pair(config: SocketConfig) -> (XtcpSocket, XtcpSocket, XtcpStream, XtcpStream) {
    let server = XtcpSocket::bind_with(localhost(), config.clone()).unwrap();
    let mut client_config = config;
    client_config.listen = false;
    let client = XtcpSocket::bind_with(localhost(), client_config).unwrap();
    let (c, s) = tokio::time::timeout(WAIT, async {
        tokio::try_join!(client.connect(server.local_addr()), server.accept())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(c.peer_addr(), server.local_addr());
    assert_eq!(s.peer_addr(), client.local_addr());
    (client, server, c, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_mib_both_ways_arrive_exactly() {
    let (_client, _server, c, s) = pair(SocketConfig::default()).await;
    exchange(c, s, 8 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gso_every_byte_still_arrives() {
    let mut config = SocketConfig::default();
    config.gso = false;
    let (_client, _server, c, s) = pair(config).await;
    exchange(c, s, 4 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_windows_and_buffers_do_not_stall() {
    // Buffers far below the stream's wake thresholds: window updates and sends must
    // still be driven (by reads that drain the buffer, and by ACKs).
    let mut transport = rescue_xtcp::Config::default();
    transport.recv_buffer = 8 << 10;
    transport.send_buffer = 8 << 10;
    let mut config = SocketConfig::default();
    config.transport = std::sync::Arc::new(transport);
    let (_client, _server, c, s) = pair(config).await;
    exchange(c, s, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connect_makes_one_connection() {
    let config = SocketConfig::listening(false);
    let a = XtcpSocket::bind_with(localhost(), config.clone()).unwrap();
    let b = XtcpSocket::bind_with(localhost(), config).unwrap();
    let (sa, sb) = tokio::time::timeout(WAIT, async {
        tokio::try_join!(a.connect(b.local_addr()), b.connect(a.local_addr()))
    })
    .await
    .expect("simultaneous open timed out")
    .expect("simultaneous open failed");
    exchange(sa, sb, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_share_one_socket() {
    let server = XtcpSocket::bind(localhost()).unwrap();
    let client = XtcpSocket::bind_with(localhost(), SocketConfig::listening(false)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, s) =
            tokio::try_join!(client.connect(server.local_addr()), server.accept()).unwrap();
        tasks.push(tokio::spawn(exchange(c, s, 512 << 10)));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_silent_port_times_out() {
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind(localhost()).unwrap();
    let mut config = SocketConfig::listening(false);
    config.connect_timeout = Duration::from_millis(300);
    let client = XtcpSocket::bind_with(localhost(), config).unwrap();
    let err = client
        .connect(silent.local_addr().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_finishes_it_gracefully() {
    let (_client, _server, mut c, mut s) = pair(SocketConfig::default()).await;
    c.write_all(b"last words").await.unwrap();
    drop(c);
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"last words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_resets_the_peer() {
    let (_client, _server, c, mut s) = pair(SocketConfig::default()).await;
    c.abort();
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_send_buffer_makes_writes_wait() {
    let (_client, _server, mut c, mut s) = pair(SocketConfig::default()).await;
    // Nobody reads: the peer's window and our send buffer fill, then writes stay pending.
    let chunk = vec![7u8; 64 << 10];
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), c.write(&chunk)).await {
            Ok(r) => written += r.unwrap(),
            Err(_) => break,
        }
        assert!(written < 256 << 20, "writes never blocked");
    }
    // Reading everything unblocks the writer; the total is exact.
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = s.read(&mut buf).await.unwrap();
            if k == 0 {
                return n;
            }
            n += k;
        }
    });
    tokio::time::timeout(WAIT, async {
        c.write_all(&chunk).await.unwrap();
        c.shutdown().await.unwrap();
    })
    .await
    .unwrap();
    let read = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(read, written + chunk.len());
}
