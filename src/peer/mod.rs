//! The two peers of a relayed session: the end user's [`Applet`] and the technician's
//! [`Console`]. Both reach a gateway over outer TLS pinned to the gateway CA and drive
//! `rescue_proto`'s sans-IO hand-off machines (`handoff::applet`, `handoff::console`)
//! until PAIRED; then they run the end-to-end TLS (applet client, console server) over
//! the DATA tunnel, BIND and the committed SAS (module `inner`).
//!
//! The peers never trust the gateway with anything but routing: the inner TLS pins the
//! account CA, and BIND ties the end-to-end channel to the session GUID. The steps are
//! separate functions (transport, hand-off driver, inner set-up) so that a reconnect
//! (REATTACH/RESUME, PROTOCOL.md 3.12) can reuse them on a new hop.

/// Implements `AsyncRead` and `AsyncWrite` for a paired-session type by delegating to
/// its `stream` field (the end-to-end TLS stream).
macro_rules! delegate_stream_io {
    ($ty:ty) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
            }
        }

        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
            }
        }
    };
}

mod applet;
mod console;
pub(crate) mod e2e;
pub(crate) mod inner;
mod reconnect;
mod sas;
pub(crate) mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rescue_proto::handoff::keepalive::Keepalive;
use rescue_proto::handoff::{applet as hs_applet, console as hs_console};
use rescue_proto::handoff::{PeerError, PeerEvent, Step};
use rescue_proto::wire::signal::Message;
use tokio::net::TcpStream;
use tokio::time::timeout;

pub use applet::{Applet, AppletSession, Registration};
pub use console::{ClaimKey, Console, ConsoleSession, WaitingSession};
pub use inner::{ConsoleIdentity, E2eStream};
pub use reconnect::{Reconnect, ResumablePath, Via};

use crate::config::PeerTimeouts;
use crate::error::Error;
use crate::signal::{self, Hop, RecvError};

/// Opens TCP and the outer TLS to `addr`, each within `timeouts.connect`.
pub(crate) async fn connect_gateway(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    timeouts: &PeerTimeouts,
) -> Result<Hop, Error> {
    Ok(connect_gateway_from(addr, tls, timeouts).await?.0)
}

/// The two ends of a hop: this end's local address (the interface that reaches the
/// gateway: a direct-path candidate) and the gateway's (its UDP rendezvous is there).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HopAddrs {
    pub(crate) local: Option<std::net::IpAddr>,
    pub(crate) gateway: Option<std::net::IpAddr>,
}

/// [`connect_gateway`], also returning the hop's addresses.
pub(crate) async fn connect_gateway_from(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    timeouts: &PeerTimeouts,
) -> Result<(Hop, HopAddrs), Error> {
    let tcp = timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout("TCP connect"))??;
    let local = HopAddrs {
        local: tcp.local_addr().ok().map(|a| a.ip()),
        gateway: tcp.peer_addr().ok().map(|a| a.ip()),
    };
    // Small signalling frames should not wait for Nagle; DATA is written in large chunks.
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(tls);
    let stream = timeout(
        timeouts.connect,
        connector.connect(rescue_crypto::tls::server_name(), tcp),
    )
    .await
    .map_err(|_| Error::Timeout("outer TLS handshake"))?
    .map_err(Error::Tls)?;
    Ok((signal::framed(Box::new(stream)), local))
}

/// A hand-off machine of `rescue_proto::handoff`, as the driver sees it.
pub(crate) trait Machine: Sized {
    /// Handles one message from the gateway.
    fn handle(self, now: Instant, msg: Message) -> Result<Step<Self>, PeerError>;
    /// The machine's own deadline for the awaited message.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl Machine for hs_applet::Applet {
    fn handle(self, now: Instant, msg: Message) -> Result<Step<Self>, PeerError> {
        hs_applet::Applet::handle(self, now, msg)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        hs_applet::Applet::poll_timeout(self)
    }
}

