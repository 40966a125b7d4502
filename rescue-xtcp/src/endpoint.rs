//! The endpoint: one UDP socket's worth of connections, demultiplexed by id.
//!
//! The endpoint parses each datagram once, routes it by the destination
//! connection id, opens passive connections for SYNs while listening (at most
//! [`Config::max_half_open`] in SYN-RECEIVED: a bounded half-open table, RFC 4987
//! §3.2), matches a SYN from the peer of one of our own SYN-SENT connections as a
//! simultaneous open, and answers segments for unknown ids with a bounded,
//! rate-limited RST. It never does I/O and never reads a clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::config::Config;
use crate::conn::{Connection, State, Transmit};
use crate::segment::{Flags, SegmentRepr};
use crate::seq::Seq;

/// Most RSTs queued for unknown connections: the rest are dropped, so a flood of
/// stray datagrams cannot grow memory or amplify traffic.
const MAX_PENDING_RESETS: usize = 16;

/// Identifies a connection of an [`Endpoint`] (its local connection id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u32);

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint holds [`Config::max_connections`] connections.
    #[error("too many connections")]
    TooManyConnections,
}

/// Endpoint counters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams handed to [`Endpoint::handle`].
    pub datagrams: u64,
    /// Datagrams that did not parse (truncated, bad version, bad checksum...).
    pub malformed: u64,
    /// Segments for a connection id we do not have.
    pub unknown_connection: u64,
    /// Segments from an address other than the connection's that made no
    /// progress (so the connection did not move to that address).
    pub mismatched: u64,
    /// Connections that followed their peer to a new address (NAT rebinding).
    pub migrations: u64,
    /// SYNs dropped because we are not listening.
    pub not_listening: u64,
    /// SYNs dropped because the half-open table or connection table was full.
    pub half_open_full: u64,
    /// Established connections refused because the accept queue was full.
    pub accept_queue_full: u64,
    /// Passive connections created.
    pub incoming: u64,
    /// RSTs sent for unknown connections.
    pub resets_sent: u64,
}

#[derive(Debug)]
struct Entry {
    conn: Connection,
    passive: bool,
    announced: bool,
}

/// Owns connections and routes datagrams to them.
#[derive(Debug)]
pub struct Endpoint {
    cfg: Arc<Config>,
    rng: StdRng,
    listening: bool,
    conns: BTreeMap<u32, Entry>,
    accept_queue: VecDeque<ConnectionHandle>,
    resets: VecDeque<(SocketAddr, SegmentRepr)>,
    cursor: u32,
    stats: EndpointStats,
}

impl Endpoint {
    /// A new endpoint. `seed` drives connection ids and initial sequence numbers:
    /// use a random seed (for example from the OS) outside tests, since
    /// unpredictable ids and ISNs are what stop blind injection.
    pub fn new(config: Arc<Config>, seed: u64) -> Self {
        Endpoint {
            cfg: config,
            rng: StdRng::seed_from_u64(seed),
            listening: false,
            conns: BTreeMap::new(),
            accept_queue: VecDeque::new(),
            resets: VecDeque::new(),
            cursor: 0,
            stats: EndpointStats::default(),
        }
    }

    /// Accept (or stop accepting) incoming connections.
    pub fn set_listening(&mut self, on: bool) {
        self.listening = on;
    }

