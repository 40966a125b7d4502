//! The technician's side: connect with the console certificate, list the account's
//! waiting sessions, claim one, then run the end-to-end set-up as TLS server.

use std::time::{Duration, Instant};

use rescue_crypto::bind::{PathKey, SessionSecret};
use rescue_crypto::pin::Pin;
use rescue_crypto::pki::{ConsoleName, Identity};
use rescue_crypto::sas::Sas;
use rescue_proto::handoff::console::{self as hs_console, Console as HandoffConsole};
use rescue_proto::handoff::PeerEvent;
use rescue_proto::Guid;

use super::e2e::Local;
use super::inner::{self, E2eStream, FirstPath};
use super::{connect_gateway_from, drive, send_all, DriveLimits, HopAddrs};
use crate::config::{PeerTimeouts, CLAIM_RETRY_FIRST, CLAIM_RETRY_MAX};
use crate::error::Error;
use crate::signal::Hop;
use rescue_proto::wire::signal::ErrorCode;

/// One waiting session as the gateway lists it to a console of the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitingSession {
    /// The session's GUID.
    pub guid: Guid,
    /// How long the end user has been waiting.
    pub waiting: Duration,
}

/// What a console needs to take one issued session: its GUID and the session secret K.
/// The portal hands it to the technician's side over its own authenticated channel, never
/// through a gateway; the console proves with K, in BIND, that it talks to the end user
/// the session was issued for (a gateway that registered a captured ticket has no K).
#[derive(Clone)]
pub struct ClaimKey {
    /// The session.
    pub guid: Guid,
    /// The session secret K.
    pub secret: SessionSecret,
}

impl ClaimKey {
    /// The text form the examples write beside a ticket: the GUID on the first line, K as
    /// 64 hex digits on the second.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n", self.guid, self.secret.to_hex())
    }

    /// Parses [`ClaimKey::to_text`]'s form (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Config("session key file: expected a GUID line and a 64-hex-digit line".into())
        };
        let mut lines = text.split_whitespace();
        let (Some(guid), Some(secret), None) = (lines.next(), lines.next(), lines.next()) else {
            return Err(bad());
        };
        Ok(Self {
            guid: guid.parse().map_err(|_| bad())?,
            secret: SessionSecret::from_hex(secret).map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimKey")
            .field("guid", &self.guid)
            .finish_non_exhaustive()
    }
}

/// A console connected to a gateway with its certificate.
pub struct Console {
    hop: Hop,
    hop_addrs: HopAddrs,
    /// The hand-off machine; `None` only if a request failed half-way.
    state: Option<HandoffConsole>,
    identity: Identity,
    name: ConsoleName,
    gateway: String,
    gateway_ca_pin: Pin,
    timeouts: PeerTimeouts,
}

/// A connected session, console side: the end-to-end stream (also through the
/// `AsyncRead`/`AsyncWrite` impls) and the SAS to compare.
#[derive(Debug)]
pub struct ConsoleSession {
    stream: E2eStream,
    sas: Sas,
    path_key: PathKey,
    /// The console certificate, for the inner TLS of direct paths.
    identity: Box<Identity>,
    hop_addrs: HopAddrs,
    signals: crate::tunnel::TunnelSignals,
    guid: Guid,
    /// The resume secret from PAIRED (for REATTACH).
    resume_secret: Option<rescue_proto::wire::signal::ResumeSecret>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("name", &self.name)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Connects to `gateway` (`host:port`) with mutual outer TLS: the gateway's chain
    /// must end at the CA pinned by `gateway_ca_pin`; `identity` is the console
    /// certificate (`[leaf, account CA]`) and key.
    pub async fn connect(
        gateway: &str,
        gateway_ca_pin: Pin,
        identity: Identity,
        timeouts: PeerTimeouts,
    ) -> Result<Self, Error> {
        let leaf = identity
            .leaf()
            .ok_or_else(|| Error::ConsoleIdentity("empty certificate chain".into()))?;
        let name =
            ConsoleName::from_cert(leaf).map_err(|e| Error::ConsoleIdentity(e.to_string()))?;
        let tls = rescue_crypto::tls::console_gateway_client_config(gateway_ca_pin, &identity)?;
        let (mut hop, hop_addrs) = connect_gateway_from(gateway, tls, &timeouts).await?;
        let (state, hello) = HandoffConsole::start(Instant::now());
        send_all(&mut hop, [hello]).await?;
        let idle = |s: &HandoffConsole, _: Option<&PeerEvent>| matches!(s, HandoffConsole::Idle(_));
        let (state, _) = drive(
            &mut hop,
            state,
            DriveLimits::new(timeouts.reply, &timeouts),
            "HELLO",
            idle,
        )
        .await?;
        Ok(Self {
            hop,
            hop_addrs,
            state: Some(state),
            identity,
            name,
            gateway: gateway.to_owned(),
            gateway_ca_pin,
            timeouts,
        })
    }

    /// Who this console is (from its own certificate).
    pub fn name(&self) -> &ConsoleName {
        &self.name
    }

