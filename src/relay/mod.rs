//! The gateway's relay core: forwards DATA frames between two paired hops.
//!
//! After `PAIRED`, [`relay`] drives both directions of one session in a single future.
//! DATA frames (PROTOCOL.md section 2) are forwarded verbatim, header and all, and
//! cut-through: payload bytes go out as they arrive, while the core tracks how much of
//! the current frame is still to come. Control frames stay between the peer and the
//! gateway: PING is answered with PONG on the same hop, PONG is absorbed, CLOSE ends
//! the session (the other hop gets CLOSE), and any other frame type is a protocol
//! violation (the offender gets ERROR, the other hop gets PEER_GONE). The gateway's
//! relay also takes RENDEZVOUS (PROTOCOL.md 3.13) and inserts UDP_TOKEN and PEER_ADDR
//! frames at frame boundaries of either hop, through a signalling hook (the gateway's); the DATA
//! path does not change (a control frame waits for the boundary, as a PONG does).
//!
//! What it never does: it never decrypts, inspects or rewrites DATA payloads, never
//! buffers more than one fixed [`RELAY_BUFFER`] per direction plus one small control
//! frame per hop (a slow reader stalls the writer side instead), never waits without a
//! timeout ([`RelayLimits`]), and never panics on peer input.
//!
//! Start from [`relay`], [`RelayLimits`] and [`RelayStats`].

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) use frame::Control;
use std::time::Duration;

use rescue_proto::Guid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::core::Core;
use rescue_proto::wire::signal::ErrorCode;

/// Bytes buffered per direction. Large buffers make large reads and writes, which is
/// what keeps a userspace relay near the kernel's speed (docs/PERFORMANCE.md); the
/// buffer must also hold one whole control frame behind a maximal DATA frame.
pub const RELAY_BUFFER: usize = 256 * 1024;
const _: () = assert!(RELAY_BUFFER >= frame::MAX_FRAME_LEN + frame::CONTROL_FRAME_MAX);

/// Default idle timeout: PROTOCOL.md section 5 (`IDLE_TIMEOUT`, three missed pings).
pub const IDLE_TIMEOUT: Duration = rescue_proto::wire::limits::IDLE_TIMEOUT;

/// Default maximum lifetime of one relayed session: long unattended support sessions
/// exist, but no relay slot is held for more than a day.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Default time allowed, once a session ends, to finish the current frame and deliver
/// the final control frames; a hop that does not read within it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Polls one direction at most this many times in a row before yielding, so that one
/// busy direction cannot starve the other or the timers.
const MAX_SPINS: usize = 32;

/// Limits of one relayed session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayLimits {
    /// The session ends when neither hop sent a byte for this long.
    pub idle_timeout: Duration,
    /// The session ends this long after it started, whatever the traffic.
    pub max_lifetime: Duration,
    /// Time allowed to finish the current frame and send the final frames at the end.
    pub close_grace: Duration,
    /// Optional rate limit, in bytes per second, applied to each direction separately.
    pub rate_limit: Option<u64>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            idle_timeout: IDLE_TIMEOUT,
            max_lifetime: MAX_LIFETIME,
            close_grace: CLOSE_GRACE,
            rate_limit: None,
        }
    }
}

impl RelayLimits {
    /// Sets the idle timeout.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets the maximum lifetime.
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Sets the close grace period.
    pub fn with_close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Sets (or with `None` removes) the per-direction rate limit in bytes per second.
    pub fn with_rate_limit(mut self, bytes_per_second: Option<u64>) -> Self {
        self.rate_limit = bytes_per_second;
        self
    }
}

/// One of the two sides of a relayed session: which of the two streams passed to
/// [`relay`] (a gateway's framed connection to one peer is a hop; this names which
/// argument of the relay it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// The first stream argument of [`relay`].
    A,
    /// The second stream argument of [`relay`].
    B,
}

impl Side {
    /// The other hop.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Why a relayed session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A hop sent a frame that is not allowed after pairing, or a malformed one; it was
    /// sent ERROR and the other hop PEER_GONE.
    #[error("protocol violation by hop {hop:?}: {violation}")]
    Protocol {
        /// The hop that sent the frame.
        hop: Side,
        /// What was wrong with it.
        violation: FrameViolation,
    },
    /// Neither hop sent a byte for [`RelayLimits::idle_timeout`]; both were sent
    /// `CLOSE{IdleTimeout}`.
    #[error("no traffic for {0:?}")]
    IdleTimeout(Duration),
    /// The session reached [`RelayLimits::max_lifetime`]; both hops were sent
    /// `ERROR{Timeout}`.
    #[error("session lifetime of {0:?} reached")]
    LifetimeExceeded(Duration),
}

