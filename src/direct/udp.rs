//! The UDP phase of a round: the gateway's rendezvous and the punch (`crate::udp_path`),
//! then the end-to-end set-up over the punched XTCP stream, exactly as on a direct TCP
//! connection (TLS with the applet pinning the console leaf, BIND with the path key,
//! NOMINATE by the console).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rescue_crypto::msg::InnerMsg;
use rescue_proto::Role;
use rescue_xtcp::tokio::{XtcpSocket, XtcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::timeout;

use super::tcp::{nominate, DIRECT_SETUP_TIMEOUT};
use super::{DirectSetup, End};
use crate::peer::e2e::{self, Binding, Local, Pinning};
use crate::peer::tls::{read_msg, Tls};
use crate::udp_path::{self, UdpPathConfig};

/// A bound UDP path: the end-to-end TLS over XTCP, and the socket that carries it.
pub(crate) struct UdpPathStream {
    tls: Tls<XtcpStream>,
    _socket: XtcpSocket,
}

/// Runs the rendezvous, the punch and the set-up; `Err` says why (the session stays on
/// the relay).
pub(crate) async fn establish(setup: &DirectSetup, role: Role) -> Result<UdpPathStream, String> {
    let (Some(signals), Some(gateway)) = (&setup.signals, setup.hop.gateway) else {
        return Err("no relayed hop to rendezvous on".into());
    };
    let punched = udp_path::establish(signals, role, gateway, &UdpPathConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(peer = %punched.peer, "UDP path punched");
    let binding = Binding::Later(&setup.path_key);
    let run = async {
        match &setup.end {
            End::Console { identity } => {
                let local = Local::Console(identity);
                let mut path = e2e::establish(punched.stream, setup.guid, local, binding).await?;
                nominate(&mut path.stream).await?;
                Ok(path.stream)
            }
            End::Applet { leaf } => {
                let local = Local::Applet(Pinning::Leaf(leaf));
                let mut path = e2e::establish(punched.stream, setup.guid, local, binding).await?;
                match read_msg(&mut path.stream).await? {
                    InnerMsg::Nominate => Ok(path.stream),
                    _ => Err(crate::error::Error::Protocol(
                        "expected NOMINATE on a direct path".into(),
                    )),
                }
            }
        }
    };
    let tls = timeout(DIRECT_SETUP_TIMEOUT, run)
        .await
        .map_err(|_| "UDP path set-up timed out".to_owned())?
        .map_err(|e: crate::error::Error| e.to_string())?;
    Ok(UdpPathStream {
        tls,
        _socket: punched.socket,
    })
}

impl AsyncRead for UdpPathStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for UdpPathStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}
