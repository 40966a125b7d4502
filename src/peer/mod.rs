//! The two peers of a relayed session: the end user's [`Applet`] and the technician's
//! [`Console`]. Both reach a gateway over outer TLS pinned to the gateway CA, say HELLO,
//! and after PAIRED run the end-to-end TLS (applet client, console server) over the DATA
//! tunnel, then BIND and the committed SAS ([`inner`]).
//!
//! The peers never trust the gateway with anything but routing: the inner TLS pins the
//! account CA, and BIND ties the end-to-end channel to the session GUID. The steps are
//! separate functions (connect, hello, inner set-up) so that a reconnect (RESUME, issue
//! 4) can reuse them on a new hop.

mod applet;
mod console;
pub(crate) mod inner;
mod sas;

use std::sync::Arc;

use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{Hello, Message, Pong, Role};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub use applet::{Applet, AppletSession, Registration};
pub use console::{Console, ConsoleSession, WaitingSession};
pub use inner::{ConsoleIdentity, E2eStream};

use crate::config::PeerTimeouts;
use crate::error::Error;
use crate::signal::{self, Hop, RecvError};

/// Connects to `addr`: TCP and outer TLS (within `timeouts.connect` each), then HELLO
/// both ways. Returns the framed hop, ready for the first request.
pub(crate) async fn connect_gateway(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    role: Role,
    timeouts: &PeerTimeouts,
) -> Result<Hop, Error> {
    let tcp = timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout("TCP connect"))??;
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
    let mut hop = signal::framed(Box::new(stream));
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role,
    };
    signal::send(&mut hop, Message::Hello(hello)).await?;
    match reply(&mut hop, timeouts.reply, "HELLO").await? {
        Message::Hello(h) if h.version == PROTOCOL_VERSION && h.role == Role::Gateway => Ok(hop),
        Message::Hello(h) => Err(Error::Protocol(format!(
            "gateway HELLO with version {} role {:?}",
            h.version, h.role
        ))),
        other => Err(unexpected(&other, "HELLO")),
    }
}

/// Waits for the gateway's next message that is not a keepalive: PING is answered,
/// PONG ignored; ERROR becomes [`Error::Refused`], CLOSE [`Error::Closed`].
pub(crate) async fn reply(
    hop: &mut Hop,
    wait: std::time::Duration,
    what: &'static str,
) -> Result<Message, Error> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = signal::recv(hop, left).await.map_err(|e| match e {
            RecvError::Timeout => Error::Timeout(what),
            RecvError::Closed => Error::Closed,
            RecvError::Io(e) => Error::Io(e),
            RecvError::Malformed(m) => Error::Protocol(m),
        })?;
        match msg {
            Message::Ping(p) => {
                signal::send(hop, Message::Pong(Pong { nonce: p.nonce })).await?;
            }
            Message::Pong(_) => {}
            Message::Error(e) => {
                return Err(Error::Refused {
                    code: e.code,
                    message: e.message.as_str().to_owned(),
                })
            }
            Message::Close(_) => return Err(Error::Closed),
            other => return Ok(other),
        }
    }
}

pub(crate) fn unexpected(msg: &Message, what: &str) -> Error {
    Error::Protocol(format!("expected {what}, got {}", signal::name_of(msg)))
}
