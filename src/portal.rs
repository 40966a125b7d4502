//! The portal side of session set-up, as a library API: mint a session GUID from the OS
//! CSPRNG, sign the applet ticket that carries it, and mint the session secret K that the
//! applet and the console share and no gateway sees (PROTOCOL.md 6.3, 6.4).
//!
//! The portal never talks to a gateway: the ticket is the only thing that travels, inside
//! the applet download. It holds the ticket-signing key; gateways hold only the matching
//! verification key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rescue_crypto::bind::SessionSecret;
use rescue_crypto::pin::Pin;
use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::{Ticket, TicketSigner, TicketVerifyKey};
use rescue_proto::{Guid, Policy};

use crate::error::Error;
use crate::peer::ClaimKey;

/// Default lifetime of an issued ticket: the applet is downloaded and started within
/// minutes; a stale ticket must not register a session hours later.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Issues sessions: GUID + signed ticket.
pub struct Portal {
    signer: TicketSigner,
    gateways: Vec<String>,
    gateway_ca_pin: Pin,
}

/// One issued session: the ticket and the session secret K.
///
/// The applet download carries both `ticket` and `secret` (the applet sends only the
/// ticket to a gateway, in REGISTER). The technician's console gets [`ClaimKey`]
/// ([`IssuedSession::claim_key`]) from the portal, never through a gateway: so no gateway
/// ever holds K, and BIND (keyed by K) proves each end to the other.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedSession {
    /// The session GUID (also inside the ticket).
    pub guid: Guid,
    /// The signed ticket bytes (PROTOCOL.md section 6), the applet's configuration.
    pub ticket: Vec<u8>,
    /// The session secret K, from the OS CSPRNG (PROTOCOL.md 6.4).
    pub secret: SessionSecret,
    /// When the ticket expires, in seconds since the Unix epoch.
    pub expires_at_unix: u64,
}

impl IssuedSession {
    /// What the technician's console needs to claim and authenticate this session.
    pub fn claim_key(&self) -> ClaimKey {
        ClaimKey {
            guid: self.guid,
            secret: self.secret.clone(),
        }
    }
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
        let secret =
            SessionSecret::generate().map_err(|e| Error::Config(format!("session secret: {e}")))?;
        Ok(IssuedSession {
            guid,
            ticket,
            secret,
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
    fn every_session_gets_a_fresh_guid_and_secret() {
        let p = portal();
        let a = p.issue(&request()).unwrap();
        let b = p.issue(&request()).unwrap();
        assert_ne!(a.guid, b.guid);
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert_eq!(a.claim_key().guid, a.guid);
    }

    #[test]
    fn the_secret_is_not_inside_the_ticket() {
        let p = portal();
        let issued = p.issue(&request()).unwrap();
        let k = issued.secret.expose();
        assert!(!issued.ticket.windows(k.len()).any(|w| w == k));
    }

    #[test]
    fn a_claim_key_round_trips_as_text() {
        let issued = portal().issue(&request()).unwrap();
        let key = ClaimKey::from_text(&issued.claim_key().to_text()).unwrap();
        assert_eq!(key.guid, issued.guid);
        assert_eq!(key.secret.expose(), issued.secret.expose());
        assert!(ClaimKey::from_text("not a key").is_err());
        assert!(ClaimKey::from_text(&format!("{}\nabcd\n", issued.guid)).is_err());
    }

    #[test]
    fn a_past_expiry_gives_a_ticket_the_gateway_refuses() {
        let p = portal();
        let issued = p.issue_until(&request(), 10).unwrap();
        let err = verify(&issued.ticket, &p.verify_key(), unix_now()).unwrap_err();
        assert!(matches!(err, TicketError::Expired { .. }));
    }
}
