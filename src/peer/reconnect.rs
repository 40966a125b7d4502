//! Reconnecting a relayed session after its path died (PROTOCOL.md
//! 3.12): the peer either finds its own hop alive and waits there for PEER_BACK (the
//! other party lost its hop), or finds it dead and sends REATTACH with its resume secret
//! on a new hop (the same gateway, or the next in the ticket's list). Then it runs a NEW
//! end-to-end path over the hop (`e2e::establish`, as every path does): the applet pins
//! the exact console leaf of the first path; both BIND with the `PathKey` derived from
//! the session secret and the first path's exporter (fresh tags, no new SAS: it is the
//! same session). The caller hands the result to
//! `Session::add_path`, whose RESUME replays whatever the dead path lost.
//!
//! Start from [`Reconnect::applet`] or [`Reconnect::console`], give the returned
//! [`ResumablePath`] to the session, and call [`Reconnect::reconnect`] when the session
//! reports the path lost. What it never does: it never accepts a later path that is not
//! bound with the first path's key, never trusts a new console certificate (the leaf is
//! pinned), and never waits without a timeout.

use std::io;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rescue_crypto::bind::PathKey;
use rescue_crypto::pin::Pin;
use rescue_crypto::pki::Identity;
use rescue_crypto::ticket::Ticket;
use rescue_proto::handoff::applet::Applet as HandoffApplet;
use rescue_proto::handoff::console::Console as HandoffConsole;
use rescue_proto::handoff::{Connected, PeerEvent};
use rescue_proto::wire::signal::{Message, Ping, ResumeSecret};
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::e2e::{self, Binding, Local, Pinning};
use super::inner::{E2eStream, Tunnel};
use super::{connect_gateway, drive, send_all, DriveLimits, Machine};
use crate::config::PeerTimeouts;
use crate::error::Error;
use crate::io::{BoxStream, Rewind};
use crate::signal::{self, Hop, RecvError};
use crate::tunnel::DataTunnel;
use crate::{Applet, AppletSession, ConsoleSession};

/// Margin on top of the gateway's reattach grace while a survivor waits for PEER_BACK
/// (the gateway's own PEER_GONE{0} normally comes first).
const PEER_BACK_MARGIN: Duration = Duration::from_secs(5);

/// An end-to-end path a [`Reconnect`] can take back: give it to the session; when the
/// session drops it (the path died), its hop returns to the [`Reconnect`].
pub struct ResumablePath {
    stream: Option<E2eStream>,
    back: Option<oneshot::Sender<E2eStream>>,
}

/// How the last [`Reconnect::reconnect`] got its hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// This side's hop survived; the gateway sent PEER_BACK on it.
    PeerBack,
    /// This side's hop was gone; REATTACH on a new hop was accepted (RESUMED).
    Reattach,
}

/// What one side needs to bring its session back on a new path.
pub struct Reconnect {
    via: Option<Via>,
    side: Side,
    guid: Guid,
    secret: ResumeSecret,
    path_key: PathKey,
    timeouts: PeerTimeouts,
    grace: Duration,
    back: Option<oneshot::Receiver<E2eStream>>,
}

enum Side {
    Applet {
        ticket: Box<Ticket>,
        leaf: CertificateDer<'static>,
    },
    Console {
        gateway: String,
        gateway_ca_pin: Pin,
        identity: Box<Identity>,
    },
}

impl Reconnect {
    /// The applet side of a connected session (from `applet`, the ticket's gateways
    /// and pins). `timeouts` bound every step of a reconnect.
    pub fn applet(
        applet: &Applet,
        session: AppletSession,
        timeouts: PeerTimeouts,
    ) -> Result<(Reconnect, ResumablePath), Error> {
        let leaf = session.console().leaf.clone();
        let guid = session.guid();
        let (stream, path_key, secret) = session.into_parts();
        let side = Side::Applet {
            ticket: Box::new(applet.ticket().clone()),
            leaf,
        };
        Self::new(side, guid, stream, path_key, secret, timeouts)
    }

    /// The console side of a connected session: the gateway it claimed at, the gateway
    /// CA pin and the console's identity (the same certificate must come back).
    pub fn console(
        session: ConsoleSession,
        gateway: &str,
        gateway_ca_pin: Pin,
        identity: Identity,
        timeouts: PeerTimeouts,
    ) -> Result<(Reconnect, ResumablePath), Error> {
        let guid = session.guid();
        let (stream, path_key, secret) = session.into_parts();
        let side = Side::Console {
            gateway: gateway.to_owned(),
            gateway_ca_pin,
            identity: Box::new(identity),
        };
        Self::new(side, guid, stream, path_key, secret, timeouts)
    }

