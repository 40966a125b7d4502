//! rescue: the async roles of the remote-support session stack, on tokio.
//!
//! # Quick start
//!
//! A gateway, a portal, an end user's applet and a technician's console on loopback, one
//! chat message each way and a clean end (the whole of `examples/quickstart.rs`; the
//! [`dev::LocalStack`] is for development only):
//!
//! ```
//! use rescue::{dev::LocalStack, Policy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = LocalStack::start().await?;
//! let s = stack.issue(Policy::default())?;
//! let (a, c) = tokio::join!(stack.applet_session(&s), stack.console_session(&s));
//! let (mut applet, mut console) = (a?, c?);
//! console.chat("Hello, I'm your technician.").await?;
//! println!("end user got: {}", applet.next_chat().await?);
//! applet.chat("Thanks, the printer is stuck.").await?;
//! println!("technician got: {}", console.next_chat().await?);
//! console.end();
//! println!("ended by the {:?}", applet.ended().await?);
//! # Ok(())
//! # }
//! ```
//!
//! # Where to start
//!
//! In production the pieces run apart: a [`Gateway`] (one or more, operated by you)
//! registers end users' applets and lets technicians' consoles of the same account list
//! and claim them, relaying their traffic verbatim ([`relay`]); a [`Portal`] issues
//! sessions (GUID, signed ticket, session secret); the end user's [`Applet`] is built from
//! the ticket it was downloaded with, the technician's [`Console`] connects with its
//! certificate and claims with the [`ClaimKey`] the portal gave it. Each paired end turns
//! into a [`Session`] with `start()` (or `start_with` to configure it, see
//! [`SessionConfig`]): chat, permission requests that need the end user's consent,
//! verified file transfer both ways, an audit trail, and a path manager that moves the
//! live session onto a direct path (TCP, or XTCP over punched UDP) with nothing lost.
//!
//! What this crate never does: the gateway never holds end-to-end keys, never parses or
//! rewrites DATA payloads and never falls back to plaintext; no wait is unbounded; wire
//! formats and state machines are `rescue-proto`'s and cryptography is `rescue-crypto`'s,
//! never re-implemented here. The types an application needs from them are re-exported
//! here, so `rescue` is the one dependency; [`lower`] gives the crates themselves.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod config;
pub mod dev;
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
pub use session::{Session, SessionConfig, SessionError, SessionEvent};

// The vocabulary of the lower crates an embedding application needs, so that `rescue`
// is its one dependency (the lower crates stay usable on their own).
pub use rescue_crypto::bind::SessionSecret;
pub use rescue_crypto::pki::Identity;
pub use rescue_crypto::sas::Sas;
pub use rescue_crypto::ticket::{TicketSigner, TicketVerifyKey};
pub use rescue_crypto::{Digests, FileDigest, Pin};
pub use rescue_proto::session::EndReason;
pub use rescue_proto::{AccountId, Guid, Permission, PermissionSet, Policy, Role};

/// The lower crates themselves, for what the re-exports above leave out.
pub mod lower {
    pub use rescue_crypto as crypto;
    pub use rescue_proto as proto;
    pub use rescue_xtcp as xtcp;
}
