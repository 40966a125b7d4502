//! The end-to-end set-up after PAIRED, shared by both peers: inner TLS over the DATA
//! tunnel (applet client pinning the account CA, console server with its certificate),
//! then BIND (each side sends its tag, checks the peer's) and the committed SAS.
//!
//! These functions take a hop and return the end-to-end stream, so a later path or a
//! reconnect can run them again on another transport. They never accept an unbound
//! channel: a BIND or SAS failure is an error and the stream is dropped.

use std::io;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};
use std::time::Duration;

use rescue_crypto::bind::{Exporter, Role};
use rescue_crypto::pin::Pin;
use rescue_crypto::pki::{AccountId, ConsoleName, Identity};
use rescue_crypto::sas::Sas;
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::timeout;

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

/// The end-to-end byte stream of a session: TLS from applet to console, through the
/// relay. Reads and writes are application bytes; the gateway sees only ciphertext.
pub struct E2eStream(Side);

enum Side {
    /// The applet's side (TLS client).
    Applet(Box<tokio_rustls::client::TlsStream<Tunnel>>),
    /// The console's side (TLS server).
    Console(Box<tokio_rustls::server::TlsStream<Tunnel>>),
}

impl E2eStream {
    /// The certificates the other end presented in the end-to-end TLS (the console's
    /// chain on the applet side; none on the console side: applets are anonymous).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.0 {
            Side::Applet(s) => s.get_ref().1.peer_certificates(),
            Side::Console(s) => s.get_ref().1.peer_certificates(),
        }
    }
}

impl E2eStream {
    /// This path's BIND exporter (reconnects derive their `PathKey` from the first).
    pub(crate) fn exporter(&self, guid: &Guid) -> Result<Exporter, Error> {
        let e = match &self.0 {
            Side::Applet(s) => Exporter::from_connection(s.get_ref().1, guid),
            Side::Console(s) => Exporter::from_connection(s.get_ref().1, guid),
        };
        e.map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The tunnel under the TLS (a survivor's hop, for a reconnect).
    pub(crate) fn into_tunnel(self) -> Tunnel {
        match self.0 {
            Side::Applet(s) => s.into_inner().0,
            Side::Console(s) => s.into_inner().0,
        }
    }

    /// Wraps an applet-side inner TLS of a later path (BIND is the caller's).
    pub(crate) fn from_applet(tls: tokio_rustls::client::TlsStream<Tunnel>) -> Self {
        E2eStream(Side::Applet(Box::new(tls)))
    }

    /// Wraps a console-side inner TLS of a later path (BIND is the caller's).
    pub(crate) fn from_console(tls: tokio_rustls::server::TlsStream<Tunnel>) -> Self {
        E2eStream(Side::Console(Box::new(tls)))
    }
}

impl std::fmt::Debug for E2eStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Side::Applet(_) => f.write_str("E2eStream(applet)"),
            Side::Console(_) => f.write_str("E2eStream(console)"),
        }
    }
}

/// Applet side: inner TLS client pinning `account_ca_pin`, BIND, SAS.
pub(crate) async fn applet(
    hop: Hop,
    account_ca_pin: Pin,
    expected_account: AccountId,
    guid: Guid,
    wait: Duration,
    keepalive: Duration,
) -> Result<(E2eStream, Sas, ConsoleIdentity), Error> {
    let setup = async {
        let cfg = rescue_crypto::tls::inner_client_config_account(account_ca_pin)?;
        let tunnel = DataTunnel::new(signal::unframe(hop)).with_keepalive(keepalive);
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(rescue_crypto::tls::server_name(), tunnel)
            .await
            .map_err(tls_error)?;
        let console = console_identity(tls.get_ref().1.peer_certificates())?;
        if console.account != expected_account {
            let why = format!(
                "console of account {} for a session of {expected_account}",
                console.account
            );
            return Err(Error::ConsoleIdentity(why));
        }
        let exporter = Exporter::from_connection(tls.get_ref().1, &guid)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut stream = E2eStream(Side::Applet(Box::new(tls)));
        super::sas::bind(&mut stream, &exporter, &guid, Role::Applet).await?;
        let sas = super::sas::applet(&mut stream, &exporter).await?;
        Ok((stream, sas, console))
    };
    timeout(wait, setup)
        .await
        .map_err(|_| Error::Timeout("end-to-end set-up"))?
}

/// Console side: inner TLS server with `identity`, BIND, SAS.
pub(crate) async fn console(
    hop: Hop,
    identity: &Identity,
    guid: Guid,
    wait: Duration,
    keepalive: Duration,
) -> Result<(E2eStream, Sas), Error> {
    let setup = async {
        let cfg = rescue_crypto::tls::inner_server_config(identity)?;
        let tunnel = DataTunnel::new(signal::unframe(hop)).with_keepalive(keepalive);
        let tls = tokio_rustls::TlsAcceptor::from(cfg)
            .accept(tunnel)
            .await
            .map_err(tls_error)?;
        let exporter = Exporter::from_connection(tls.get_ref().1, &guid)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut stream = E2eStream(Side::Console(Box::new(tls)));
        super::sas::bind(&mut stream, &exporter, &guid, Role::Console).await?;
        let sas = super::sas::console(&mut stream, &exporter).await?;
        Ok((stream, sas))
    };
    timeout(wait, setup)
        .await
        .map_err(|_| Error::Timeout("end-to-end set-up"))?
}

fn console_identity(certs: Option<&[CertificateDer<'static>]>) -> Result<ConsoleIdentity, Error> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or_else(|| Error::ConsoleIdentity("no certificate".into()))?;
    let name = ConsoleName::from_cert(leaf).map_err(|e| Error::ConsoleIdentity(e.to_string()))?;
    Ok(ConsoleIdentity {
        account: name.account,
        technician: name.technician,
        leaf: leaf.clone(),
    })
}

/// Maps an I/O error of the inner handshake: rustls reports TLS failures as
/// `InvalidData` wrapping a `rustls::Error`.
fn tls_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        Error::Tls(e)
    } else {
        stream_error(e)
    }
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

impl AsyncRead for E2eStream {
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

impl AsyncWrite for E2eStream {
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
