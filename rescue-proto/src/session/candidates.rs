//! CANDIDATES and UDP_CANDIDATES (PROTOCOL.md 7.4, types 0x06 and 0x07 on the control
//! channel): one end's addresses for a direct path in one round of the path manager
//! ([`crate::paths`]). They travel inside the end-to-end session, never through the
//! gateway's signalling.
//!
//! `type u8, round u32, count u8 (0..=MAX_CANDIDATES), count × (family u8 4|6, address
//! 4|16, port u16)`. CANDIDATES (0x06) are the applet's TCP listener addresses; a count of
//! 0 says "no TCP this round": the UDP phase starts at once. UDP_CANDIDATES (0x07) are the
//! local addresses of the UDP socket an end punches from (either end sends them in the UDP
//! phase), for peers on the same LAN. Decoding is strict: an unknown family, a zero port,
//! a count above the limit, a short or long payload is an error (fatal on the control
//! channel).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::paths::MAX_CANDIDATES;

/// The control message type byte of CANDIDATES.
pub const CANDIDATES_TYPE: u8 = 0x06;
/// The control message type byte of UDP_CANDIDATES.
pub const UDP_CANDIDATES_TYPE: u8 = 0x07;

/// Which kind of path a candidate list is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The applet's TCP listener (CANDIDATES, applet to console only).
    Tcp,
    /// An end's UDP socket of the round's UDP phase (UDP_CANDIDATES, either way).
    Udp,
}

impl Transport {
    /// The control message type byte.
    pub fn type_byte(self) -> u8 {
        match self {
            Transport::Tcp => CANDIDATES_TYPE,
            Transport::Udp => UDP_CANDIDATES_TYPE,
        }
    }

    /// The transport of a control message type byte, if it is a candidate list.
    pub fn from_type_byte(ty: u8) -> Option<Self> {
        match ty {
            CANDIDATES_TYPE => Some(Transport::Tcp),
            UDP_CANDIDATES_TYPE => Some(Transport::Udp),
            _ => None,
        }
    }
}

/// One round's candidate addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidates {
    /// The path manager's round.
    pub round: u32,
    /// TCP (CANDIDATES) or UDP (UDP_CANDIDATES).
    pub transport: Transport,
    /// The addresses, in the applet's order of preference (0 to [`MAX_CANDIDATES`]).
    addrs: Vec<SocketAddr>,
}

/// Why a CANDIDATES message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CandidatesError {
    /// Not a CANDIDATES message.
    #[error("not a CANDIDATES message")]
    WrongType,
    /// The payload ends early or has bytes after the last address.
    #[error("CANDIDATES length does not match its count")]
    BadLength,
    /// More than [`MAX_CANDIDATES`] addresses.
    #[error("CANDIDATES count {0} out of bounds")]
    Count(usize),
    /// A family byte other than 4 or 6.
    #[error("unknown address family {0}")]
    Family(u8),
    /// Port 0, or an unspecified, multicast or broadcast address: not dialable.
    #[error("candidate {0} is not dialable")]
    NotDialable(SocketAddr),
}

impl Candidates {
    /// Checks and wraps a round's TCP addresses (CANDIDATES).
    pub fn new(round: u32, addrs: Vec<SocketAddr>) -> Result<Self, CandidatesError> {
        Self::with_transport(Transport::Tcp, round, addrs)
    }

    /// Checks and wraps a round's UDP addresses (UDP_CANDIDATES).
    pub fn udp(round: u32, addrs: Vec<SocketAddr>) -> Result<Self, CandidatesError> {
        Self::with_transport(Transport::Udp, round, addrs)
    }

    fn with_transport(
        transport: Transport,
        round: u32,
        addrs: Vec<SocketAddr>,
    ) -> Result<Self, CandidatesError> {
        if addrs.len() > MAX_CANDIDATES {
            return Err(CandidatesError::Count(addrs.len()));
        }
        if let Some(bad) = addrs.iter().find(|a| !dialable(a)) {
            return Err(CandidatesError::NotDialable(*bad));
        }
        Ok(Self {
            round,
            transport,
            addrs,
        })
    }