    /// The waiting sessions of this console's account, longest waiting first.
    pub async fn queue(&mut self) -> Result<Vec<WaitingSession>, Error> {
        let (state, request) = self.idle()?.queue(Instant::now());
        send_all(&mut self.hop, [request]).await?;
        let listed =
            |_: &HandoffConsole, e: Option<&PeerEvent>| matches!(e, Some(PeerEvent::Queue(_)));
        let (state, event) = drive(
            &mut self.hop,
            state,
            DriveLimits::new(self.timeouts.reply, &self.timeouts),
            "QUEUE_LIST",
            listed,
        )
        .await?;
        self.state = Some(state);
        let Some(PeerEvent::Queue(list)) = event else {
            return Err(Error::Protocol("expected QUEUE_LIST".into()));
        };
        Ok(list
            .entries()
            .iter()
            .map(|e| WaitingSession {
                guid: e.guid,
                waiting: Duration::from_secs(u64::from(e.waiting_secs)),
            })
            .collect())
    }

    /// The machine, if it is ready for a request.
    fn idle(&mut self) -> Result<hs_console::Idle, Error> {
        match self.state.take() {
            Some(HandoffConsole::Idle(idle)) => Ok(idle),
            _ => Err(Error::Protocol("console is not ready for a request".into())),
        }
    }

    /// Claims the session of `key`; on PAIRED runs the end-to-end set-up as TLS server,
    /// BIND keyed by the session secret, SAS. A peer that cannot BIND with K (a gateway
    /// playing the applet, another session's applet) is refused with
    /// [`Error::BindMismatch`].
    ///
    /// The order of the two ends does not matter: a claim that reaches the gateway before
    /// the applet has registered (the gateway answers `UnknownGuid` and closes the
    /// connection) is tried again on a new connection, [`CLAIM_RETRY_FIRST`] later and then
    /// doubling up to [`CLAIM_RETRY_MAX`], for up to [`PeerTimeouts::claim_wait`] (default
    /// [`crate::config::CLAIM_WAIT`]). Every other refusal, and `UnknownGuid` after that
    /// wait, is returned at once.
    pub async fn claim(self, key: ClaimKey) -> Result<ConsoleSession, Error> {
        let deadline = tokio::time::Instant::now() + self.timeouts.claim_wait;
        let mut pause = CLAIM_RETRY_FIRST;
        let mut console = self;
        loop {
            let again = (
                console.gateway.clone(),
                console.gateway_ca_pin,
                console.identity.clone(),
                console.timeouts.clone(),
            );
            match console.claim_once(key.clone()).await {
                Err(Error::Refused {
                    code: ErrorCode::UnknownGuid,
                    ..
                }) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::debug!(guid = %key.guid.short(), ?pause, "not registered yet; claiming again");
                    // A retry pause (the applet registers meanwhile), bounded by the deadline.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CLAIM_RETRY_MAX);
                    let (gateway, pin, identity, timeouts) = again;
                    console = Console::connect(&gateway, pin, identity, timeouts).await?;
                }
                result => return result,
            }
        }
    }

    /// Connects, claims the session of `key` (see [`Console::claim`]) and starts the
    /// technician's [`Session`](crate::session::Session) on it with the defaults of
    /// [`ConsoleSession::start`].
    pub async fn start_session(self, key: ClaimKey) -> Result<crate::session::Session, Error> {
        Ok(self.claim(key).await?.start())
    }

    async fn claim_once(mut self, key: ClaimKey) -> Result<ConsoleSession, Error> {
        let guid = key.guid;
        let (state, request) = self.idle()?.claim(Instant::now(), guid);
        send_all(&mut self.hop, [request]).await?;
        // The machine checks that PAIRED names the claimed GUID.
        let paired =
            |_: &HandoffConsole, e: Option<&PeerEvent>| matches!(e, Some(PeerEvent::Paired(_)));
        let (state, _) = drive(
            &mut self.hop,
            state,
            DriveLimits::new(self.timeouts.reply, &self.timeouts),
            "PAIRED",
            paired,
        )
        .await?;
        let resume_secret = super::reconnect::secret_of_console(&state);
        tracing::info!(guid = %guid.short(), "paired");
        let first = FirstPath {
            guid,
            secret: &key.secret,
            wait: self.timeouts.inner_setup,
            keepalive: self.timeouts.keepalive,
        };
        let up = inner::first_path(self.hop, first, Local::Console(&self.identity)).await?;
        Ok(ConsoleSession {
            stream: up.stream,
            sas: up.sas,
            path_key: up.path_key,
            identity: Box::new(self.identity.clone()),
            hop_addrs: self.hop_addrs,
            signals: up.signals,
            guid,
            resume_secret,
        })
    }
}

impl ConsoleSession {
    /// The short authentication string both users compare.
    pub fn sas(&self) -> Sas {
        self.sas
    }

    /// The session GUID.
    pub fn guid(&self) -> Guid {
        self.guid
    }

    /// The end-to-end stream.
    pub fn into_stream(self) -> E2eStream {
        self.stream
    }

    /// What direct paths of this session are bound with: the path key, the console
    /// identity, the hop's addresses and the gateway's rendezvous signals.
    pub(crate) fn direct_parts(
        &self,
    ) -> (&PathKey, &Identity, HopAddrs, &crate::tunnel::TunnelSignals) {
        (
            &self.path_key,
            &self.identity,
            self.hop_addrs,
            &self.signals,
        )
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

delegate_stream_io!(ConsoleSession);
