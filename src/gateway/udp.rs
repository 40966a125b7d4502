//! The gateway's UDP rendezvous (PROTOCOL.md 3.13): one UDP socket, the shared token
//! table (`rescue_proto::handoff::rendezvous`, sans-IO) and one [`RelayHook`] per
//! running relay.
//!
//! A console's RENDEZVOUS reaches the relay's hook, which draws two tokens, registers
//! them and hands the relay the two UDP_TOKEN frames (the relay puts them at frame
//! boundaries of each hop). The socket task reads probes, feeds the table and, when a
//! pair completes, queues the two PEER_ADDR frames on that relay's inbox (never waiting:
//! a full inbox drops them, counted). What it never does: it never sends a UDP
//! datagram, never holds the table's lock across an await or any I/O, and never lets
//! one session's rendezvous reach another's relay.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rescue_proto::handoff::rendezvous::{Limits, ProbeAccepted, RendezvousTable, StartError};
use rescue_proto::wire::limits::PROBE_LEN;
use rescue_proto::wire::signal::{Message, PeerAddr, RendezvousToken, UdpToken};
use rescue_proto::Role;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stats::{Counters, RendezvousCounters};
use crate::relay::{Control, RelaySignals, Side};

/// Frames queued for one relay by the socket task: one PEER_ADDR per hop per
/// rendezvous, and one rendezvous runs at a time per session.
const RELAY_INBOX: usize = 2;

/// How often the socket task forgets expired tokens and source windows (the table
/// keeps what it must refuse as stale for one more token lifetime).
const EXPIRE_INTERVAL: Duration = Duration::from_secs(1);

/// Receive buffer: one byte more than a probe, so that a longer datagram shows as
/// longer (and is refused) without reading it all.
const RECV_BUFFER: usize = PROBE_LEN + 1;

type Inbox = mpsc::Sender<(Side, Control)>;
type Table = RendezvousTable<u64, Inbox>;

/// The rendezvous state of one gateway.
pub(crate) struct Udp {
    socket: Arc<UdpSocket>,
    port: u16,
    table: Mutex<Table>,
    next_key: AtomicU64,
}

impl Udp {
    /// Binds the rendezvous socket.
    pub(crate) fn bind(addr: SocketAddr, limits: Limits) -> std::io::Result<Self> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        let port = socket.local_addr()?.port();
        Ok(Self {
            socket: Arc::new(socket),
            port,
            table: Mutex::new(RendezvousTable::new(limits)),
            next_key: AtomicU64::new(1),
        })
    }

    /// The socket's address.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every table method leaves it consistent before it can panic (it does not, on
        // any input), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hook for a relay that starts now.
    pub(crate) fn hook(self: &Arc<Self>, stats: Arc<RendezvousCounters>) -> RelayHook {
        let (tx, rx) = mpsc::channel(RELAY_INBOX);
        RelayHook {
            udp: self.clone(),
            key: self.next_key.fetch_add(1, Ordering::Relaxed),
            tx,
            rx,
            stats,
        }
    }
}

/// One relay's end of the rendezvous; its tokens are forgotten when it is dropped.
pub(crate) struct RelayHook {
    udp: Arc<Udp>,
    key: u64,
    tx: Inbox,
    rx: mpsc::Receiver<(Side, Control)>,
    stats: Arc<RendezvousCounters>,
}

/// The relay's hop A is the applet, hop B the console (`reattach::relay_session`).
fn role_of(hop: Side) -> Role {
    match hop {
        Side::A => Role::Applet,
        Side::B => Role::Console,
    }
}

fn udp_token(token: &RendezvousToken, port: u16) -> Option<Control> {
    let msg = Message::UdpToken(UdpToken {
        token: token.clone(),
        port,
    });
    Control::new(&msg)
}

impl RelaySignals for RelayHook {
    fn rendezvous(&mut self, from: Side) -> Option<[Control; 2]> {
        Counters::bump(&self.stats.requests);
        let answered = self.start(from);
        if answered.is_none() {
            Counters::bump(&self.stats.requests_ignored);
        }
        answered
    }

    fn poll_insert(&mut self, cx: &mut Context<'_>) -> Poll<(Side, Control)> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(x)) => Poll::Ready(x),
            // The hook holds a sender itself: the channel never closes while it lives.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl RelayHook {
    fn start(&mut self, from: Side) -> Option<[Control; 2]> {
        let role = role_of(from);
        if role != Role::Console {
            // Refused before any random number is drawn.
            tracing::debug!("RENDEZVOUS from the applet ignored");
            return None;
        }
        let tokens = [random_token()?, random_token()?];
        let frames = [
            udp_token(&tokens[0], self.udp.port)?,
            udp_token(&tokens[1], self.udp.port)?,
        ];
        let started =
            self.udp
                .lock()
                .start(Instant::now(), self.key, role, self.tx.clone(), tokens);
        match started {
            Ok(()) => {
                Counters::add(&self.stats.tokens_issued, 2);
                tracing::debug!("rendezvous started");
                Some(frames)
            }
            Err(e @ (StartError::InProgress | StartError::TooSoon | StartError::TableFull)) => {
                tracing::debug!(error = %e, "RENDEZVOUS ignored");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "RENDEZVOUS ignored");
                None
            }
        }
    }
}

impl Drop for RelayHook {
    fn drop(&mut self) {
        self.udp.lock().end(self.key);
    }
}

/// A fresh token from the OS CSPRNG (`None` if the generator fails).
fn random_token() -> Option<RendezvousToken> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(RendezvousToken::from_bytes(bytes))
}

fn peer_addr(addr: SocketAddr) -> Option<Control> {
    Control::new(&Message::PeerAddr(PeerAddr { addr }))
}

/// Reads the rendezvous socket until shutdown.
pub(crate) async fn serve(udp: Arc<Udp>, stats: Arc<RendezvousCounters>, stop: CancellationToken) {
    let mut buf = [0u8; RECV_BUFFER];
    let mut tick = tokio::time::interval(EXPIRE_INTERVAL);
    loop {
        let (n, src) = tokio::select! {
            r = udp.socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors and the like: nothing to do with this datagram.
                    tracing::debug!(error = %e, "rendezvous socket receive failed");
                    continue;
                }
            },
            _ = tick.tick() => {
                udp.lock().expire(Instant::now());
                continue;
            }
            _ = stop.cancelled() => return,
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let outcome = udp.lock().probe(Instant::now(), datagram, src);
        match outcome {
            Ok(ProbeAccepted::Waiting { .. }) => Counters::bump(&stats.probes_accepted),
            Ok(ProbeAccepted::Complete {
                owner,
                applet,
                console,
                ..
            }) => {
                Counters::bump(&stats.probes_accepted);
                Counters::bump(&stats.pairs_completed);
                // The applet learns the console's address and the other way round.
                for (hop, addr) in [(Side::A, console), (Side::B, applet)] {
                    let sent = peer_addr(addr).is_some_and(|f| owner.try_send((hop, f)).is_ok());
                    if !sent {
                        Counters::bump(&stats.peer_addr_dropped);
                    }
                }
                tracing::debug!(%applet, %console, "rendezvous pair complete");
            }
            Err(e) => {
                tracing::trace!(%src, error = %e, "datagram dropped");
                stats.refused(e);
            }
            Ok(_) => {}
        }
    }
}