    /// Sets how long a survivor waits for PEER_BACK (default: the protocol's reattach
    /// grace plus a margin); match the gateway's grace.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace.saturating_add(PEER_BACK_MARGIN);
        self
    }

    fn new(
        side: Side,
        guid: Guid,
        stream: E2eStream,
        path_key: PathKey,
        secret: Option<ResumeSecret>,
        timeouts: PeerTimeouts,
    ) -> Result<(Reconnect, ResumablePath), Error> {
        let secret = secret.ok_or_else(|| Error::Config("no resume secret".into()))?;
        let grace = rescue_proto::wire::limits::REATTACH_GRACE.saturating_add(PEER_BACK_MARGIN);
        let mut me = Reconnect {
            via: None,
            side,
            guid,
            secret,
            path_key,
            timeouts,
            grace,
            back: None,
        };
        let path = me.resumable(stream);
        Ok((me, path))
    }

    /// Brings the session back on a new end-to-end path after the previous one (the
    /// last [`ResumablePath`]) died: waits for the session to drop it, then PEER_BACK on
    /// the surviving hop, or REATTACH on a new hop if this side's hop is gone.
    pub async fn reconnect(&mut self) -> Result<ResumablePath, Error> {
        let old = match self.back.take() {
            Some(rx) => timeout(self.timeouts.reply, rx)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let transport = match old {
            Some(stream) => finish_frame(stream).await,
            None => None,
        };
        let survived = match transport {
            Some(transport) => self.wait_peer_back(transport).await?,
            None => None,
        };
        let (hop, via) = match survived {
            Some(hop) => (hop, Via::PeerBack),
            None => (self.reattach().await?, Via::Reattach),
        };
        self.via = Some(via);
        let stream = timeout(self.timeouts.inner_setup, self.new_inner(hop))
            .await
            .map_err(|_| Error::Timeout("end-to-end set-up of a new path"))??;
        Ok(self.resumable(stream))
    }

    /// The session GUID.
    pub fn guid(&self) -> Guid {
        self.guid
    }

    /// How the last successful reconnect got its hop (`None` before the first).
    pub fn via(&self) -> Option<Via> {
        self.via
    }

    fn resumable(&mut self, stream: E2eStream) -> ResumablePath {
        let (tx, rx) = oneshot::channel();
        self.back = Some(rx);
        ResumablePath {
            stream: Some(stream),
            back: Some(tx),
        }
    }

    /// Reads the old hop: `Some` on PEER_BACK, `None` if it is dead (reattach instead).
    async fn wait_peer_back(&self, transport: BoxStream) -> Result<Option<Hop>, Error> {
        let mut hop = signal::framed(transport);
        let deadline = Instant::now() + self.grace;
        let mut nonce = 0u64;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match signal::recv(&mut hop, left.min(self.timeouts.keepalive)).await {
                Ok(Message::PeerBack(_)) => return Ok(Some(hop)),
                Ok(Message::PeerGone(g)) if g.grace_secs == 0 => return Err(Error::PeerGone),
                // Late DATA of the dead path, PONGs, the PEER_GONE that began it.
                Ok(Message::PeerGone(_) | Message::Pong(_) | Message::Data(_)) => {}
                Ok(Message::Close(_)) => return Err(Error::Closed),
                Ok(Message::Error(e)) => {
                    return Err(Error::Refused {
                        code: e.code,
                        message: e.message.as_str().to_owned(),
                    })
                }
                Ok(other) => {
                    let why = format!("{} while waiting for PEER_BACK", signal::name_of(&other));
                    return Err(Error::Protocol(why));
                }
                Err(RecvError::Timeout) if left.is_zero() => {
                    return Err(Error::Timeout("PEER_BACK"))
                }
                Err(RecvError::Timeout) => {
                    nonce = nonce.wrapping_add(1);
                    if signal::send(&mut hop, Message::Ping(Ping { nonce }))
                        .await
                        .is_err()
                    {
                        return Ok(None);
                    }
                }
                // This side's hop is gone (or its framing was cut): come back on a new one.
                Err(_) => return Ok(None),
            }
        }
    }

    /// REATTACH on a new hop: the ticket's gateways in order (applet) or the console's.
    async fn reattach(&mut self) -> Result<Hop, Error> {
        let gateways = match &self.side {
            Side::Applet { ticket, .. } => ticket.gateways.clone(),
            Side::Console { gateway, .. } => vec![gateway.clone()],
        };
        let mut last = Error::Config("no gateway to reattach at".into());
        let tried = gateways.len();
        for gateway in gateways {
            match self.reattach_at(&gateway).await {
                Ok(hop) => return Ok(hop),
                // A refusal (bad secret, grace over) is the session's end everywhere.
                Err(e) if e.refusal().is_some() => return Err(e),
                Err(e) => {
                    tracing::info!(%gateway, error = %e, "reattach failed, trying the next");
                    last = e;
                }
            }
        }
        Err(Error::NoGateway {
            tried,
            last: Box::new(last),
        })
    }

    async fn reattach_at(&mut self, gateway: &str) -> Result<Hop, Error> {
        let (guid, secret, now) = (self.guid, self.secret.clone(), Instant::now());
        let limits = DriveLimits::new(self.timeouts.reply, &self.timeouts);
        let (hop, secret) = match &self.side {
            Side::Applet { ticket, .. } => {
                let tls = rescue_crypto::tls::applet_gateway_client_config(ticket.gateway_ca_pin)?;
                let mut hop = connect_gateway(gateway, tls, &self.timeouts).await?;
                let (state, first) = HandoffApplet::reattach(now, guid, secret);
                let state = resumed(&mut hop, state, first, limits).await?;
                (hop, secret_of_applet(&state))
            }
            Side::Console {
                gateway_ca_pin,
                identity,
                ..
            } => {
                let tls =
                    rescue_crypto::tls::console_gateway_client_config(*gateway_ca_pin, identity)?;
                let mut hop = connect_gateway(gateway, tls, &self.timeouts).await?;
                let (state, first) = HandoffConsole::reattach(now, guid, secret);
                let state = resumed(&mut hop, state, first, limits).await?;
                (hop, secret_of_console(&state))
            }
        };
        // Each reattach hands out a fresh secret; the used one is spent.
        self.secret = secret.ok_or_else(|| Error::Protocol("RESUMED: not paired".into()))?;
        Ok(hop)
    }

    /// New inner TLS over `hop`, bound with the path key ([`e2e::establish`]).
    async fn new_inner(&self, hop: Hop) -> Result<E2eStream, Error> {
        let tunnel: Tunnel =
            DataTunnel::new(signal::unframe(hop)).with_keepalive(self.timeouts.keepalive);
        let local = match &self.side {
            Side::Applet { leaf, .. } => Local::Applet(Pinning::Leaf(leaf)),
            Side::Console { identity, .. } => Local::Console(identity),
        };
        let path = e2e::establish(tunnel, self.guid, local, Binding::Later(&self.path_key)).await?;
        Ok(E2eStream::new(path.stream))
    }
}

