//! The transports compared by the bulk benchmark.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rescue_xtcp::tokio::impair::{ImpairConfig, ImpairProxy};
use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
use rescue_xtcp::CongestionKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::common::{
    cpu_time, self_signed, tls_client, tls_server, Link, Outcome, CHUNK, PROXY_SEED,
};

/// One transport under test.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Case {
    /// Kernel TCP (tokio `TcpStream`).
    Tcp,
    /// rustls (TLS 1.3, AES-256-GCM) over kernel TCP.
    TcpTls,
    /// quinn, one unidirectional stream, its own TLS (rustls, ring, AES-256-GCM).
    Quinn,
    /// quinn without MTU discovery: 1200-byte datagrams like XTCP's default MSS (on
    /// the lossy links only, where per-datagram loss favours larger datagrams).
    Quinn1200,
    /// quinn with its BBR controller (quinn's is BBRv1, marked experimental).
    QuinnBbr,
    /// XTCP (`XtcpStream`), no encryption.
    Xtcp,
    /// rustls (TLS 1.3, AES-256-GCM) over XTCP with the default controller.
    XtcpTls,
    /// rustls over XTCP with a given controller.
    XtcpTlsWith(CongestionKind),
}

/// Every case, in table order.
pub(crate) const ALL: &[Case] = &[
    Case::Tcp,
    Case::TcpTls,
    Case::Quinn,
    Case::QuinnBbr,
    Case::Quinn1200,
    Case::Xtcp,
    Case::XtcpTls,
    Case::XtcpTlsWith(CongestionKind::Cubic),
    Case::XtcpTlsWith(CongestionKind::NewReno),
    Case::XtcpTlsWith(CongestionKind::Bbr),
    Case::XtcpTlsWith(CongestionKind::BbrLossTolerant),
];

/// Receive window given to quinn: the same 4 MiB as XTCP's default receive buffer.
const QUINN_WINDOW: u32 = 4 << 20;

impl Case {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::Tcp => "tcp",
            Case::TcpTls => "tcp+tls",
            Case::Quinn => "quinn",
            Case::Quinn1200 => "quinn-1200",
            Case::QuinnBbr => "quinn-bbr",
            Case::Xtcp => "xtcp",
            Case::XtcpTls => "xtcp+tls",
            Case::XtcpTlsWith(CongestionKind::NewReno) => "xtcp+tls/newreno",
            Case::XtcpTlsWith(CongestionKind::Bbr) => "xtcp+tls/bbr",
            Case::XtcpTlsWith(CongestionKind::BbrLossTolerant) => "xtcp+tls/bbr-lt",
            Case::XtcpTlsWith(_) => "xtcp+tls/cubic",
        }
    }

    /// Kernel TCP cannot go through a UDP proxy; quinn-1200 only matters under loss.
    pub(crate) fn runs_on(self, link: Link) -> bool {
        !matches!(
            (self, link),
            (Case::Tcp | Case::TcpTls, Link::Lossy(_) | Link::Bursty(..))
                | (Case::Quinn1200, Link::Loopback)
        )
    }

    pub(crate) async fn run(self, link: Link, bytes: u64) -> io::Result<Outcome> {
        match self {
            Case::Tcp => tcp(false, bytes).await,
            Case::TcpTls => tcp(true, bytes).await,
            Case::Quinn => quinn(link, true, false, bytes).await,
            Case::QuinnBbr => quinn(link, true, true, bytes).await,
            Case::Quinn1200 => quinn(link, false, false, bytes).await,
            Case::Xtcp => xtcp(link, false, None, bytes).await,
            Case::XtcpTls => xtcp(link, true, None, bytes).await,
            Case::XtcpTlsWith(cc) => xtcp(link, true, Some(cc), bytes).await,
        }
    }
}

/// Starts the impairment proxy in front of `target` for `link` (None on loopback).
pub(crate) async fn proxy_for(link: Link, target: SocketAddr) -> io::Result<Option<ImpairProxy>> {
    let Some(impairment) = link.impairment() else {
        return Ok(None);
    };
    let config = ImpairConfig::symmetric(impairment, PROXY_SEED);
    Ok(Some(
        ImpairProxy::start("127.0.0.1:0".parse().unwrap(), target, config).await?,
    ))
}