    /// Opens a connection to `remote`. If the peer connects to us at the same
    /// time, the two SYNs meet as a simultaneous open.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.connect_with(now, remote, self.cfg.clone())
    }

    /// [`Endpoint::connect`] with a configuration of its own for this connection
    /// (another congestion controller, say); the endpoint's limits (connection
    /// count) still come from the endpoint's configuration.
    pub fn connect_with(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        cfg: Arc<Config>,
    ) -> Result<ConnectionHandle, ConnectError> {
        if self.conns.len() >= self.cfg.max_connections {
            return Err(ConnectError::TooManyConnections);
        }
        let id = self.fresh_id();
        let iss = self.rng.gen();
        let conn = Connection::connect(cfg, now, remote, id, iss);
        self.conns.insert(
            id,
            Entry {
                conn,
                passive: false,
                announced: true,
            },
        );
        Ok(ConnectionHandle(id))
    }

    fn fresh_id(&mut self) -> u32 {
        loop {
            let id: u32 = self.rng.gen();
            if id != 0 && !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Processes one received datagram.
    pub fn handle(&mut self, now: Instant, remote: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams += 1;
        let (seg, payload) = match SegmentRepr::parse(datagram) {
            Ok(x) => x,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let id = if seg.dst_id != 0 {
            seg.dst_id
        } else {
            match self.route_syn(now, remote, &seg) {
                Some(id) => id,
                None => return,
            }
        };
        let Some(entry) = self.conns.get_mut(&id) else {
            self.stats.unknown_connection += 1;
            self.queue_reset(remote, &seg);
            return;
        };
        if entry.conn.remote() == remote {
            entry.conn.handle_segment(now, &seg, payload);
        } else {
            // A NAT rebinding: follow the peer to its new address only when the
            // segment made progress (acknowledged new data or delivered in-order
            // data), which needs the ids and in-window sequence numbers. Replies
            // go to the old address until then, so a spoofed source cannot
            // redirect traffic at a third party.
            let before = entry.conn.progress_mark();
            entry.conn.handle_segment(now, &seg, payload);
            if entry.conn.progress_mark() != before && entry.conn.state().is_synchronized() {
                entry.conn.set_remote(remote);
                self.stats.migrations += 1;
            } else {
                self.stats.mismatched += 1;
            }
        }
        self.announce(id);
    }

    /// Finds (or creates) the connection for a SYN with no destination id.
    fn route_syn(&mut self, now: Instant, remote: SocketAddr, seg: &SegmentRepr) -> Option<u32> {
        let syn_only = seg.flags.contains(Flags::SYN)
            && !seg.flags.contains(Flags::ACK)
            && !seg.flags.contains(Flags::RST);
        if !syn_only || seg.src_id == 0 {
            self.stats.unknown_connection += 1;
            return None;
        }
        // A retransmitted SYN, or the peer's SYN meeting our own (simultaneous open).
        let existing = self.conns.iter().find(|(_, e)| {
            e.conn.remote() == remote
                && (e.conn.peer_id() == seg.src_id
                    || (e.conn.peer_id() == 0 && e.conn.state() == State::SynSent))
        });
        if let Some((&id, _)) = existing {
            return Some(id);
        }
        if !self.listening {
            self.stats.not_listening += 1;
            return None;
        }
        let half_open = self
            .conns
            .values()
            .filter(|e| e.conn.state() == State::SynReceived)
            .count();
        if half_open >= self.cfg.max_half_open || self.conns.len() >= self.cfg.max_connections {
            self.stats.half_open_full += 1;
            return None;
        }
        let id = self.fresh_id();
        let iss = self.rng.gen();
        let conn = Connection::accept_syn(self.cfg.clone(), now, remote, id, iss, seg);
        self.stats.incoming += 1;
        self.conns.insert(
            id,
            Entry {
                conn,
                passive: true,
                announced: false,
            },
        );
        // The SYN itself was consumed by accept_syn.
        None
    }

    /// Moves a newly established passive connection to the accept queue.
    fn announce(&mut self, id: u32) {
        let Some(e) = self.conns.get_mut(&id) else {
            return;
        };
        if !e.passive || e.announced || !e.conn.state().is_synchronized() {
            return;
        }
        e.announced = true;
        if self.accept_queue.len() >= self.cfg.max_accept_queue {
            self.stats.accept_queue_full += 1;
            e.conn.abort();
            return;
        }
        self.accept_queue.push_back(ConnectionHandle(id));
    }

    /// RFC 9293 §3.10.7.1: answer a segment for no connection with an RST
    /// (never an RST for an RST), bounded by [`MAX_PENDING_RESETS`].
    fn queue_reset(&mut self, remote: SocketAddr, seg: &SegmentRepr) {
        if seg.flags.contains(Flags::RST) || self.resets.len() >= MAX_PENDING_RESETS {
            return;
        }
        let rst = SegmentRepr {
            flags: Flags::RST,
            dst_id: seg.src_id,
            src_id: seg.dst_id,
            seq: if seg.flags.contains(Flags::ACK) {
                seg.ack
            } else {
                Seq(0)
            },
            ..SegmentRepr::default()
        };
        self.resets.push_back((remote, rst));
    }

    /// The next newly established incoming connection.
    pub fn accept(&mut self) -> Option<ConnectionHandle> {
        self.accept_queue.pop_front()
    }

    /// Writes the next datagrams of any connection into `buf` (cleared first);
    /// connections take turns.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        if let Some((dest, rst)) = self.resets.pop_front() {
            self.stats.resets_sent += 1;
            rst.emit_to_vec(&[], buf);
            return Some(Transmit {
                destination: dest,
                size: buf.len(),
                segment_size: None,
            });
        }
        let cursor = self.cursor;
        for (&id, e) in self.conns.range_mut(cursor..) {
            if let Some(t) = e.conn.poll_transmit(now, max_datagrams, buf) {
                self.cursor = id.wrapping_add(1);
                return Some(t);
            }
        }
        for (&id, e) in self.conns.range_mut(..cursor) {
            if let Some(t) = e.conn.poll_transmit(now, max_datagrams, buf) {
                self.cursor = id.wrapping_add(1);
                return Some(t);
            }
        }
        None
    }

    /// The earliest deadline of any connection.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|e| e.conn.poll_timeout())
            .min()
    }

    /// Runs the due timers of every connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        for e in self.conns.values_mut() {
            if e.conn.poll_timeout().is_some_and(|t| t <= now) {
                e.conn.handle_timeout(now);
            }
        }
    }

    /// The connection behind `h`.
    pub fn connection(&mut self, h: ConnectionHandle) -> Option<&mut Connection> {
        self.conns.get_mut(&h.0).map(|e| &mut e.conn)
    }

    /// Removes closed connections that have nothing left to send; returns their
    /// handles. Events not yet polled are lost with them, so drain first.
    pub fn remove_closed(&mut self) -> Vec<ConnectionHandle> {
        let now_closed: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, e)| e.conn.state() == State::Closed)
            .map(|(&id, _)| id)
            .collect();
        let mut removed = Vec::new();
        for id in now_closed {
            let pending = self
                .conns
                .get_mut(&id)
                .is_some_and(|e| e.conn.has_pending_rst());
            if pending {
                continue;
            }
            self.conns.remove(&id);
            self.accept_queue.retain(|h| h.0 != id);
            removed.push(ConnectionHandle(id));
        }
        removed
    }

    /// How many connections the endpoint holds.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(src_id: u32) -> Vec<u8> {
        let repr = SegmentRepr {
            flags: Flags::SYN,
            src_id,
            seq: Seq(src_id),
            window: 1000,
            mss: 1200,
            ..SegmentRepr::default()
        };
        let mut out = Vec::new();
        repr.emit_to_vec(&[], &mut out);
        out
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 9], port))
    }

    #[test]
    fn half_open_table_is_bounded_and_not_listening_drops_silently() {
        let cfg = Arc::new(Config {
            max_half_open: 8,
            ..Config::default()
        });
        let now = Instant::now();
        let mut ep = Endpoint::new(cfg, 1);
        ep.handle(now, addr(1), &syn(1));
        assert_eq!(ep.stats().not_listening, 1);
        assert_eq!(ep.connection_count(), 0);
        let mut buf = Vec::new();
        assert!(
            ep.poll_transmit(now, 1, &mut buf).is_none(),
            "no RST to a hole puncher"
        );
        ep.set_listening(true);
        for i in 0..100u16 {
            ep.handle(now, addr(i), &syn(1000 + u32::from(i)));
        }
        assert_eq!(ep.connection_count(), 8);
        assert_eq!(ep.stats().half_open_full, 92);
        // A retransmitted SYN goes to its connection, not to a new one.
        ep.handle(now, addr(0), &syn(1000));
        assert_eq!(ep.connection_count(), 8);
        assert_eq!(ep.stats().half_open_full, 92);
    }

    #[test]
    fn unknown_ids_get_a_bounded_rst_and_malformed_is_counted() {
        let now = Instant::now();
        let mut ep = Endpoint::new(Arc::new(Config::default()), 1);
        let mut seg = SegmentRepr {
            flags: Flags::ACK,
            dst_id: 77,
            src_id: 5,
            ack: Seq(1234),
            ..SegmentRepr::default()
        };
        let mut d = Vec::new();
        seg.emit_to_vec(&[], &mut d);
        for _ in 0..100 {
            ep.handle(now, addr(1), &d);
        }
        assert_eq!(ep.stats().unknown_connection, 100);
        let mut buf = Vec::new();
        let mut resets = 0;
        while let Some(t) = ep.poll_transmit(now, 1, &mut buf) {
            let (r, _) = SegmentRepr::parse(&buf[..t.size]).unwrap();
            assert_eq!(
                (r.flags, r.dst_id, r.src_id, r.seq),
                (Flags::RST, 5, 77, Seq(1234))
            );
            resets += 1;
        }
        assert_eq!(resets, MAX_PENDING_RESETS);
        // Never an RST for an RST.
        seg.flags = Flags::RST;
        d.clear();
        seg.emit_to_vec(&[], &mut d);
        ep.handle(now, addr(1), &d);
        assert!(ep.poll_transmit(now, 1, &mut buf).is_none());
        ep.handle(now, addr(1), &d[..10]);
        assert_eq!(ep.stats().malformed, 1);
    }

    #[test]
    fn remove_closed_reaps_only_closed_connections() {
        let now = Instant::now();
        let mut ep = Endpoint::new(Arc::new(Config::default()), 1);
        let h1 = ep.connect(now, addr(1)).unwrap();
        let h2 = ep.connect(now, addr(2)).unwrap();
        ep.connection(h1).unwrap().abort();
        // The SYN was never sent, so there is no RST to wait for.
        assert_eq!(ep.remove_closed(), vec![h1]);
        assert_eq!(ep.connection_count(), 1);
        assert!(ep.connection(h2).is_some());
        assert!(ep.connection(h1).is_none());
    }

    #[test]
    fn follows_the_peer_to_a_new_address_only_on_progress() {
        let t0 = Instant::now();
        let cfg = Arc::new(Config::default());
        let (mut a, mut b) = (Endpoint::new(cfg.clone(), 1), Endpoint::new(cfg, 2));
        b.set_listening(true);
        let (addr_a, addr_b, moved) = (addr(1), addr(2), addr(3));
        let ha = a.connect(t0, addr_b).unwrap();
        let mut buf = Vec::new();
        // Pump both ways; B's datagrams reach A from `from_b`.
        let mut pump = |a: &mut Endpoint, b: &mut Endpoint, from_b: SocketAddr| {
            for _ in 0..20 {
                while let Some(t) = a.poll_transmit(t0, 1, &mut buf) {
                    b.handle(t0, addr_a, &buf[..t.size]);
                }
                while let Some(t) = b.poll_transmit(t0, 1, &mut buf) {
                    a.handle(t0, from_b, &buf[..t.size]);
                }
            }
        };
        pump(&mut a, &mut b, addr_b);
        let hb = b.accept().unwrap();
        // A replayed (duplicate) segment from a new address makes no progress.
        b.connection(hb).unwrap().write(b"x").unwrap();
        let mut one = Vec::new();
        let t = b.poll_transmit(t0, 1, &mut one).unwrap();
        let seg = one[..t.size].to_vec();
        a.handle(t0, addr_b, &seg);
        a.handle(t0, moved, &seg);
        assert_eq!(a.connection(ha).unwrap().remote(), addr_b);
        assert_eq!(a.stats().mismatched, 1);
        pump(&mut a, &mut b, addr_b);
        // New data from the new address: A follows.
        b.connection(hb).unwrap().write(b"hello").unwrap();
        pump(&mut a, &mut b, moved);
        assert_eq!(a.connection(ha).unwrap().remote(), moved);
        assert_eq!(a.stats().migrations, 1);
        let mut got = [0u8; 8];
        assert_eq!(a.connection(ha).unwrap().read(&mut got), Ok(Some(6)));
    }
}