    /// The addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The control-channel payload.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(6 + self.addrs.len() * 19);
        out.put_u8(self.transport.type_byte());
        out.put_u32(self.round);
        // At most MAX_CANDIDATES (8) by construction.
        out.put_u8(self.addrs.len() as u8);
        for a in &self.addrs {
            match a.ip() {
                IpAddr::V4(ip) => {
                    out.put_u8(4);
                    out.put_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.put_u8(6);
                    out.put_slice(&ip.octets());
                }
            }
            out.put_u16(a.port());
        }
        out.freeze()
    }

    /// Parses a control-channel payload whose first byte is [`CANDIDATES_TYPE`] or
    /// [`UDP_CANDIDATES_TYPE`].
    pub fn decode(payload: &[u8]) -> Result<Self, CandidatesError> {
        let (&ty, rest) = payload.split_first().ok_or(CandidatesError::WrongType)?;
        let transport = Transport::from_type_byte(ty).ok_or(CandidatesError::WrongType)?;
        let (round, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(CandidatesError::BadLength)?;
        let (&count, mut rest) = rest.split_first().ok_or(CandidatesError::BadLength)?;
        let count = usize::from(count);
        if count > MAX_CANDIDATES {
            return Err(CandidatesError::Count(count));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let (&family, tail) = rest.split_first().ok_or(CandidatesError::BadLength)?;
            let (ip, tail) = match family {
                4 => {
                    let (o, t) = tail
                        .split_first_chunk::<4>()
                        .ok_or(CandidatesError::BadLength)?;
                    (IpAddr::V4(Ipv4Addr::from(*o)), t)
                }
                6 => {
                    let (o, t) = tail
                        .split_first_chunk::<16>()
                        .ok_or(CandidatesError::BadLength)?;
                    (IpAddr::V6(Ipv6Addr::from(*o)), t)
                }
                f => return Err(CandidatesError::Family(f)),
            };
            let (port, tail) = tail
                .split_first_chunk::<2>()
                .ok_or(CandidatesError::BadLength)?;
            addrs.push(SocketAddr::new(ip, u16::from_be_bytes(*port)));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(CandidatesError::BadLength);
        }
        Self::with_transport(transport, u32::from_be_bytes(*round), addrs)
    }
}

/// Whether the console may dial `a`: a unicast address and a port.
fn dialable(a: &SocketAddr) -> bool {
    let ip_ok = match a.ip() {
        IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
    };
    ip_ok && a.port() != 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn candidates_round_trip_and_bad_ones_are_refused() {
        let addrs = vec![
            "192.0.2.1:50000".parse().unwrap(),
            "[2001:db8::1]:50000".parse().unwrap(),
        ];
        let c = Candidates::new(7, addrs).unwrap();
        assert_eq!(Candidates::decode(&c.encode()), Ok(c.clone()));
        let udp = Candidates::udp(7, c.addrs().to_vec()).unwrap();
        assert_eq!(udp.encode()[0], UDP_CANDIDATES_TYPE);
        assert_eq!(Candidates::decode(&udp.encode()), Ok(udp.clone()));
        assert_ne!(udp, c, "the transport is part of the message");
        let wire = c.encode();
        assert_eq!(wire.len(), 1 + 4 + 1 + 7 + 19);
        assert_eq!(
            Candidates::decode(&wire[..wire.len() - 1]),
            Err(CandidatesError::BadLength)
        );
        let mut long = wire.to_vec();
        long.push(0);
        assert_eq!(Candidates::decode(&long), Err(CandidatesError::BadLength));
        let mut fam = wire.to_vec();
        fam[6] = 5;
        assert_eq!(Candidates::decode(&fam), Err(CandidatesError::Family(5)));
        let none = Candidates::decode(&[6, 0, 0, 0, 1, 0]).unwrap();
        assert!(none.addrs().is_empty(), "0 addresses: no TCP this round");
        assert_eq!(
            Candidates::decode(&[6, 0, 0, 0, 1, 9]),
            Err(CandidatesError::Count(9))
        );
        assert_eq!(
            Candidates::decode(&[6, 0, 0, 0, 1, 1, 4, 0, 0, 0, 0, 0, 80]),
            Err(CandidatesError::NotDialable("0.0.0.0:80".parse().unwrap()))
        );
        assert_eq!(
            Candidates::decode(&[6, 0, 0, 0, 1, 1, 4, 10, 0, 0, 1, 0, 0]),
            Err(CandidatesError::NotDialable("10.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(Candidates::decode(&[1, 0]), Err(CandidatesError::WrongType));
    }

    #[test]
    fn protocol_vector() {
        let doc = include_str!("../../../PROTOCOL.md");
        let v = crate::vectors::vector(doc, "session.control.candidates").expect("vector");
        let c = Candidates::new(
            1,
            vec![
                "192.0.2.1:50000".parse().unwrap(),
                "[2001:db8::1]:50000".parse().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(c.encode().as_ref(), &v[..]);
        assert_eq!(Candidates::decode(&v), Ok(c));
        let v = crate::vectors::vector(doc, "session.control.udp_candidates").expect("vector");
        let c = Candidates::udp(2, vec!["192.168.1.20:40000".parse().unwrap()]).unwrap();
        assert_eq!(c.encode().as_ref(), &v[..]);
        assert_eq!(Candidates::decode(&v), Ok(c));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_what_it_would_encode(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut payload = vec![CANDIDATES_TYPE];
            payload.extend_from_slice(&bytes);
            if let Ok(c) = Candidates::decode(&payload) {
                let wire = c.encode();
                prop_assert_eq!(&wire[..], &payload[..]);
                prop_assert!(c.addrs().len() <= MAX_CANDIDATES);
            }
        }
    }
}
