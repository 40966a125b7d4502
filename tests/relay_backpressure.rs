//! Backpressure: a hop that stops reading stalls the other hop's writes; the relay
//! holds at most its fixed buffer, and nothing is lost once reading resumes.

use std::time::Duration;

use rescue::relay::{relay, RelayLimits, RELAY_BUFFER};
use rescue_proto::Guid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One maximal DATA frame.
fn data_frame(fill: u8) -> Vec<u8> {
    let mut f = vec![0x08, 0x01, 0x00, 0x00];
    f.extend(std::iter::repeat_n(fill, 65_536));
    f
}

/// Writes frames into `w` until a write makes no progress for `stall` (a quiet runtime
/// on virtual time, or real time on sockets); returns the bytes accepted, at most `cap`.
async fn write_until_stalled<W: AsyncWrite + Unpin>(
    w: &mut W,
    stall: Duration,
    cap: usize,
) -> usize {
    let mut written = 0;
    let mut i = 0u8;
    while written < cap {
        let f = data_frame(i);
        match tokio::time::timeout(stall, w.write_all(&f)).await {
            Ok(r) => r.expect("write"),
            // A write_all cut by the timeout may have written part of the frame; the
            // bound below counts whole frames only, so this under-counts by < 1 frame.
            Err(_) => return written,
        }
        written += f.len();
        i = i.wrapping_add(1);
    }
    written
}

/// Reads `n` bytes and checks they are the frames `write_until_stalled` wrote.
async fn read_frames<R: AsyncRead + Unpin>(r: &mut R, n: usize) {
    let mut got = vec![0; n];
    r.read_exact(&mut got).await.expect("read");
    for (i, f) in got.chunks(65_540).enumerate() {
        assert_eq!(f, &data_frame(i as u8)[..f.len()], "frame {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_reader_bounds_what_the_relay_holds_in_memory() {
    // In-memory hops of known capacity: what the writer got rid of is exactly what sits
    // in the two pipes plus what the relay holds.
    const PIPE: usize = 64 * 1024;
    let (mut peer_a, hop_a) = tokio::io::duplex(PIPE);
    let (mut peer_b, hop_b) = tokio::io::duplex(PIPE);
    let limits = RelayLimits::default().with_idle_timeout(Duration::from_secs(3600));
    let guid = Guid::from_bytes([9; 16]);
    let task =
        tokio::spawn(
            async move { relay(hop_a, hop_b, guid, &limits, CancellationToken::new()).await },
        );
    // On paused time the timeout fires only once every task is blocked.
    let written = write_until_stalled(&mut peer_a, Duration::from_secs(1), 64 << 20).await;
    assert!(written > 0);
    let held = written.saturating_sub(2 * PIPE);
    assert!(
        held <= RELAY_BUFFER,
        "the relay holds {held} bytes for a stalled reader (buffer {RELAY_BUFFER})"
    );
    // The writer is really blocked, and stays blocked while B does not read.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), peer_a.write_all(&[0x08]))
            .await
            .is_err(),
        "a one-byte write got through a full relay"
    );
    drop(peer_a);
    // B resumes: every accepted byte arrives intact.
    read_frames(&mut peer_b, written).await;
    drop(peer_b);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("relay ends")
        .expect("no panic");
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.expect("connect"), s.expect("accept").0)
}

#[tokio::test]
async fn a_stalled_reader_over_tcp_stalls_the_writer() {
    let (mut peer_a, hop_a) = tcp_pair().await;
    let (mut peer_b, hop_b) = tcp_pair().await;
    let guid = Guid::from_bytes([9; 16]);
    let task = tokio::spawn(async move {
        relay(
            hop_a,
            hop_b,
            guid,
            &RelayLimits::default(),
            CancellationToken::new(),
        )
        .await
    });
    // Loopback socket buffers autotune to a few MiB each way (tcp_wmem/tcp_rmem maxima);
    // an unbounded relay would accept all 512 MiB.
    let cap = 512 << 20;
    let written = write_until_stalled(&mut peer_a, Duration::from_secs(2), cap).await;
    assert!(
        written < 64 << 20,
        "{written} bytes accepted with nobody reading"
    );
    drop(peer_a);
    read_frames(&mut peer_b, written).await;
    drop(peer_b);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("relay ends")
        .expect("no panic");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_paces_each_direction() {
    const RATE: u64 = 100_000;
    let (mut peer_a, hop_a) = tokio::io::duplex(64 * 1024);
    let (mut peer_b, hop_b) = tokio::io::duplex(64 * 1024);
    let limits = RelayLimits::default().with_rate_limit(Some(RATE));
    let guid = Guid::from_bytes([9; 16]);
    let task =
        tokio::spawn(
            async move { relay(hop_a, hop_b, guid, &limits, CancellationToken::new()).await },
        );
    let frames = 16;
    let total = frames * 65_540;
    let start = tokio::time::Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..frames {
            peer_a.write_all(&data_frame(i as u8)).await.expect("write");
        }
        peer_a
    });
    read_frames(&mut peer_b, total).await;
    let took = start.elapsed().as_secs_f64();
    // The bucket starts with one second's worth; the rest goes at RATE.
    let floor = (total as u64 - RATE) as f64 / RATE as f64;
    assert!(took >= floor, "{total} bytes in {took:.2} s at {RATE} B/s");
    assert!(
        took <= floor * 1.2 + 1.0,
        "{total} bytes in {took:.2} s at {RATE} B/s"
    );
    drop((writer.await.expect("writer"), peer_b));
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("relay ends")
        .expect("no panic");
}
