//! The rules for frames after PAIRED, once, in sans-IO form (PROTOCOL.md 3.8–3.13).
//!
//! Once a session is paired, a hop carries DATA frames (forwarded verbatim by the
//! gateway) and a few control frames. Both ends of a hop read that stream with the same
//! rules: the gateway's relay core reads what a peer sends ([`Direction::FromPeer`]),
//! the peer's tunnel reads what the gateway sends ([`Direction::FromGateway`]).
//! [`FrameScanner`] holds those rules and the position inside the current DATA frame;
//! the caller owns the buffer and the I/O.
//!
//! A frame is checked in one order, wherever it arrives, so one bad frame gets one
//! error in both places:
//!
//! 1. the header: an unknown type ([`FrameViolation::UnexpectedType`]), then a length
//!    above 65,536 ([`FrameViolation::Oversize`]) (as [`Header::parse`] does);
//! 2. DATA: an empty payload ([`FrameViolation::EmptyData`]);
//! 3. the type: not a control frame allowed in this direction
//!    ([`FrameViolation::UnexpectedType`]);
//! 4. the length: a control payload above [`MAX_CONTROL_PAYLOAD`]
//!    ([`FrameViolation::ControlTooLong`]), decided from the header alone;
//! 5. the payload: it must parse ([`FrameViolation::Malformed`]).
//!
//! Time is an argument ([`FrameScanner::scan`], [`FrameScanner::take_payload`]): the
//! scanner remembers when its input last advanced, which is what the idle rules of
//! section 5 count from. It never reads a clock, never allocates for DATA and never
//! panics on any input.

use std::time::Instant;

use super::frame::{FrameError, FrameType, Header, HEADER_LEN};
use super::limits::MAX_ERROR_MESSAGE_LEN;
use super::signal::Message;

/// Longest control payload accepted after PAIRED: ERROR with the longest message
/// (PING and PONG take 8 bytes, CLOSE 2, UDP_TOKEN 16, PEER_ADDR at most 19), so every
/// control frame fits a small fixed slot.
pub const MAX_CONTROL_PAYLOAD: usize = 3 + MAX_ERROR_MESSAGE_LEN;

/// Largest control frame after PAIRED, header included.
pub const CONTROL_FRAME_MAX: usize = HEADER_LEN + MAX_CONTROL_PAYLOAD;

/// Which side of a hop the scanned bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// From a peer to the gateway: PING, PONG, CLOSE and ERROR, and RENDEZVOUS when
    /// `rendezvous` (a gateway that runs the UDP rendezvous of 3.13; a bare relay
    /// refuses it).
    FromPeer {
        /// Whether RENDEZVOUS is allowed.
        rendezvous: bool,
    },
    /// From the gateway to a peer: PING, PONG, CLOSE, PEER_GONE, ERROR, UDP_TOKEN and
    /// PEER_ADDR.
    FromGateway,
}

impl Direction {
    /// Whether a control frame of type `ty` may come this way after PAIRED.
    pub fn allows(self, ty: FrameType) -> bool {
        use FrameType::*;
        match self {
            Direction::FromPeer { rendezvous } => {
                matches!(ty, Ping | Pong | Close | Error) || (rendezvous && ty == Rendezvous)
            }
            Direction::FromGateway => matches!(
                ty,
                Ping | Pong | Close | PeerGone | Error | UdpToken | PeerAddr
            ),
        }
    }
}

