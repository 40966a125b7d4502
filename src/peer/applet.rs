//! The end user's side: register the ticket's session at the first gateway that answers,
//! wait for a technician, then run the end-to-end set-up.

use std::time::Instant;

use rescue_crypto::sas::Sas;
use rescue_crypto::ticket::{Ticket, SIGNATURE_LEN};
use rescue_proto::handoff::applet::Applet as HandoffApplet;
use rescue_proto::handoff::PeerEvent;
use rescue_proto::wire::signal::{ErrorCode, Paired, Register};
use rescue_proto::Guid;

use super::inner::{self, ConsoleIdentity, E2eStream};
use super::{connect_gateway, drive, send_all, DriveLimits};
use crate::config::PeerTimeouts;
use crate::error::Error;
use crate::signal::Hop;

/// An applet, configured by its signed ticket alone: the ticket carries the GUID, the
/// gateway list, the gateway-CA and account-CA pins and the policy.
#[derive(Debug, Clone)]
pub struct Applet {
    ticket: Ticket,
    ticket_bytes: Vec<u8>,
    timeouts: PeerTimeouts,
}

/// An applet registered at a gateway, waiting for a technician.
pub struct Registration {
    hop: Hop,
    state: HandoffApplet,
    gateway: String,
    ticket: Ticket,
    timeouts: PeerTimeouts,
}

/// A connected session, applet side: the end-to-end stream (also through the
/// `AsyncRead`/`AsyncWrite` impls), the SAS to compare, and who the technician is.
#[derive(Debug)]
pub struct AppletSession {
    stream: E2eStream,
    sas: Sas,
    console: ConsoleIdentity,
    guid: Guid,
    gateway: String,
    /// The resume secret from PAIRED's state (for REATTACH).
    resume_secret: Option<rescue_proto::wire::signal::ResumeSecret>,
}

impl Applet {
    /// Reads a signed ticket. The applet does not check the signature (it has no key and
    /// the gateway does); it checks the format and uses the pins inside.
    pub fn from_ticket(ticket_bytes: Vec<u8>) -> Result<Self, Error> {
        let body_len = ticket_bytes
            .len()
            .checked_sub(SIGNATURE_LEN)
            .ok_or(rescue_crypto::ticket::TicketError::Truncated)?;
        let body = ticket_bytes
            .get(..body_len)
            .ok_or(rescue_crypto::ticket::TicketError::Truncated)?;
        let ticket = rescue_crypto::ticket::decode_body(body)?;
        Ok(Self {
            ticket,
            ticket_bytes,
            timeouts: PeerTimeouts::default(),
        })
    }

    /// Reads a signed ticket and checks its signature with the portal's key and its
    /// expiry, for applets that ship with that key (the gateway checks both anyway).
    pub fn from_verified_ticket(
        ticket_bytes: Vec<u8>,
        key: &rescue_crypto::ticket::TicketVerifyKey,
    ) -> Result<Self, Error> {
        let ticket = rescue_crypto::ticket::verify(&ticket_bytes, key, crate::portal::unix_now())?;
        Ok(Self {
            ticket,
            ticket_bytes,
            timeouts: PeerTimeouts::default(),
        })
    }

