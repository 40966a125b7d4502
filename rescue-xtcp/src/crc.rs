//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8, no unsafe.
//!
//! This is the integrity check of every XTCP segment (PROTOCOL.md section 8). It
//! detects corruption the UDP checksum missed (or that a middlebox introduced after
//! zeroing it); it is not a MAC and does not stop a forger.

const POLY: u32 = 0x82F6_3B78;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Continues a CRC-32C over `data`; start with `state = 0` and chain calls to
/// checksum several slices as one message.
pub(crate) fn update(state: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut crc = !state;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720 appendix B.4 family).
        assert_eq!(update(0, b"123456789"), 0xE306_9283);
        assert_eq!(update(0, &[0u8; 32]), 0x8A91_36AA);
    }

    proptest! {
        #[test]
        fn slice_by_8_equals_bitwise_and_chains(data: Vec<u8>, split in 0usize..64) {
            let split = split.min(data.len());
            prop_assert_eq!(update(0, &data), bitwise(&data));
            prop_assert_eq!(update(update(0, &data[..split]), &data[split..]), bitwise(&data));
        }
    }
}