/// What was wrong with a frame after PAIRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameViolation {
    /// The header announced more than the 65536-byte payload limit.
    #[error("frame length {0} exceeds the 65536-byte payload limit")]
    Oversize(usize),
    /// The frame type is unknown or not allowed once the session is paired.
    #[error("frame type {0:#04x} is not allowed once the session is paired")]
    UnexpectedType(u8),
    /// A DATA frame with an empty payload (PROTOCOL.md 3.8 rejects it).
    #[error("empty DATA frame")]
    EmptyData,
    /// A control payload does not parse (PROTOCOL.md section 3).
    #[error("malformed control frame {0:#04x}")]
    Malformed(u8),
    /// A control frame carried more than [`MAX_CONTROL_PAYLOAD`] bytes.
    #[error("control frame {ty:#04x} carries {len} bytes")]
    ControlTooLong {
        /// The frame type.
        ty: u8,
        /// The announced payload length.
        len: usize,
    },
    /// The hop's stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// The verdict on the bytes at the front of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scan {
    /// A DATA frame starts here; its [`HEADER_LEN`]-byte header announces this many
    /// payload bytes, which [`FrameScanner::take_payload`] now counts off. The scanner
    /// took the header: the caller forwards it (the relay) or drops it (the tunnel).
    Forward(usize),
    /// A whole control frame of `len` bytes (header included), consumed: handle `msg`.
    Control {
        /// The message.
        msg: Message,
        /// Its length on the wire.
        len: usize,
    },
    /// More bytes are needed (or the current DATA frame's payload is not yet counted
    /// off): nothing was consumed.
    Incomplete,
    /// The frame breaks the rules; the hop is closed.
    Violation(FrameViolation),
}

/// The frame rules of one direction of one hop after PAIRED, and its position.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    direction: Direction,
    /// Payload bytes of the current DATA frame not yet counted off.
    remaining: usize,
    last_activity: Instant,
}

impl FrameScanner {
    /// A scanner at a frame boundary; `now` counts as the last activity.
    pub fn new(direction: Direction, now: Instant) -> Self {
        Self {
            direction,
            remaining: 0,
            last_activity: now,
        }
    }

    /// The direction whose rules apply.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Payload bytes of the current DATA frame still to come (0 at a frame boundary).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether the input stands at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// When the input last advanced (a header, a control frame or payload bytes).
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Counts off up to `available` payload bytes of the current DATA frame; returns
    /// how many belong to it (0 at a frame boundary).
    pub fn take_payload(&mut self, available: usize, now: Instant) -> usize {
        let n = available.min(self.remaining);
        if n > 0 {
            self.remaining -= n;
            self.last_activity = now;
        }
        n
    }

