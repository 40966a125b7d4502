//! XTCP: a userspace TCP over UDP datagrams.
//!
//! A sans-IO core (no sockets, no clock reads: every call takes `now`) and a
//! tokio driver on quinn-udp. Start from [`Endpoint`] (one UDP socket's worth of
//! connections, routed by connection id) and [`Connection`] (`handle`,
//! `poll_transmit`, `poll_timeout`, `handle_timeout`, `poll`, `read`, `write`).
//! The wire format is [`segment`] (PROTOCOL.md section 8); [`sim`] is a
//! deterministic lossy link for tests.
//!
//! The `tokio` feature (on by default) adds the `tokio` module: the driver on
//! quinn-udp and the impairment proxy; without it the crate is the sans-IO core only
//! and depends on neither tokio nor quinn-udp. No `unsafe` here: quinn-udp, a
//! dependency, holds the socket code that needs it.
//!
//! What the core never does: it never performs I/O, never reads the clock, never
//! panics on peer input, never allocates per segment, and never grows memory with
//! peer input (buffers are fixed at connection creation; every table is bounded by
//! a named constant). It knows nothing of sessions or gateways, and it does not
//! encrypt or authenticate: run TLS over it.
//!
//! # What is implemented
//!
//! - One segment per datagram with connection ids, 32-bit wrap-safe sequence
//!   numbers, window scaling, timestamps, up to 4 SACK blocks and a 32-bit
//!   checksum; [`Connection::poll_transmit`] batches equal-size segments for GSO.
//! - The RFC 9293 state machine, including simultaneous open (both sides
//!   [`Endpoint::connect`]), FIN in both orders, RST, TIME-WAIT; RFC 5961 checks
//!   (exact-match RST, challenge ACKs for in-window RST, SYN and impossible ACKs,
//!   rate-limited per connection).
//! - RTO per RFC 6298 with backoff; RTT from timestamps, with Karn's rule made
//!   exact (an echo older than the latest transmission is ignored).
//! - SACK scoreboard and `pipe` (RFC 2018 / RFC 6675, which subsumes limited
//!   transmit), RACK loss detection with a reordering window once reordering is
//!   seen, and tail-loss probes (RFC 8985).
//! - BBR (draft-ietf-ccwg-bbr, "BBRv3", [`cc::Bbr`]; by default its
//!   loss-tolerant variant), CUBIC (RFC 9438) and NewReno behind
//!   [`cc::Controller`], with per-segment delivery-rate sampling for the
//!   model-based one; IW10 (RFC 6928); HyStart++ delay-based
//!   slow-start exit (RFC 9406, without its conservative phase); pacing at the
//!   controller's rate (BBR) or 1.25 × cwnd / SRTT.
//! - Path-MTU discovery (RFC 8899 DPLPMTUD, data-carrying probes) from the
//!   1,200-byte base up to `Config::max_mss`, with black-hole fallback.
//! - Delayed ACKs (every second segment, at most 25 ms, immediately on
//!   out-of-order data). A batch of datagrams handled before one `poll_transmit`
//!   is answered by one ACK sent in up to 16 copies (one per two segments, one GSO
//!   send), each with different older SACK blocks, so a lost ACK does not hide the
//!   batch.
//! - Zero-window probes with backoff, sender and receiver silly-window avoidance,
//!   keepalive (≤ 25 s) and a user timeout, a bounded half-open table
//!   (RFC 4987 §3.2), a connection limit, bounded RSTs for unknown ids.
//!
//! # What is not (yet)
//!
//! - SYN cookies (the half-open table is bounded instead; the rendezvous already
//!   authenticates peers), ECN, DSACK, PRR (RFC 6937), undo of spurious
//!   retransmissions (F-RTO / Eifel), PAWS, urgent data, an SWS override timer,
//!   receive-buffer auto-tuning (each connection allocates `recv_buffer` up front).
//! - Path validation on address change: a connection follows its peer to a new
//!   address (NAT rebinding) on the first segment from there that makes progress,
//!   without a challenge round trip.
//! - The endpoint scans its connections for timers and transmits: fine for the
//!   handful of connections a session uses, not for thousands.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cc;
mod checksum;
pub mod config;
mod conn;
pub mod endpoint;
pub mod segment;
pub mod seq;
pub mod sim;

#[cfg(feature = "tokio")]
pub mod tokio;

pub use config::{Config, CongestionKind};
pub use conn::{
    CloseReason, Connection, ConnectionStats, Event, ReadError, State, Transmit, WriteError,
};
pub use endpoint::{ConnectError, ConnectionHandle, Endpoint, EndpointStats};

#[doc(hidden)]
pub use conn::fuzz::fuzz_connection;
