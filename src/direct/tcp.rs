//! Direct TCP: the applet's listener and its candidates, the console's dials, and the
//! end-to-end set-up on each connection (TLS, BIND with the path key, NOMINATE).
//!
//! What this never does: accept a connection that has not finished TLS + BIND within
//! [`DIRECT_SETUP_TIMEOUT`]; hold more than [`MAX_PENDING_HANDSHAKES`] handshakes or accept
//! more than [`MAX_ACCEPTS_PER_ROUND`] connections per round; dial anything but the (at
//! most [`rescue_proto::paths::MAX_CANDIDATES`]) addresses of the current round.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rescue_crypto::msg::InnerMsg;
use rescue_proto::paths::MAX_CANDIDATES;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::{DirectSetup, End};
use crate::error::Error;
use crate::peer::e2e::{self, Binding, Local, Pinning};
use crate::peer::tls::{read_msg, write_msg, Tls};

/// Longest a direct connection may take from TCP connect (or accept) to BIND and
/// NOMINATE; slower ones are dropped.
pub(crate) const DIRECT_SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections the applet's listener takes in one round (the rest are closed at
/// once): bounds what a stranger who found the port can make it do.
pub(crate) const MAX_ACCEPTS_PER_ROUND: usize = 16;
/// Most direct handshakes in progress at once on either side.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 4;

/// A bound direct TCP path.
pub(crate) type TcpPath = Tls<TcpStream>;

/// The applet's listener of one round: one dual-stack socket when IPv6 is available,
/// else IPv4 only.
pub(crate) async fn listen() -> io::Result<TcpListener> {
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await,
    }
}

