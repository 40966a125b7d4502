//! Cryptography of the rescue stack: TLS configurations (rustls with the ring provider,
//! AES-256-GCM suites only), the PKI, pinning verifiers, BIND and the short
//! authentication string, signed applet tickets, and at-rest primitives.
//!
//! Start from [`tls`] (configurations for each hop), [`pki`] (CAs and certificates) and
//! [`ticket`] (what an applet presents to the gateway); after the inner TLS handshake,
//! [`bind`] ties the connection to the session and [`sas`] gives the short code both
//! users can compare.
//!
//! ```
//! use rescue_crypto::pki::{AccountCa, AccountId, GatewayCa, CONSOLE_CERT_VALIDITY, GATEWAY_CERT_VALIDITY};
//! use rescue_crypto::ticket::{self, Ticket, TicketSigner};
//! use rescue_crypto::tls;
//!
//! // Portal side: the PKI and a signed ticket for one session.
//! let gateway_ca = GatewayCa::generate()?;
//! let gateway = gateway_ca.issue_gateway(&["gw.example".into()], GATEWAY_CERT_VALIDITY)?;
//! let account = AccountCa::generate(AccountId(42))?;
//! let console = account.issue_console_cert("alice@example.com", CONSOLE_CERT_VALIDITY)?;
//! let signer = TicketSigner::generate()?;
//! let t = Ticket {
//!     guid: rescue_crypto::new_guid(),
//!     account: account.account(),
//!     gateways: vec!["gw.example:4433".into()],
//!     gateway_ca_pin: gateway_ca.pin(),
//!     account_ca_pin: account.pin(),
//!     policy: Default::default(),
//!     group: "support".into(),
//!     expires_at_unix: 2_000_000_000,
//! };
//! let bytes = signer.sign(&t)?;
//!
//! // Gateway: checks the ticket; serves applets and the account's consoles.
//! let checked = ticket::verify(&bytes, &signer.verify_key(), 1_900_000_000)?;
//! let mut accounts = tls::AccountRoots::new();
//! accounts.add(account.account(), account.cert().clone());
//! let _gateway_tls = tls::gateway_server_config(&gateway, &accounts)?;
//!
//! // Applet and console: outer hop to the gateway, then end-to-end TLS through it.
//! let _applet_outer = tls::applet_gateway_client_config(checked.gateway_ca_pin)?;
//! let _applet_inner = tls::inner_client_config_account(checked.account_ca_pin)?;
//! let _console_outer = tls::console_gateway_client_config(gateway_ca.pin(), &console)?;
//! let _console_inner = tls::inner_server_config(&console)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate performs no networking and no file I/O (the development PKI folder of the
//! examples is written by the root crate's `rescue::devpki`). It never implements a cipher or signature
//! itself: ring, rustls and webpki do, and every secret comparison is constant-time.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bind;
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
