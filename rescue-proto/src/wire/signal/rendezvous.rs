//! RENDEZVOUS (0x11), UDP_TOKEN (0x12) and PEER_ADDR (0x13): the gateway's help for a
//! direct UDP path.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

use super::reader::Reader;
use super::reattach::empty_message;
use super::types::RendezvousToken;
use super::SignalError;
use crate::wire::limits::UDP_TOKEN_LEN;

empty_message!(
    /// `RENDEZVOUS{}`: a paired peer asks the gateway to start a UDP rendezvous.
    Rendezvous
);

/// `UDP_TOKEN{token[16], port u16}`: send `token` in a UDP probe to `port` on the
/// gateway's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpToken {
    /// The token identifying this peer's probe.
    pub token: RendezvousToken,
    /// The gateway's UDP port.
    pub port: u16,
}

impl UdpToken {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let token = RendezvousToken::from_bytes(r.array()?);
        let port = r.u16()?;
        r.finish()?;
        Ok(Self { token, port })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(self.token.as_bytes());
        dst.put_u16(self.port);
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        UDP_TOKEN_LEN + 2
    }
}

/// Address family byte for IPv4.
const FAMILY_V4: u8 = 4;
/// Address family byte for IPv6.
const FAMILY_V6: u8 = 6;

/// `PEER_ADDR{family u8, addr[4|16], port u16}`: the other party's reflexive UDP address,
/// as the gateway saw its probe. An untrusted hint: the path is authenticated end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// The address.
    pub addr: SocketAddr,
}

impl PeerAddr {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, SignalError> {
        let mut r = Reader::new(payload);
        let ip = match r.u8()? {
            FAMILY_V4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
            f => {
                return Err(SignalError::UnknownCode {
                    field: "address family",
                    code: f.into(),
                })
            }
        };
        let port = r.u16()?;
        r.finish()?;
        Ok(Self {
            addr: SocketAddr::new(ip, port),
        })
    }

    /// Appends the payload.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                dst.put_u8(FAMILY_V4);
                dst.put_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                dst.put_u8(FAMILY_V6);
                dst.put_slice(&ip.octets());
            }
        }
        dst.put_u16(self.addr.port());
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        match self.addr {
            SocketAddr::V4(_) => 1 + 4 + 2,
            SocketAddr::V6(_) => 1 + 16 + 2,
        }
    }
}
