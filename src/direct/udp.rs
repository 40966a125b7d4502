//! The UDP phase of a round: the gateway's rendezvous (`crate::udp_path`), then punches
//! from the probing socket toward the other end's reflexive address and its LAN addresses
//! (UDP_CANDIDATES, PROTOCOL.md 7.8), and the end-to-end set-up over each XTCP stream that
//! connects, exactly as on a direct TCP connection (TLS with the applet pinning the
//! console leaf, BIND with the path key). The console NOMINATEs the first that binds; the
//! applet takes the first that is nominated.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rescue_crypto::msg::InnerMsg;
use rescue_proto::paths::MAX_CANDIDATES;
use rescue_proto::session::candidates::Candidates;
use rescue_proto::Role;
use rescue_xtcp::tokio::{XtcpSocket, XtcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::tcp::{nominate, DIRECT_SETUP_TIMEOUT};
use super::{DirectSetup, End, Request};
use crate::error::Error;
use crate::peer::e2e::{self, Binding, Local, Pinning};
use crate::peer::tls::{read_msg, Tls};
use crate::udp_path::{self, UdpPathConfig};

/// A bound UDP path: the end-to-end TLS over XTCP, and the socket that carries it.
pub(crate) struct UdpPathStream {
    tls: Tls<XtcpStream>,
    _socket: XtcpSocket,
}

/// The other end's UDP_CANDIDATES as the path task last took them: (round, addresses).
pub(crate) type PeerLan = watch::Receiver<(u32, Vec<SocketAddr>)>;

/// What one UDP phase needs besides the session's [`DirectSetup`].
pub(crate) struct UdpRound {
    /// The path manager's round.
    pub(crate) round: u32,
    /// The longest punch toward one address.
    pub(crate) punch_timeout: Duration,
    /// Where this end's UDP_CANDIDATES go (to the session driver).
    pub(crate) requests: mpsc::Sender<Request>,
    /// The other end's UDP_CANDIDATES.
    pub(crate) peer_lan: PeerLan,
}

/// Runs the rendezvous, the punches and the set-up; `Err` says why (the session stays on
/// the relay).
pub(crate) async fn establish(
    setup: Arc<DirectSetup>,
    role: Role,
    mut r: UdpRound,
) -> Result<UdpPathStream, String> {
    let (Some(signals), Some(gateway)) = (&setup.signals, setup.hop.gateway) else {
        return Err("no relayed hop to rendezvous on".into());
    };
    let cfg = UdpPathConfig {
        punch_timeout: r.punch_timeout,
        ..UdpPathConfig::default()
    };
    let announce = |local: SocketAddr| {
        let addrs = super::tcp::candidates(local.port(), local.is_ipv6(), setup.hop.local);
        if let Ok(msg) = Candidates::udp(r.round, addrs) {
            // Best effort: a full queue only costs the same-LAN path.
            let _ = r.requests.try_send(Request::SendCandidates(msg.encode()));
        }
    };
    let met = udp_path::rendezvous(signals, role, gateway, &cfg, announce)
        .await
        .map_err(|e| e.to_string())?;
    let mut attempts = Attempts {
        setup: setup.clone(),
        socket: met.socket.clone(),
        tried: Vec::new(),
        running: JoinSet::new(),
    };
    attempts.start(met.peer);
    let mut lan_open = true;
    let mut last_error = String::from("no punch succeeded");
    loop {
        if lan_open {
            let (round, addrs) = r.peer_lan.borrow_and_update().clone();
            if round == r.round {
                addrs.into_iter().for_each(|a| attempts.start(a));
            }
        }
        tokio::select! {
            changed = r.peer_lan.changed(), if lan_open => lan_open = changed.is_ok(),
            done = attempts.running.join_next() => match done {
                None => return Err(last_error),
                Some(Ok(Ok(mut path))) => {
                    if role == Role::Console {
                        if let Err(e) = nominate(&mut path.tls).await {
                            last_error = e.to_string();
                            continue;
                        }
                    }
                    tracing::debug!(peer = %path.peer, "UDP path bound");
                    return Ok(UdpPathStream {
                        tls: path.tls,
                        _socket: met.socket,
                    });
                }
                Some(Ok(Err(e))) => last_error = e,
                Some(Err(_)) => {}
            },
        }
    }
}

/// The punches of one UDP phase, all from one socket: at most `1 + MAX_CANDIDATES`
/// addresses, each tried once.
struct Attempts {
    setup: Arc<DirectSetup>,
    socket: XtcpSocket,
    tried: Vec<SocketAddr>,
    running: JoinSet<Result<Bound, String>>,
}

/// A punched stream that finished TLS and BIND (and, on the applet, was nominated).
struct Bound {
    tls: Tls<XtcpStream>,
    peer: SocketAddr,
}

impl Attempts {
    fn start(&mut self, peer: SocketAddr) {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if self.tried.contains(&peer) || self.tried.len() > MAX_CANDIDATES {
            return;
        }
        self.tried.push(peer);
        let (setup, socket) = (self.setup.clone(), self.socket.clone());
        self.running.spawn(async move {
            let stream = udp_path::punch(&socket, peer)
                .await
                .map_err(|e| format!("{peer}: {e}"))?;
            let tls = timeout(DIRECT_SETUP_TIMEOUT, bind(stream, &setup))
                .await
                .map_err(|_| format!("{peer}: UDP path set-up timed out"))?
                .map_err(|e| format!("{peer}: {e}"))?;
            Ok(Bound { tls, peer })
        });
    }
}

/// TLS and BIND over a punched stream; the applet also waits for NOMINATE.
async fn bind(stream: XtcpStream, setup: &DirectSetup) -> Result<Tls<XtcpStream>, Error> {
    let binding = Binding::Later(&setup.path_key);
    match &setup.end {
        End::Console { identity } => {
            let local = Local::Console(identity);
            Ok(e2e::establish(stream, setup.guid, local, binding)
                .await?
                .stream)
        }
        End::Applet { leaf } => {
            let local = Local::Applet(Pinning::Leaf(leaf));
            let mut path = e2e::establish(stream, setup.guid, local, binding).await?;
            match read_msg(&mut path.stream).await? {
                InnerMsg::Nominate => Ok(path.stream),
                _ => Err(Error::Protocol("expected NOMINATE on a direct path".into())),
            }
        }
    }
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
