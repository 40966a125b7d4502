//! Cryptography of the rescue stack: TLS configurations (rustls with the ring provider,
//! AES-256-GCM suites only), the PKI, pinning verifiers, BIND and the short
//! authentication string, signed applet tickets, and at-rest primitives.
//!
//! Start from [`tls`] (configurations for each hop), [`pki`] (CAs and certificates) and
//! [`ticket`] (what an applet presents to the gateway); after the inner TLS handshake,
//! [`bind`] ties the connection to the session and [`sas`] gives the short code both
//! users can compare.
//!
//! This crate performs no networking and no file I/O except in [`devpki`] (which writes
//! and reads a development PKI folder). It never implements a cipher or signature
//! itself: ring, rustls and webpki do, and every secret comparison is constant-time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bind;
pub mod devpki;
pub mod digest;
pub mod guid;
pub mod msg;
pub mod password;
pub mod pin;
pub mod pki;
mod rng;
pub mod sas;
pub mod seal;
pub mod ticket;
pub mod tls;
pub mod totp;
pub mod verify;

pub use digest::{sha256, Digests, FileDigest};
pub use guid::new_guid;
pub use pin::Pin;
pub use pki::{AccountCa, AccountId, ConsoleName, GatewayCa, Identity};
pub use rng::RandomError;
pub use ticket::{Ticket, TicketError, TicketSigner, TicketVerifyKey};
