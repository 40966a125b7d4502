//! XTCP: a userspace TCP over UDP datagrams.
//!
//! A sans-IO core (no sockets, no clock reads) and a tokio driver on quinn-udp.
#![warn(missing_docs)]

pub mod impair;
pub mod tokio;
