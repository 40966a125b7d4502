//! Session GUIDs drawn from the OS CSPRNG.
//!
//! A GUID is the session's verification code (128 random bits); it never comes from a
//! seeded or user-space generator.

use rescue_proto::guid::{Guid, GUID_LEN};

use crate::rng::{self, RandomError};

/// A fresh 128-bit GUID from the OS CSPRNG.
///
/// # Panics
///
/// Panics only if the operating system's random number generator cannot be read (ring
/// reports this for an unavailable `getrandom`). A session stack without randomness must
/// not go on issuing predictable identifiers; use [`try_new_guid`] to handle it instead.
pub fn new_guid() -> Guid {
    #[allow(clippy::expect_used)]
    try_new_guid().expect("the OS CSPRNG is unavailable")
}

/// A fresh 128-bit GUID from the OS CSPRNG, or the error of the generator.
pub fn try_new_guid() -> Result<Guid, RandomError> {
    Ok(Guid::from_bytes(rng::array::<GUID_LEN>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_distinct_and_not_zero() {
        let a = new_guid();
        let b = new_guid();
        assert_ne!(a, b);
        assert_ne!(a.as_bytes(), &[0u8; GUID_LEN]);
    }

    #[test]
    fn bits_are_balanced_over_many_guids() {
        // 256 GUIDs = 32768 bits; a working CSPRNG sets close to half of them.
        let ones: u32 = (0..256)
            .map(|_| {
                new_guid()
                    .as_bytes()
                    .iter()
                    .map(|b| b.count_ones())
                    .sum::<u32>()
            })
            .sum();
        assert!((15_500..17_300).contains(&ones), "ones = {ones}");
    }
}
