//! IP allow-lists of technician groups: CIDR blocks, IPv4 and IPv6; an empty list allows
//! every address. Checked at login and at every issuing call.

use std::fmt;
use std::net::IpAddr;

use crate::config::MAX_ALLOW_LIST_ENTRIES;
use crate::error::PortalError;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl std::str::FromStr for Cidr {
    type Err = PortalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = PortalError::BadRequest("allow-list entries are CIDR blocks like 192.0.2.0/24");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| {
                PortalError::BadRequest("allow-list entries are CIDR blocks like 192.0.2.0/24")
            })?,
            None => max,
        };
        if prefix > max {
            return Err(PortalError::BadRequest("CIDR prefix too long"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A group's allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// Parses a comma- or whitespace-separated list of CIDR blocks (at most
    /// [`MAX_ALLOW_LIST_ENTRIES`]).
    pub fn parse(text: &str) -> Result<Self, PortalError> {
        let entries = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, _>>()?;
        if entries.len() > MAX_ALLOW_LIST_ENTRIES {
            return Err(PortalError::BadRequest("allow-list too long"));
        }
        Ok(Self(entries))
    }

    /// Whether `ip` may use the portal as a member of this group.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c.contains(ip))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_match_by_prefix() {
        let l = AllowList::parse("192.0.2.0/24, 10.1.2.3 2001:db8::/33").unwrap();
        assert!(l.allows(ip("192.0.2.200")));
        assert!(!l.allows(ip("192.0.3.1")));
        assert!(l.allows(ip("10.1.2.3")));
        assert!(!l.allows(ip("10.1.2.4")));
        assert!(l.allows(ip("2001:db8:7fff::1")));
        assert!(!l.allows(ip("2001:db8:8000::1")));
        assert!(l.allows(ip("::ffff:192.0.2.9")));
        assert!(AllowList::parse("").unwrap().allows(ip("203.0.113.1")));
        assert_eq!(
            AllowList::parse("10.0.0.0/7").unwrap().to_string(),
            "10.0.0.0/7"
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "1.2.3.4/x",
            "'; DROP TABLE x; --",
        ] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }
}
