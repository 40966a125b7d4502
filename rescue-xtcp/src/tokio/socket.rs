//! [`XtcpSocket`]: one UDP socket, many XTCP connections.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::driver::{ConnSlot, Driver, Shared, State};
use super::stream::XtcpStream;
use super::udp::UdpIo;
use super::SocketConfig;
use crate::Endpoint;

/// Room for the segment header on top of the MSS when sizing receive buffers.
const HEADER_ROOM: usize = 256;

/// A UDP socket carrying XTCP connections, with its driver task.
///
/// Cloning gives another handle to the same socket. The driver runs while a handle or a
/// stream is alive, then lingers up to [`super::LINGER`] so the last FINs get out.
#[derive(Debug)]
pub struct XtcpSocket {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    connect_timeout: Duration,
}

impl XtcpSocket {
    /// Binds `addr` with the default configuration (listening for connections).
    /// Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, SocketConfig::default())
    }

    /// Binds `addr` with `config` and spawns the driver task.
    pub fn bind_with(addr: SocketAddr, config: SocketConfig) -> io::Result<Self> {
        Self::with_udp(UdpIo::bind(addr, config.gso)?, config)
    }

    /// Takes over a UDP socket that is bound already and spawns the driver task: the
    /// caller may have used it for datagrams of its own (a NAT rendezvous probe, say), so
    /// that the NAT mapping made for its address and port carries the connections.
    /// Datagrams queued on it before the call are read as XTCP segments (anything else
    /// is dropped as garbage). Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
    ///
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// udp.send_to(b"hello", "127.0.0.1:9")?; // our own datagram first
    /// let local = udp.local_addr()?;
    /// let socket = XtcpSocket::from_std(udp, SocketConfig::listening(false))?;
    /// assert_eq!(socket.local_addr(), local);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_std(udp: std::net::UdpSocket, config: SocketConfig) -> io::Result<Self> {
        Self::with_udp(UdpIo::from_std(udp, config.gso)?, config)
    }

    fn with_udp(udp: UdpIo, config: SocketConfig) -> io::Result<Self> {
        let local_addr = udp.local_addr()?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let max_payload =
            usize::from(config.transport.mss.max(config.transport.max_mss)) + HEADER_ROOM;
        let mut endpoint = Endpoint::new(config.transport, seed);
        endpoint.set_listening(config.listen);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoint,
                conns: HashMap::new(),
                accepted: VecDeque::new(),
                accept_waker: None,
                driver: None,
                sockets: 1,
                stopped: false,
            }),
            udp,
        });
        ::tokio::spawn(Driver::new(shared.clone(), max_payload));
        Ok(Self {
            shared,
            local_addr,
            connect_timeout: config.connect_timeout,
        })
    }

    /// The local address of the UDP socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a connection to `remote` and waits for the handshake, at most the
    /// configured connect timeout (`TimedOut`). When the peer connects to this socket
    /// at the same time, the two SYNs make one connection (simultaneous open).
    pub async fn connect(&self, remote: SocketAddr) -> io::Result<XtcpStream> {
        let handle = {
            let mut state = self.shared.lock();
            if state.stopped {
                return Err(io::ErrorKind::NotConnected.into());
            }
            let h = state
                .endpoint
                .connect(Instant::now(), remote)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            state.conns.insert(h, ConnSlot::default());
            state.wake_driver();
            h
        };
        // Until the stream exists, a failure must release the slot itself.
        let stream = XtcpStream::new(self.shared.clone(), handle, remote);
        let wait = poll_fn(|cx| {
            let mut state = self.shared.lock();
            let Some(slot) = state.conns.get_mut(&handle) else {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
            };
            if let Some(reason) = &slot.closed {
                return Poll::Ready(Err(super::stream::close_error(reason)));
            }
            if slot.connected {
                return Poll::Ready(Ok(()));
            }
            slot.connect = Some(cx.waker().clone());
            Poll::Pending
        });
        match ::tokio::time::timeout(self.connect_timeout, wait).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                stream.abort();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "XTCP handshake timed out",
                ))
            }
        }
    }

    /// Waits for an incoming connection (the socket must be listening).
    pub async fn accept(&self) -> io::Result<XtcpStream> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some(h) = state.accepted.pop_front() {
                let remote = state
                    .endpoint
                    .connection(h)
                    .map(|c| c.remote())
                    .unwrap_or(self.local_addr);
                return Poll::Ready(Ok(XtcpStream::new(self.shared.clone(), h, remote)));
            }
            if state.stopped {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            }
            state.accept_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Datagrams the kernel refused to send since the socket was bound.
    pub fn send_errors(&self) -> u64 {
        self.shared.udp.send_errors()
    }
}

impl Clone for XtcpSocket {
    fn clone(&self) -> Self {
        self.shared.lock().sockets += 1;
        Self {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
            connect_timeout: self.connect_timeout,
        }
    }
}

impl Drop for XtcpSocket {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.sockets = state.sockets.saturating_sub(1);
        state.wake_driver();
    }
}
