//! The XTCP segment: one segment per UDP datagram (PROTOCOL.md section 8).
//!
//! [`Segment`] is a zero-copy view over a datagram; [`SegmentRepr`] is the parsed
//! header. [`SegmentRepr::parse`] checks the version, the flags, the SACK count, the
//! lengths and the checksum before it returns, and never panics on any input;
//! [`SegmentRepr::emit`] panics only if the caller's buffer is shorter than
//! [`SegmentRepr::header_len`] (a caller bug, never peer input).
//!
//! Layout (big-endian):
//!
//! ```text
//!  0 ver u8 | 1 flags u8 | 2 sack_count u8 | 3 wscale u8 (SYN only)
//!  4 dst_id u32     8 src_id u32     12 seq u32     16 ack u32
//! 20 window u16 (scaled; unscaled in SYN) | 22 mss u16 (SYN only)
//! 24 tsval u32     28 tsecr u32     32 check u32
//! 36 sack blocks: sack_count × (start u32, end u32)
//!    payload: the rest of the datagram
//! ```

use thiserror::Error;

use crate::checksum;
use crate::seq::Seq;

/// The only segment format version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 36;
/// Most SACK blocks in one segment: UDP has no 40-byte option limit, and 4 blocks
/// describe up to 4 holes per ACK while keeping ACKs under 70 bytes.
pub const MAX_SACK_BLOCKS: usize = 4;
/// Largest window-scale shift (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;
/// Bytes of one SACK block.
pub const SACK_BLOCK_LEN: usize = 8;

mod field {
    pub(super) const VER: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const SACK_COUNT: usize = 2;
    pub(super) const WSCALE: usize = 3;
    pub(super) const DST_ID: usize = 4;
    pub(super) const SRC_ID: usize = 8;
    pub(super) const SEQ: usize = 12;
    pub(super) const ACK: usize = 16;
    pub(super) const WINDOW: usize = 20;
    pub(super) const MSS: usize = 22;
    pub(super) const TSVAL: usize = 24;
    pub(super) const TSECR: usize = 28;
    pub(super) const CRC: usize = 32;
}

/// Segment flags (a bit set).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from the sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// The ack field is significant.
    pub const ACK: Flags = Flags(0x08);
    const KNOWN: u8 = 0x0f;

    /// Whether every bit of `other` is set.
    #[inline]
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[inline]
    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// Why a datagram is not a valid segment. Every variant means "drop and count".
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the fixed header plus its SACK blocks.
    #[error("segment truncated")]
    Truncated,
    /// A version this crate does not speak.
    #[error("unknown segment version {0}")]
    Version(u8),
    /// Unknown flag bits set, or SYN together with RST.
    #[error("invalid flags {0:#04x}")]
    Flags(u8),
    /// More SACK blocks than [`MAX_SACK_BLOCKS`].
    #[error("too many SACK blocks: {0}")]
    SackCount(u8),
    /// Window scale above [`MAX_WINDOW_SCALE`].
    #[error("window scale {0} out of range")]
    WindowScale(u8),
    /// The checksum does not match: the datagram was corrupted.
    #[error("checksum mismatch")]
    Checksum,
}

/// A zero-copy view over a datagram that holds one segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Wraps `buf` after checking it is long enough for the header and its SACK
    /// blocks, so the accessors below cannot panic.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        let count = *b.get(field::SACK_COUNT).ok_or(ParseError::Truncated)?;
        if usize::from(count) > MAX_SACK_BLOCKS {
            return Err(ParseError::SackCount(count));
        }
        if b.len() < HEADER_LEN + usize::from(count) * SACK_BLOCK_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(Segment { buf })
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = self.buf.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER]
    }
    /// The flags byte.
    pub fn flags(&self) -> Flags {
        Flags(self.buf.as_ref()[field::FLAGS])
    }
    /// How many SACK blocks follow the header.
    pub fn sack_count(&self) -> usize {
        usize::from(self.buf.as_ref()[field::SACK_COUNT])
    }
    /// The receiver's connection id (0 in a first SYN).
    pub fn dst_id(&self) -> u32 {
        self.u32_at(field::DST_ID)
    }
    /// The sender's connection id.
    pub fn src_id(&self) -> u32 {
        self.u32_at(field::SRC_ID)
    }
    /// The checksum field.
    pub fn checksum(&self) -> u32 {
        self.u32_at(field::CRC)
    }
    /// The header length including SACK blocks.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.sack_count() * SACK_BLOCK_LEN
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
    /// Whether the checksum over the datagram (checksum field skipped) matches.
    pub fn verify_checksum(&self) -> bool {
        checksum_of(self.buf.as_ref()) == self.checksum()
    }
}

