//! Splits an H.264 Annex B byte stream (as `ffmpeg -f h264` writes it) into access units,
//! one per camera frame, and tells keyframes (those with an IDR slice) apart.
//!
//! A new access unit starts at an access unit delimiter (NAL type 9), or at an SPS, PPS
//! or SEI (7, 8, 6), or at a slice (1, 5) whose `first_mb_in_slice` is 0, when the unit
//! being built already holds a slice (ITU-T H.264 7.4.1.2.3, simplified: no slice data
//! partitioning, no redundant pictures). Bytes are kept as they came, start codes and
//! all, so the concatenated units are the original stream.
//!
//! Bounded: a unit larger than [`MAX_MEDIA_FRAME`] is an error, and the splitter never
//! holds more than one unit plus one read.

use bytes::{Bytes, BytesMut};
use rescue_proto::session::media::MAX_MEDIA_FRAME;

/// An access unit: one encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// Whether it holds an IDR slice (decodable on its own).
    pub keyframe: bool,
    /// The bytes, Annex B.
    pub data: Bytes,
}

/// A stream the splitter refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum H264Error {
    /// An access unit larger than the media frame limit.
    #[error("access unit larger than {MAX_MEDIA_FRAME} bytes")]
    TooLarge,
}

/// Incremental Annex B splitter: [`Splitter::push`] bytes, take units with
/// [`Splitter::pop`], then [`Splitter::finish`].
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
    /// Where the next start code search begins.
    scan: usize,
    /// NAL starts (offsets of their start codes) in `buf` not yet assigned.
    unit_start: Option<usize>,
    unit_has_slice: bool,
    unit_key: bool,
    done: std::collections::VecDeque<AccessUnit>,
}

fn start_code_at(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i..i + 3) == Some(&[0, 0, 1]) {
        return Some(3);
    }
    if b.get(i..i + 4) == Some(&[0, 0, 0, 1]) {
        return Some(4);
    }
    None
}

impl Splitter {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes of the stream.
    pub fn push(&mut self, data: &[u8]) -> Result<(), H264Error> {
        self.buf.extend_from_slice(data);
        // Leave room for a start code split across two pushes, and for the byte after it.
        while self.scan + 6 <= self.buf.len() {
            let i = self.scan;
            match start_code_at(&self.buf, i) {
                Some(n) => {
                    // In bounds: i + n + 1 < i + 6 <= len.
                    let (h, next) = (self.buf[i + n], self.buf[i + n + 1]);
                    // on_nal may move the buffer's start (and `scan` with it).
                    self.on_nal(i, h, next);
                    self.scan += n;
                }
                None => self.scan += 1,
            }
        }
        let held = self.buf.len() - self.unit_start.unwrap_or(0);
        if held > MAX_MEDIA_FRAME + 5 {
            return Err(H264Error::TooLarge);
        }
        Ok(())
    }

    /// The next complete access unit.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.done.pop_front()
    }

    /// The stream ended: the last unit, if any.
    pub fn finish(&mut self) -> Option<AccessUnit> {
        let start = self.unit_start.take().unwrap_or(0);
        let data = self.buf.split().freeze().slice(start..);
        (!data.is_empty()).then_some(AccessUnit {
            keyframe: self.unit_key,
            data,
        })
    }

    fn on_nal(&mut self, at: usize, header: u8, next: u8) {
        let t = header & 0x1f;
        let is_slice = t == 1 || t == 5;
        // first_mb_in_slice is ue(v): 0 is the single bit 1.
        let first_slice = is_slice && next & 0x80 != 0;
        let starts_unit = match t {
            6..=9 => self.unit_has_slice,
            _ => first_slice && self.unit_has_slice,
        };
        if starts_unit {
            if let Some(s) = self.unit_start {
                let unit = self.buf.split_to(at).freeze().slice(s..);
                self.scan -= at;
                self.done.push_back(AccessUnit {
                    keyframe: self.unit_key,
                    data: unit,
                });
            }
            self.unit_start = Some(0);
            self.unit_has_slice = false;
            self.unit_key = false;
            return self.mark(t, is_slice);
        }
        if self.unit_start.is_none() {
            // Bytes before the first start code stay with the first unit.
            self.unit_start = Some(0);
        }
        self.mark(t, is_slice);
    }

    fn mark(&mut self, t: u8, is_slice: bool) {
        self.unit_has_slice |= is_slice;
        self.unit_key |= t == 5;
    }
}

/// Splits a whole stream.
pub fn split_all(stream: &[u8]) -> Result<Vec<AccessUnit>, H264Error> {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(64 * 1024) {
        s.push(chunk)?;
        out.extend(std::iter::from_fn(|| s.pop()));
    }
    out.extend(s.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_split_at_parameter_sets_and_first_slices() {
        // SPS, PPS, IDR slice | slice | slice (first_mb != 0: same unit) | SPS, PPS, IDR.
        let s: Vec<u8> = [
            &[0, 0, 0, 1, 0x67, 0x42][..],
            &[0, 0, 0, 1, 0x68, 0xce],
            &[0, 0, 1, 0x65, 0x88, 0x84],
            &[0, 0, 1, 0x41, 0x9a, 0x01],
            &[0, 0, 1, 0x41, 0x40, 0x02],
            &[0, 0, 0, 1, 0x67, 0x42],
            &[0, 0, 0, 1, 0x68, 0xce],
            &[0, 0, 1, 0x65, 0x88, 0x80],
        ]
        .concat();
        for step in [1, 2, 3, 7, 64] {
            let mut sp = Splitter::new();
            let mut units = Vec::new();
            for c in s.chunks(step) {
                sp.push(c).unwrap();
                units.extend(std::iter::from_fn(|| sp.pop()));
            }
            units.extend(sp.finish());
            let keys: Vec<bool> = units.iter().map(|u| u.keyframe).collect();
            assert_eq!(keys, [true, false, true], "step {step}");
            let joined: Vec<u8> = units.iter().flat_map(|u| u.data.to_vec()).collect();
            assert_eq!(joined, s, "step {step}");
        }
    }

    proptest::proptest! {
        /// Any bytes: no panic, and the units put back together are the input.
        #[test]
        fn any_input_round_trips(data in proptest::collection::vec(0u8..3, 0..400)) {
            let units = split_all(&data).unwrap();
            let joined: Vec<u8> = units.iter().flat_map(|u| u.data.to_vec()).collect();
            proptest::prop_assert_eq!(joined, data);
        }
    }
}
