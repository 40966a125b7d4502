//! Test support: a deterministic simulated link between two [`Endpoint`]s.
//!
//! Virtual clock, seeded RNG, per-direction impairments: loss, duplication,
//! reordering, corruption, delay and jitter, a bandwidth limit with a tail-drop
//! queue, an MTU and blackout windows. The same seed and configuration always
//! give the same run. This module is for tests and benchmarks; it is public so
//! integration tests and other crates can drive XTCP over a bad link without
//! sockets. It never reads the real clock after [`Sim::new`] and never does I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::conn::{CloseReason, Event, ReadError, State};
use crate::endpoint::{ConnectionHandle, Endpoint};

/// Most datagrams in flight on the simulated link at once (a safety bound for
/// tests; anything beyond is dropped and counted as queue loss).
const MAX_IN_FLIGHT: usize = 1 << 20;
/// Steps at one virtual instant after which the run is declared a livelock (a
/// timer that keeps firing without time advancing).
const MAX_STEPS_AT_ONE_INSTANT: u32 = 100_000;
/// GSO batch used when the simulator polls endpoints.
const SIM_MAX_DATAGRAMS: usize = 10;

/// Impairments of one direction.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]` per datagram (reorders too).
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability a datagram is held back by an extra `reorder_delay`.
    pub reorder: f64,
    /// The hold-back of a reordered datagram.
    pub reorder_delay: Duration,
    /// Probability one random bit of a datagram is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bytes per second (`None`: unlimited).
    pub bandwidth: Option<u64>,
    /// Bytes the bottleneck queue holds before tail drop.
    pub queue_bytes: usize,
    /// Datagrams larger than this are dropped.
    pub mtu: usize,
    /// Windows `[start, end)` after the simulation start in which everything sent
    /// is lost (a NAT rebinding or a dead path).
    pub blackouts: Vec<(Duration, Duration)>,
    /// Deliver in bursts: each arrival time is rounded up to the next multiple of
    /// this since the start (zero: off). Models a receiver that reads its socket
    /// in batches, as behind a proxy that flushes its queue at once and a driver
    /// that reads with `recvmmsg`: all datagrams of a burst arrive at one instant.
    pub batch: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            corrupt: 0.0,
            bandwidth: None,
            queue_bytes: 1 << 20,
            mtu: 65_535,
            blackouts: Vec::new(),
            batch: Duration::ZERO,
        }
    }
}

/// What the link did, per direction (index 0: a → b, 1: b → a).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LinkStats {
    /// Datagrams offered to the link.
    pub sent: [u64; 2],
    /// Datagrams delivered (duplicates included).
    pub delivered: [u64; 2],
    /// Datagrams lost at random, in a blackout, over the MTU or by tail drop.
    pub dropped: [u64; 2],
    /// Extra copies delivered.
    pub duplicated: [u64; 2],
    /// Datagrams held back for reordering.
    pub reordered: [u64; 2],
    /// Datagrams with a flipped bit.
    pub corrupted: [u64; 2],
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Instant,
    n: u64,
    to_b: bool,
    data: Vec<u8>,
}

/// Two endpoints joined by a simulated link.
#[derive(Debug)]
pub struct Sim {
    /// The virtual time.
    pub now: Instant,
    start: Instant,
    /// Endpoint A (address [`Sim::ADDR_A`]).
    pub a: Endpoint,
    /// Endpoint B (address [`Sim::ADDR_B`]).
    pub b: Endpoint,
    links: [LinkConfig; 2],
    free_at: [Instant; 2],
    queue: BinaryHeap<Reverse<Flight>>,
    counter: u64,
    rng: StdRng,
    buf: Vec<u8>,
    /// What the link did.
    pub stats: LinkStats,
    /// Set when a run stopped because time stopped advancing (a bug).
    pub livelock: bool,
}