/// The checksum of a datagram, skipping the checksum field. `datagram` must be at
/// least [`HEADER_LEN`] long.
fn checksum_of(datagram: &[u8]) -> u32 {
    checksum::checksum(&datagram[..field::CRC], &datagram[field::CRC + 4..])
}

/// Writes the checksum of a complete datagram into its checksum field. `datagram`
/// must be at least [`HEADER_LEN`] long (the caller just emitted it).
pub fn fill_checksum(datagram: &mut [u8]) {
    let c = checksum_of(datagram);
    datagram[field::CRC..field::CRC + 4].copy_from_slice(&c.to_be_bytes());
}

/// A parsed segment header (everything but the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentRepr {
    /// Flags.
    pub flags: Flags,
    /// The receiver's connection id; 0 in a SYN that opens a connection.
    pub dst_id: u32,
    /// The sender's connection id (never 0).
    pub src_id: u32,
    /// Sequence number of the first payload byte (or of the SYN/FIN).
    pub seq: Seq,
    /// Next sequence number the sender expects (valid with ACK).
    pub ack: Seq,
    /// Receive window: bytes >> the sender's window scale (unscaled in a SYN).
    pub window: u16,
    /// Window scale shift the sender will use (SYN only, else 0).
    pub wscale: u8,
    /// Largest payload the sender accepts per segment (SYN only, else 0).
    pub mss: u16,
    /// Sender's timestamp, microseconds, wrapping.
    pub tsval: u32,
    /// Echo of the peer's most recent in-order tsval (0 if none yet).
    pub tsecr: u32,
    /// SACK blocks `[start, end)`, the first `sack_count` are valid.
    pub sack: [(Seq, Seq); MAX_SACK_BLOCKS],
    /// How many entries of `sack` are valid.
    pub sack_count: u8,
}

impl SegmentRepr {
    /// Parses and validates a datagram; returns the header and the payload.
    pub fn parse(datagram: &[u8]) -> Result<(SegmentRepr, &[u8]), ParseError> {
        let s = Segment::new_checked(datagram)?;
        // PROTOCOL.md §8: "a receiver drops a segment whose version is not 1".
        if s.version() != VERSION {
            return Err(ParseError::Version(s.version()));
        }
        let flags = s.flags();
        // "unknown flag bits, or SYN with RST, make the segment malformed".
        if flags.0 & !Flags::KNOWN != 0 || flags.contains(Flags::SYN.with(Flags::RST)) {
            return Err(ParseError::Flags(flags.0));
        }
        let b = datagram;
        let wscale = b[field::WSCALE];
        if wscale > MAX_WINDOW_SCALE {
            return Err(ParseError::WindowScale(wscale));
        }
        // "a segment whose check does not match is dropped".
        if !s.verify_checksum() {
            return Err(ParseError::Checksum);
        }
        let mut sack = [(Seq(0), Seq(0)); MAX_SACK_BLOCKS];
        for (i, block) in sack.iter_mut().enumerate().take(s.sack_count()) {
            let at = HEADER_LEN + i * SACK_BLOCK_LEN;
            *block = (Seq(s.u32_at(at)), Seq(s.u32_at(at + 4)));
        }
        let repr = SegmentRepr {
            flags,
            dst_id: s.dst_id(),
            src_id: s.src_id(),
            seq: Seq(s.u32_at(field::SEQ)),
            ack: Seq(s.u32_at(field::ACK)),
            window: s.u16_at(field::WINDOW),
            wscale,
            mss: s.u16_at(field::MSS),
            tsval: s.u32_at(field::TSVAL),
            tsecr: s.u32_at(field::TSECR),
            sack,
            sack_count: s.sack_count() as u8,
        };
        Ok((repr, &datagram[s.header_len()..]))
    }

