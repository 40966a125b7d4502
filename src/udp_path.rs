//! The direct UDP path through the gateway's rendezvous (PROTOCOL.md 3.13), up to a
//! connected XTCP stream; TLS and BIND over it are the caller's (the path manager).
//!
//! [`establish`]: the console asks for a rendezvous (RENDEZVOUS on its hop, through
//! [`TunnelSignals`]), both sides wait for their UDP_TOKEN, probe the gateway from the
//! UDP port they will punch from, wait for PEER_ADDR, check it, and punch: an XTCP
//! simultaneous open toward it, whose SYN retransmissions are the punch.
//!
//! Bounds (named constants of `rescue_proto::wire::limits`): at most `PROBE_ATTEMPTS`
//! probes, to the gateway only, `PROBE_RETRY_INTERVAL` apart; toward the address the
//! other side named, at most `MAX_PUNCH_SYNS` SYNs within `PUNCH_TIMEOUT` (first
//! retransmission after `PUNCH_INITIAL_RTO`, then doubling), and nothing at all to an
//! address `check_peer_addr` refuses. Every wait has a timeout.
//!
//! The probes go out from the very socket XTCP then runs on: a plain UDP socket that the
//! XTCP socket takes over ([`XtcpSocket::from_std`]) the moment PEER_ADDR arrives, so the
//! port is never unbound in between and a SYN of the other side that arrives early waits
//! in the kernel's queue for the XTCP driver.
//!
//! [`rendezvous`] and [`punch`] are the two halves; the path task punches toward the
//! other side's LAN addresses too (UDP_CANDIDATES, PROTOCOL.md 7.8) from the same socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rescue_proto::handoff::rendezvous::{check_peer_addr, PeerAddrError};
use rescue_proto::wire::limits;
use rescue_proto::wire::probe::Probe;
use rescue_proto::wire::signal::UdpToken;
use rescue_proto::Role;
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket, XtcpStream};
use tokio::time::{timeout_at, Instant};

use crate::tunnel::{TunnelSignal, TunnelSignals};

/// Timeouts and counts of [`establish`]; `Default` gives the protocol's constants.
#[derive(Debug, Clone)]
pub(crate) struct UdpPathConfig {
    /// Wait for UDP_TOKEN: the protocol's `REQUEST_TIMEOUT`.
    pub(crate) token_timeout: Duration,
    /// `PROBE_ATTEMPTS`.
    pub(crate) probe_attempts: u32,
    /// `PROBE_RETRY_INTERVAL`.
    pub(crate) probe_interval: Duration,
    /// `PEER_ADDR_TIMEOUT`, from the first probe.
    pub(crate) peer_addr_timeout: Duration,
    /// `PUNCH_TIMEOUT`.
    pub(crate) punch_timeout: Duration,
    /// `PUNCH_INITIAL_RTO`.
    pub(crate) punch_initial_rto: Duration,
}

impl Default for UdpPathConfig {
    fn default() -> Self {
        Self {
            token_timeout: limits::REQUEST_TIMEOUT,
            probe_attempts: limits::PROBE_ATTEMPTS,
            probe_interval: limits::PROBE_RETRY_INTERVAL,
            peer_addr_timeout: limits::PEER_ADDR_TIMEOUT,
            punch_timeout: limits::PUNCH_TIMEOUT,
            punch_initial_rto: limits::PUNCH_INITIAL_RTO,
        }
    }
}

/// A punched UDP path: the XTCP stream to the other party, and its socket (keep it
/// while the stream is used).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct UdpPath {
    /// The connected stream (not yet authenticated: run TLS and BIND over it).
    pub(crate) stream: XtcpStream,
    /// The socket it runs on.
    pub(crate) socket: XtcpSocket,
    /// The other party's address, as PEER_ADDR gave it.
    pub(crate) peer: SocketAddr,
}

