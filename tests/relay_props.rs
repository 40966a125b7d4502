//! Property tests of the relay core as a peer-driven state machine: any mix of DATA,
//! PING and PONG frames, cut into any chunks, comes out as exactly the DATA frames on
//! the other hop and one PONG per PING on the same hop; any frame type the relay does
//! not accept ends the session with a typed violation after the DATA before it.

use proptest::prelude::*;
use rescue::relay::{relay, FrameViolation, RelayEnd, RelayError, RelayLimits, Side};
use rescue_proto::Guid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A frame a peer sends during the relay.
#[derive(Debug, Clone)]
enum Sent {
    Data(Vec<u8>),
    Ping(u64),
    Pong(u64),
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut f = vec![ty, len[1], len[2], len[3]];
    f.extend_from_slice(payload);
    f
}

impl Sent {
    fn encode(&self) -> Vec<u8> {
        match self {
            Sent::Data(p) => frame(0x08, p),
            Sent::Ping(n) => frame(0x09, &n.to_be_bytes()),
            Sent::Pong(n) => frame(0x0A, &n.to_be_bytes()),
        }
    }
}

fn sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..3000).prop_map(Sent::Data),
        1 => prop::collection::vec(any::<u8>(), 60_000..=65_536).prop_map(Sent::Data),
        2 => any::<u64>().prop_map(Sent::Ping),
        1 => any::<u64>().prop_map(Sent::Pong),
    ]
}

/// Runs one session over in-memory hops: A writes `input` in chunks of the given sizes
/// (cycled), then the closing bytes; returns what A and B received and how it ended.
fn run(input: Vec<u8>, chunks: Vec<usize>, closing: Vec<u8>) -> (Vec<u8>, Vec<u8>, RelayEnd) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (peer_a, hop_a) = tokio::io::duplex(8192);
        let (mut peer_b, hop_b) = tokio::io::duplex(8192);
        let guid = Guid::from_bytes([5; 16]);
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
        let (mut ar, mut aw) = tokio::io::split(peer_a);
        let writer = tokio::spawn(async move {
            let mut rest = &input[..];
            for size in chunks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*size).clamp(1, rest.len());
                // A write fails only once the relay has ended the session.
                if aw.write_all(&rest[..n]).await.is_err() {
                    return;
                }
                rest = &rest[n..];
            }
            let _ = aw.write_all(&closing).await;
            let _ = aw.shutdown().await;
        });
        let mut to_a = Vec::new();
        let mut to_b = Vec::new();
        let (ra, rb) = tokio::join!(ar.read_to_end(&mut to_a), peer_b.read_to_end(&mut to_b));
        ra.expect("A reads");
        rb.expect("B reads");
        writer.await.expect("writer");
        drop((ar, peer_b));
        let stats = task.await.expect("relay");
        (to_a, to_b, stats.end)
    })
}

