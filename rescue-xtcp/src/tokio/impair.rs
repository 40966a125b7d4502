//! A UDP impairment proxy (loss, delay, jitter, duplication, reordering and a bandwidth
//! limit) on real sockets, for the real-socket tests and the benchmarks.
//!
//! [`ImpairProxy::start`] binds one UDP port. Datagrams that a client sends to that port
//! are forwarded to the target from a second, ephemeral socket; datagrams the target sends
//! back to that socket go to the client (the last address that sent to the proxy). Each
//! direction has its own [`Impairment`] and its own seeded RNG, so a run is reproducible
//! up to the timing of the operating system.
//!
//! This is `tc netem` in userspace (netem needs root, which tests do not have). It never
//! looks inside datagrams, never corrupts them, never holds more than
//! [`Impairment::queue_limit`] datagrams per direction (extra datagrams are tail-dropped and
//! counted) and serves one client at a time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use ::tokio::task::JoinHandle;
use ::tokio::time::{sleep_until, Instant};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::udp::{RecvBufs, UdpIo};

/// Largest datagram the proxy forwards; UDP cannot carry more (65,535 minus headers).
pub const MAX_DATAGRAM: usize = 65_536;
/// Default bound on datagrams queued per direction: about 12 MiB of 1200-byte datagrams,
/// enough for a 1 Gbit/s x 100 ms path, small enough to stay bounded.
pub const DEFAULT_QUEUE_LIMIT: usize = 10_000;
/// Largest datagram expected in a GRO batch when sizing receive buffers (MTU-sized
/// datagrams); a single larger datagram still fits, since a slot holds at least 64 KiB.
const GRO_PAYLOAD: usize = 2048;
/// Receive batches read in one go before the due datagrams are sent, so a flood cannot
/// starve the sending side of a direction.
const RECV_BURST: usize = 4;
/// Longest loss burst in time (see [`Impairment::burst`]): about one round trip of
/// the benchmark's path.
pub const MAX_BURST_DURATION: Duration = Duration::from_millis(20);
/// Salt mixed into the seed of the downstream direction so both directions differ.
const DOWNSTREAM_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// What happens to the datagrams of one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Impairment {
    /// Probability (0.0–1.0) that a datagram is dropped.
    pub loss: f64,
    /// Fixed one-way delay added to every datagram.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram (reorders when large).
    pub jitter: Duration,
    /// Probability (0.0–1.0) that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability (0.0–1.0) that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Bandwidth limit in bytes per second (`None`: unlimited).
    pub rate: Option<u64>,
    /// Most datagrams queued in this direction; more are tail-dropped.
    pub queue_limit: usize,
    /// Mean length of a loss burst (Gilbert-Elliott model: once a datagram is lost,
    /// the next is lost too with probability `1 - 1 / burst`); `loss` stays the
    /// long-run loss rate. 1.0 or less: independent losses. A burst also ends after
    /// [`MAX_BURST_DURATION`], as a radio fade does: the chain counts datagrams, and
    /// a sender backing off would otherwise sit in one burst for many timeouts.
    pub burst: f64,
    /// Datagrams larger than this many bytes are dropped, as a path with that MTU
    /// (UDP payload) would; `None`: no limit.
    pub mtu: Option<usize>,
}

impl Default for Impairment {
    fn default() -> Self {
        Self::none()
    }
}

impl Impairment {
    /// No impairment: every datagram is forwarded at once.
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            rate: None,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            burst: 1.0,
            mtu: None,
        }
    }

    /// Random loss with probability `loss` and a fixed one-way `delay`.
    pub fn lossy(loss: f64, delay: Duration) -> Self {
        Self {
            loss,
            delay,
            ..Self::none()
        }
    }
}

/// Configuration of both directions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImpairConfig {
    /// Client → target.
    pub upstream: Impairment,
    /// Target → client.
    pub downstream: Impairment,
    /// Seed of the RNGs that decide loss, duplication, jitter and reordering.
    pub seed: u64,
}

impl ImpairConfig {
    /// The same impairment in both directions.
    pub fn symmetric(impairment: Impairment, seed: u64) -> Self {
        Self {
            upstream: impairment.clone(),
            downstream: impairment,
            seed,
        }
    }
}

/// Counters of one direction (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams received from the sending side.
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub forwarded: u64,
    /// Bytes sent on.
    pub forwarded_bytes: u64,
    /// Datagrams dropped by random loss.
    pub lost: u64,
    /// Datagrams dropped for exceeding the MTU.
    pub too_big: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams held back by reordering.
    pub reordered: u64,
    /// Datagrams dropped because the queue was full.
    pub queue_dropped: u64,
    /// Datagrams dropped because no client had spoken yet (downstream only).
    pub no_peer: u64,
    /// Send or receive errors from the operating system.
    pub io_errors: u64,
}