/// How a relayed session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEnd {
    /// The hop sent CLOSE; the other hop was sent the same CLOSE (same reason).
    Closed(Side),
    /// The hop's stream ended or failed without CLOSE; the other hop was sent PEER_GONE.
    Vanished(Side),
    /// The hop sent ERROR (fatal for its connection); the other hop was sent PEER_GONE.
    PeerError {
        /// The hop that sent ERROR.
        hop: Side,
        /// Its error code.
        code: ErrorCode,
    },
    /// The caller's cancellation token fired; both hops were sent `ERROR{ShuttingDown}`.
    Shutdown,
    /// The session failed; see the error for who was told what.
    Failed(RelayError),
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    /// DATA bytes forwarded to the other hop, headers included.
    pub bytes: u64,
    /// DATA frames whose header was forwarded.
    pub data_frames: u64,
    /// PINGs received from the reading hop (each answered with PONG).
    pub pings: u64,
}

/// What a relayed session did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Traffic from hop A to hop B.
    pub a_to_b: DirectionStats,
    /// Traffic from hop B to hop A.
    pub b_to_a: DirectionStats,
    /// Why the session ended.
    pub end: RelayEnd,
    /// True when the close grace period ran out before both write sides were shut down
    /// (the final frames may not have been delivered).
    pub forced: bool,
    /// How long the session lasted.
    pub duration: Duration,
}

impl RelayStats {
    /// The error that ended the session, if it failed.
    pub fn error(&self) -> Option<&RelayError> {
        match &self.end {
            RelayEnd::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Relays one paired session between hops `a` and `b` until it ends.
///
/// Runs inside a `relay` tracing span carrying `guid` shortened ([`Guid::short`]: the
/// full GUID is the session's verification code and stays out of logs). Ends when a hop sends CLOSE or
/// vanishes, on a protocol violation, on a limit of `limits`, or when `shutdown` is
/// cancelled; the final frames are then delivered within [`RelayLimits::close_grace`]
/// and both write sides are shut down. Never returns before the session ended.
pub async fn relay<A, B>(
    a: A,
    b: B,
    guid: Guid,
    limits: &RelayLimits,
    shutdown: CancellationToken,
) -> RelayStats
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::info_span!("relay", guid = %guid.short());
    run(a, b, limits, shutdown, None, None)
        .instrument(span)
        .await
        .0
}

/// Reattach mode of [`run`]: the survivor's PEER_GONE, and a hop displaced by a REATTACH.
type ReattachMode<'a> = (
    frame::Control,
    Pin<Box<dyn Future<Output = Side> + Send + 'a>>,
);

/// The hop that stayed when the other vanished, handed back by [`relay_reattachable`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Survivor<A, B> {
    /// Side A stayed.
    A {
        /// Its stream, positioned at a frame boundary.
        stream: A,
        /// Bytes already read from it after that boundary: read them first.
        read_ahead: Vec<u8>,
    },
    /// Side B stayed.
    B {
        /// Its stream, positioned at a frame boundary.
        stream: B,
        /// Bytes already read from it after that boundary: read them first.
        read_ahead: Vec<u8>,
    },
}

impl<A, B> Survivor<A, B> {
    /// Which hop stayed.
    pub fn hop(&self) -> Side {
        match self {
            Survivor::A { .. } => Side::A,
            Survivor::B { .. } => Side::B,
        }
    }
}

/// [`relay`] in reattach mode: when one hop vanishes (EOF, reset, or a write to it
/// fails; not CLOSE or ERROR), the other is kept for a REATTACH (PROTOCOL.md 3.12).
///
/// The survivor is sent everything already checked from the lost hop; a DATA frame the
/// lost hop was in the middle of is completed with zero bytes, so that the survivor's
/// framing stays intact (its end-to-end TLS on this path fails on that record, which is
/// why a resumed session runs a new one and RESUME replays what was lost). Then it gets
/// `PEER_GONE{grace_secs}`. A DATA frame the survivor was sending is read to its end and
/// dropped. Nothing is written to the survivor after PEER_GONE and nothing read from it
/// after the frame boundary is lost: it comes back in [`Survivor`]'s `read_ahead`.
///
/// Returns the survivor when the relay ended with [`RelayEnd::Vanished`] and the
/// survivor took its final frames within [`RelayLimits::close_grace`]; `None` otherwise
/// (both hops are then dropped, as [`relay`] does).
pub async fn relay_reattachable<A, B>(
    a: A,
    b: B,
    guid: Guid,
    limits: &RelayLimits,
    shutdown: CancellationToken,
    grace: Duration,
) -> (RelayStats, Option<Survivor<A, B>>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let lost = std::future::pending();
    relay_reattachable_until(a, b, guid, limits, shutdown, grace, lost).await
}

/// [`relay_reattachable`], where `displaced` resolving to a hop treats that hop as
/// vanished although its stream still works (a REATTACH of its party replaced it): it
/// is handed back nowhere and dropped, the other hop survives.
pub async fn relay_reattachable_until<A, B, F>(
    a: A,
    b: B,
    guid: Guid,
    limits: &RelayLimits,
    shutdown: CancellationToken,
    grace: Duration,
    displaced: F,
) -> (RelayStats, Option<Survivor<A, B>>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Side> + Send,
{
    let ctx = (guid, limits, shutdown, grace);
    relay_with_signals(a, b, ctx, displaced, None).await
}

/// What the gateway's relay needs besides the hops: the session, its limits, the
/// shutdown token and the reattach grace.
pub(crate) type RelayContext<'l> = (Guid, &'l RelayLimits, CancellationToken, Duration);