impl Sim {
    /// A's address.
    pub const ADDR_A: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1000);
    /// B's address.
    pub const ADDR_B: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 2000);

    /// A simulation with link `ab` (A → B) and `ba` (B → A), all randomness from
    /// `seed` (endpoint ids and ISNs too).
    pub fn new(
        cfg_a: Arc<Config>,
        cfg_b: Arc<Config>,
        ab: LinkConfig,
        ba: LinkConfig,
        seed: u64,
    ) -> Sim {
        let start = Instant::now();
        Sim {
            now: start,
            start,
            a: Endpoint::new(cfg_a, seed ^ 0xa),
            b: Endpoint::new(cfg_b, seed ^ 0xb),
            links: [ab, ba],
            free_at: [start; 2],
            queue: BinaryHeap::new(),
            counter: 0,
            rng: StdRng::seed_from_u64(seed),
            buf: Vec::new(),
            stats: LinkStats::default(),
            livelock: false,
        }
    }

    /// The impairments of one direction (A → B when `to_b`), to change mid-run.
    pub fn link_mut(&mut self, to_b: bool) -> &mut LinkConfig {
        &mut self.links[usize::from(!to_b)]
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Sends what both endpoints have, then advances the clock to the next
    /// arrival or timer and processes it. Returns false when nothing is pending
    /// (no datagram in flight, no timer armed).
    pub fn step(&mut self) -> bool {
        self.flush();
        let next = [
            self.queue.peek().map(|f| f.0.at),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        while self.queue.peek().is_some_and(|f| f.0.at <= self.now) {
            let Some(Reverse(f)) = self.queue.pop() else {
                break;
            };
            let dir = usize::from(!f.to_b);
            self.stats.delivered[dir] += 1;
            if f.to_b {
                self.b.handle(self.now, Self::ADDR_A, &f.data);
            } else {
                self.a.handle(self.now, Self::ADDR_B, &f.data);
            }
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        true
    }

    /// Moves every pending transmit of both endpoints onto the link.
    pub fn flush(&mut self) {
        for to_b in [true, false] {
            loop {
                let now = self.now;
                let ep = if to_b { &mut self.a } else { &mut self.b };
                let Some(t) = ep.poll_transmit(now, SIM_MAX_DATAGRAMS, &mut self.buf) else {
                    break;
                };
                let data = std::mem::take(&mut self.buf);
                let stride = t.segment_size.unwrap_or(t.size).max(1);
                for d in data[..t.size].chunks(stride) {
                    self.offer(to_b, d);
                }
                self.buf = data;
            }
        }
    }

    fn offer(&mut self, to_b: bool, datagram: &[u8]) {
        let dir = usize::from(!to_b);
        self.stats.sent[dir] += 1;
        let link = &self.links[dir];
        let since = self.now - self.start;
        let blackout = link.blackouts.iter().any(|&(s, e)| s <= since && since < e);
        if blackout
            || datagram.len() > link.mtu
            || self.rng.gen_bool(link.loss.clamp(0.0, 1.0))
            || self.queue.len() >= MAX_IN_FLIGHT
        {
            self.stats.dropped[dir] += 1;
            return;
        }
        // Bottleneck: serialise behind earlier datagrams, tail-drop when full.
        let mut depart = self.now;
        if let Some(bw) = link.bandwidth.filter(|&b| b > 0) {
            let start = self.free_at[dir].max(self.now);
            let backlog = (start - self.now).as_secs_f64() * bw as f64;
            if backlog > link.queue_bytes as f64 {
                self.stats.dropped[dir] += 1;
                return;
            }
            depart = start + Duration::from_secs_f64(datagram.len() as f64 / bw as f64);
            self.free_at[dir] = depart;
        }
        let copies = if self.rng.gen_bool(link.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated[dir] += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let link = &self.links[dir];
            let mut at = depart + link.delay;
            if !link.jitter.is_zero() {
                at += link.jitter.mul_f64(self.rng.gen::<f64>());
            }
            if self.rng.gen_bool(link.reorder.clamp(0.0, 1.0)) {
                self.stats.reordered[dir] += 1;
                at += link.reorder_delay;
            }
            if !link.batch.is_zero() {
                let since = (at - self.start).as_nanos();
                let b = link.batch.as_nanos();
                let rounded = since.div_ceil(b) * b;
                at = self.start + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX));
            }
            let mut data = datagram.to_vec();
            if self.rng.gen_bool(link.corrupt.clamp(0.0, 1.0)) && !data.is_empty() {
                self.stats.corrupted[dir] += 1;
                let i = self.rng.gen_range(0..data.len());
                data[i] ^= 1 << self.rng.gen_range(0..8);
            }
            self.counter += 1;
            let n = self.counter;
            self.queue.push(Reverse(Flight { at, n, to_b, data }));
        }
    }

    /// Steps until `done(self)` holds or `limit` of virtual time has passed;
    /// returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let deadline = self.now + limit;
        let (mut last, mut same) = (self.now, 0u32);
        loop {
            if done(self) {
                return true;
            }
            if self.now > deadline || !self.step() {
                return done(self);
            }
            if self.now == last {
                same += 1;
                if same > MAX_STEPS_AT_ONE_INSTANT {
                    self.livelock = true;
                    return false;
                }
            } else {
                (last, same) = (self.now, 0);
            }
        }
    }

    /// A connects to B (which listens); returns both handles once both ends are
    /// established, or `None` if that does not happen within `limit`.
    pub fn connect(&mut self, limit: Duration) -> Option<(ConnectionHandle, ConnectionHandle)> {
        self.b.set_listening(true);
        let ha = self.a.connect(self.now, Self::ADDR_B).ok()?;
        let mut hb = None;
        let ok = self.run_until(limit, |s| {
            if hb.is_none() {
                hb = s.b.accept();
            }
            hb.is_some()
                && s.a
                    .connection(ha)
                    .is_some_and(|c| c.state().is_synchronized())
        });
        ok.then_some((ha, hb?))
    }

    /// A connects to B once per configuration in `cfgs` (each its own controller,
    /// say), all at once; returns the handle pairs in order once every connection
    /// is established, or `None` if that does not happen within `limit`.
    pub fn connect_flows(
        &mut self,
        cfgs: &[Arc<Config>],
        limit: Duration,
    ) -> Option<Vec<(ConnectionHandle, ConnectionHandle)>> {
        self.b.set_listening(true);
        let mut ha = Vec::new();
        for cfg in cfgs {
            ha.push(
                self.a
                    .connect_with(self.now, Self::ADDR_B, cfg.clone())
                    .ok()?,
            );
        }
        let mut hb = Vec::new();
        let ok = self.run_until(limit, |s| {
            while let Some(h) = s.b.accept() {
                hb.push(h);
            }
            hb.len() == ha.len()
                && ha.iter().all(|&h| {
                    s.a.connection(h)
                        .is_some_and(|c| c.state().is_synchronized())
                })
        });
        if !ok {
            return None;
        }
        // B accepts in arrival order; pair each by the ids the two sides share.
        let mut pairs = Vec::new();
        for &a in &ha {
            let peer = self.a.connection(a)?.peer_id();
            let b = hb
                .iter()
                .copied()
                .find(|&b| self.b.connection(b).is_some_and(|c| c.local_id() == peer))?;
            pairs.push((a, b));
        }
        Some(pairs)
    }

    /// Runs bulk flows from A to B for `duration` of virtual time: every A side
    /// keeps its send buffer full, every B side reads all it can. Returns the bytes
    /// each flow's B side read during the call, in the order of `flows`.
    pub fn run_flows(
        &mut self,
        flows: &[(ConnectionHandle, ConnectionHandle)],
        duration: Duration,
    ) -> Vec<u64> {
        let chunk = vec![0x5a_u8; 16 * 1024];
        let mut sink = vec![0u8; 64 * 1024];
        let mut read = vec![0u64; flows.len()];
        let end = self.now + duration;
        self.run_until(duration, |s| {
            for (i, &(ha, hb)) in flows.iter().enumerate() {
                if let Some(c) = s.a.connection(ha) {
                    while matches!(c.write(&chunk), Ok(n) if n > 0) {}
                }
                if let Some(c) = s.b.connection(hb) {
                    while let Ok(Some(n)) = c.read(&mut sink) {
                        if n == 0 {
                            break;
                        }
                        read[i] += n as u64;
                    }
                }
            }
            s.now >= end
        });
        read
    }

    /// Both sides connect to each other at once (hole punching); neither listens.
    pub fn simultaneous_open(
        &mut self,
        limit: Duration,
    ) -> Option<(ConnectionHandle, ConnectionHandle)> {
        let ha = self.a.connect(self.now, Self::ADDR_B).ok()?;
        let hb = self.b.connect(self.now, Self::ADDR_A).ok()?;
        let ok = self.run_until(limit, |s| {
            s.a.connection(ha)
                .is_some_and(|c| c.state().is_synchronized())
                && s.b
                    .connection(hb)
                    .is_some_and(|c| c.state().is_synchronized())
        });
        ok.then_some((ha, hb))
    }

    /// Runs a bidirectional transfer: A sends `a_to_b` pattern bytes, B sends
    /// `b_to_a`, both close when done; each checks every received byte against
    /// the pattern. Returns the outcome once both connections are closed or
    /// `limit` passes.
    pub fn transfer(
        &mut self,
        hs: (ConnectionHandle, ConnectionHandle),
        a_to_b: usize,
        b_to_a: usize,
        limit: Duration,
    ) -> Outcome {
        self.transfer_with(hs, a_to_b, b_to_a, limit, |_| {})
    }

    /// [`Sim::transfer`] that also calls `hook` after every step (to inject
    /// forged datagrams, change impairments, or check invariants).
    pub fn transfer_with(
        &mut self,
        (ha, hb): (ConnectionHandle, ConnectionHandle),
        a_to_b: usize,
        b_to_a: usize,
        limit: Duration,
        mut hook: impl FnMut(&mut Sim),
    ) -> Outcome {
        let mut pa = Pump::new(a_to_b, 0xa);
        let mut pb = Pump::new(b_to_a, 0xb);
        let start = self.now;
        let mut completed = None;
        self.run_until(limit, |s| {
            hook(s);
            if let Some(c) = s.a.connection(ha) {
                pa.pump(c, 0xb);
            }
            if let Some(c) = s.b.connection(hb) {
                pb.pump(c, 0xa);
            }
            if completed.is_none() && pa.eof && pb.eof {
                completed = Some(s.now - start);
            }
            let closed =
                |ep: &mut Endpoint, h| ep.connection(h).is_none_or(|c| c.state() == State::Closed);
            (closed(&mut s.a, ha) && closed(&mut s.b, hb))
                || pa.error.is_some()
                || pb.error.is_some()
        });
        Outcome {
            received: [pb.received, pa.received],
            finished: [pb.eof, pa.eof],
            closed: [pa.closed, pb.closed],
            error: pa.error.or(pb.error),
            elapsed: self.now - start,
            completed,
        }
    }
}

