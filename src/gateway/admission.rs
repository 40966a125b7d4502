//! Connection slots: two pools and a per-source cap (PROTOCOL.md 4.3).
//!
//! Every accepted TCP connection first takes a slot of the *unauthenticated* pool
//! ([`GatewayLimits::max_pre_auth_connections`]; the accept loop waits for one, so
//! beyond it sockets wait in the kernel backlog) and counts against its source
//! ([`GatewayLimits::max_pre_auth_per_source`]; beyond it, the socket is closed at
//! once). It keeps them until it authenticates — an applet's REGISTER or REATTACH is
//! admitted, a console's certificate and HELLO are accepted — and then trades them for
//! a slot of the *authenticated* pool ([`GatewayLimits::max_connections`]), which a
//! flood of idle sockets therefore never reaches. All of it has one deadline from
//! accept ([`GatewayLimits::pre_auth_timeout`]).
//!
//! The slot travels with the hop's stream ([`Slotted`]): a console's hop handed to the
//! applet's task, or a hop moved between relays, keeps its slot until it is dropped.
//!
//! [`GatewayLimits::max_pre_auth_connections`]: crate::config::GatewayLimits::max_pre_auth_connections
//! [`GatewayLimits::max_pre_auth_per_source`]: crate::config::GatewayLimits::max_pre_auth_per_source
//! [`GatewayLimits::max_connections`]: crate::config::GatewayLimits::max_connections
//! [`GatewayLimits::pre_auth_timeout`]: crate::config::GatewayLimits::pre_auth_timeout

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use rescue_proto::wire::signal::ErrorCode;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::refusal::Refusal;
use crate::io::BoxStream;

/// The pools and per-source counts of one gateway.
pub(crate) struct Pools {
    pub(crate) pre_auth: Arc<Semaphore>,
    authenticated: Arc<Semaphore>,
    per_source: usize,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Pools {
    /// Pools of the given sizes (each at least one, at most what a semaphore counts).
    pub(crate) fn new(pre_auth: usize, authenticated: usize, per_source: usize) -> Self {
        let size = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            pre_auth: Arc::new(Semaphore::new(size(pre_auth))),
            authenticated: Arc::new(Semaphore::new(size(authenticated))),
            per_source: per_source.max(1),
            sources: Arc::default(),
        }
    }

    /// Counts a new unauthenticated connection from `peer` holding `permit`; `None`
    /// (and nothing counted) if its source is at its cap.
    pub(crate) fn admit(&self, peer: IpAddr, permit: OwnedSemaphorePermit) -> Option<ConnSlot> {
        let source = source_of(peer);
        let mut sources = lock(&self.sources);
        let n = sources.entry(source).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        *n += 1;
        drop(sources);
        let guard = SourceGuard {
            source,
            sources: self.sources.clone(),
        };
        Some(ConnSlot {
            state: Mutex::new(SlotState::PreAuth(permit, guard)),
            authenticated: self.authenticated.clone(),
        })
    }

    /// Unauthenticated connections counted for `peer`'s source (tests and logs).
    #[cfg(test)]
    pub(crate) fn count_of_source(&self, peer: IpAddr) -> usize {
        lock(&self.sources)
            .get(&source_of(peer))
            .copied()
            .unwrap_or(0)
    }
}

/// The source a connection counts against: an IPv4 address (an IPv4-mapped IPv6 address
/// counts as its IPv4 address), or the /64 prefix of an IPv6 address (one host or LAN
/// usually holds a whole /64, so counting addresses would not bound it).
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Uncounts a source when its connection authenticates or ends.
struct SourceGuard {
    source: IpAddr,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut sources = lock(&self.sources);
        if let Some(n) = sources.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sources.remove(&self.source);
            }
        }
    }
}

/// What a connection holds; the fields are held for their `Drop` (freeing the slot).
enum SlotState {
    PreAuth(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] SourceGuard,
    ),
    Authenticated(#[allow(dead_code)] OwnedSemaphorePermit),
}

/// The slot of one connection; dropping it frees the slot.
pub(crate) struct ConnSlot {
    state: Mutex<SlotState>,
    authenticated: Arc<Semaphore>,
}

/// The authenticated pool is full.
#[derive(Debug)]
pub(crate) struct PoolFull;

impl ConnSlot {
    /// Trades the unauthenticated slot for an authenticated one (no-op if done already).
    pub(crate) fn authenticate(&self) -> Result<(), PoolFull> {
        let mut state = lock(&self.state);
        if matches!(*state, SlotState::Authenticated(_)) {
            return Ok(());
        }
        let permit = self
            .authenticated
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolFull)?;
        // Dropping the old state frees the pre-auth slot and the source count.
        *state = SlotState::Authenticated(permit);
        Ok(())
    }
}

/// A hop's stream that holds its connection's slot for as long as the stream lives.
pub(crate) struct Slotted {
    inner: BoxStream,
    _slot: Arc<ConnSlot>,
}

impl Slotted {
    pub(crate) fn new(inner: BoxStream, slot: Arc<ConnSlot>) -> Self {
        Self { inner, _slot: slot }
    }
}

impl AsyncRead for Slotted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection carries from accept to its first request.
pub(crate) struct Conn {
    /// The one deadline for TLS, HELLO and the first request.
    pub(crate) deadline: Instant,
    /// The connection's slot (unauthenticated until [`Conn::authenticate`]).
    pub(crate) slot: Arc<ConnSlot>,
    /// The local address the connection arrived on (the default gateway name).
    pub(crate) local: Option<SocketAddr>,
    /// The source it counts against (an IPv4 address or an IPv6 /64).
    pub(crate) source: Option<IpAddr>,
}

impl Conn {
    /// Time left before the deadline.
    pub(crate) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Moves the connection to the authenticated pool; refused `overloaded` when full.
    pub(crate) fn authenticate(&self) -> Result<(), Refusal> {
        self.slot
            .authenticate()
            .map_err(|_| Refusal::new(ErrorCode::Overloaded, "gateway connection limit reached"))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters only; each update leaves them consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_source_is_capped_and_uncounted_when_its_connections_authenticate_or_end() {
        let pools = Pools::new(10, 1, 2);
        let permit = || pools.pre_auth.clone().try_acquire_owned().expect("permit");
        let a = pools.admit(ip("10.0.0.1"), permit()).expect("first");
        let b = pools.admit(ip("10.0.0.1"), permit()).expect("second");
        assert!(
            pools.admit(ip("10.0.0.1"), permit()).is_none(),
            "over the cap"
        );
        assert!(
            pools.admit(ip("10.0.0.2"), permit()).is_some(),
            "other source"
        );
        a.authenticate().expect("room");
        assert_eq!(pools.count_of_source(ip("10.0.0.1")), 1);
        assert!(b.authenticate().is_err(), "authenticated pool full");
        drop(b);
        assert_eq!(pools.count_of_source(ip("10.0.0.1")), 0);
        drop(a);
        let c = pools.admit(ip("10.0.0.1"), permit()).expect("again");
        c.authenticate().expect("slot freed");
    }

    #[test]
    fn ipv6_sources_are_their_64_bit_prefix_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            source_of(ip("2001:db8:1:2:aaaa::1")),
            source_of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_of(ip("2001:db8:1:2::1")),
            source_of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
