//! Cryptography of the rescue stack: TLS configurations (rustls with the ring provider,
//! AES-256-GCM suites only), the PKI, pinning verifiers, BIND and the short
//! authentication string, signed applet tickets, and at-rest primitives.
//!
//! This crate performs no networking.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