/// [`relay_reattachable_until`] with the gateway's signalling hook: RENDEZVOUS is
/// handed to `signals`, and the frames it yields are inserted at frame boundaries.
pub(crate) async fn relay_with_signals<'s, A, B, F>(
    a: A,
    b: B,
    (guid, limits, shutdown, grace): RelayContext<'_>,
    displaced: F,
    signals: Option<Box<dyn RelaySignals + 's>>,
) -> (RelayStats, Option<Survivor<A, B>>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Side> + Send,
{
    let span = tracing::info_span!("relay", guid = %guid.short());
    let gone = frame::peer_gone_for(grace);
    let displaced: Pin<Box<dyn Future<Output = Side> + Send + '_>> = Box::pin(displaced);
    let (stats, core) = run(a, b, limits, shutdown, Some((gone, displaced)), signals)
        .instrument(span)
        .await;
    let survivor = core.into_survivor(stats.forced);
    (stats, survivor)
}

/// The gateway's side of the in-relay signalling (PROTOCOL.md 3.13). Both calls are
/// synchronous and short: the relay holds no lock and awaits nothing across them.
pub(crate) trait RelaySignals: Send {
    /// A RENDEZVOUS came from `from`: the UDP_TOKEN frames for hop A and hop B, or
    /// `None` when it is not answered (it is then ignored).
    fn rendezvous(&mut self, from: Side) -> Option<[Control; 2]>;
    /// A frame to insert on a hop (PEER_ADDR), when one is ready.
    fn poll_insert(&mut self, cx: &mut Context<'_>) -> Poll<(Side, Control)>;
}

async fn run<'s, A, B>(
    a: A,
    b: B,
    limits: &RelayLimits,
    shutdown: CancellationToken,
    reattach: Option<ReattachMode<'_>>,
    signals: Option<Box<dyn RelaySignals + 's>>,
) -> (RelayStats, Core<'s, A, B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut core = Core::new(a, b, limits, start, signals.is_some());
    core.signals = signals;
    let mut displaced = None;
    if let Some((gone, d)) = reattach {
        core.reattach = Some(gone);
        displaced = Some(d);
    }
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let mut timers = Timers {
        idle: Box::pin(tokio::time::sleep_until(start + limits.idle_timeout)),
        lifetime: Box::pin(tokio::time::sleep_until(start + limits.max_lifetime)),
        grace: None,
    };
    let grace_over = poll_fn(|cx| {
        if core.end.is_none() {
            if let Some(Poll::Ready(hop)) = displaced.as_mut().map(|d| d.as_mut().poll(cx)) {
                displaced = None;
                core.detach(hop);
            }
        }
        if core.end.is_none() {
            let end = timers.poll_limits(cx, &core.activity(), limits, cancelled.as_mut());
            if let Some(end) = end {
                core.begin_end(end);
            }
        }
        if core.poll_io(cx).is_ready() {
            return Poll::Ready(false);
        }
        // The end may have come from the I/O just polled: arm the grace timer now.
        if core.end.is_some() && timers.grace.is_none() {
            timers.grace = Some(Box::pin(tokio::time::sleep(limits.close_grace)));
        }
        match timers.grace.as_mut().map(|g| g.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(true),
            _ => Poll::Pending,
        }
    })
    .await;
    let forced = !(core.ab.is_done() && core.ba.is_done());
    if grace_over {
        tracing::debug!(forced, "close grace period over, dropping both hops");
    }
    let stats = core.stats(forced, start.elapsed());
    tracing::info!(
        a_to_b = stats.a_to_b.bytes,
        b_to_a = stats.b_to_a.bytes,
        end = ?stats.end,
        "relay ended"
    );
    (stats, core)
}

/// The three session timers and the grace timer.
struct Timers {
    idle: Pin<Box<Sleep>>,
    lifetime: Pin<Box<Sleep>>,
    grace: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    /// Polls the cancellation token and the limit timers; returns the end they call for.
    fn poll_limits(
        &mut self,
        cx: &mut Context<'_>,
        last_activity: &dyn Fn() -> Instant,
        limits: &RelayLimits,
        cancelled: Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    ) -> Option<RelayEnd> {
        if cancelled.poll(cx).is_ready() {
            return Some(RelayEnd::Shutdown);
        }
        if self.lifetime.as_mut().poll(cx).is_ready() {
            return Some(RelayEnd::Failed(RelayError::LifetimeExceeded(
                limits.max_lifetime,
            )));
        }
        // The deadline moves with traffic; it is re-armed lazily, when it fires, rather
        // than on every read.
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = last_activity() + limits.idle_timeout;
            if deadline <= Instant::now() {
                return Some(RelayEnd::Failed(RelayError::IdleTimeout(
                    limits.idle_timeout,
                )));
            }
            self.idle.as_mut().reset(deadline);
        }
        None
    }
}

mod core;
mod dir;
pub(crate) mod frame;
mod outbox;
mod throttle;

pub use rescue_proto::wire::scan::FrameViolation;

#[cfg(test)]
mod tests;
