//! XTCP: a userspace TCP over UDP datagrams.
//!
//! A sans-IO core (no sockets, no clock reads: every call takes `now`) and a
//! tokio driver on quinn-udp. Start from [`Endpoint`] (one UDP socket's worth of
//! connections, routed by connection id) and [`Connection`] (`handle`,
//! `poll_transmit`, `poll_timeout`, `handle_timeout`, `poll`, `read`, `write`).
//! The wire format is [`segment`] (PROTOCOL.md section 8).
//!
//! What the core never does: it never performs I/O, never reads the clock, never
//! panics on peer input, never allocates per segment, and never grows memory with
//! peer input (buffers are fixed at connection creation; every table is bounded by
//! a named constant). It knows nothing of sessions or gateways, and it does not
//! encrypt: run TLS over it.
#![warn(missing_docs)]

pub mod cc;
pub mod config;
mod conn;
mod checksum;
pub mod endpoint;
pub mod segment;
pub mod seq;
pub mod sim;

pub mod impair;
pub mod tokio;

pub use config::{Config, CongestionKind};
pub use conn::{
    CloseReason, Connection, ConnectionStats, Event, ReadError, State, Transmit, WriteError,
};
pub use endpoint::{ConnectError, ConnectionHandle, Endpoint, EndpointStats};
