//! Unit tests of the relay in reattach mode.

use super::*;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

const DATA: u8 = 0x08;
const PING: u8 = 0x09;
const PEER_GONE: u8 = 0x0B;
const WAIT: Duration = Duration::from_secs(10);

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut f = vec![ty, len[1], len[2], len[3]];
    f.extend_from_slice(payload);
    f
}

async fn read_frame(s: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    let read = tokio::time::timeout(WAIT, s.read_exact(&mut h)).await;
    assert!(matches!(read, Ok(Ok(_))), "a frame header in time");
    let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
    let mut p = vec![0; len];
    let read = tokio::time::timeout(WAIT, s.read_exact(&mut p)).await;
    assert!(matches!(read, Ok(Ok(_))), "the payload in time");
    (h[0], p)
}

type Outcome = (RelayStats, Option<Survivor<DuplexStream, DuplexStream>>);

/// Peers A and B and a reattachable relay (grace 30 s) between them.
fn reattachable() -> (DuplexStream, DuplexStream, tokio::task::JoinHandle<Outcome>) {
    let (peer_a, hop_a) = duplex(64 * 1024);
    let (peer_b, hop_b) = duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let limits = RelayLimits::default();
        let guid = Guid::from_bytes([9; 16]);
        let token = CancellationToken::new();
        let grace = Duration::from_secs(30);
        relay_reattachable(hop_a, hop_b, guid, &limits, token, grace).await
    });
    (peer_a, peer_b, task)
}

async fn outcome(task: tokio::task::JoinHandle<Outcome>) -> Outcome {
    match tokio::time::timeout(WAIT, task).await {
        Ok(Ok(o)) => o,
        _ => panic!("the relay ends in time"),
    }
}

#[tokio::test]
async fn a_vanished_hop_leaves_the_survivor_framed_with_peer_gone_and_read_ahead() {
    let (mut a, mut b, task) = reattachable();
    a.write_all(&frame(DATA, b"whole")).await.unwrap();
    // Half a frame, then A vanishes.
    let partial = frame(DATA, &[7u8; 10]);
    a.write_all(&partial[..8]).await.unwrap();
    assert_eq!(read_frame(&mut b).await, (DATA, b"whole".to_vec()));
    // B is inside a frame of its own when A goes; the rest of it, and a PING
    // after it, are already on the way.
    let mine = frame(DATA, &[1u8; 6]);
    b.write_all(&mine[..5]).await.unwrap();
    drop(a);
    b.write_all(&mine[5..]).await.unwrap();
    b.write_all(&frame(PING, &[3; 8])).await.unwrap();
    // The partial frame is completed with zeros, then PEER_GONE{30}.
    let (ty, padded) = read_frame(&mut b).await;
    assert_eq!((ty, &padded[..4]), (DATA, &[7u8; 4][..]));
    assert_eq!(&padded[4..], &[0u8; 6]);
    assert_eq!(
        read_frame(&mut b).await,
        (PEER_GONE, 30u32.to_be_bytes().to_vec())
    );
    let (stats, survivor) = outcome(task).await;
    assert_eq!(stats.end, RelayEnd::Vanished(Side::A));
    let Some(Survivor::B { read_ahead, .. }) = survivor else {
        panic!("hop B survives");
    };
    // B's own frame was dropped at its end; the PING is left for the gateway
    // (all or part of it, the rest is still in the stream).
    let ping = frame(PING, &[3; 8]);
    assert!(ping.starts_with(&read_ahead), "{read_ahead:?}");
}

#[tokio::test]
async fn without_a_survivor_nothing_is_handed_back() {
    let (a, b, task) = reattachable();
    drop(a);
    drop(b);
    let (stats, survivor) = outcome(task).await;
    assert!(matches!(stats.end, RelayEnd::Vanished(_)));
    assert!(survivor.is_none());
}

#[tokio::test]
async fn close_still_ends_both_in_reattach_mode() {
    let (mut a, mut b, task) = reattachable();
    a.write_all(&frame(0x0C, &[0, 1])).await.unwrap();
    let (ty, _) = read_frame(&mut b).await;
    assert_eq!(ty, 0x0C);
    drop((a, b));
    let (stats, survivor) = outcome(task).await;
    assert_eq!(stats.end, RelayEnd::Closed(Side::A));
    assert!(survivor.is_none());
}

#[test]
fn side_other_swaps() {
    assert_eq!(Side::A.other(), Side::B);
    assert_eq!(Side::B.other(), Side::A);
}

#[test]
fn stats_error_only_for_failures() {
    let mut s = RelayStats {
        a_to_b: DirectionStats::default(),
        b_to_a: DirectionStats::default(),
        end: RelayEnd::Closed(Side::A),
        forced: false,
        duration: Duration::ZERO,
    };
    assert_eq!(s.error(), None);
    s.end = RelayEnd::Failed(RelayError::IdleTimeout(IDLE_TIMEOUT));
    assert_eq!(s.error(), Some(&RelayError::IdleTimeout(IDLE_TIMEOUT)));
}
