//! The tokio driver: [`XtcpSocket`] and [`XtcpStream`] on quinn-udp.
//!
//! One UDP socket carries many connections. One driver task per socket feeds received
//! datagrams to the sans-IO [`crate::Endpoint`], sends what it produces (GSO batches where
//! the kernel has them), fires its timers (checking the clock before arming the sleep) and
//! wakes the streams. The streams share the endpoint with the driver through an
//! `Arc<Mutex<..>>` and wakers, as quinn's streams do.
//!
//! Start from [`XtcpSocket::bind`], then [`XtcpSocket::connect`] or
//! [`XtcpSocket::accept`]. This module never interprets segments itself, never retries a
//! datagram (the core does) and never blocks a tokio worker on I/O.
//!
//! [`impair`] is a test tool on the same UDP layer: a userspace `netem` proxy for the
//! real-socket tests and benchmarks.

use std::sync::Arc;
use std::time::Duration;

use crate::Config;

mod driver;
pub mod impair;
mod socket;
mod stream;
pub(crate) mod udp;

pub use socket::XtcpSocket;
pub use stream::XtcpStream;

/// How long [`XtcpSocket::connect`] waits for the handshake by default: long enough for
/// several SYN retransmissions, short enough that a dead path is noticed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most datagrams in one GSO send (also capped so the batch fits one UDP payload, and
/// by what the kernel allows). The pacer still bounds bursts; 10 (quinn's old choice)
/// cost a third of the loopback throughput in syscalls, 64 is the kernel's limit.
pub const MAX_TRANSMIT_SEGMENTS: usize = 64;

/// How long a socket whose handles and streams are all gone keeps driving its remaining
/// connections so their FINs and last data get through; then they are reset.
pub const LINGER: Duration = Duration::from_secs(5);

/// How an [`XtcpSocket`] is set up.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SocketConfig {
    /// Configuration of the endpoint and its connections.
    pub transport: Arc<Config>,
    /// Accept incoming connections (SYNs from unknown peers).
    pub listen: bool,
    /// Use GSO when the kernel has it (false: one datagram per `sendmsg`).
    pub gso: bool,
    /// How long [`XtcpSocket::connect`] waits for the handshake.
    pub connect_timeout: Duration,
    /// Seed of the endpoint's RNG (connection ids, initial sequence numbers); `None`
    /// draws one from the operating system. Fix it only in tests.
    pub seed: Option<u64>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            transport: Arc::new(Config::default()),
            listen: true,
            gso: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            seed: None,
        }
    }
}

impl SocketConfig {
    /// The defaults with `listen` set as given.
    pub fn listening(listen: bool) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }
}