/// The addresses to announce for a listener on `port`: the local address of the hop to
/// the gateway first (the interface that reaches the internet), then the machine's other
/// interface addresses. Loopback only when the gateway itself is on loopback (one host);
/// IPv6 only on a dual-stack listener; link-local IPv6 never (it needs a scope).
pub(crate) fn candidates(
    port: u16,
    dual_stack: bool,
    hop_local: Option<IpAddr>,
) -> Vec<SocketAddr> {
    let loopback_ok = hop_local.is_some_and(|ip| ip.is_loopback());
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && (loopback_ok || !v4.is_loopback()),
        IpAddr::V6(v6) => {
            dual_stack
                && !v6.is_unspecified()
                && (loopback_ok || !v6.is_loopback())
                && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    let mut out: Vec<IpAddr> = hop_local
        .into_iter()
        .map(canonical)
        .filter(usable)
        .collect();
    let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
    for ip in interfaces.iter().map(|i| canonical(i.ip())) {
        if usable(&ip) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out.truncate(MAX_CANDIDATES);
    out.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Applet side of one accepted connection: TLS client pinning the console leaf, BIND
/// with the path key, then the console's NOMINATE. `Ok` only for a nominated path.
pub(crate) async fn accepted(tcp: TcpStream, setup: &DirectSetup) -> Result<TcpPath, Error> {
    let End::Applet { leaf } = &setup.end else {
        return Err(Error::Config("only the applet accepts direct paths".into()));
    };
    let _ = tcp.set_nodelay(true);
    let run = async {
        let local = Local::Applet(Pinning::Leaf(leaf));
        let mut path =
            e2e::establish(tcp, setup.guid, local, Binding::Later(&setup.path_key)).await?;
        match read_msg(&mut path.stream).await? {
            InnerMsg::Nominate => Ok(path.stream),
            _ => Err(Error::Protocol("expected NOMINATE on a direct path".into())),
        }
    };
    timeout(DIRECT_SETUP_TIMEOUT, run)
        .await
        .map_err(|_| Error::Timeout("direct path set-up"))?
}

/// Console side of one dial: TCP connect, TLS server with the console identity, BIND with
/// the path key. The caller nominates the winner ([`nominate`]).
pub(crate) async fn dial(addr: SocketAddr, setup: &DirectSetup) -> Result<TcpPath, Error> {
    let End::Console { identity } = &setup.end else {
        return Err(Error::Config("only the console dials direct paths".into()));
    };
    let run = async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let local = Local::Console(identity);
        let path = e2e::establish(tcp, setup.guid, local, Binding::Later(&setup.path_key)).await?;
        Ok(path.stream)
    };
    timeout(DIRECT_SETUP_TIMEOUT, run)
        .await
        .map_err(|_| Error::Timeout("direct path set-up"))?
}

/// Console: tells the applet this bound connection is the one (within the set-up
/// timeout).
pub(crate) async fn nominate<T>(stream: &mut Tls<T>) -> Result<(), Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    timeout(DIRECT_SETUP_TIMEOUT, write_msg(stream, InnerMsg::Nominate))
        .await
        .map_err(|_| Error::Timeout("NOMINATE"))?
}

#[cfg(test)]
mod tests {
    use rescue_crypto::bind::{Exporter, SessionSecret};

    use super::*;
    use crate::devpki::DevPki;

    fn key(b: u8) -> rescue_crypto::bind::PathKey {
        let guid = rescue_proto::Guid::from_bytes([1; 16]);
        rescue_crypto::bind::PathKey::derive(
            &SessionSecret::from_bytes([b; 32]),
            &Exporter::from_bytes([2; 32]),
            &guid,
        )
    }

    /// The applet's listener and set-up for a session whose console is the PKI's.
    async fn applet_side(pki: &DevPki) -> (TcpListener, DirectSetup) {
        let setup = DirectSetup {
            guid: rescue_proto::Guid::from_bytes([1; 16]),
            path_key: key(5),
            end: End::Applet {
                leaf: pki.console.chain()[0].clone(),
            },
            hop: crate::peer::HopAddrs::default(),
            signals: None,
        };
        (listen().await.unwrap(), setup)
    }

    fn console_side(identity: rescue_crypto::pki::Identity, path_key: u8) -> DirectSetup {
        DirectSetup {
            guid: rescue_proto::Guid::from_bytes([1; 16]),
            path_key: key(path_key),
            end: End::Console {
                identity: Box::new(identity),
            },
            hop: crate::peer::HopAddrs::default(),
            signals: None,
        }
    }

    fn local(l: &TcpListener) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), l.local_addr().unwrap().port())
    }

    #[tokio::test]
    async fn the_real_console_binds_and_nominates() {
        let pki = DevPki::generate(["127.0.0.1"], rescue_proto::AccountId(42), "alice").unwrap();
        let (l, applet) = applet_side(&pki).await;
        let console = console_side(pki.console.clone(), 5);
        let addr = local(&l);
        let (a, c) = tokio::join!(
            async { accepted(l.accept().await.unwrap().0, &applet).await },
            async {
                let mut p = dial(addr, &console).await?;
                nominate(&mut p).await?;
                Ok::<_, Error>(p)
            }
        );
        assert!(a.is_ok(), "{a:?}");
        assert!(c.is_ok(), "{c:?}");
    }

    /// Someone who knows the GUID and even holds a console certificate of the account,
    /// but not the session's path key, cannot get a path bound.
    #[tokio::test]
    async fn a_stranger_at_the_listener_gets_no_path() {
        let pki = DevPki::generate(["127.0.0.1"], rescue_proto::AccountId(42), "alice").unwrap();
        // Same certificate (the pinned leaf), wrong path key.
        let (l, applet) = applet_side(&pki).await;
        let stranger = console_side(pki.console.clone(), 6);
        let addr = local(&l);
        let (a, c) = tokio::join!(
            async { accepted(l.accept().await.unwrap().0, &applet).await },
            dial(addr, &stranger)
        );
        assert!(matches!(a, Err(Error::BindMismatch)), "{a:?}");
        assert!(matches!(c, Err(Error::BindMismatch)), "{c:?}");
        // Another console of the account (not the pinned leaf): refused in TLS.
        let other = pki.issue_console("mallory", 1).unwrap();
        let (l, applet) = applet_side(&pki).await;
        let addr = local(&l);
        let other = console_side(other, 5);
        let (a, _) = tokio::join!(
            async { accepted(l.accept().await.unwrap().0, &applet).await },
            dial(addr, &other)
        );
        assert!(matches!(a, Err(Error::Tls(_))), "{a:?}");
        // Garbage instead of TLS.
        let (l, applet) = applet_side(&pki).await;
        let addr = local(&l);
        let (a, _) = tokio::join!(
            async { accepted(l.accept().await.unwrap().0, &applet).await },
            async {
                use tokio::io::AsyncWriteExt;
                let mut s = TcpStream::connect(addr).await.unwrap();
                let _ = s.write_all(&[0x16, 3, 1, 0, 1, 0xff, 0, 0, 0, 0]).await;
                s
            }
        );
        assert!(a.is_err(), "{a:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_dropped_at_the_set_up_timeout() {
        let pki = DevPki::generate(["127.0.0.1"], rescue_proto::AccountId(42), "alice").unwrap();
        let (l, applet) = applet_side(&pki).await;
        let addr = local(&l);
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = l.accept().await.unwrap();
        let a = accepted(tcp, &applet).await;
        assert!(matches!(a, Err(Error::Timeout(_))), "{a:?}");
    }

    #[test]
    fn candidates_put_the_hop_address_first_and_respect_the_limits() {
        let hop = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let c = candidates(4000, true, Some(hop));
        assert_eq!(c.first(), Some(&SocketAddr::new(hop, 4000)));
        assert!(c.len() <= MAX_CANDIDATES);
        assert!(c.iter().all(|a| a.port() == 4000));
        // Without a loopback gateway, no loopback candidate.
        let c = candidates(4000, false, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert!(c.iter().all(|a| !a.ip().is_loopback() && a.is_ipv4()));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert_eq!(canonical(mapped), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    }
}