    /// Header bytes including SACK blocks.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.sack_count) * SACK_BLOCK_LEN
    }

    /// The valid SACK blocks.
    pub fn sack_blocks(&self) -> &[(Seq, Seq)] {
        let n = usize::from(self.sack_count).min(MAX_SACK_BLOCKS);
        &self.sack[..n]
    }

    /// Writes the header (checksum field zero) into `buf[..self.header_len()]`.
    /// Call [`fill_checksum`] once the payload follows it.
    ///
    /// # Panics
    /// If `buf` is shorter than [`SegmentRepr::header_len`] (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) {
        let n = usize::from(self.sack_count).min(MAX_SACK_BLOCKS);
        let h = &mut buf[..HEADER_LEN + n * SACK_BLOCK_LEN];
        h[field::VER] = VERSION;
        h[field::FLAGS] = self.flags.0;
        h[field::SACK_COUNT] = n as u8;
        h[field::WSCALE] = self.wscale;
        h[field::DST_ID..field::DST_ID + 4].copy_from_slice(&self.dst_id.to_be_bytes());
        h[field::SRC_ID..field::SRC_ID + 4].copy_from_slice(&self.src_id.to_be_bytes());
        h[field::SEQ..field::SEQ + 4].copy_from_slice(&self.seq.0.to_be_bytes());
        h[field::ACK..field::ACK + 4].copy_from_slice(&self.ack.0.to_be_bytes());
        h[field::WINDOW..field::WINDOW + 2].copy_from_slice(&self.window.to_be_bytes());
        h[field::MSS..field::MSS + 2].copy_from_slice(&self.mss.to_be_bytes());
        h[field::TSVAL..field::TSVAL + 4].copy_from_slice(&self.tsval.to_be_bytes());
        h[field::TSECR..field::TSECR + 4].copy_from_slice(&self.tsecr.to_be_bytes());
        h[field::CRC..field::CRC + 4].copy_from_slice(&[0; 4]);
        for (i, (start, end)) in self.sack[..n].iter().enumerate() {
            let at = HEADER_LEN + i * SACK_BLOCK_LEN;
            h[at..at + 4].copy_from_slice(&start.0.to_be_bytes());
            h[at + 4..at + 8].copy_from_slice(&end.0.to_be_bytes());
        }
    }

    /// Appends the complete datagram (header, payload, checksum) to `out`.
    pub fn emit_to_vec(&self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.header_len(), 0);
        self.emit(&mut out[start..]);
        out.extend_from_slice(payload);
        fill_checksum(&mut out[start..]);
    }
}

