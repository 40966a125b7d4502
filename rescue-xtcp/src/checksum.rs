//! The XTCP segment checksum (PROTOCOL.md §8.1.1): CRC-32C (Castagnoli,
//! RFC 3720 §B.4) over the datagram with the checksum field skipped.
//!
//! It detects corruption the UDP checksum missed (or a middlebox introduced after
//! rewriting it); it is not a MAC and does not stop a forger (TLS above does).
//! The `crc32c` crate computes it with the CPU's CRC instruction (SSE4.2 or
//! ARMv8 CRC) when present and a table fallback otherwise; this module never
//! panics and never allocates.

/// The CRC-32C of `head ‖ rest` (the datagram without its checksum field).
pub(crate) fn checksum(head: &[u8], rest: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(head), rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain bitwise CRC-32C (reflected polynomial 0x82f63b78), independent of
    /// the crate.
    fn reference(m: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in m {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn known_values() {
        // The CRC-32C check value (RFC 3720 §B.4 parameters; "123456789").
        assert_eq!(checksum(&[], b"123456789"), 0xe306_9283);
        assert_eq!(checksum(b"1234", b"56789"), 0xe306_9283);
        assert_eq!(checksum(&[], &[]), 0);
        // RFC 3720 §B.4: 32 bytes of zeros.
        assert_eq!(checksum(&[0; 32], &[]), 0x8a91_36aa);
        assert_eq!(reference(b"123456789"), 0xe306_9283);
    }

    proptest! {
        #[test]
        fn matches_the_reference(head: Vec<u8>, rest: Vec<u8>) {
            let mut all = head.clone();
            all.extend_from_slice(&rest);
            prop_assert_eq!(checksum(&head, &rest), reference(&all));
        }

        #[test]
        fn detects_flipped_bits(data in proptest::collection::vec(any::<u8>(), 1..1500), i: usize, bit in 0u8..8) {
            let i = i % data.len();
            let mut bad = data.clone();
            bad[i] ^= 1 << bit;
            prop_assert_ne!(checksum(&[], &data), checksum(&[], &bad));
        }
    }
}
