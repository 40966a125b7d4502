//! The end user's side: register the ticket's session at the first gateway that answers,
//! wait for a technician, then run the end-to-end set-up.

use std::time::Instant;

use rescue_crypto::bind::{PathKey, SessionSecret};
use rescue_crypto::sas::Sas;
use rescue_crypto::ticket::{Ticket, TicketVerifyKey, SIGNATURE_LEN};
use rescue_proto::handoff::applet::Applet as HandoffApplet;
use rescue_proto::handoff::PeerEvent;
use rescue_proto::wire::signal::{ErrorCode, Paired, Register};
use rescue_proto::Guid;

use super::e2e::{Local, Pinning};
use super::inner::{self, ConsoleIdentity, E2eStream, FirstPath};
use super::{connect_gateway_from, drive, send_all, DriveLimits};
use crate::config::PeerTimeouts;
use crate::error::Error;
use crate::signal::Hop;

/// An applet, configured by its signed ticket and the session secret K that came with it:
/// the ticket carries the GUID, the gateway list, the gateway-CA and account-CA pins and
/// the policy; K (never sent to a gateway) proves to the console that this is the end
/// user the portal issued the session for.
#[derive(Debug, Clone)]
pub struct Applet {
    ticket: Ticket,
    ticket_bytes: Vec<u8>,
    secret: SessionSecret,
    timeouts: PeerTimeouts,
}

/// An applet registered at a gateway, waiting for a technician.
pub struct Registration {
    hop: Hop,
    hop_addrs: super::HopAddrs,
    state: HandoffApplet,
    gateway: String,
    ticket: Ticket,
    secret: SessionSecret,
    timeouts: PeerTimeouts,
}

/// A connected session, applet side: the end-to-end stream (also through the
/// `AsyncRead`/`AsyncWrite` impls), the SAS to compare, and who the technician is.
#[derive(Debug)]
pub struct AppletSession {
    stream: E2eStream,
    sas: Sas,
    path_key: PathKey,
    hop_addrs: super::HopAddrs,
    signals: crate::tunnel::TunnelSignals,
    console: ConsoleIdentity,
    guid: Guid,
    gateway: String,
    /// The policy of the ticket (enforced by the applet's session).
    policy: rescue_proto::Policy,
    /// The resume secret from PAIRED's state (for REATTACH).
    resume_secret: Option<rescue_proto::wire::signal::ResumeSecret>,
}

impl Applet {
    /// Reads a signed ticket, checks its signature with the portal's verify key and its
    /// expiry, and keeps the session secret `secret` that the portal issued with it. A
    /// forged or expired ticket is refused ([`Error::Ticket`]), so what the end user is
    /// shown (account, policy) is what the portal signed.
    pub fn from_ticket(
        ticket_bytes: Vec<u8>,
        secret: SessionSecret,
        portal_key: &TicketVerifyKey,
    ) -> Result<Self, Error> {
        let ticket =
            rescue_crypto::ticket::verify(&ticket_bytes, portal_key, crate::portal::unix_now())?;
        Ok(Self {
            ticket,
            ticket_bytes,
            secret,
            timeouts: PeerTimeouts::default(),
        })
    }

    /// Reads a ticket WITHOUT checking the portal's signature or its expiry: for tests of
    /// what a gateway does with forged tickets. An applet for end users uses
    /// [`Applet::from_ticket`].
    pub fn from_unverified_ticket_for_tests(
        ticket_bytes: Vec<u8>,
        secret: SessionSecret,
    ) -> Result<Self, Error> {
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
            secret,
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

    /// [`Applet::register`], then [`Registration::wait_paired`]: finishes once a console
    /// has claimed the session (run the console's claim concurrently, or after this
    /// has started; the claim waits for the registration).
    pub async fn connect(&self) -> Result<AppletSession, Error> {
        self.register().await?.wait_paired().await
    }

    /// [`Applet::connect`], then the end user's [`Session`](crate::session::Session) with
    /// the defaults of [`AppletSession::start`] (the ticket's policy).
    pub async fn start_session(self) -> Result<crate::session::Session, Error> {
        Ok(self.connect().await?.start())
    }

    async fn register_at(&self, gateway: &str) -> Result<Registration, Error> {
        let tls = rescue_crypto::tls::applet_gateway_client_config(self.ticket.gateway_ca_pin)?;
        let (mut hop, hop_addrs) = connect_gateway_from(gateway, tls, &self.timeouts).await?;
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
                    hop_addrs,
                    state,
                    gateway: gateway.to_owned(),
                    ticket: self.ticket.clone(),
                    secret: self.secret.clone(),
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
    /// inner TLS pinned to the account CA, BIND keyed by the session secret, SAS.
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
        tracing::info!(guid = %self.ticket.guid.short(), %technician, "paired");
        let resume_secret = super::reconnect::secret_of_applet(&state);
        let first = FirstPath {
            guid: self.ticket.guid,
            secret: &self.secret,
            wait: self.timeouts.inner_setup,
            keepalive: self.timeouts.keepalive,
        };
        let pinning = Pinning::AccountCa {
            pin: self.ticket.account_ca_pin,
            account: self.ticket.account,
        };
        let up = inner::first_path(self.hop, first, Local::Applet(pinning)).await?;
        let console = up
            .console
            .ok_or_else(|| Error::ConsoleIdentity("no certificate".into()))?;
        Ok(AppletSession {
            stream: up.stream,
            sas: up.sas,
            path_key: up.path_key,
            hop_addrs: self.hop_addrs,
            signals: up.signals,
            console,
            guid: self.ticket.guid,
            gateway: self.gateway,
            policy: self.ticket.policy,
            resume_secret,
        })
    }
}

impl AppletSession {
    /// The policy of the ticket: what the technician may ask for.
    pub fn policy(&self) -> rescue_proto::Policy {
        self.policy
    }

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

    /// What direct paths of this session are bound with: the path key, the hop's
    /// addresses and the gateway's rendezvous signals (the console leaf is
    /// [`AppletSession::console`]'s).
    pub(crate) fn direct_parts(
        &self,
    ) -> (&PathKey, super::HopAddrs, &crate::tunnel::TunnelSignals) {
        (&self.path_key, self.hop_addrs, &self.signals)
    }

    /// The stream, the path key and the resume secret, for `reconnect`.
    pub(crate) fn into_parts(
        self,
    ) -> (
        E2eStream,
        PathKey,
        Option<rescue_proto::wire::signal::ResumeSecret>,
    ) {
        (self.stream, self.path_key, self.resume_secret)
    }
}

delegate_stream_io!(AppletSession);
