//! Tests of the impairment proxy.

use ::tokio::net::UdpSocket;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A UDP sink that records what arrives and echoes it back.
async fn echo_target() -> (SocketAddr, ::tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = ::tokio::sync::mpsc::unbounded_channel();
    ::tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = tx.send(buf[..n].to_vec());
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    (addr, rx)
}

async fn proxy(
    upstream: Impairment,
    downstream: Impairment,
) -> (
    ImpairProxy,
    UdpSocket,
    ::tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (target, rx) = echo_target().await;
    let config = ImpairConfig {
        upstream,
        downstream,
        seed: 7,
    };
    let p = ImpairProxy::start("127.0.0.1:0".parse().unwrap(), target, config)
        .await
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(p.local_addr()).await.unwrap();
    (p, client, rx)
}

/// Sends `n` numbered datagrams in groups small enough for the kernel's socket buffers,
/// waiting after each group until the proxy has dealt with all of it.
async fn send_paced(p: &ImpairProxy, client: &UdpSocket, n: u32, len: usize) {
    for i in 0..n {
        let mut d = vec![0u8; len.max(4)];
        d[..4].copy_from_slice(&i.to_be_bytes());
        client.send(&d).await.unwrap();
        if i % 32 == 31 || i + 1 == n {
            wait_for(p, |s| s.upstream.received == u64::from(i) + 1).await;
        }
    }
}

/// Waits until `cond` holds on the proxy's counters, or fails after [`WAIT`].
async fn wait_for(p: &ImpairProxy, cond: impl Fn(&ImpairStats) -> bool) -> ImpairStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = p.stats();
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "condition not reached: {s:?}");
        ::tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn forwards_both_ways_unimpaired() {
    let (p, client, mut rx) = proxy(Impairment::none(), Impairment::none()).await;
    client.send(b"hello").await.unwrap();
    let got = ::tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello");
    let mut buf = [0u8; 16];
    let n = ::tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"hello");
    let s = p.stats();
    assert_eq!((s.upstream.forwarded, s.downstream.forwarded), (1, 1));
}

#[tokio::test]
async fn drops_about_the_configured_share() {
    let (p, client, mut rx) = proxy(
        Impairment::lossy(0.3, Duration::ZERO),
        Impairment::lossy(1.0, Duration::ZERO),
    )
    .await;
    send_paced(&p, &client, 1000, 4).await;
    let s = wait_for(&p, |s| s.upstream.forwarded + s.upstream.lost == 1000).await;
    assert!(
        (200..400).contains(&s.upstream.lost),
        "lost {}",
        s.upstream.lost
    );
    let mut arrived = 0;
    while arrived < s.upstream.forwarded {
        ::tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        arrived += 1;
    }
    // Every echo is dropped on the way back.
    let s = wait_for(&p, |s| s.downstream.lost == s.upstream.forwarded).await;
    assert_eq!(s.downstream.forwarded, 0);
}

#[tokio::test]
async fn delays_by_at_least_the_configured_time() {
    let delay = Duration::from_millis(40);
    let (_p, client, _rx) =
        proxy(Impairment::lossy(0.0, delay), Impairment::lossy(0.0, delay)).await;
    let start = Instant::now();
    client.send(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    ::tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= 2 * delay, "rtt {:?}", start.elapsed());
}

#[tokio::test]
async fn duplicates_and_reorders_but_loses_nothing() {
    let up = Impairment {
        duplicate: 0.2,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(5),
        ..Impairment::none()
    };
    let (p, client, mut rx) = proxy(up, Impairment::none()).await;
    send_paced(&p, &client, 500, 4).await;
    let s = wait_for(&p, |s| s.upstream.received == 500).await;
    let expected = 500 + s.upstream.duplicated;
    let mut seen = vec![0u32; 500];
    let mut out_of_order = 0;
    let mut last = 0u32;
    for _ in 0..expected {
        let d = ::tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        let i = u32::from_be_bytes(d[..4].try_into().unwrap());
        seen[i as usize] += 1;
        out_of_order += u32::from(i < last);
        last = last.max(i);
    }
    assert!(seen.iter().all(|n| (1..=2).contains(n)));
    assert_eq!(
        seen.iter().filter(|n| **n == 2).count() as u64,
        s.upstream.duplicated
    );
    assert!(
        s.upstream.duplicated > 50 && s.upstream.reordered > 50,
        "{s:?}"
    );
    assert!(out_of_order > 0);
}

#[tokio::test]
async fn rate_limit_paces_and_queue_limit_drops() {
    let up = Impairment {
        rate: Some(100_000),
        queue_limit: 20,
        ..Impairment::none()
    };
    let (p, client, _rx) = proxy(up, Impairment::none()).await;
    let start = Instant::now();
    send_paced(&p, &client, 100, 1000).await;
    let s = wait_for(&p, |s| {
        s.upstream.received == 100 && s.upstream.forwarded + s.upstream.queue_dropped == 100
    })
    .await;
    assert!(s.upstream.queue_dropped > 0, "{s:?}");
    // Each 1000-byte datagram takes 10 ms at 100 kB/s.
    let min = Duration::from_millis(10) * (s.upstream.forwarded as u32 - 1);
    assert!(start.elapsed() >= min, "{:?} < {min:?}", start.elapsed());
}