    /// Checks the frame at the front of `input` (which starts at a frame boundary).
    /// Inside a DATA frame's payload it returns [`Scan::Incomplete`]: count the payload
    /// off with [`FrameScanner::take_payload`] first.
    pub fn scan(&mut self, input: &[u8], now: Instant) -> Scan {
        if self.remaining > 0 {
            return Scan::Incomplete;
        }
        let header = match Header::parse(input) {
            Ok(h) => h,
            Err(FrameError::Truncated { .. }) => return Scan::Incomplete,
            Err(FrameError::Oversize(len)) => {
                return Scan::Violation(FrameViolation::Oversize(len))
            }
            Err(FrameError::UnknownType(t)) => {
                return Scan::Violation(FrameViolation::UnexpectedType(t))
            }
        };
        let (ty, len) = (header.frame_type, header.payload_len);
        if ty == FrameType::Data {
            if len == 0 {
                return Scan::Violation(FrameViolation::EmptyData);
            }
            self.remaining = len;
            self.last_activity = now;
            return Scan::Forward(len);
        }
        let code = ty.code();
        if !self.direction.allows(ty) {
            return Scan::Violation(FrameViolation::UnexpectedType(code));
        }
        if len > MAX_CONTROL_PAYLOAD {
            return Scan::Violation(FrameViolation::ControlTooLong { ty: code, len });
        }
        let Some(payload) = input.get(HEADER_LEN..header.frame_len()) else {
            return Scan::Incomplete;
        };
        match Message::decode(ty, payload) {
            Ok(msg) => {
                self.last_activity = now;
                Scan::Control {
                    msg,
                    len: header.frame_len(),
                }
            }
            Err(_) => Scan::Violation(FrameViolation::Malformed(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PEER: Direction = Direction::FromPeer { rendezvous: false };

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut v = vec![ty, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        v.extend_from_slice(payload);
        v
    }

    fn scan(direction: Direction, input: &[u8]) -> Scan {
        FrameScanner::new(direction, Instant::now()).scan(input, Instant::now())
    }

    #[test]
    fn data_is_forwarded_and_its_payload_counted_off() {
        let t0 = Instant::now();
        let mut s = FrameScanner::new(PEER, t0);
        let f = frame(0x08, &[7; 10]);
        assert_eq!(s.scan(&f[..3], t0), Scan::Incomplete);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.scan(&f, t1), Scan::Forward(10));
        assert_eq!((s.remaining(), s.last_activity()), (10, t1));
        assert_eq!(s.scan(&f[4..], t1), Scan::Incomplete, "inside the payload");
        assert_eq!(s.take_payload(4, t1), 4);
        assert_eq!(s.take_payload(100, t1), 6);
        assert!(s.at_boundary());
        assert_eq!(s.take_payload(5, t1), 0);
    }

    #[test]
    fn control_frames_are_whole_before_they_are_handled() {
        let ping = frame(0x09, &[0, 0, 0, 0, 0, 0, 0, 9]);
        let mut s = FrameScanner::new(PEER, Instant::now());
        assert_eq!(s.scan(&ping[..7], Instant::now()), Scan::Incomplete);
        let Scan::Control { msg, len } = s.scan(&ping, Instant::now()) else {
            panic!("a whole PING");
        };
        assert_eq!(len, 12);
        assert!(matches!(msg, Message::Ping(p) if p.nonce == 9));
    }

    #[test]
    fn each_direction_allows_its_own_control_frames() {
        let gone = frame(0x0B, &[0, 0, 0, 0]);
        assert_eq!(
            scan(PEER, &gone),
            Scan::Violation(FrameViolation::UnexpectedType(0x0B))
        );
        assert!(matches!(
            scan(Direction::FromGateway, &gone),
            Scan::Control { .. }
        ));
        let rdv = frame(0x11, &[]);
        assert_eq!(
            scan(PEER, &rdv),
            Scan::Violation(FrameViolation::UnexpectedType(0x11))
        );
        let with = Direction::FromPeer { rendezvous: true };
        assert!(matches!(scan(with, &rdv), Scan::Control { .. }));
        assert_eq!(
            scan(Direction::FromGateway, &rdv),
            Scan::Violation(FrameViolation::UnexpectedType(0x11))
        );
    }

    /// The frame the relay core and the tunnel used to judge differently: a type not
    /// allowed here with a long payload is `UnexpectedType` in both directions (the type
    /// is checked before the length), from the header alone.
    #[test]
    fn one_bad_frame_gets_one_error_in_both_directions() {
        let header = [0x02, 0x00, 0x10, 0x00]; // REGISTER, 4096 bytes announced
        for d in [PEER, Direction::FromGateway] {
            assert_eq!(
                scan(d, &header),
                Scan::Violation(FrameViolation::UnexpectedType(0x02)),
                "{d:?}"
            );
        }
        let long_ping = [0x09, 0x00, 0x01, 0x00];
        for d in [PEER, Direction::FromGateway] {
            assert_eq!(
                scan(d, &long_ping),
                Scan::Violation(FrameViolation::ControlTooLong { ty: 0x09, len: 256 })
            );
        }
    }

    #[test]
    fn header_errors_come_first() {
        assert_eq!(
            scan(PEER, &[0x08, 0x01, 0x00, 0x01]),
            Scan::Violation(FrameViolation::Oversize(65_537))
        );
        assert_eq!(
            scan(PEER, &[0x7f, 0xff, 0xff, 0xff]),
            Scan::Violation(FrameViolation::UnexpectedType(0x7f))
        );
        assert_eq!(
            scan(PEER, &frame(0x08, &[])),
            Scan::Violation(FrameViolation::EmptyData)
        );
        assert_eq!(
            scan(PEER, &frame(0x0C, &[0xff])),
            Scan::Violation(FrameViolation::Malformed(0x0C))
        );
    }

    #[test]
    fn a_failed_scan_consumes_nothing_and_keeps_the_time() {
        let t0 = Instant::now();
        let mut s = FrameScanner::new(PEER, t0);
        let later = t0 + Duration::from_secs(5);
        assert!(matches!(
            s.scan(&[0x02, 0, 0, 1], later),
            Scan::Violation(_)
        ));
        assert_eq!(s.scan(&[0x09, 0, 0], later), Scan::Incomplete);
        assert_eq!((s.remaining(), s.last_activity()), (0, t0));
    }
}