    /// Replaces the timeouts.
    pub fn with_timeouts(mut self, timeouts: PeerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The session GUID.
    pub fn guid(&self) -> Guid {
        self.ticket.guid
    }

    /// The decoded ticket.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Registers at the ticket's gateways, in order, failing over to the next on a
    /// connection failure, a timeout or a refusal that another gateway may not repeat.
    pub async fn register(&self) -> Result<Registration, Error> {
        let mut last = Error::Config("the ticket lists no gateway".into());
        let mut tried = 0;
        for gateway in &self.ticket.gateways {
            tried += 1;
            match self.register_at(gateway).await {
                Ok(r) => return Ok(r),
                Err(e) if is_final(&e) => return Err(e),
                Err(e) => {
                    tracing::info!(%gateway, error = %e, "gateway failed, trying the next");
                    last = e;
                }
            }
        }
        Err(Error::NoGateway {
            tried,
            last: Box::new(last),
        })
    }

    /// [`Applet::register`], then [`Registration::wait_paired`].
    pub async fn connect(&self) -> Result<AppletSession, Error> {
        self.register().await?.wait_paired().await
    }

    async fn register_at(&self, gateway: &str) -> Result<Registration, Error> {
        let tls = rescue_crypto::tls::applet_gateway_client_config(self.ticket.gateway_ca_pin)?;
        let mut hop = connect_gateway(gateway, tls, &self.timeouts).await?;
        let register = Register::new(self.ticket_bytes.clone())
            .map_err(|e| Error::Config(format!("ticket: {e}")))?;
        let (state, first) = HandoffApplet::register(Instant::now(), register);
        send_all(&mut hop, first).await?;
        let registered = |_: &HandoffApplet, e: Option<&PeerEvent>| {
            matches!(e, Some(PeerEvent::Registered { .. }))
        };
        let (state, event) = drive(
            &mut hop,
            state,
            DriveLimits::new(self.timeouts.reply, &self.timeouts),
            "REGISTERED",
            registered,
        )
        .await?;
        match event {
            Some(PeerEvent::Registered { guid, .. }) if guid == self.ticket.guid => {
                Ok(Registration {
                    hop,
                    state,
                    gateway: gateway.to_owned(),
                    ticket: self.ticket.clone(),
                    timeouts: self.timeouts.clone(),
                })
            }
            _ => Err(Error::Protocol("REGISTERED for another GUID".into())),
        }
    }
}

/// Refusals that every gateway would repeat: no point failing over.
fn is_final(e: &Error) -> bool {
    matches!(
        e.refusal(),
        Some(
            ErrorCode::BadTicket
                | ErrorCode::ExpiredTicket
                | ErrorCode::GuidTaken
                | ErrorCode::WrongAccount
        )
    )
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("guid", &self.ticket.guid)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The session GUID.
    pub fn guid(&self) -> Guid {
        self.ticket.guid
    }

    /// The gateway (`host:port`) the applet registered at.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// Waits for PAIRED (up to the pairing timeout), then runs the end-to-end set-up:
    /// inner TLS pinned to the account CA, BIND, SAS.
    pub async fn wait_paired(mut self) -> Result<AppletSession, Error> {
        let paired = |_: &HandoffApplet, e: Option<&PeerEvent>| {
            matches!(e, Some(PeerEvent::Paired(Paired::ToApplet { .. })))
        };
        let (state, event) = drive(
            &mut self.hop,
            self.state,
            DriveLimits::new(self.timeouts.pairing, &self.timeouts),
            "PAIRED",
            paired,
        )
        .await?;
        let Some(PeerEvent::Paired(Paired::ToApplet { technician, .. })) = event else {
            return Err(Error::Protocol("expected PAIRED".into()));
        };
        tracing::info!(guid = %self.ticket.guid, %technician, "paired");
        let resume_secret = super::reconnect::secret_of_applet(&state);
        let (stream, sas, console) = inner::applet(
            self.hop,
            self.ticket.account_ca_pin,
            self.ticket.account,
            self.ticket.guid,
            self.timeouts.inner_setup,
            self.timeouts.keepalive,
        )
        .await?;
        Ok(AppletSession {
            stream,
            sas,
            console,
            guid: self.ticket.guid,
            gateway: self.gateway,
            resume_secret,
        })
    }
}

impl AppletSession {
    /// The short authentication string both users compare.
    pub fn sas(&self) -> Sas {
        self.sas
    }

    /// Who is connected: account and technician from the verified console certificate.
    pub fn console(&self) -> &ConsoleIdentity {
        &self.console
    }

    /// The session GUID.
    pub fn guid(&self) -> Guid {
        self.guid
    }

    /// The gateway relaying the session.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The end-to-end stream.
    pub fn into_stream(self) -> E2eStream {
        self.stream
    }

    /// The stream and the resume secret, for `reconnect`.
    pub(crate) fn into_parts(
        self,
    ) -> (E2eStream, Option<rescue_proto::wire::signal::ResumeSecret>) {
        (self.stream, self.resume_secret)
    }
}

delegate_stream_io!(AppletSession);
