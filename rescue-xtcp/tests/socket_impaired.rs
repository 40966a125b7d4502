//! XTCP over real sockets through the UDP impairment proxy: loss, duplication, reordering
//! and delay in both directions, and still exactly the bytes written, in order.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rescue_xtcp::tokio::impair::{ImpairConfig, ImpairProxy, Impairment};
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A lossy transfer of a MiB at a few ms RTT takes seconds; this bounds a stuck one.
const WAIT: Duration = Duration::from_secs(60);

fn pattern(i: u64) -> u8 {
    ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8) ^ (i % 241) as u8
}

async fn transfer_through(
    impairment: Impairment,
    seed: u64,
    len: u64,
) -> rescue_xtcp::tokio::impair::ImpairStats {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = XtcpSocket::bind(any).unwrap();
    let proxy = ImpairProxy::start(
        any,
        server.local_addr(),
        ImpairConfig::symmetric(impairment, seed),
    )
    .await
    .unwrap();
    let client = XtcpSocket::bind_with(any, SocketConfig::listening(false)).unwrap();
    let send = async {
        let mut s = client.connect(proxy.local_addr()).await?;
        let data: Vec<u8> = (0..len).map(pattern).collect();
        for part in data.chunks(50_000) {
            s.write_all(part).await?;
        }
        s.shutdown().await?;
        // Hold the stream until the peer has closed too, so nothing is cut short.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await?;
        io::Result::Ok(())
    };
    let recv = async {
        let mut s = server.accept().await?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).await?;
        s.shutdown().await?;
        io::Result::Ok(got)
    };
    let ((), got) = tokio::time::timeout(WAIT, async { tokio::try_join!(send, recv) })
        .await
        .expect("impaired transfer timed out")
        .expect("impaired transfer failed");
    assert_eq!(got.len() as u64, len);
    if let Some(i) = (0..len).find(|i| got[*i as usize] != pattern(*i)) {
        panic!("byte {i} differs");
    }
    proxy.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_duplication_and_reordering_deliver_exact_bytes() {
    let impairment = Impairment {
        loss: 0.05,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(1),
        duplicate: 0.03,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(4),
        ..Impairment::none()
    };
    let stats = transfer_through(impairment, 11, 1 << 20).await;
    // The proxy really impaired the flow it carried.
    let up = stats.upstream;
    assert!(
        up.lost > 0 && up.duplicated > 0 && up.reordered > 0,
        "{stats:?}"
    );
    assert!(stats.downstream.forwarded > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_loss_is_survived() {
    // 15 % each way: at this rate recovery is RTO-bound (200 ms minimum), so keep it short.
    // How many ACKs cross depends on timing, so only the total loss is asserted.
    let stats = transfer_through(
        Impairment::lossy(0.15, Duration::from_millis(1)),
        5,
        64 << 10,
    )
    .await;
    assert!(stats.upstream.lost + stats.downstream.lost > 0, "{stats:?}");
}
