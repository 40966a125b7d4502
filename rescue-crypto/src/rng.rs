//! The one randomness source of the crate: the OS CSPRNG through ring's `SystemRandom`.

use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's random number generator could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random number generator failed")]
pub struct RandomError;

/// Fills `out` from the OS CSPRNG.
pub(crate) fn fill(out: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(out).map_err(|_| RandomError)
}

/// An array of random bytes from the OS CSPRNG.
pub(crate) fn array<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
