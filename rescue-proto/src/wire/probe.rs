//! PROBE: the UDP datagram a paired peer sends to the gateway's UDP port so that the
//! gateway learns its reflexive address (`PROTOCOL.md` section 3.13).
//!
//! ```text
//!  0                   4        5        6                                  22
//! +--------+--------+--------+--------+--------+--------+--------- ... ---------+
//! |  magic "rsPB" (4 bytes)           | version|  role  |  token (16 bytes)     |
//! +--------+--------+--------+--------+--------+--------+--------- ... ---------+
//! ```
//!
//! A probe is exactly [`PROBE_LEN`] bytes. [`Probe::parse`] checks the length first,
//! then the magic and version (so a stray datagram costs a length and a four-byte
//! compare), then the role; it never panics and allocates nothing. Whether the token is
//! known, fresh, unused and issued to that role is the gateway table's business
//! ([`crate::handoff::rendezvous`]).

use bytes::BufMut;

use crate::party::Role;
use crate::wire::limits::UDP_TOKEN_LEN;
use crate::wire::signal::RendezvousToken;

/// The first four bytes of every probe: ASCII `rsPB`.
pub const PROBE_MAGIC: [u8; 4] = *b"rsPB";

/// The probe format version this code speaks.
pub const PROBE_VERSION: u8 = 1;

/// Length of a probe: magic, version, role and token; nothing else.
pub const PROBE_LEN: usize = PROBE_MAGIC.len() + 1 + 1 + UDP_TOKEN_LEN;

/// Offset of the version byte.
const VERSION_AT: usize = 4;
/// Offset of the role byte.
const ROLE_AT: usize = 5;
/// Offset of the token.
const TOKEN_AT: usize = 6;

/// Why a datagram is not a probe. Every variant is the sender's fault; the gateway drops
/// the datagram and counts it (it never answers over UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeFormatError {
    /// The datagram is not [`PROBE_LEN`] bytes long (shorter: truncated; longer:
    /// oversize or trailing bytes).
    #[error("datagram of {0} bytes is not a {PROBE_LEN}-byte probe")]
    Length(usize),
    /// The first four bytes are not [`PROBE_MAGIC`].
    #[error("not a probe (bad magic)")]
    Magic,
    /// The version byte is not [`PROBE_VERSION`].
    #[error("probe version {0} not spoken here")]
    Version(u8),
    /// The role byte is neither 0x01 (applet) nor 0x02 (console).
    #[error("unknown probe role {0:#04x}")]
    Role(u8),
}

/// A parsed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The party the token was issued to.
    pub role: Role,
    /// The token from that party's UDP_TOKEN.
    pub token: RendezvousToken,
}

impl Probe {
    /// Parses one datagram (see the module docs for the order of the checks).
    pub fn parse(datagram: &[u8]) -> Result<Self, ProbeFormatError> {
        // PROTOCOL.md 3.13: "A datagram of any other length is dropped."
        let bytes: &[u8; PROBE_LEN] = datagram
            .try_into()
            .map_err(|_| ProbeFormatError::Length(datagram.len()))?;
        // "The magic comes first, so that anything else sent to the port is dropped
        // after four bytes."
        if bytes[..VERSION_AT] != PROBE_MAGIC {
            return Err(ProbeFormatError::Magic);
        }
        if bytes[VERSION_AT] != PROBE_VERSION {
            return Err(ProbeFormatError::Version(bytes[VERSION_AT]));
        }
        let role = Role::from_code(bytes[ROLE_AT]).ok_or(ProbeFormatError::Role(bytes[ROLE_AT]))?;
        let mut token = [0u8; UDP_TOKEN_LEN];
        token.copy_from_slice(&bytes[TOKEN_AT..]);
        Ok(Self {
            role,
            token: RendezvousToken::from_bytes(token),
        })
    }

    /// Appends the datagram ([`PROBE_LEN`] bytes).
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(&PROBE_MAGIC);
        dst.put_u8(PROBE_VERSION);
        dst.put_u8(self.role.code());
        dst.put_slice(self.token.as_bytes());
    }

    /// The datagram as an array.
    pub fn to_bytes(&self) -> [u8; PROBE_LEN] {
        let mut out = [0u8; PROBE_LEN];
        self.encode(&mut &mut out[..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn probe() -> Probe {
        Probe {
            role: Role::Console,
            token: RendezvousToken::from_bytes([0x10; UDP_TOKEN_LEN]),
        }
    }

    #[test]
    fn encodes_and_parses_back() {
        let bytes = probe().to_bytes();
        assert_eq!(&bytes[..6], b"rsPB\x01\x02");
        assert_eq!(Probe::parse(&bytes), Ok(probe()));
    }

    #[test]
    fn every_other_length_is_refused() {
        let bytes = probe().to_bytes();
        for cut in 0..PROBE_LEN {
            assert_eq!(
                Probe::parse(&bytes[..cut]),
                Err(ProbeFormatError::Length(cut))
            );
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            Probe::parse(&long),
            Err(ProbeFormatError::Length(PROBE_LEN + 1))
        );
        assert_eq!(
            Probe::parse(&[0; 1500]),
            Err(ProbeFormatError::Length(1500))
        );
    }

    #[test]
    fn bad_magic_version_and_role_are_typed() {
        let mut b = probe().to_bytes();
        b[0] = b'x';
        assert_eq!(Probe::parse(&b), Err(ProbeFormatError::Magic));
        let mut b = probe().to_bytes();
        b[4] = 2;
        assert_eq!(Probe::parse(&b), Err(ProbeFormatError::Version(2)));
        let mut b = probe().to_bytes();
        b[5] = 3;
        assert_eq!(Probe::parse(&b), Err(ProbeFormatError::Role(3)));
    }

    proptest! {
        #[test]
        fn any_datagram_parses_or_is_refused_and_accepted_ones_are_canonical(
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(p) = Probe::parse(&data) {
                let bytes = p.to_bytes();
                prop_assert_eq!(bytes.as_slice(), data.as_slice());
            }
        }

        #[test]
        fn every_probe_round_trips(token in any::<[u8; 16]>(), console in any::<bool>()) {
            let role = if console { Role::Console } else { Role::Applet };
            let p = Probe { role, token: RendezvousToken::from_bytes(token) };
            prop_assert_eq!(Probe::parse(&p.to_bytes()), Ok(p));
        }
    }
}