#[tokio::test]
async fn drops_datagrams_over_the_mtu_and_forwards_the_rest() {
    let up = Impairment {
        mtu: Some(1200),
        ..Impairment::none()
    };
    let (p, client, mut rx) = proxy(up, Impairment::none()).await;
    for len in [1200usize, 1201, 600, 1500] {
        client.send(&vec![7u8; len]).await.unwrap();
    }
    let s = wait_for(&p, |s| s.upstream.received == 4).await;
    assert_eq!(s.upstream.too_big, 2);
    for want in [1200usize, 600] {
        let got = ::tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), want);
    }
}

#[test]
fn bursty_loss_keeps_the_rate_and_clusters() {
    let imp = Impairment {
        loss: 0.05,
        burst: 4.0,
        ..Impairment::none()
    };
    let mut shaper = Shaper::new(imp, 9, Arc::new(Counters::default()));
    let t0 = Instant::now();
    let fates: Vec<bool> = (0..200_000u64)
        .map(|i| shaper.lose(t0 + Duration::from_micros(i * 100)))
        .collect();
    let lost = fates.iter().filter(|l| **l).count() as f64 / fates.len() as f64;
    assert!((0.04..0.06).contains(&lost), "loss rate {lost}");
    let bursts = fates.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
    let mean = fates.iter().filter(|l| **l).count() as f64 / bursts;
    assert!((3.0..5.0).contains(&mean), "mean burst {mean}");
    // A burst ends after MAX_BURST_DURATION however few datagrams pass.
    shaper.burst_since = Some(t0);
    assert!(!shaper.lose(t0 + MAX_BURST_DURATION * 2) || shaper.burst_since != Some(t0));
}

mod shaping {
    use proptest::prelude::*;

    use super::*;

    fn impairment() -> impl Strategy<Value = Impairment> {
        (
            0.0..=1.0f64,
            0u64..50,
            0u64..20,
            0.0..=1.0f64,
            0.0..=1.0f64,
            0u64..30,
            prop::option::of(1_000u64..10_000_000),
            1usize..200,
        )
            .prop_map(|(loss, d, j, dup, reo, rd, rate, limit)| Impairment {
                loss,
                delay: Duration::from_millis(d),
                jitter: Duration::from_millis(j),
                duplicate: dup,
                reorder: reo,
                reorder_delay: Duration::from_millis(rd),
                rate,
                queue_limit: limit,
                ..Impairment::none()
            })
    }

    proptest! {
        /// Every datagram is either queued (once, or twice when duplicated), lost or
        /// tail-dropped; nothing leaves before its delay; the queue stays bounded.
        #[test]
        fn accounts_for_every_datagram(
            imp in impairment(),
            seed in any::<u64>(),
            sizes in prop::collection::vec(1usize..1500, 0..300),
        ) {
            let counters = Arc::new(Counters::default());
            let mut shaper = Shaper::new(imp.clone(), seed, counters.clone());
            let start = Instant::now();
            for (i, len) in sizes.iter().enumerate() {
                let now = start + Duration::from_micros(i as u64 * 100);
                let datagram = vec![i as u8; *len];
                let first_id = shaper.next_id;
                shaper.schedule(&datagram, now);
                prop_assert!(shaper.queue.len() <= imp.queue_limit + 1);
                for Reverse((at, id, _)) in shaper.queue.iter() {
                    if *id >= first_id {
                        prop_assert!(*at >= now + imp.delay);
                    }
                }
            }
            let s = counters.snapshot();
            prop_assert_eq!(s.received, sizes.len() as u64);
            prop_assert_eq!(
                shaper.queue.len() as u64 + s.lost + s.too_big + s.queue_dropped,
                s.received + s.duplicated
            );
            if imp.loss == 0.0 {
                prop_assert_eq!(s.lost, 0);
            }
        }

        /// Without jitter and reordering, datagrams leave in arrival order, and a
        /// rate limit spaces departures by each datagram's time on the wire.
        #[test]
        fn keeps_order_and_rate_without_reordering(
            rate in prop::option::of(10_000u64..10_000_000),
            sizes in prop::collection::vec(1usize..1500, 1..200),
        ) {
            let imp = Impairment { rate, delay: Duration::from_millis(5), ..Impairment::none() };
            let mut shaper = Shaper::new(imp, 1, Arc::new(Counters::default()));
            let start = Instant::now();
            for (i, len) in sizes.iter().enumerate() {
                let mut d = vec![0u8; *len];
                d[0] = i as u8;
                shaper.schedule(&d, start);
            }
            let mut prev: Option<Instant> = None;
            let mut i = 0usize;
            while let Some(Reverse((at, _, d))) = shaper.queue.pop() {
                prop_assert_eq!(d[0], i as u8);
                if let (Some(p), Some(r)) = (prev, rate) {
                    let wire = Duration::from_secs_f64(d.len() as f64 / r as f64);
                    prop_assert!(at >= p + wire - Duration::from_micros(1));
                }
                prev = Some(at);
                i += 1;
            }
            prop_assert_eq!(i, sizes.len());
        }
    }
}
