//! The portal side of session set-up, as a library API: mint a session GUID from the OS
//! CSPRNG and sign the applet ticket that carries it (MISSION.md "Session set-up" 1,
//! DESIGN.md step 0).
//!
//! The portal never talks to a gateway: the ticket is the only thing that travels, inside
//! the applet download. It holds the ticket-signing key; gateways hold only the matching
//! verification key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rescue_crypto::pin::Pin;
use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::{Ticket, TicketSigner, TicketVerifyKey};
use rescue_proto::{Guid, Policy};

use crate::error::Error;

/// Default lifetime of an issued ticket: the applet is downloaded and started within
/// minutes; a stale ticket must not register a session hours later.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Issues sessions: GUID + signed ticket.
pub struct Portal {
    signer: TicketSigner,
    gateways: Vec<String>,
    gateway_ca_pin: Pin,
}

/// One issued session: what the portal embeds in the applet download.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedSession {
    /// The session GUID (also inside the ticket).
    pub guid: Guid,
    /// The signed ticket bytes (PROTOCOL.md section 6), the applet's whole configuration.
    pub ticket: Vec<u8>,
    /// When the ticket expires, in seconds since the Unix epoch.
    pub expires_at_unix: u64,
}

impl Portal {
    /// A portal signing with `signer`, sending applets to `gateways` (`host:port`, in
    /// order of preference), whose certificates chain to the CA pinned by `gateway_ca_pin`.
    pub fn new(signer: TicketSigner, gateways: Vec<String>, gateway_ca_pin: Pin) -> Self {
        Self {
            signer,
            gateways,
            gateway_ca_pin,
        }
    }

    /// The key gateways verify tickets with.
    pub fn verify_key(&self) -> TicketVerifyKey {
        self.signer.verify_key()
    }

    /// Issues a session: a fresh GUID and a ticket signed for `request`.
    pub fn issue(&self, request: &SessionRequest) -> Result<IssuedSession, Error> {
        let expires_at_unix = unix_now().saturating_add(request.lifetime.as_secs());
        self.issue_until(request, expires_at_unix)
    }

    /// Like [`Portal::issue`] with an explicit expiry in Unix seconds (tests use past
    /// expiries).
    pub fn issue_until(
        &self,
        request: &SessionRequest,
        expires_at_unix: u64,
    ) -> Result<IssuedSession, Error> {
        let guid = rescue_crypto::guid::try_new_guid()
            .map_err(|e| Error::Config(format!("OS random generator: {e}")))?;
        let ticket = Ticket {
            guid,
            account: request.account,
            gateways: self.gateways.clone(),
            gateway_ca_pin: self.gateway_ca_pin,
            account_ca_pin: request.account_ca_pin,
            policy: request.policy,
            group: request.group.clone(),
            expires_at_unix,
        };
        let ticket = self.signer.sign(&ticket)?;
        Ok(IssuedSession {
            guid,
            ticket,
            expires_at_unix,
        })
    }
}

/// What the portal needs to know to issue one session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionRequest {
    /// The account whose technicians may claim the session.
    pub account: AccountId,
    /// Pin of that account's CA (the applet's inner TLS accepts only its consoles).
    pub account_ca_pin: Pin,
    /// The technician group's policy.
    pub policy: Policy,
    /// The technician group's name (may be empty).
    pub group: String,
    /// How long the ticket stays valid; [`TICKET_LIFETIME`] by default.
    pub lifetime: Duration,
}

impl SessionRequest {
    /// A request with an empty group name and the default lifetime.
    pub fn new(account: AccountId, account_ca_pin: Pin, policy: Policy) -> Self {
        Self {
            account,
            account_ca_pin,
            policy,
            group: String::new(),
            lifetime: TICKET_LIFETIME,
        }
    }
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use rescue_crypto::ticket::{verify, TicketError};

    use super::*;

    fn portal() -> Portal {
        let pin = Pin([9; 32]);
        Portal::new(TicketSigner::generate().unwrap(), vec!["gw:1".into()], pin)
    }

    fn request() -> SessionRequest {
        SessionRequest::new(AccountId(5), Pin([7; 32]), Policy::default())
    }

    #[test]
    fn an_issued_ticket_verifies_and_carries_the_request() {
        let p = portal();
        let issued = p.issue(&request()).unwrap();
        let t = verify(&issued.ticket, &p.verify_key(), unix_now()).unwrap();
        assert_eq!(t.guid, issued.guid);
        assert_eq!(t.account, AccountId(5));
        assert_eq!(t.account_ca_pin, Pin([7; 32]));
        assert_eq!(t.gateway_ca_pin, Pin([9; 32]));
        assert_eq!(t.gateways, vec!["gw:1".to_owned()]);
        assert!(t.expires_at_unix > unix_now());
    }

    #[test]
    fn every_session_gets_a_fresh_guid() {
        let p = portal();
        let a = p.issue(&request()).unwrap();
        let b = p.issue(&request()).unwrap();
        assert_ne!(a.guid, b.guid);
    }

    #[test]
    fn a_past_expiry_gives_a_ticket_the_gateway_refuses() {
        let p = portal();
        let issued = p.issue_until(&request(), 10).unwrap();
        let err = verify(&issued.ticket, &p.verify_key(), unix_now()).unwrap_err();
        assert!(matches!(err, TicketError::Expired { .. }));
    }
}
