//! The end-to-end stream, and the first path after PAIRED: [`super::e2e::establish`]
//! over the DATA tunnel (applet client pinning the account CA, console server with its
//! certificate, BIND keyed by K), then the committed SAS.
//!
//! They never accept an unbound channel: a BIND or SAS failure is an error and the
//! stream is dropped.

use std::time::Duration;

use rescue_crypto::bind::{PathKey, SessionSecret};
use rescue_crypto::sas::Sas;
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::time::timeout;

use super::e2e::{self, Binding, Local};
pub use super::tls::ConsoleIdentity;
use super::tls::Tls;
use crate::error::Error;
use crate::io::{BoxStream, Rewind};
use crate::signal::{self, Hop};
use crate::tunnel::DataTunnel;

/// The transport under the inner TLS: DATA frames over the outer hop.
pub(crate) type Tunnel = DataTunnel<Rewind<BoxStream>>;

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
