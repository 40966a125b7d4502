//! The byte format of the ticket body (PROTOCOL.md section 6, "Applet ticket").
//!
//! Decoding never panics and never allocates more than the input it was given: every
//! length is read, checked against its limit and against the bytes left, then used.

use rescue_proto::guid::{Guid, GUID_LEN};
use rescue_proto::Policy;

use super::{Ticket, TicketError};
use crate::pin::{Pin, PIN_LEN};
use crate::pki::AccountId;

/// Version byte of this format.
pub(crate) const VERSION: u8 = 1;
/// Longest technician-group name: a label for logs and the consent prompt, not prose.
pub const MAX_GROUP_LEN: usize = 64;
/// Most gateways in one ticket: enough for a regional list, small enough to bound it.
pub const MAX_GATEWAYS: usize = 8;
/// Longest gateway address (`host:port`): a DNS name is at most 253 characters.
pub const MAX_GATEWAY_LEN: usize = 255;
/// Length of the fixed part before the group name.
const FIXED_LEN: usize = 1 + GUID_LEN + 8 + 8 + PIN_LEN + PIN_LEN + Policy::WIRE_LEN;

/// Appends the body of `t` to `out`, refusing any field outside its limit.
pub(crate) fn encode(t: &Ticket, out: &mut Vec<u8>) -> Result<(), TicketError> {
    check_group(t.group.as_bytes())?;
    if t.gateways.is_empty() || t.gateways.len() > MAX_GATEWAYS {
        return Err(TicketError::GatewayCount);
    }
    out.push(VERSION);
    out.extend_from_slice(t.guid.as_bytes());
    out.extend_from_slice(&t.account.0.to_be_bytes());
    out.extend_from_slice(&t.expires_at_unix.to_be_bytes());
    out.extend_from_slice(t.gateway_ca_pin.as_bytes());
    out.extend_from_slice(t.account_ca_pin.as_bytes());
    out.extend_from_slice(&t.policy.to_bytes());
    push_short(out, t.group.as_bytes())?;
    out.push(u8::try_from(t.gateways.len()).map_err(|_| TicketError::GatewayCount)?);
    for g in &t.gateways {
        check_gateway(g.as_bytes())?;
        push_short(out, g.as_bytes())?;
    }
    Ok(())
}

/// Reads a whole body; trailing bytes are an error.
pub(crate) fn decode(body: &[u8]) -> Result<Ticket, TicketError> {
    let mut r = Reader(body);
    let fixed = r.take(FIXED_LEN)?;
    let (version, rest) = fixed.split_first().ok_or(TicketError::Truncated)?;
    if *version != VERSION {
        return Err(TicketError::Version(*version));
    }
    // `fixed` is exactly FIXED_LEN bytes, so these splits (96 of the 101 bytes after the
    // version) are in bounds; `policy` is the remaining 5.
    let (guid, rest) = rest.split_at(GUID_LEN);
    let (account, rest) = rest.split_at(8);
    let (expires, rest) = rest.split_at(8);
    let (gw_pin, rest) = rest.split_at(PIN_LEN);
    let (acct_pin, policy) = rest.split_at(PIN_LEN);
    let policy: [u8; Policy::WIRE_LEN] = policy.try_into().map_err(|_| TicketError::Truncated)?;
    let policy = Policy::from_bytes(policy).ok_or(TicketError::Policy)?;
    let group = r.short()?;
    check_group(group)?;
    let count = usize::from(r.byte()?);
    if count == 0 || count > MAX_GATEWAYS {
        return Err(TicketError::GatewayCount);
    }
    let mut gateways = Vec::with_capacity(count);
    for _ in 0..count {
        let g = r.short()?;
        check_gateway(g)?;
        gateways.push(String::from_utf8(g.to_vec()).map_err(|_| TicketError::Gateway)?);
    }
    if !r.0.is_empty() {
        return Err(TicketError::TrailingBytes);
    }
    Ok(Ticket {
        guid: Guid::from_slice(guid).map_err(|_| TicketError::Truncated)?,
        account: AccountId(u64::from_be_bytes(array(account)?)),
        expires_at_unix: u64::from_be_bytes(array(expires)?),
        gateway_ca_pin: Pin(array(gw_pin)?),
        account_ca_pin: Pin(array(acct_pin)?),
        policy,
        group: String::from_utf8(group.to_vec()).map_err(|_| TicketError::Group)?,
        gateways,
    })
}

fn array<const N: usize>(s: &[u8]) -> Result<[u8; N], TicketError> {
    s.try_into().map_err(|_| TicketError::Truncated)
}

fn push_short(out: &mut Vec<u8>, s: &[u8]) -> Result<(), TicketError> {
    out.push(u8::try_from(s.len()).map_err(|_| TicketError::Gateway)?);
    out.extend_from_slice(s);
    Ok(())
}

/// PROTOCOL.md: "group: 0 to 64 bytes of UTF-8", a name under the peer-text rule (1.3).
fn check_group(g: &[u8]) -> Result<(), TicketError> {
    let text = core::str::from_utf8(g).map_err(|_| TicketError::Group)?;
    if g.len() > MAX_GROUP_LEN || rescue_proto::text::check_peer_name("group", text).is_err() {
        return Err(TicketError::Group);
    }
    Ok(())
}

/// PROTOCOL.md: "gateway: 1 to 255 bytes, each a printable ASCII character other than
/// space (0x21..=0x7e)".
fn check_gateway(g: &[u8]) -> Result<(), TicketError> {
    if g.is_empty() || g.len() > MAX_GATEWAY_LEN || !g.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(TicketError::Gateway);
    }
    Ok(())
}

/// A cursor that cannot overrun.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, TicketError> {
        self.take(1)?.first().copied().ok_or(TicketError::Truncated)
    }

    /// A one-byte length, then that many bytes.
    fn short(&mut self) -> Result<&'a [u8], TicketError> {
        let n = usize::from(self.byte()?);
        self.take(n)
    }
}
