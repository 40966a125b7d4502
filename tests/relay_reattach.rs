//! Property test of the relay's reattach mode: hop A vanishes at a random byte of random
//! traffic while B is at a random point of its own frames. B must receive A's whole
//! frames in order, then A's cut frame completed with zeros (if its header was
//! through), then `PEER_GONE{grace}` and nothing else; the survivor B comes back at a
//! frame boundary of its own stream with nothing after that boundary lost.

use std::time::Duration;

use proptest::prelude::*;
use rescue::relay::{relay_reattachable, RelayEnd, RelayLimits, Survivor};
use rescue_proto::Guid;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

const DATA: u8 = 0x08;
const PEER_GONE: u8 = 0x0B;
const WAIT: Duration = Duration::from_secs(10);

fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![DATA, len[1], len[2], len[3]];
    f.extend_from_slice(payload);
    f
}

/// The frames whose bytes `cut` reaches: whole ones, and the cut one completed with
/// zeros if its header is complete.
fn expected_at_b(frames: &[Vec<u8>], cut: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    for p in frames {
        let f = frame(p);
        if pos + f.len() <= cut {
            out.extend_from_slice(&f);
        } else if cut >= pos + 4 {
            out.extend_from_slice(&f[..cut - pos]);
            out.resize(out.len() + pos + f.len() - cut, 0);
        }
        pos += f.len();
        if pos >= cut {
            break;
        }
    }
    out
}

/// Reads B's frames up to and including PEER_GONE.
async fn read_until_gone(b: &mut DuplexStream) -> (Vec<u8>, u32) {
    let mut data = Vec::new();
    loop {
        let mut h = [0u8; 4];
        b.read_exact(&mut h).await.unwrap();
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let mut p = vec![0; len];
        b.read_exact(&mut p).await.unwrap();
        if h[0] == PEER_GONE {
            return (data, u32::from_be_bytes(p[..4].try_into().unwrap()));
        }
        assert_eq!(h[0], DATA);
        data.extend_from_slice(&h);
        data.extend_from_slice(&p);
    }
}

fn frame_starts(frames: &[Vec<u8>]) -> Vec<usize> {
    let mut starts = vec![0];
    for p in frames {
        let last = *starts.last().unwrap();
        starts.push(last + 4 + p.len());
    }
    starts
}

async fn run_case(a_frames: Vec<Vec<u8>>, a_cut: usize, b_frames: Vec<Vec<u8>>, b_split: usize) {
    let a_all: Vec<u8> = a_frames.iter().flat_map(|p| frame(p)).collect();
    let b_all: Vec<u8> = b_frames.iter().flat_map(|p| frame(p)).collect();
    let a_cut = a_cut % (a_all.len() + 1);
    let b_split = b_split % (b_all.len() + 1);
    let (mut a, hop_a) = duplex(1 << 16);
    let (mut b, hop_b) = duplex(1 << 16);
    let relay = tokio::spawn(async move {
        let limits = RelayLimits::default();
        let token = CancellationToken::new();
        let grace = Duration::from_secs(30);
        relay_reattachable(
            hop_a,
            hop_b,
            Guid::from_bytes([1; 16]),
            &limits,
            token,
            grace,
        )
        .await
    });
    a.write_all(&a_all[..a_cut]).await.unwrap();
    b.write_all(&b_all[..b_split]).await.unwrap();
    drop(a);
    b.write_all(&b_all[b_split..]).await.unwrap();
    let (got, grace) = tokio::time::timeout(WAIT, read_until_gone(&mut b))
        .await
        .expect("PEER_GONE in time");
    assert_eq!(got, expected_at_b(&a_frames, a_cut));
    assert_eq!(grace, 30);
    let (stats, survivor) = tokio::time::timeout(WAIT, relay).await.unwrap().unwrap();
    assert!(matches!(stats.end, RelayEnd::Vanished(_)));
    let Some(Survivor::B {
        mut stream,
        read_ahead,
    }) = survivor
    else {
        panic!("B survives");
    };
    // Nothing more was written to B after PEER_GONE.
    stream.shutdown().await.unwrap();
    let mut extra = Vec::new();
    b.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, b.read_to_end(&mut extra))
        .await
        .unwrap()
        .unwrap();
    assert!(extra.is_empty(), "bytes after PEER_GONE: {extra:?}");
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let mut after = read_ahead;
    after.extend_from_slice(&rest);
    // The survivor resumes at one of its frame boundaries, nothing after it lost.
    let starts = frame_starts(&b_frames);
    let k = b_all.len() - after.len();
    assert!(starts.contains(&k), "not at a frame boundary: {k}");
    assert_eq!(after, &b_all[k..]);
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_lost_hop_leaves_the_survivor_framed_and_whole(
        a_frames in payloads(),
        a_cut in any::<usize>(),
        b_frames in payloads(),
        b_split in any::<usize>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run_case(a_frames, a_cut, b_frames, b_split));
    }
}