/// Fuzz entry point: parses arbitrary bytes and checks that a successful parse
/// re-emits to the same bytes. Never panics on any input.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    if let Ok((repr, payload)) = SegmentRepr::parse(data) {
        let mut out = Vec::with_capacity(data.len());
        repr.emit_to_vec(payload, &mut out);
        assert_eq!(out, data, "parse/emit must round-trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOC: &str = include_str!("../../PROTOCOL.md");

    fn syn() -> SegmentRepr {
        SegmentRepr {
            flags: Flags::SYN,
            src_id: 0x1122_3344,
            seq: Seq(0xffff_fff0),
            window: 0xffff,
            wscale: 7,
            mss: 1200,
            tsval: 1,
            ..SegmentRepr::default()
        }
    }

    fn data_ack() -> SegmentRepr {
        let mut sack = [(Seq(0), Seq(0)); MAX_SACK_BLOCKS];
        sack[0] = (Seq(0x0000_0100), Seq(0x0000_0200));
        SegmentRepr {
            flags: Flags::ACK,
            dst_id: 0x5566_7788,
            src_id: 0x1122_3344,
            seq: Seq(0xffff_fff1),
            ack: Seq(0x0000_0010),
            window: 0x0100,
            tsval: 0x0000_2710,
            tsecr: 0x0000_0005,
            sack,
            sack_count: 1,
            ..SegmentRepr::default()
        }
    }

    fn vector(name: &str) -> Vec<u8> {
        rescue_proto::vectors::vector(DOC, name).expect("vector present in PROTOCOL.md")
    }

    #[test]
    fn syn_vector_parses_and_emits() {
        let bytes = vector("xtcp.syn");
        let (repr, payload) = SegmentRepr::parse(&bytes).unwrap();
        assert_eq!(repr, syn());
        assert!(payload.is_empty());
        let mut out = Vec::new();
        syn().emit_to_vec(&[], &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn data_vector_with_sack_parses_and_emits() {
        let bytes = vector("xtcp.data_sack");
        let (repr, payload) = SegmentRepr::parse(&bytes).unwrap();
        assert_eq!(repr, data_ack());
        assert_eq!(payload, b"hi");
        let mut out = Vec::new();
        data_ack().emit_to_vec(b"hi", &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn rejects_truncated_corrupted_and_odd_segments() {
        let good = vector("xtcp.data_sack");
        for len in 0..good.len() - 2 {
            let r = SegmentRepr::parse(&good[..len]);
            assert!(r.is_err(), "len {len} accepted");
        }
        let mut bad = good.clone();
        bad[40] ^= 1;
        assert_eq!(SegmentRepr::parse(&bad), Err(ParseError::Checksum));
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(SegmentRepr::parse(&bad), Err(ParseError::Version(2)));
        let mut bad = good.clone();
        bad[1] = 0x10;
        assert_eq!(SegmentRepr::parse(&bad), Err(ParseError::Flags(0x10)));
        let mut bad = good.clone();
        bad[2] = 5;
        assert_eq!(SegmentRepr::parse(&bad), Err(ParseError::SackCount(5)));
        let mut bad = good;
        bad[3] = 15;
        assert_eq!(SegmentRepr::parse(&bad), Err(ParseError::WindowScale(15)));
    }

    fn arb_repr() -> impl Strategy<Value = SegmentRepr> {
        (
            (0u8..16).prop_filter("SYN+RST", |f| f & 0x06 != 0x06),
            any::<(u32, u32, u32, u32)>(),
            any::<(u16, u16, u32, u32)>(),
            0u8..=MAX_WINDOW_SCALE,
            proptest::collection::vec(any::<(u32, u32)>(), 0..=MAX_SACK_BLOCKS),
        )
            .prop_map(|(f, (d, s, q, a), (w, m, tv, te), ws, blocks)| {
                let mut sack = [(Seq(0), Seq(0)); MAX_SACK_BLOCKS];
                for (i, (x, y)) in blocks.iter().enumerate() {
                    sack[i] = (Seq(*x), Seq(*y));
                }
                SegmentRepr {
                    flags: Flags(f),
                    dst_id: d,
                    src_id: s,
                    seq: Seq(q),
                    ack: Seq(a),
                    window: w,
                    wscale: ws,
                    mss: m,
                    tsval: tv,
                    tsecr: te,
                    sack,
                    sack_count: blocks.len() as u8,
                }
            })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(repr in arb_repr(), payload: Vec<u8>) {
            let mut out = Vec::new();
            repr.emit_to_vec(&payload, &mut out);
            let (back, p) = SegmentRepr::parse(&out).unwrap();
            prop_assert_eq!(back, repr);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn any_single_bit_flip_is_rejected_or_harmless(repr in arb_repr(), bit in 0usize..(HEADER_LEN * 8)) {
            let mut out = Vec::new();
            repr.emit_to_vec(b"payload", &mut out);
            out[bit / 8] ^= 1 << (bit % 8);
            // A single-bit error escapes the 32-bit check with probability 2^-32.
            prop_assert!(SegmentRepr::parse(&out).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            fuzz_parse(&data);
        }
    }
}