impl Machine for hs_console::Console {
    fn handle(self, now: Instant, msg: Message) -> Result<Step<Self>, PeerError> {
        hs_console::Console::handle(self, now, msg)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        hs_console::Console::poll_timeout(self)
    }
}

/// Feeds the gateway's messages to `state` (sending what it asks to send) until `done`
/// accepts the new state and event. Each wait ends at the machine's deadline or after
/// `limits.cap`, whichever is first; PINGs keep a quiet hop alive meanwhile (`handoff`'s
/// keepalive at `limits.keepalive`). ERROR, CLOSE and PEER_GONE end the drive with an
/// error.
pub(crate) async fn drive<M: Machine>(
    hop: &mut Hop,
    mut state: M,
    limits: DriveLimits,
    what: &'static str,
    done: impl Fn(&M, Option<&PeerEvent>) -> bool,
) -> Result<(M, Option<PeerEvent>), Error> {
    let start = Instant::now();
    let cap_at = start + limits.cap;
    let idle = limits.keepalive.saturating_mul(KEEPALIVE_MISSES);
    let mut keepalive = Keepalive::with_timing(start, limits.keepalive, idle);
    loop {
        let deadline = state.poll_timeout().map_or(cap_at, |d| d.min(cap_at));
        let wake = deadline.min(keepalive.poll_timeout());
        let wait = wake.saturating_duration_since(Instant::now());
        let msg = match signal::recv(hop, wait).await {
            Ok(msg) => msg,
            Err(RecvError::Timeout) if Instant::now() < deadline => {
                let ping = keepalive
                    .handle_timeout(Instant::now())
                    .map_err(|_| Error::Timeout("gateway keepalive"))?;
                if let Some(ping) = ping {
                    signal::send(hop, Message::Ping(ping)).await?;
                }
                continue;
            }
            Err(e) => return Err(recv_error(e, what)),
        };
        keepalive.on_receive(Instant::now());
        let step = state
            .handle(Instant::now(), msg)
            .map_err(|e| peer_error(e, what))?;
        if let Some(reply) = step.send {
            signal::send(hop, reply).await?;
        }
        state = step.next;
        if done(&state, step.event.as_ref()) {
            return Ok((state, step.event));
        }
        match step.event {
            Some(PeerEvent::Ended(rescue_proto::handoff::EndReason::PeerGone)) => {
                return Err(Error::PeerGone)
            }
            Some(PeerEvent::Ended(_)) => return Err(Error::Closed),
            _ => {}
        }
    }
}

/// Bounds of one [`drive`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriveLimits {
    /// Longest the whole drive may take.
    pub(crate) cap: Duration,
    /// PING interval on a quiet hop.
    pub(crate) keepalive: Duration,
}

impl DriveLimits {
    pub(crate) fn new(cap: Duration, timeouts: &PeerTimeouts) -> Self {
        Self {
            cap,
            keepalive: timeouts.keepalive,
        }
    }
}

/// Keepalive intervals without a frame after which the gateway is considered gone.
const KEEPALIVE_MISSES: u32 = 3;

fn recv_error(e: RecvError, what: &'static str) -> Error {
    match e {
        RecvError::Timeout => Error::Timeout(what),
        RecvError::Closed => Error::Closed,
        RecvError::Io(e) => Error::Io(e),
        RecvError::Malformed(m) => Error::Protocol(m),
    }
}

/// Maps a hand-off machine's error.
fn peer_error(e: PeerError, what: &'static str) -> Error {
    match e {
        PeerError::Refused { code, message } => Error::Refused {
            code,
            message: message.as_str().to_owned(),
        },
        PeerError::Timeout => Error::Timeout(what),
        other => Error::Protocol(other.to_string()),
    }
}

/// Sends the frames a machine starts with.
pub(crate) async fn send_all(
    hop: &mut Hop,
    msgs: impl IntoIterator<Item = Message>,
) -> Result<(), Error> {
    for m in msgs {
        signal::send(hop, m).await?;
    }
    Ok(())
}