/// Why no UDP path came up. The session goes on over the relay in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum UdpPathError {
    /// The tunnel (the relayed hop) is gone.
    #[error("the relayed hop is gone")]
    TunnelGone,
    /// No UDP_TOKEN in time (the gateway ignored the RENDEZVOUS, or no rendezvous ran).
    #[error("no UDP_TOKEN from the gateway in time")]
    NoToken,
    /// No PEER_ADDR in time (the other side's probe never arrived, or ours).
    #[error("no PEER_ADDR from the gateway in time")]
    NoPeerAddr,
    /// PEER_ADDR named an address nothing is sent to.
    #[error(transparent)]
    PeerAddr(#[from] PeerAddrError),
    /// A socket could not be bound or a probe not sent.
    #[error("UDP socket: {0}")]
    Socket(#[source] io::Error),
    /// The punch (XTCP simultaneous open) failed or timed out.
    #[error("punch failed: {0}")]
    Punch(#[source] io::Error),
}

/// Runs the rendezvous and the punch toward the address PEER_ADDR names (see the module
/// docs). `gateway` is the IP address of the hop; `role` says who asks (the console sends
/// RENDEZVOUS, the applet waits for the UDP_TOKEN that the console's request brings).
#[cfg(test)]
pub(crate) async fn establish(
    signals: &TunnelSignals,
    role: Role,
    gateway: IpAddr,
    cfg: &UdpPathConfig,
) -> Result<UdpPath, UdpPathError> {
    let met = rendezvous(signals, role, gateway, cfg, |_| {}).await?;
    let stream = punch(&met.socket, met.peer).await?;
    Ok(UdpPath {
        stream,
        socket: met.socket,
        peer: met.peer,
    })
}

/// The rendezvous done: the XTCP socket that probed, and the other party's reflexive
/// address.
#[derive(Debug)]
pub(crate) struct Met {
    /// The socket the probes went out from, now carrying XTCP (not listening).
    pub(crate) socket: XtcpSocket,
    /// The other party's address, as PEER_ADDR gave it (checked).
    pub(crate) peer: SocketAddr,
}

/// The rendezvous up to PEER_ADDR. `bound` is called with the local address of the UDP
/// socket once it is bound, before the first probe (the path task announces its LAN
/// addresses with that port).
pub(crate) async fn rendezvous(
    signals: &TunnelSignals,
    role: Role,
    gateway: IpAddr,
    cfg: &UdpPathConfig,
    bound: impl FnOnce(SocketAddr),
) -> Result<Met, UdpPathError> {
    let stale = signals.clear();
    if stale > 0 {
        tracing::debug!(stale, "dropped gateway signals of an earlier rendezvous");
    }
    if role == Role::Console {
        signals
            .rendezvous()
            .await
            .map_err(|_| UdpPathError::TunnelGone)?;
    }
    let token = wait_token(signals, Instant::now() + cfg.token_timeout).await?;
    let gateway = SocketAddr::new(gateway.to_canonical(), token.port);
    let probe = Probe {
        role,
        token: token.token.clone(),
    }
    .to_bytes();
    let probe_socket = tokio::net::UdpSocket::bind(unspecified(gateway))
        .await
        .map_err(UdpPathError::Socket)?;
    bound(probe_socket.local_addr().map_err(UdpPathError::Socket)?);
    let deadline = Instant::now() + cfg.peer_addr_timeout;
    let mut sent = 0;
    let peer = loop {
        if sent < cfg.probe_attempts {
            probe_socket
                .send_to(&probe, gateway)
                .await
                .map_err(UdpPathError::Socket)?;
            sent += 1;
        }
        let wait = if sent < cfg.probe_attempts {
            (Instant::now() + cfg.probe_interval).min(deadline)
        } else {
            deadline
        };
        match wait_peer_addr(signals, wait).await {
            Ok(addr) => break addr,
            Err(UdpPathError::NoPeerAddr) if Instant::now() < deadline => continue,
            Err(e) => return Err(e),
        }
    };
    tracing::debug!(%peer, probes = sent, "PEER_ADDR received, punching");
    check_peer_addr(peer, gateway)?;
    let udp = probe_socket.into_std().map_err(UdpPathError::Socket)?;
    let socket = XtcpSocket::from_std(udp, punch_config(cfg)).map_err(UdpPathError::Socket)?;
    Ok(Met { socket, peer })
}

/// One punch: an XTCP simultaneous open from `socket` toward `peer` (the socket's
/// configuration bounds its SYNs and its time).
pub(crate) async fn punch(
    socket: &XtcpSocket,
    peer: SocketAddr,
) -> Result<XtcpStream, UdpPathError> {
    socket.connect(peer).await.map_err(UdpPathError::Punch)
}

/// The punching socket: not listening (a stranger's SYN makes no connection), SYN
/// retransmissions from `PUNCH_INITIAL_RTO`, given up after `PUNCH_TIMEOUT`.
fn punch_config(cfg: &UdpPathConfig) -> SocketConfig {
    let mut transport = rescue_xtcp::Config::default();
    transport.initial_rto = cfg.punch_initial_rto;
    let mut config = SocketConfig::listening(false);
    config.transport = Arc::new(transport);
    config.connect_timeout = cfg.punch_timeout;
    config
}

/// Any address of `of`'s family, any port.
fn unspecified(of: SocketAddr) -> SocketAddr {
    match of {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

async fn wait_token(signals: &TunnelSignals, deadline: Instant) -> Result<UdpToken, UdpPathError> {
    loop {
        match timeout_at(deadline, signals.recv()).await {
            Err(_) => return Err(UdpPathError::NoToken),
            Ok(None) => return Err(UdpPathError::TunnelGone),
            Ok(Some(TunnelSignal::UdpToken(t))) => return Ok(t),
            Ok(Some(other)) => tracing::debug!(?other, "stale gateway signal dropped"),
        }
    }
}

async fn wait_peer_addr(
    signals: &TunnelSignals,
    deadline: Instant,
) -> Result<SocketAddr, UdpPathError> {
    loop {
        match timeout_at(deadline, signals.recv()).await {
            Err(_) => return Err(UdpPathError::NoPeerAddr),
            Ok(None) => return Err(UdpPathError::TunnelGone),
            Ok(Some(TunnelSignal::PeerAddr(a))) => return Ok(a.addr),
            Ok(Some(other)) => tracing::debug!(?other, "unexpected gateway signal dropped"),
        }
    }
}

#[cfg(test)]
#[path = "udp_path_tests.rs"]
mod tests;
