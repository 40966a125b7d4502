//! The committed short authentication string (PROTOCOL.md 6.5), as a sans-IO exchange.
//!
//! ```text
//!   applet                                   console
//!   AppletSas::start ── SAS_COMMIT(C) ──────▶ ConsoleSas::new().handle(commit)
//!   AppletAwaitNonce ◀── SAS_NONCE(Nc) ────── ConsoleAwaitReveal
//!   .handle(nonce) ───── SAS_REVEAL(Na) ────▶ .handle(reveal): checks SHA-256 = C
//!   => Sas                                    => Sas
//! ```
//!
//! Each state consumes itself; a message of the wrong type or a reveal that does not
//! match the commitment is an error and the session must end. No clock, no I/O.

use core::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;

use crate::bind::Exporter;
use crate::digest::sha256;
use crate::msg::{InnerMsg, SAS_FIELD_LEN};
use crate::rng::{self, RandomError};

const COMMIT_CONTEXT: &[u8] = b"rescue-sas-commit-v1";
const SAS_CONTEXT: &[u8] = b"rescue-sas-v1";
/// The SAS is shown as this many decimal digits.
pub const SAS_DIGITS: u32 = 6;
const SAS_MODULUS: u32 = 1_000_000;

/// Why the SAS exchange failed; the session must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// The peer sent another message than the one this state waits for.
    #[error("unexpected message in SAS exchange")]
    Unexpected,
    /// The revealed nonce does not match the commitment.
    #[error("SAS reveal does not match the commitment")]
    CommitMismatch,
    /// No randomness for a nonce.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The agreed short authentication string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sas(u32);

impl Sas {
    /// The code, `0..1_000_000`.
    pub const fn code(self) -> u32 {
        self.0
    }

    fn derive(exporter: &Exporter, nonce_a: &[u8; 32], nonce_c: &[u8; 32]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, exporter.secret());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(SAS_CONTEXT);
        ctx.update(nonce_a);
        ctx.update(nonce_c);
        let s = ctx.sign();
        let b = s.as_ref();
        let head = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Self(head % SAS_MODULUS)
    }
}

/// Six digits with leading zeros, grouped `123 456`.
impl fmt::Display for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Debug for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sas({self})")
    }
}

/// The commitment to a nonce: `SHA-256("rescue-sas-commit-v1" || nonce)`.
pub fn commitment(nonce: &[u8; SAS_FIELD_LEN]) -> [u8; 32] {
    let mut m = Vec::with_capacity(COMMIT_CONTEXT.len() + SAS_FIELD_LEN);
    m.extend_from_slice(COMMIT_CONTEXT);
    m.extend_from_slice(nonce);
    sha256(&m)
}

/// Applet side, before anything is sent.
#[derive(Debug)]
pub struct AppletSas;

impl AppletSas {
    /// Draws the applet nonce and returns the state and the SAS_COMMIT to send.
    pub fn start(exporter: Exporter) -> Result<(AppletAwaitNonce, InnerMsg), SasError> {
        Ok(Self::start_with_nonce(exporter, rng::array()?))
    }

    /// [`AppletSas::start`] with a given nonce (test vectors only).
    #[doc(hidden)]
    pub fn start_with_nonce(exporter: Exporter, nonce_a: [u8; 32]) -> (AppletAwaitNonce, InnerMsg) {
        let commit = InnerMsg::SasCommit(commitment(&nonce_a));
        (AppletAwaitNonce { exporter, nonce_a }, commit)
    }
}

/// Applet side, waiting for SAS_NONCE.
#[derive(Debug)]
pub struct AppletAwaitNonce {
    exporter: Exporter,
    nonce_a: [u8; 32],
}

impl AppletAwaitNonce {
    /// Takes SAS_NONCE; returns the SAS and the SAS_REVEAL to send.
    pub fn handle(self, msg: InnerMsg) -> Result<(Sas, InnerMsg), SasError> {
        let InnerMsg::SasNonce(nonce_c) = msg else {
            return Err(SasError::Unexpected);
        };
        let sas = Sas::derive(&self.exporter, &self.nonce_a, &nonce_c);
        Ok((sas, InnerMsg::SasReveal(self.nonce_a)))
    }
}

/// Console side, waiting for SAS_COMMIT.
#[derive(Debug)]
pub struct ConsoleSas {
    exporter: Exporter,
    nonce_c: [u8; 32],
}

impl ConsoleSas {
    /// Draws the console nonce.
    pub fn new(exporter: Exporter) -> Result<Self, SasError> {
        Ok(Self::with_nonce(exporter, rng::array()?))
    }

    /// [`ConsoleSas::new`] with a given nonce (test vectors only).
    #[doc(hidden)]
    pub fn with_nonce(exporter: Exporter, nonce_c: [u8; 32]) -> Self {
        Self { exporter, nonce_c }
    }

    /// Takes SAS_COMMIT; returns the next state and the SAS_NONCE to send.
    pub fn handle(self, msg: InnerMsg) -> Result<(ConsoleAwaitReveal, InnerMsg), SasError> {
        let InnerMsg::SasCommit(commit) = msg else {
            return Err(SasError::Unexpected);
        };
        let reply = InnerMsg::SasNonce(self.nonce_c);
        Ok((
            ConsoleAwaitReveal {
                exporter: self.exporter,
                nonce_c: self.nonce_c,
                commit,
            },
            reply,
        ))
    }
}

/// Console side, waiting for SAS_REVEAL.
#[derive(Debug)]
pub struct ConsoleAwaitReveal {
    exporter: Exporter,
    nonce_c: [u8; 32],
    commit: [u8; 32],
}

impl ConsoleAwaitReveal {
    /// Takes SAS_REVEAL; checks it against the commitment and returns the SAS.
    pub fn handle(self, msg: InnerMsg) -> Result<Sas, SasError> {
        let InnerMsg::SasReveal(nonce_a) = msg else {
            return Err(SasError::Unexpected);
        };
        if !bool::from(commitment(&nonce_a).ct_eq(&self.commit)) {
            return Err(SasError::CommitMismatch);
        }
        Ok(Sas::derive(&self.exporter, &nonce_a, &self.nonce_c))
    }
}

#[cfg(test)]
mod tests;
