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
#[path = "impair_tests.rs"]
mod tests;
