//! rescue: the async roles of the remote-support session stack, on tokio.
//!
//! A [`gateway::Gateway`] registers end users' applets, lets technicians' consoles of the
//! same account list and claim them, and relays their DATA frames verbatim
//! ([`relay`]). A [`peer::Applet`] and a [`peer::Console`] meet there and run TLS end
//! to end through the relay ([`tunnel`]), bind it to the session GUID and derive a short
//! authentication string; each gets an end-to-end byte stream. [`portal::Portal`] issues
//! sessions (GUID + signed ticket).
//!
//! What this crate never does: the gateway never holds end-to-end keys, never parses or
//! rewrites DATA payloads and never falls back to plaintext; no wait is unbounded; wire
//! formats and state machines are `rescue-proto`'s and cryptography is `rescue-crypto`'s,
//! never re-implemented here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod config;
pub mod devpki;
pub(crate) mod direct;
pub mod directory;
pub mod error;
pub mod gateway;
pub mod io;
pub mod peer;
pub mod portal;
pub mod relay;
pub mod session;
pub(crate) mod signal;
pub mod tunnel;
pub(crate) mod udp_path;

pub use config::{GatewayLimits, PeerTimeouts};
pub use error::Error;
pub use gateway::{Gateway, GatewayConfig, GatewayStats};
pub use peer::{Applet, AppletSession, ClaimKey, Console, ConsoleSession};
pub use portal::{IssuedSession, Portal, SessionRequest};
