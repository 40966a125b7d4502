//! One way to establish an end-to-end path, for the first path through the relay, for a
//! reconnect, and for later (direct) paths: inner TLS over any transport (applet client,
//! console server), then BIND keyed by the session secret K (PROTOCOL.md 6.4).
//!
//! The order on the inner stream is fixed: the TLS handshake; each end sends its BIND
//! (34 bytes, unframed) as soon as its handshake completes and reads the peer's; nothing
//! else is sent or accepted until the peer's tag verified. On the first path the SAS
//! messages follow (module `sas`), then the session layer's frames; on later paths the
//! session frames follow BIND directly. A path that fails any step is dropped: this
//! module never returns an unbound stream.

use rescue_crypto::bind::{self, Exporter, PathKey, Role, SessionSecret};
use rescue_crypto::msg::InnerMsg;
use rescue_crypto::pin::Pin;
use rescue_crypto::pki::{AccountId, ConsoleName, Identity};
use rescue_proto::Guid;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{read_msg, stream_error, write_msg, ConsoleIdentity, Tls};
use crate::error::Error;

/// How the applet authenticates the console in the inner TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pinning<'a> {
    /// First path: the leaf must be issued by the account CA with this pin, and name
    /// this account.
    AccountCa {
        /// Pin of the account CA (from the ticket).
        pin: Pin,
        /// The ticket's account.
        account: AccountId,
    },
    /// Later paths: exactly the console leaf of the first path.
    Leaf(&'a CertificateDer<'static>),
}

/// This end of the path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Local<'a> {
    /// The applet: TLS client.
    Applet(Pinning<'a>),
    /// The console: TLS server with its certificate.
    Console(&'a Identity),
}

impl Local<'_> {
    fn role(&self) -> Role {
        match self {
            Local::Applet(_) => Role::Applet,
            Local::Console(_) => Role::Console,
        }
    }
}

/// The key BIND is made with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Binding<'a> {
    /// The first path: tags keyed by K over this path's exporter.
    First(&'a SessionSecret),
    /// A later path: tags keyed by the path key (from K and the first path's exporter).
    Later(&'a PathKey),
}

/// A new end-to-end path, bound to the session.
#[derive(Debug)]
pub(crate) struct Established<T> {
    /// The end-to-end stream (BIND done, nothing else read).
    pub(crate) stream: Tls<T>,
    /// This path's exporter (the first path's derives the path key and the SAS).
    pub(crate) exporter: Exporter,
    /// The console, as its certificate names it (applet side; `None` on the console).
    pub(crate) console: Option<ConsoleIdentity>,
}

/// Runs inner TLS over `transport` as `local`, then BIND with `binding`. The caller
/// bounds the time.
pub(crate) async fn establish<T>(
    transport: T,
    guid: Guid,
    local: Local<'_>,
    binding: Binding<'_>,
) -> Result<Established<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut stream, console) = match local {
        Local::Applet(pinning) => {
            let cfg = match pinning {
                Pinning::AccountCa { pin, .. } => {
                    rescue_crypto::tls::inner_client_config_account(pin)?
                }
                Pinning::Leaf(leaf) => rescue_crypto::tls::inner_client_config_leaf(leaf)?,
            };
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(rescue_crypto::tls::server_name(), transport)
                .await
                .map_err(tls_error)?;
            let console = console_identity(tls.get_ref().1.peer_certificates())?;
            if let Pinning::AccountCa { account, .. } = pinning {
                if console.account != account {
                    let why = format!(
                        "console of account {} for a session of {account}",
                        console.account
                    );
                    return Err(Error::ConsoleIdentity(why));
                }
            }
            (Tls::from_applet(tls), Some(console))
        }
        Local::Console(identity) => {
            let cfg = rescue_crypto::tls::inner_server_config(identity)?;
            let tls = tokio_rustls::TlsAcceptor::from(cfg)
                .accept(transport)
                .await
                .map_err(tls_error)?;
            (Tls::from_console(tls), None)
        }
    };
    let exporter = stream.exporter(&guid)?;
    exchange_bind(&mut stream, &exporter, &guid, local.role(), binding).await?;
    Ok(Established {
        stream,
        exporter,
        console,
    })
}

/// Sends our BIND, reads the peer's, checks its role and tag (constant time). A peer that
/// does not hold K (a gateway that registered a captured ticket, or plays the console),
/// or is bound to another session or path, gets [`Error::BindMismatch`].
async fn exchange_bind<S>(
    stream: &mut S,
    exporter: &Exporter,
    guid: &Guid,
    ours: Role,
    binding: Binding<'_>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tag = match binding {
        Binding::First(k) => bind::bind_tag(k, exporter, guid, ours),
        Binding::Later(key) => key.bind_tag(exporter, guid, ours),
    };
    write_msg(stream, InnerMsg::Bind { role: ours, tag }).await?;
    let (role, tag) = match read_msg(stream).await? {
        InnerMsg::Bind { role, tag } if role == ours.peer() => (role, tag),
        _ => return Err(Error::BindMismatch),
    };
    let checked = match binding {
        Binding::First(k) => bind::verify_bind_tag(k, exporter, guid, role, &tag),
        Binding::Later(key) => key.verify_bind_tag(exporter, guid, role, &tag),
    };
    checked.map_err(|_| Error::BindMismatch)
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
fn tls_error(e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        Error::Tls(e)
    } else {
        stream_error(e)
    }
}
