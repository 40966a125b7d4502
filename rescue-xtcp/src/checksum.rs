//! The XTCP segment checksum (PROTOCOL.md §8.1): a four-lane Fletcher-style sum
//! over little-endian 64-bit words with a splitmix64 finish, folded to 32 bits.
//!
//! It detects corruption the UDP checksum missed (or a middlebox introduced after
//! rewriting it); it is not a MAC and does not stop a forger (TLS above does).
//! It was chosen over CRC-32C because a table CRC costs several times more CPU per
//! byte than the vectorisable sums here, and without `unsafe` there is no portable
//! access to the CPU's CRC instruction. The function never panics.

/// Bytes per block: four lanes of one 64-bit word.
const BLOCK: usize = 32;

/// The splitmix64 finaliser: a bijection on 64 bits with full avalanche.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Running lane sums.
#[derive(Debug, Default, Clone, Copy)]
struct Lanes {
    a: [u64; 4],
    b: [u64; 4],
}

impl Lanes {
    #[inline]
    fn block(&mut self, c: &[u8]) {
        for j in 0..4 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[j * 8..j * 8 + 8]);
            self.a[j] = self.a[j].wrapping_add(u64::from_le_bytes(w));
            self.b[j] = self.b[j].wrapping_add(self.a[j]);
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let mut blocks = data.chunks_exact(BLOCK);
        for c in &mut blocks {
            self.block(c);
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; BLOCK];
            last[..rest.len()].copy_from_slice(rest);
            self.block(&last);
        }
    }

    fn finish(&self, len: usize) -> u32 {
        let mut h = len as u64;
        for j in 0..4 {
            h = mix(h ^ self.a[j]);
            h = mix(h ^ self.b[j]);
        }
        (h ^ (h >> 32)) as u32
    }
}

/// The checksum of `head ‖ rest`. `head.len()` must be a multiple of 32 (the
/// caller passes the first 32 header bytes); otherwise the result is still
/// deterministic but differs from the specification.
pub(crate) fn checksum(head: &[u8], rest: &[u8]) -> u32 {
    let mut l = Lanes::default();
    l.feed(head);
    l.feed(rest);
    l.finish(head.len() + rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain, unoptimised transcription of PROTOCOL.md §8.1.
    fn reference(m: &[u8]) -> u32 {
        let mut padded = m.to_vec();
        while !padded.len().is_multiple_of(32) {
            padded.push(0);
        }
        let (mut a, mut b) = ([0u64; 4], [0u64; 4]);
        for (i, w) in padded.chunks(8).enumerate() {
            let w = u64::from_le_bytes(w.try_into().unwrap());
            a[i % 4] = a[i % 4].wrapping_add(w);
            b[i % 4] = b[i % 4].wrapping_add(a[i % 4]);
        }
        let mut h = m.len() as u64;
        for j in 0..4 {
            h = mix(h ^ a[j]);
            h = mix(h ^ b[j]);
        }
        (h ^ (h >> 32)) as u32
    }

    #[test]
    fn known_values() {
        assert_eq!(checksum(&[], &[]), reference(&[]));
        // Computed by an independent implementation of PROTOCOL.md §8.1.
        assert_eq!(checksum(&[], b"123456789"), 0xf7ff_e50a);
        assert_ne!(checksum(&[], &[0]), checksum(&[], &[]), "length counts");
        assert_ne!(checksum(&[], &[0; 33]), checksum(&[], &[0; 34]));
    }

    proptest! {
        #[test]
        fn matches_the_reference(head in proptest::collection::vec(any::<[u8; 32]>(), 0..3), rest: Vec<u8>) {
            let head: Vec<u8> = head.concat();
            let mut all = head.clone();
            all.extend_from_slice(&rest);
            prop_assert_eq!(checksum(&head, &rest), reference(&all));
        }

        #[test]
        fn detects_swapped_words_and_flipped_bits(data in proptest::collection::vec(any::<u8>(), 16..200), i in 0usize..200, bit in 0u8..8) {
            let i = i % data.len();
            let mut bad = data.clone();
            bad[i] ^= 1 << bit;
            prop_assert_ne!(checksum(&[], &data), checksum(&[], &bad));
            let mut swapped = data.clone();
            swapped[..16].rotate_left(8);
            if swapped != data {
                prop_assert_ne!(checksum(&[], &data), checksum(&[], &swapped));
            }
        }
    }
}