/// The result of [`Sim::transfer`] (index 0: what B got from A; 1: A from B,
/// except `closed`, which is A's then B's close reason).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// Correct bytes received (B from A, A from B).
    pub received: [usize; 2],
    /// Whether the FIN was read after all bytes (B from A, A from B).
    pub finished: [bool; 2],
    /// How each connection closed (A, B), if it did.
    pub closed: [Option<CloseReason>; 2],
    /// The first corruption, duplication or ordering error seen, if any.
    pub error: Option<String>,
    /// Virtual time until both connections closed (TIME-WAIT included).
    pub elapsed: Duration,
    /// Virtual time until both sides had read everything and the FIN.
    pub completed: Option<Duration>,
}

/// The byte at position `i` of the test stream tagged `tag`: position-dependent,
/// so a skipped, repeated or reordered byte is detected.
pub fn pattern(tag: u64, i: usize) -> u8 {
    let x = (i as u64 ^ (tag << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

/// One side's application: writes its stream, reads and checks the peer's.
#[derive(Debug)]
struct Pump {
    total: usize,
    tag: u64,
    written: usize,
    received: usize,
    eof: bool,
    closed: Option<CloseReason>,
    error: Option<String>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl Pump {
    fn new(total: usize, tag: u64) -> Self {
        Pump {
            total,
            tag,
            written: 0,
            received: 0,
            eof: false,
            closed: None,
            error: None,
            out: vec![0; 16 * 1024],
            inb: vec![0; 16 * 1024],
        }
    }

    fn pump(&mut self, c: &mut crate::Connection, peer_tag: u64) {
        while self.written < self.total {
            let n = (self.total - self.written).min(self.out.len());
            for (k, b) in self.out[..n].iter_mut().enumerate() {
                *b = pattern(self.tag, self.written + k);
            }
            match c.write(&self.out[..n]) {
                Ok(w) => self.written += w,
                Err(_) => break,
            }
        }
        if self.written == self.total {
            c.close();
        }
        while !self.eof {
            match c.read(&mut self.inb) {
                Ok(Some(0)) => self.eof = true,
                Ok(Some(n)) => {
                    for (k, &b) in self.inb[..n].iter().enumerate() {
                        if b != pattern(peer_tag, self.received + k) && self.error.is_none() {
                            self.error = Some(format!("byte {} wrong", self.received + k));
                        }
                    }
                    self.received += n;
                }
                Ok(None) | Err(ReadError::Closed(_)) => break,
            }
        }
        while let Some(e) = c.poll() {
            if let Event::Closed(r) = e {
                self.closed = Some(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_link_transfers_both_ways_and_closes() {
        let cfg = Arc::new(Config::default());
        let mut sim = Sim::new(
            cfg.clone(),
            cfg,
            LinkConfig::default(),
            LinkConfig::default(),
            1,
        );
        let hs = sim.connect(Duration::from_secs(5)).expect("handshake");
        let out = sim.transfer(hs, 300_000, 100_000, Duration::from_secs(60));
        assert_eq!(out.error, None);
        assert_eq!(out.received, [300_000, 100_000]);
        assert_eq!(out.finished, [true, true]);
        assert_eq!(out.closed, [Some(CloseReason::Normal); 2]);
    }

    #[test]
    fn same_seed_same_run() {
        let run = |seed| {
            let cfg = Arc::new(Config::default());
            let link = LinkConfig {
                loss: 0.05,
                jitter: Duration::from_millis(5),
                ..LinkConfig::default()
            };
            let mut sim = Sim::new(cfg.clone(), cfg, link.clone(), link, seed);
            let hs = sim.connect(Duration::from_secs(10)).expect("handshake");
            let out = sim.transfer(hs, 50_000, 50_000, Duration::from_secs(60));
            (out.elapsed, sim.stats.sent, sim.stats.dropped)
        };
        assert_eq!(run(7), run(7));
    }
}