/// The hop of a dead path at a frame boundary both ways: the DATA frame the tunnel was
/// writing is finished (the gateway reads a survivor's current frame to its end before
/// it parks the hop), the rest of a DATA frame it was reading is skipped, and frames it
/// read ahead (PEER_GONE, perhaps PEER_BACK already) are kept. `None`: the hop failed.
async fn finish_frame(stream: E2eStream) -> Option<BoxStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tunnel = stream.into_tunnel();
    let _ = timeout(signal::SEND_TIMEOUT, tunnel.flush()).await;
    let (mut hop, read_ahead, mut skip) = tunnel.into_parts();
    let mut sink = [0u8; 4096];
    while skip > 0 {
        let want = sink.len().min(skip);
        let read = timeout(signal::SEND_TIMEOUT, hop.read(&mut sink[..want])).await;
        match read {
            Ok(Ok(n)) if n > 0 => skip -= n,
            _ => return None,
        }
    }
    Some(Box::new(Rewind::new(read_ahead, hop)))
}

/// Sends HELLO and REATTACH, drives the machine to RESUMED.
async fn resumed<M: Machine>(
    hop: &mut Hop,
    state: M,
    first: [Message; 2],
    limits: DriveLimits,
) -> Result<M, Error> {
    send_all(hop, first).await?;
    let done = |_: &M, e: Option<&PeerEvent>| matches!(e, Some(PeerEvent::Resumed { .. }));
    let (state, event) = drive(hop, state, limits, "RESUMED", done).await?;
    match event {
        Some(PeerEvent::Resumed { paired: true }) => Ok(state),
        _ => Err(Error::Protocol("RESUMED for a session not paired".into())),
    }
}

/// The applet's current resume secret, once relaying.
pub(crate) fn secret_of_applet(state: &HandoffApplet) -> Option<ResumeSecret> {
    match state {
        HandoffApplet::Connected(Connected::Relaying(r)) => Some(r.resume_secret.clone()),
        _ => None,
    }
}

/// The console's current resume secret, once relaying.
pub(crate) fn secret_of_console(state: &HandoffConsole) -> Option<ResumeSecret> {
    match state {
        HandoffConsole::Connected(Connected::Relaying(r)) => Some(r.resume_secret.clone()),
        _ => None,
    }
}

impl std::fmt::Debug for ResumablePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumablePath").finish_non_exhaustive()
    }
}

impl Drop for ResumablePath {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            // The Reconnect may be gone: then the hop just closes.
            let _ = back.send(stream);
        }
    }
}

impl ResumablePath {
    fn stream(&mut self) -> io::Result<&mut E2eStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for ResumablePath {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => StdPin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ResumablePath {
    fn poll_write(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => StdPin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => StdPin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => StdPin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