/// Writes `bytes` to `w` in [`CHUNK`] writes, then shuts it down.
pub(crate) async fn send_all(mut w: impl AsyncWrite + Unpin, bytes: u64) -> io::Result<()> {
    let chunk = vec![0x5a_u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        w.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    w.shutdown().await
}

/// Reads `r` to its end; returns the byte count.
pub(crate) async fn recv_all(mut r: impl AsyncRead + Unpin) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Times a transfer that is already connected: from now until the receiver saw the end.
pub(crate) async fn timed<R>(
    bytes: u64,
    send: impl std::future::Future<Output = io::Result<()>>,
    recv: R,
) -> io::Result<Outcome>
where
    R: std::future::Future<Output = io::Result<u64>> + Send + 'static,
{
    let cpu0 = cpu_time();
    let start = Instant::now();
    let receiver = tokio::spawn(recv);
    send.await?;
    let got = receiver.await.map_err(io::Error::other)??;
    let wall = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    if got != bytes {
        return Err(io::Error::other(format!("received {got} of {bytes} bytes")));
    }
    Ok(Outcome { bytes, wall, cpu })
}

async fn tcp(tls: bool, bytes: u64) -> io::Result<Outcome> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = TcpStream::connect(addr).await?;
    let (server, _) = listener.accept().await?;
    client.set_nodelay(true)?;
    if !tls {
        return timed(bytes, send_all(client, bytes), recv_all(server)).await;
    }
    let (cert, key) = self_signed();
    let acceptor = TlsAcceptor::from(Arc::new(tls_server(&cert, &key)));
    let connector = TlsConnector::from(Arc::new(tls_client(&cert)));
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let (client, server) =
        tokio::try_join!(connector.connect(name, client), acceptor.accept(server))?;
    timed(bytes, send_all(client, bytes), recv_all(server)).await
}

async fn quinn(link: Link, mtud: bool, bbr: bool, bytes: u64) -> io::Result<Outcome> {
    let (cert, key) = self_signed();
    let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or_else(|| io::Error::other("no QUIC initial suite"))?;
    let server_tls = quinn::crypto::rustls::QuicServerConfig::with_initial(
        Arc::new(tls_server(&cert, &key)),
        initial,
    )
    .map_err(io::Error::other)?;
    let client_tls =
        quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(tls_client(&cert)), initial)
            .map_err(io::Error::other)?;
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window(QUINN_WINDOW.into());
    transport.receive_window((2 * QUINN_WINDOW).into());
    transport.send_window(2 * u64::from(QUINN_WINDOW));
    if !mtud {
        transport.mtu_discovery_config(None);
    }
    if bbr {
        transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    }
    let transport = Arc::new(transport);
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
    server_config.transport_config(transport.clone());
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_tls));
    client_config.transport_config(transport);

    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap())?;
    let proxy = proxy_for(link, server.local_addr()?).await?;
    let target = proxy
        .as_ref()
        .map_or(server.local_addr()?, ImpairProxy::local_addr);
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap())?;
    client.set_default_client_config(client_config);

    let accept = async {
        let conn = server
            .accept()
            .await
            .ok_or_else(|| io::Error::other("no incoming"))?
            .await?;
        io::Result::Ok(conn)
    };
    let connect = async {
        let c = client
            .connect(target, "localhost")
            .map_err(io::Error::other)?;
        io::Result::Ok(c.await?)
    };
    let (server_conn, client_conn) = tokio::try_join!(accept, connect)?;
    let send = async {
        let mut s = client_conn.open_uni().await?;
        let chunk = bytes::Bytes::from(vec![0x5a_u8; CHUNK]);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            s.write_chunk(chunk.slice(..n))
                .await
                .map_err(io::Error::other)?;
            left -= n as u64;
        }
        s.finish().map_err(io::Error::other)?;
        s.stopped().await.map_err(io::Error::other)?;
        Ok(())
    };
    let recv = async move {
        let mut r = server_conn.accept_uni().await?;
        let mut total = 0u64;
        while let Some(c) = r
            .read_chunk(usize::MAX, true)
            .await
            .map_err(io::Error::other)?
        {
            total += c.bytes.len() as u64;
        }
        Ok(total)
    };
    let out = timed(bytes, send, recv).await;
    client_conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    drop(proxy);
    out
}

async fn xtcp(
    link: Link,
    tls: bool,
    cc: Option<CongestionKind>,
    bytes: u64,
) -> io::Result<Outcome> {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut transport = rescue_xtcp::Config::default();
    if let Some(cc) = cc {
        transport.congestion = cc;
    }
    if std::env::var("XTCP_BENCH_NOPACE").is_ok() {
        transport.pacing = false;
    }
    let mut config = SocketConfig::default();
    config.transport = Arc::new(transport);
    let server = XtcpSocket::bind_with(any, config.clone())?;
    let proxy = proxy_for(link, server.local_addr()).await?;
    let target = proxy
        .as_ref()
        .map_or(server.local_addr(), ImpairProxy::local_addr);
    config.listen = false;
    let client = XtcpSocket::bind_with(any, config)?;
    let (c, s) = tokio::try_join!(client.connect(target), server.accept())?;
    let out = if tls {
        let (cert, key) = self_signed();
        let acceptor = TlsAcceptor::from(Arc::new(tls_server(&cert, &key)));
        let connector = TlsConnector::from(Arc::new(tls_client(&cert)));
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
        let (c, s) = tokio::try_join!(connector.connect(name, c), acceptor.accept(s))?;
        timed(bytes, send_all(c, bytes), recv_all(s)).await
    } else {
        let mut c = c;
        let out = timed(bytes, send_all(&mut c, bytes), recv_all(s)).await;
        if std::env::var("XTCP_BENCH_STATS").is_ok() {
            eprintln!("xtcp sender stats on {}: {:?}", link.name(), c.stats());
        }
        out
    };
    drop(proxy);
    out
}
