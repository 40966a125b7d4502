//! The TLS of one end-to-end path over any transport, and the plain messages read and
//! written on it before the session layer (BIND, SAS, NOMINATE): the leaf that the path
//! set-up ([`super::e2e`]), the SAS ([`super::sas`]) and the relayed first path
//! ([`super::inner`]) share.

use std::io;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};

use rescue_crypto::bind::Exporter;
use rescue_crypto::msg::{InnerMsg, MAX_MSG_LEN};
use rescue_crypto::pki::AccountId;
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::Error;
use crate::tunnel::{tunnel_error, TunnelError};

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

pub(crate) async fn write_msg<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: InnerMsg,
) -> Result<(), Error> {
    stream
        .write_all(&msg.encode())
        .await
        .map_err(stream_error)?;
    stream.flush().await.map_err(stream_error)
}

/// Reads one message, a byte at a time (at most [`MAX_MSG_LEN`] bytes, from the TLS
/// plaintext buffer), so nothing after it is consumed.
pub(crate) async fn read_msg<S: AsyncRead + Unpin>(stream: &mut S) -> Result<InnerMsg, Error> {
    let mut buf = [0u8; MAX_MSG_LEN];
    for filled in 0..MAX_MSG_LEN {
        let byte = stream.read_u8().await.map_err(stream_error)?;
        // `filled < MAX_MSG_LEN` by the loop bound.
        if let Some(slot) = buf.get_mut(filled) {
            *slot = byte;
        }
        let have = buf.get(..=filled).unwrap_or(&[]);
        match InnerMsg::decode(have) {
            Ok(Some((msg, _))) => return Ok(msg),
            Ok(None) => {}
            Err(e) => return Err(Error::Protocol(format!("inner message: {e}"))),
        }
    }
    Err(Error::Protocol(
        "inner message longer than any known".into(),
    ))
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