/// Found by the first property: a second PING waiting for the first PONG must not be
/// taken for truncated input when the peer's CLOSE and EOF follow at once.
#[test]
fn back_to_back_pings_then_close_and_eof() {
    let input: Vec<u8> = [Sent::Ping(1), Sent::Ping(2)]
        .iter()
        .flat_map(Sent::encode)
        .collect();
    let close = frame(0x0C, &[0, 1]);
    let (to_a, to_b, end) = run(input, vec![100], close.clone());
    let pongs: Vec<u8> = [Sent::Pong(1), Sent::Pong(2)]
        .iter()
        .flat_map(Sent::encode)
        .collect();
    assert_eq!(to_a, pongs);
    assert_eq!(to_b, close);
    assert_eq!(end, RelayEnd::Closed(Side::A));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn data_is_forwarded_exactly_and_pings_answered_in_order(
        frames in prop::collection::vec(sent(), 0..24),
        chunks in prop::collection::vec(1usize..70_000, 1..8),
    ) {
        let input: Vec<u8> = frames.iter().flat_map(Sent::encode).collect();
        let close = frame(0x0C, &[0, 1]);
        let (to_a, to_b, end) = run(input, chunks, close.clone());
        let mut want_b: Vec<u8> = frames
            .iter()
            .filter(|f| matches!(f, Sent::Data(_)))
            .flat_map(Sent::encode)
            .collect();
        want_b.extend(&close);
        let want_a: Vec<u8> = frames
            .iter()
            .filter_map(|f| match f {
                Sent::Ping(n) => Some(Sent::Pong(*n).encode()),
                _ => None,
            })
            .flatten()
            .collect();
        prop_assert!(to_b == want_b, "B got {} bytes, want {}", to_b.len(), want_b.len());
        prop_assert_eq!(to_a, want_a);
        prop_assert_eq!(end, RelayEnd::Closed(Side::A));
    }

    #[test]
    fn a_forbidden_frame_type_ends_with_a_typed_violation(
        frames in prop::collection::vec(sent(), 0..8),
        chunks in prop::collection::vec(1usize..70_000, 1..8),
        bad in prop_oneof![0x00u8..0x08, 0x0Bu8..0x0C, 0x0Eu8..=0xff],
    ) {
        let input: Vec<u8> = frames.iter().flat_map(Sent::encode).collect();
        let (_, to_b, end) = run(input, chunks, frame(bad, &[1, 2, 3, 4]));
        let data: Vec<u8> = frames
            .iter()
            .filter(|f| matches!(f, Sent::Data(_)))
            .flat_map(Sent::encode)
            .collect();
        prop_assert!(to_b.starts_with(&data), "B lost DATA before the violation");
        prop_assert_eq!(&to_b[data.len()..], &[0x0B, 0, 0, 4, 0, 0, 0, 0][..]);
        prop_assert_eq!(
            end,
            RelayEnd::Failed(RelayError::Protocol {
                hop: Side::A,
                violation: FrameViolation::UnexpectedType(bad),
            })
        );
    }
}

/// The gateway side writes `input` in chunks; the app reads through a `DataTunnel` with
/// reads of the given sizes until EOF; returns the payload bytes and what the tunnel sent.
fn run_tunnel(input: Vec<u8>, chunks: Vec<usize>, reads: Vec<usize>) -> (Vec<u8>, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (peer, gateway) = tokio::io::duplex(4096);
        let (mut gr, mut gw) = tokio::io::split(gateway);
        let writer = tokio::spawn(async move {
            let mut rest = &input[..];
            for size in chunks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*size).clamp(1, rest.len());
                gw.write_all(&rest[..n]).await.expect("gateway writes");
                rest = &rest[n..];
            }
            gw
        });
        let reader = tokio::spawn(async move {
            let mut sent = Vec::new();
            gr.read_to_end(&mut sent).await.expect("gateway reads");
            sent
        });
        let mut tunnel = rescue::tunnel::DataTunnel::new(peer);
        let mut got = Vec::new();
        for size in reads.iter().cycle() {
            let mut buf = vec![0; *size];
            let n = tunnel.read(&mut buf).await.expect("tunnel read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        drop(writer.await.expect("writer"));
        drop(tunnel);
        (got, reader.await.expect("reader"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tunnel_reads_payloads_exactly_whatever_the_cuts(
        frames in prop::collection::vec(sent(), 0..24),
        chunks in prop::collection::vec(1usize..70_000, 1..8),
        reads in prop::collection::vec(1usize..100_000, 1..8),
    ) {
        let mut input: Vec<u8> = frames.iter().flat_map(Sent::encode).collect();
        input.extend(frame(0x0C, &[0, 0]));
        let (got, sent) = run_tunnel(input, chunks, reads);
        let want: Vec<u8> = frames
            .iter()
            .filter_map(|f| match f {
                Sent::Data(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let pongs: Vec<u8> = frames
            .iter()
            .filter_map(|f| match f {
                Sent::Ping(n) => Some(Sent::Pong(*n).encode()),
                _ => None,
            })
            .flatten()
            .collect();
        prop_assert!(got == want, "payload differs: {} vs {} bytes", got.len(), want.len());
        prop_assert_eq!(sent, pongs);
    }
}
