//! **Development only**: a whole local stack in one call, for tests, demos and a first
//! look at the API.
//!
//! [`LocalStack::start`] generates a throw-away PKI in memory ([`DevPki`]: a gateway CA,
//! an account CA with one technician, a ticket-signing key), starts a [`Gateway`] on an
//! OS-assigned loopback port and a [`Portal`] that issues sessions for it. Then
//! [`LocalStack::issue`] mints a session, [`LocalStack::applet`] is the end user's applet
//! for it (ticket verified, as a downloaded applet does) and [`LocalStack::console`] the
//! technician's console, connected.
//!
//! Nothing here belongs in production: the keys live only in this process's memory, the
//! console certificate is issued without any login, and the gateway accepts the one
//! development account. A production deployment gets its PKI from `rescue-gen-pki` (or
//! its own CA), its tickets from the portal service, and its console certificates from
//! the portal after a login.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = rescue::dev::LocalStack::start().await?;
//! let issued = stack.issue(rescue::Policy::default())?;
//! // The long way round, each end in its steps (the claim waits for the registration):
//! let applet = tokio::spawn(stack.applet(&issued)?.start_session());
//! let mut console = stack.console().await?.start_session(issued.claim_key()).await?;
//! let mut applet = applet.await??;
//! console.chat("hello from the technician").await?;
//! assert_eq!(applet.next_chat().await?, "hello from the technician");
//! console.end();
//! assert_eq!(applet.ended().await?, rescue::EndReason::Technician);
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::TicketSigner;
use rescue_proto::Policy;

use crate::devpki::DevPki;
use crate::error::Error;
use crate::gateway::{Gateway, GatewayConfig, GatewayStats};
use crate::peer::{Applet, Console};
use crate::portal::{IssuedSession, Portal, SessionRequest};
use crate::session::Session;
use crate::PeerTimeouts;

/// The account of a [`LocalStack`].
pub const DEV_ACCOUNT: AccountId = AccountId(1);
/// The technician whose console certificate a [`LocalStack`] holds.
pub const DEV_TECHNICIAN: &str = "dev-technician";

/// A gateway, a portal and the credentials of one account and one technician, on
/// loopback (see the [module docs](self); development only).
pub struct LocalStack {
    pki: DevPki,
    gateway: Gateway,
    portal: Portal,
    timeouts: PeerTimeouts,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("gateway", &self.gateway.local_addr())
            .finish_non_exhaustive()
    }
}

impl LocalStack {
    /// Generates the development PKI and starts the gateway on `127.0.0.1`, port chosen
    /// by the OS. Must be called inside a tokio runtime.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(|_| {}).await
    }

    /// As [`LocalStack::start`], letting `configure` change the gateway's configuration
    /// (limits, the UDP rendezvous port, ...) before it starts.
    pub async fn start_with(configure: impl FnOnce(&mut GatewayConfig)) -> Result<Self, Error> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pki = DevPki::generate(&[ip.to_string()], DEV_ACCOUNT, DEV_TECHNICIAN)?;
        let mut config = GatewayConfig::new(
            pki.gateway.clone(),
            [(DEV_ACCOUNT, pki.account_ca.cert().clone())],
            pki.verify_key(),
        );
        configure(&mut config);
        let gateway = Gateway::bind(SocketAddr::new(ip, 0), config).await?;
        let portal = Portal::new(
            TicketSigner::from_pkcs8(pki.signer.pkcs8())?,
            vec![gateway.local_addr().to_string()],
            pki.gateway_ca.pin(),
        );
        Ok(Self {
            pki,
            gateway,
            portal,
            timeouts: PeerTimeouts::default(),
        })
    }

    /// The timeouts the stack's applets and consoles use (default
    /// [`PeerTimeouts::default`]).
    pub fn with_timeouts(mut self, timeouts: PeerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Issues a session of the stack's account under `policy` (what the technician may
    /// ask for): GUID, signed ticket and session secret.
    pub fn issue(&self, policy: Policy) -> Result<IssuedSession, Error> {
        self.portal.issue(&SessionRequest::new(
            DEV_ACCOUNT,
            self.pki.account_ca.pin(),
            policy,
        ))
    }

    /// The end user's applet for `issued`, its ticket verified with the portal's key.
    pub fn applet(&self, issued: &IssuedSession) -> Result<Applet, Error> {
        Ok(Applet::from_ticket(
            issued.ticket.clone(),
            issued.secret.clone(),
            &self.portal.verify_key(),
        )?
        .with_timeouts(self.timeouts.clone()))
    }

    /// The technician's console, connected to the gateway (mutual TLS with the
    /// development console certificate).
    pub async fn console(&self) -> Result<Console, Error> {
        Console::connect(
            &self.gateway.local_addr().to_string(),
            self.pki.gateway_ca.pin(),
            self.pki.console.clone(),
            self.timeouts.clone(),
        )
        .await
    }

    /// The end user's side of `issued` in one call: [`LocalStack::applet`], then
    /// [`Applet::start_session`] (register, wait for the technician, start the session
    /// under the ticket's policy). Run it beside [`LocalStack::console_session`]; the
    /// order does not matter.
    pub async fn applet_session(&self, issued: &IssuedSession) -> Result<Session, Error> {
        self.applet(issued)?.start_session().await
    }

    /// The technician's side of `issued` in one call: [`LocalStack::console`], then
    /// [`Console::start_session`] with the session's claim key.
    pub async fn console_session(&self, issued: &IssuedSession) -> Result<Session, Error> {
        self.console()
            .await?
            .start_session(issued.claim_key())
            .await
    }

    /// The gateway (its address, its statistics).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The portal that issues the stack's sessions.
    pub fn portal(&self) -> &Portal {
        &self.portal
    }

    /// Every key and certificate of the stack.
    pub fn pki(&self) -> &DevPki {
        &self.pki
    }

    /// Stops the gateway; returns its final statistics.
    pub async fn shutdown(self) -> GatewayStats {
        self.gateway.shutdown().await
    }
}
