//! Path-MTU discovery over real sockets, through the impairment proxy with a
//! configured MTU (RFC 8899 DPLPMTUD): the segment size settles just under the
//! proxy's MTU, and when the MTU drops mid-connection the connection falls back
//! and still delivers every byte.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rescue_xtcp::segment::HEADER_LEN;
use rescue_xtcp::tokio::impair::{ImpairConfig, ImpairProxy, Impairment};
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
use rescue_xtcp::ConnectionStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds a stuck transfer.
const WAIT: Duration = Duration::from_secs(60);

/// Sends `len` bytes through a proxy whose MTU is `mtu`; once `drop_after` bytes
/// arrived, the MTU becomes `drop_to`. Returns the sender's counters and the
/// datagrams the proxy dropped as too big.
async fn transfer(
    mtu: Option<usize>,
    drop_after: u64,
    drop_to: Option<usize>,
    len: u64,
) -> (ConnectionStats, u64) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = XtcpSocket::bind(any).unwrap();
    // A 20 MB/s link: the transfer lasts about a hundred round trips, enough for
    // the search to finish whatever the controller.
    let imp = Impairment {
        mtu,
        delay: Duration::from_millis(2),
        rate: Some(20_000_000),
        ..Impairment::none()
    };
    let proxy = Arc::new(
        ImpairProxy::start(any, server.local_addr(), ImpairConfig::symmetric(imp, 3))
            .await
            .unwrap(),
    );
    let client = XtcpSocket::bind_with(any, SocketConfig::listening(false)).unwrap();
    let send = async {
        let mut s = client.connect(proxy.local_addr()).await?;
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            s.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        s.shutdown().await?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await?;
        io::Result::Ok(s.stats().expect("stats"))
    };
    let recv = async {
        let mut s = server.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut got, mut dropped) = (0u64, false);
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|b| *b == 0xa5));
            got += n as u64;
            if !dropped && got >= drop_after {
                dropped = true;
                proxy.set_mtu(drop_to);
            }
        }
        s.shutdown().await?;
        io::Result::Ok(got)
    };
    let (stats, got) = tokio::time::timeout(WAIT, async { tokio::try_join!(send, recv) })
        .await
        .expect("transfer timed out")
        .expect("transfer failed");
    assert_eq!(got, len);
    (stats, proxy.stats().upstream.too_big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_settle_just_under_the_proxy_mtu() {
    let mtu = 1300;
    let (st, too_big) = transfer(Some(mtu), u64::MAX, None, 8 << 20).await;
    let best = mtu - HEADER_LEN;
    assert!(
        st.segment_size <= best && st.segment_size + 32 >= best,
        "settled at {}: {st:?}",
        st.segment_size
    );
    assert!(
        too_big >= 3,
        "the probes over the MTU reached the proxy: {too_big}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtu_drop_mid_connection_falls_back_and_delivers_everything() {
    let (st, too_big) = transfer(None, 1 << 20, Some(1250), 8 << 20).await;
    assert!(st.mtu_fallbacks >= 1, "{st:?}");
    assert!(st.segment_size + HEADER_LEN <= 1250, "{st:?}");
    assert!(too_big > 0);
}
