//! Sans-IO hand-off state machines: the gateway session table and the peer sides.
//!
//! - [`gateway::SessionTable`]: the gateway's sessions keyed by GUID (waiting, paired,
//!   a party away in its grace period), with register, claim, queue, reattach, close
//!   and expiry. It tells the caller which message to send on which hop.
//! - [`applet`] and [`console`]: one `Expect*` type per awaited message; each consumes
//!   itself on `handle` and says what to send and what happened.
//! - [`keepalive::Keepalive`]: PING scheduling and idle detection for one hop.
//! - [`rendezvous::RendezvousTable`]: the gateway's UDP rendezvous (tokens, probes,
//!   PEER_ADDR pairs) with its limits.
//!
//! Nothing here performs I/O, reads a clock or draws random numbers: time is an
//! argument (`now: Instant`), and resume secrets are drawn by the caller from a CSPRNG.
//! No peer input can make these machines panic or grow past their named limits.

pub mod applet;
pub mod console;
pub mod failures;
pub mod gateway;
pub mod keepalive;
mod peer;
pub mod rendezvous;

pub use gateway::{ConsoleIdentity, HopId, SessionTable, TableError};
pub use peer::{Connected, EndReason, Ended, PeerAway, PeerError, PeerEvent, Relaying, Step};
