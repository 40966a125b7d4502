//! The end-to-end stream, and the first path after PAIRED: [`super::e2e::establish`]
//! over the DATA tunnel (applet client pinning the account CA, console server with its
//! certificate, BIND keyed by K), then the committed SAS.
//!
//! They never accept an unbound channel: a BIND or SAS failure is an error and the
//! stream is dropped.

use std::io;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};
use std::time::Duration;

use rescue_crypto::bind::{Exporter, PathKey, SessionSecret};
use rescue_crypto::pki::AccountId;
use rescue_crypto::sas::Sas;
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::timeout;

use super::e2e::{self, Binding, Local};
use crate::error::Error;
use crate::io::{BoxStream, Rewind};
use crate::signal::{self, Hop};
use crate::tunnel::{tunnel_error, DataTunnel, TunnelError};

/// The transport under the inner TLS: DATA frames over the outer hop.
pub(crate) type Tunnel = DataTunnel<Rewind<BoxStream>>;

/// Who is on the console side, from the certificate verified in the inner TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsoleIdentity {
    /// The console's account.
    pub account: AccountId,
    /// The technician's name.
    pub technician: String,
    /// The console's leaf certificate (what a later direct path pins exactly).
    pub leaf: CertificateDer<'static>,
}

/// The end-to-end byte stream of a relayed session: TLS from applet to console, through
/// the gateway's DATA tunnel. Reads and writes are application bytes; the gateway sees
/// only ciphertext.
pub struct E2eStream {
    stream: Tls<Tunnel>,
}

delegate_stream_io!(E2eStream);

impl E2eStream {
    /// The certificates the other end presented in the end-to-end TLS (the console's
    /// chain on the applet side; none on the console side: applets are anonymous).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.stream.peer_certificates()
    }

    /// Wraps an end-to-end TLS over the relay (bound by the caller).
    pub(crate) fn new(stream: Tls<Tunnel>) -> Self {
        Self { stream }
    }

    /// The tunnel under the TLS (a survivor's hop, for a reconnect).
    pub(crate) fn into_tunnel(self) -> Tunnel {
        self.stream.into_inner()
    }
}

impl std::fmt::Debug for E2eStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stream.fmt(f)
    }
}

/// The inner TLS of one end-to-end path over any transport `T` (the relay's DATA tunnel,
/// later a direct TCP or XTCP stream).
pub(crate) struct Tls<T>(Side<T>);

enum Side<T> {
    /// The applet's side (TLS client).
    Applet(Box<tokio_rustls::client::TlsStream<T>>),
    /// The console's side (TLS server).
    Console(Box<tokio_rustls::server::TlsStream<T>>),
}

impl<T> Tls<T> {
    /// The certificates the other end presented.
    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.0 {
            Side::Applet(s) => s.get_ref().1.peer_certificates(),
            Side::Console(s) => s.get_ref().1.peer_certificates(),
        }
    }

    /// This path's BIND exporter.
    pub(crate) fn exporter(&self, guid: &Guid) -> Result<Exporter, Error> {
        let e = match &self.0 {
            Side::Applet(s) => Exporter::from_connection(s.get_ref().1, guid),
            Side::Console(s) => Exporter::from_connection(s.get_ref().1, guid),
        };
        e.map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Wraps an applet-side inner TLS (BIND is the caller's).
    pub(crate) fn from_applet(tls: tokio_rustls::client::TlsStream<T>) -> Self {
        Tls(Side::Applet(Box::new(tls)))
    }

    /// Wraps a console-side inner TLS (BIND is the caller's).
    pub(crate) fn from_console(tls: tokio_rustls::server::TlsStream<T>) -> Self {
        Tls(Side::Console(Box::new(tls)))
    }

    /// The transport under the TLS.
    pub(crate) fn into_inner(self) -> T {
        match self.0 {
            Side::Applet(s) => s.into_inner().0,
            Side::Console(s) => s.into_inner().0,
        }
    }
}

impl<T> std::fmt::Debug for Tls<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Side::Applet(_) => f.write_str("E2eStream(applet)"),
            Side::Console(_) => f.write_str("E2eStream(console)"),
        }
    }
}

/// The first path after PAIRED, either end: over the hop's DATA tunnel,
/// [`e2e::establish`] (the applet pinning the account CA, both binding with K), then the
/// committed SAS; within `first.wait`.
pub(crate) async fn first_path(
    hop: Hop,
    first: FirstPath<'_>,
    local: Local<'_>,
) -> Result<FirstPathUp, Error> {
    let setup = async {
        let tunnel = DataTunnel::new(signal::unframe(hop)).with_keepalive(first.keepalive);
        let signals = tunnel.signals();
        let mut path =
            e2e::establish(tunnel, first.guid, local, Binding::First(first.secret)).await?;
        let sas = match local {
            Local::Applet(_) => super::sas::applet(&mut path.stream, &path.exporter).await?,
            Local::Console(_) => super::sas::console(&mut path.stream, &path.exporter).await?,
        };
        Ok(FirstPathUp {
            path_key: PathKey::derive(first.secret, &path.exporter, &first.guid),
            stream: E2eStream::new(path.stream),
            sas,
            console: path.console,
            signals,
        })
    };
    timeout(first.wait, setup)
        .await
        .map_err(|_| Error::Timeout("end-to-end set-up"))?
}

/// A first path that is up: bound, SAS computed.
#[derive(Debug)]
pub(crate) struct FirstPathUp {
    pub(crate) stream: E2eStream,
    pub(crate) sas: Sas,
    /// The console as its certificate names it (applet side only).
    pub(crate) console: Option<ConsoleIdentity>,
    /// The key later paths of this session are bound with.
    pub(crate) path_key: PathKey,
    /// The gateway's rendezvous messages on this hop (for a UDP path).
    pub(crate) signals: crate::tunnel::TunnelSignals,
}

/// What both ends bring to the first path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstPath<'a> {
    /// The session.
    pub(crate) guid: Guid,
    /// The session secret K.
    pub(crate) secret: &'a SessionSecret,
    /// Longest the whole set-up may take.
    pub(crate) wait: Duration,
    /// PING interval on the hop meanwhile.
    pub(crate) keepalive: Duration,
}

/// Maps an I/O error on the tunnel: the other party leaving is [`Error::PeerGone`].
pub(crate) fn stream_error(e: io::Error) -> Error {
    match tunnel_error(&e) {
        Some(TunnelError::PeerGone { .. }) => return Error::PeerGone,
        Some(TunnelError::Gateway(code)) => {
            return Error::Refused {
                code: *code,
                message: String::new(),
            }
        }
        Some(TunnelError::KeepaliveTimeout(_)) => return Error::Timeout("gateway keepalive"),
        Some(TunnelError::Protocol(v)) => return Error::Protocol(v.to_string()),
        _ => {}
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Closed
    } else {
        Error::Io(e)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tls<T> {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Side::Applet(s) => StdPin::new(s.as_mut()).poll_read(cx, buf),
            Side::Console(s) => StdPin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tls<T> {
    fn poll_write(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Side::Applet(s) => StdPin::new(s.as_mut()).poll_write(cx, buf),
            Side::Console(s) => StdPin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Side::Applet(s) => StdPin::new(s.as_mut()).poll_flush(cx),
            Side::Console(s) => StdPin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Side::Applet(s) => StdPin::new(s.as_mut()).poll_shutdown(cx),
            Side::Console(s) => StdPin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