/// Counters of both directions (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Client → target.
    pub upstream: DirectionStats,
    /// Target → client.
    pub downstream: DirectionStats,
}

/// A running proxy; dropping it (or [`ImpairProxy::stop`]) stops both directions.
#[derive(Debug)]
pub struct ImpairProxy {
    local_addr: SocketAddr,
    upstream: Arc<Counters>,
    downstream: Arc<Counters>,
    /// The MTU of each direction (0: none), shared with its shaper.
    mtus: [Arc<AtomicUsize>; 2],
    tasks: Vec<JoinHandle<()>>,
}

impl ImpairProxy {
    /// Binds `listen` and starts forwarding to `target` with the impairments of `config`.
    /// Must be called inside a tokio runtime (with the time driver enabled).
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        config: ImpairConfig,
    ) -> io::Result<Self> {
        let front = Arc::new(UdpIo::bind(listen, false)?);
        let unspecified: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let back = Arc::new(UdpIo::bind(unspecified, false)?);
        let client = Arc::new(Mutex::new(None));
        let upstream = Arc::new(Counters::default());
        let downstream = Arc::new(Counters::default());
        let up_shaper = Shaper::new(config.upstream, config.seed, upstream.clone());
        let down_shaper = Shaper::new(
            config.downstream,
            config.seed ^ DOWNSTREAM_SALT,
            downstream.clone(),
        );
        let mtus = [up_shaper.mtu.clone(), down_shaper.mtu.clone()];
        let up = Direction {
            from: front.clone(),
            to: back.clone(),
            dest: Dest::Fixed(target),
            learn: Some(client.clone()),
            shaper: up_shaper,
        };
        let down = Direction {
            from: back,
            to: front.clone(),
            dest: Dest::Learned(client),
            learn: None,
            shaper: down_shaper,
        };
        Ok(Self {
            local_addr: front.local_addr()?,
            upstream,
            downstream,
            mtus,
            tasks: vec![::tokio::spawn(up.run()), ::tokio::spawn(down.run())],
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Changes the MTU of both directions from now on (`None`: no limit): a path
    /// whose MTU drops mid-connection.
    pub fn set_mtu(&self, mtu: Option<usize>) {
        for m in &self.mtus {
            m.store(mtu.unwrap_or(0), Ordering::Relaxed);
        }
    }

    /// A snapshot of the counters of both directions.
    pub fn stats(&self) -> ImpairStats {
        ImpairStats {
            upstream: self.upstream.snapshot(),
            downstream: self.downstream.snapshot(),
        }
    }

    /// Stops both directions; queued datagrams are discarded.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ImpairProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    lost: AtomicU64,
    too_big: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    queue_dropped: AtomicU64,
    no_peer: AtomicU64,
    io_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            forwarded_bytes: get(&self.forwarded_bytes),
            lost: get(&self.lost),
            too_big: get(&self.too_big),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            queue_dropped: get(&self.queue_dropped),
            no_peer: get(&self.no_peer),
            io_errors: get(&self.io_errors),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Dest {
    Fixed(SocketAddr),
    Learned(Arc<Mutex<Option<SocketAddr>>>),
}

/// A queued datagram: due time, then arrival order (so equal times keep their order).
type Queued = Reverse<(Instant, u64, Vec<u8>)>;

struct Direction {
    from: Arc<UdpIo>,
    to: Arc<UdpIo>,
    dest: Dest,
    learn: Option<Arc<Mutex<Option<SocketAddr>>>>,
    shaper: Shaper,
}

/// The decisions of one direction (no I/O): what is dropped, duplicated, delayed, and
/// when each datagram leaves.
struct Shaper {
    imp: Impairment,
    rng: StdRng,
    counters: Arc<Counters>,
    queue: BinaryHeap<Queued>,
    next_id: u64,
    /// When the bandwidth-limited link is free to start the next datagram.
    link_free_at: Instant,
    /// In a loss burst (Gilbert-Elliott "bad" state) since this time.
    burst_since: Option<Instant>,
    /// The MTU now (0: none); [`ImpairProxy::set_mtu`] changes it.
    mtu: Arc<AtomicUsize>,
}

impl Shaper {
    fn new(imp: Impairment, seed: u64, counters: Arc<Counters>) -> Self {
        Self {
            mtu: Arc::new(AtomicUsize::new(imp.mtu.unwrap_or(0))),
            imp,
            rng: StdRng::seed_from_u64(seed),
            counters,
            queue: BinaryHeap::new(),
            next_id: 0,
            link_free_at: Instant::now(),
            burst_since: None,
        }
    }

    /// When the next queued datagram is due.
    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next datagram due at or before `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? > now {
            return None;
        }
        self.queue.pop().map(|Reverse((_, _, data))| data)
    }

    /// Whether the next datagram is lost: independent losses at rate `loss`, or a
    /// two-state chain with mean burst length `burst` and the same long-run rate.
    fn lose(&mut self, now: Instant) -> bool {
        let loss = self.imp.loss.clamp(0.0, 1.0);
        if loss == 0.0 {
            return false;
        }
        if self.imp.burst <= 1.0 || loss >= 1.0 {
            return self.rng.gen_bool(loss);
        }
        let leave = 1.0 / self.imp.burst;
        self.burst_since = match self.burst_since {
            Some(t) if now.saturating_duration_since(t) > MAX_BURST_DURATION => None,
            Some(t) => (!self.rng.gen_bool(leave)).then_some(t),
            None => {
                // Stationary share of the bad state = enter / (enter + leave) = loss.
                let enter = (loss * leave / (1.0 - loss)).min(1.0);
                self.rng.gen_bool(enter).then_some(now)
            }
        };
        self.burst_since.is_some()
    }

    /// Decides the fate of one datagram that arrived at `now`.
    fn schedule(&mut self, data: &[u8], now: Instant) {
        bump(&self.counters.received);
        let mtu = self.mtu.load(Ordering::Relaxed);
        if mtu != 0 && data.len() > mtu {
            return bump(&self.counters.too_big);
        }
        if self.lose(now) {
            return bump(&self.counters.lost);
        }
        if self.queue.len() >= self.imp.queue_limit {
            return bump(&self.counters.queue_dropped);
        }
        let mut at = now;
        if let Some(rate) = self.imp.rate.filter(|r| *r > 0) {
            let start = self.link_free_at.max(now);
            let wire = Duration::from_secs_f64(data.len() as f64 / rate as f64);
            self.link_free_at = start + wire;
            at = self.link_free_at;
        }
        at += self.imp.delay;
        if !self.imp.jitter.is_zero() {
            at += self.imp.jitter.mul_f64(self.rng.gen_range(0.0..=1.0));
        }
        if self.imp.reorder > 0.0 && self.rng.gen_bool(self.imp.reorder.min(1.0)) {
            bump(&self.counters.reordered);
            at += self.imp.reorder_delay;
        }
        let copies = if self.imp.duplicate > 0.0 && self.rng.gen_bool(self.imp.duplicate.min(1.0)) {
            bump(&self.counters.duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.queue.push(Reverse((at, self.next_id, data.to_vec())));
            self.next_id += 1;
        }
    }
}

impl Direction {
    async fn run(mut self) {
        let from = self.from.clone();
        let mut bufs = RecvBufs::new(quinn_udp::BATCH_SIZE, GRO_PAYLOAD, from.gro_segments());
        loop {
            // Check the clock before arming the sleep: send what is already due.
            self.flush().await;
            let next = self.shaper.next_due();
            let received = ::tokio::select! {
                r = bufs.recv(&from) => Some(r),
                _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => None,
            };
            let Some(mut r) = received else { continue };
            for _ in 0..RECV_BURST {
                self.on_recv(r, &bufs);
                match poll_fn(|cx| Poll::Ready(bufs.poll_recv(cx, &from))).await {
                    Poll::Ready(next) => r = next,
                    Poll::Pending => break,
                }
            }
        }
    }

    fn on_recv(&mut self, r: io::Result<usize>, bufs: &RecvBufs) {
        let Ok(slots) = r else {
            return bump(&self.shaper.counters.io_errors);
        };
        let now = Instant::now();
        for i in 0..slots {
            let Some((peer, datagrams)) = bufs.slot(i) else {
                continue;
            };
            if let Some(learn) = &self.learn {
                if let Ok(mut client) = learn.lock() {
                    *client = Some(peer);
                }
            }
            for data in datagrams {
                self.shaper.schedule(data, now);
            }
        }
    }

    /// Sends every queued datagram whose time has come.
    async fn flush(&mut self) {
        let now = Instant::now();
        let counters = self.shaper.counters.clone();
        while let Some(data) = self.shaper.pop_due(now) {
            let dest = match &self.dest {
                Dest::Fixed(a) => Some(*a),
                Dest::Learned(m) => m.lock().ok().and_then(|g| *g),
            };
            let Some(dest) = dest else {
                bump(&counters.no_peer);
                continue;
            };
            let errors = self.to.send_errors();
            self.to
                .send(&quinn_udp::Transmit {
                    destination: dest,
                    ecn: None,
                    contents: &data,
                    segment_size: None,
                    src_ip: None,
                })
                .await;
            if self.to.send_errors() == errors {
                bump(&counters.forwarded);
                counters
                    .forwarded_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            } else {
                bump(&counters.io_errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
