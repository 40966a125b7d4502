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

use dir::{Dir, DirEvent, Outbox};
use rescue_proto::wire::signal::{CloseReason, ErrorCode};

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

/// One of the two hops passed to [`relay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hop {
    /// The first stream argument of [`relay`].
    A,
    /// The second stream argument of [`relay`].
    B,
}

impl Hop {
    /// The other hop.
    pub fn other(self) -> Hop {
        match self {
            Hop::A => Hop::B,
            Hop::B => Hop::A,
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
        hop: Hop,
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
    Closed(Hop),
    /// The hop's stream ended or failed without CLOSE; the other hop was sent PEER_GONE.
    Vanished(Hop),
    /// The hop sent ERROR (fatal for its connection); the other hop was sent PEER_GONE.
    PeerError {
        /// The hop that sent ERROR.
        hop: Hop,
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
/// Runs inside a `relay` tracing span carrying `guid`. Ends when a hop sends CLOSE or
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
    let span = tracing::info_span!("relay", %guid);
    run(a, b, limits, shutdown, None, None)
        .instrument(span)
        .await
        .0
}

/// Reattach mode of [`run`]: the survivor's PEER_GONE, and a hop displaced by a REATTACH.
type ReattachMode<'a> = (
    frame::Control,
    Pin<Box<dyn Future<Output = Hop> + Send + 'a>>,
);

/// The hop that stayed when the other vanished, handed back by [`relay_reattachable`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Survivor<A, B> {
    /// Hop A stayed.
    A {
        /// Its stream, positioned at a frame boundary.
        stream: A,
        /// Bytes already read from it after that boundary: read them first.
        read_ahead: Vec<u8>,
    },
    /// Hop B stayed.
    B {
        /// Its stream, positioned at a frame boundary.
        stream: B,
        /// Bytes already read from it after that boundary: read them first.
        read_ahead: Vec<u8>,
    },
}

impl<A, B> Survivor<A, B> {
    /// Which hop stayed.
    pub fn hop(&self) -> Hop {
        match self {
            Survivor::A { .. } => Hop::A,
            Survivor::B { .. } => Hop::B,
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
    F: Future<Output = Hop> + Send,
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
    F: Future<Output = Hop> + Send,
{
    let span = tracing::info_span!("relay", %guid);
    let gone = frame::peer_gone_for(grace);
    let displaced: Pin<Box<dyn Future<Output = Hop> + Send + '_>> = Box::pin(displaced);
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
    fn rendezvous(&mut self, from: Hop) -> Option<[Control; 2]>;
    /// A frame to insert on a hop (PEER_ADDR), when one is ready.
    fn poll_insert(&mut self, cx: &mut Context<'_>) -> Poll<(Hop, Control)>;
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
    let mut core = Core::new(a, b, limits, start);
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

/// Both directions of one session and the two hops.
struct Core<'s, A, B> {
    a: A,
    b: B,
    /// Reads hop A, writes hop B.
    ab: Dir,
    /// Reads hop B, writes hop A.
    ba: Dir,
    /// Control frames waiting to be written to hop A.
    out_a: Outbox,
    /// Control frames waiting to be written to hop B.
    out_b: Outbox,
    end: Option<RelayEnd>,
    /// Reattach mode: the PEER_GONE a survivor gets (`None`: a vanished hop ends all).
    reattach: Option<frame::Control>,
    /// Reattach mode: the hop that vanished (the other is being kept).
    detached: Option<Hop>,
    /// The gateway's signalling hook (RENDEZVOUS, UDP_TOKEN, PEER_ADDR).
    signals: Option<Box<dyn RelaySignals + 's>>,
    /// A frame from the hook waiting for room in its hop's outbox.
    insert: Option<(Hop, Control)>,
}

impl<A, B> Core<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    fn new(a: A, b: B, limits: &RelayLimits, now: Instant) -> Self {
        Self {
            a,
            b,
            ab: Dir::new(limits.rate_limit, now),
            ba: Dir::new(limits.rate_limit, now),
            out_a: Outbox::default(),
            out_b: Outbox::default(),
            end: None,
            reattach: None,
            detached: None,
            signals: None,
            insert: None,
        }
    }

    /// Moves frames from the signalling hook into the outboxes while there is room.
    fn poll_inserts(&mut self, cx: &mut Context<'_>) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        if self.end.is_some() {
            return;
        }
        loop {
            let (hop, frame) = match self.insert.take() {
                Some(x) => x,
                None => match signals.poll_insert(cx) {
                    Poll::Ready(x) => x,
                    Poll::Pending => return,
                },
            };
            let outbox = match hop {
                Hop::A => &mut self.out_a,
                Hop::B => &mut self.out_b,
            };
            if !outbox.put(frame) {
                // Re-polled when the outbox drains (a write is progress).
                self.insert = Some((hop, frame));
                return;
            }
        }
    }

    /// A RENDEZVOUS from `hop`: its UDP_TOKENs go out at the next frame boundaries.
    fn on_rendezvous(&mut self, hop: Hop) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        if let Some([to_a, to_b]) = signals.rendezvous(hop) {
            // The scan made sure both outboxes have room.
            let queued = self.out_a.put(to_a) & self.out_b.put(to_b);
            debug_assert!(queued, "UDP_TOKEN found no room");
        }
    }

    /// The surviving hop, if the session ended by a detach that completed in time.
    fn into_survivor(self, forced: bool) -> Option<Survivor<A, B>> {
        let lost = self.detached?;
        if forced || self.ab.is_lost() || self.ba.is_lost() {
            return None;
        }
        Some(match lost {
            Hop::B => Survivor::A {
                read_ahead: self.ab.read_ahead(),
                stream: self.a,
            },
            Hop::A => Survivor::B {
                read_ahead: self.ba.read_ahead(),
                stream: self.b,
            },
        })
    }

    /// Reattach mode: keeps the hop other than `lost`. The direction reading `lost`
    /// seals what goes to the survivor; the one reading the survivor skips to a frame
    /// boundary. `false` when not in reattach mode or the session is already ending.
    fn detach(&mut self, lost: Hop) -> bool {
        let Some(gone) = self.reattach else {
            return false;
        };
        if self.end.is_some() {
            return false;
        }
        let (from_lost, from_survivor) = match lost {
            Hop::A => (&mut self.ab, &mut self.ba),
            Hop::B => (&mut self.ba, &mut self.ab),
        };
        tracing::debug!(?lost, "hop vanished, keeping the other for a reattach");
        from_lost.seal(gone);
        from_survivor.skip();
        self.detached = Some(lost);
        self.end = Some(RelayEnd::Vanished(lost));
        true
    }

    /// Drives both directions; ready when both are done.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_SPINS {
            self.poll_inserts(cx);
            let ops = self.out_a.ops() + self.out_b.ops();
            let signals = self.signals.is_some();
            let ab = self.ab.poll(
                cx,
                Pin::new(&mut self.a),
                Pin::new(&mut self.b),
                &mut self.out_b,
                &mut self.out_a,
                signals,
            );
            if let Poll::Ready(ev) = ab {
                self.on_event(Hop::A, ev);
                continue;
            }
            let ba = self.ba.poll(
                cx,
                Pin::new(&mut self.b),
                Pin::new(&mut self.a),
                &mut self.out_a,
                &mut self.out_b,
                signals,
            );
            if let Poll::Ready(ev) = ba {
                self.on_event(Hop::B, ev);
                continue;
            }
            if self.ab.is_done() && self.ba.is_done() {
                if self.detached.is_some() {
                    // The survivor stays open: no shutdown, no linger.
                    return Poll::Ready(());
                }
                return self.poll_linger(cx);
            }
            // A control frame was queued or sent: the other direction may now proceed.
            if self.out_a.ops() + self.out_b.ops() == ops {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Both write sides are shut down: reads (and discards) until both hops close, so
    /// that closing a socket with unread bytes does not reset the connection and destroy
    /// the final frames in flight. Bounded by the close grace period.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let a = self.ab.poll_discard(cx, Pin::new(&mut self.a));
        let b = self.ba.poll_discard(cx, Pin::new(&mut self.b));
        if a.is_ready() && b.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Reacts to an event of the direction that reads `hop`.
    fn on_event(&mut self, hop: Hop, ev: DirEvent) {
        if matches!(ev, DirEvent::Rendezvous) {
            self.on_rendezvous(hop);
            return;
        }
        let lost = match &ev {
            DirEvent::ReadEnded { .. } => Some(hop),
            DirEvent::WriteFailed(_) => Some(hop.other()),
            _ => None,
        };
        if lost.is_some_and(|lost| self.detach(lost)) {
            return;
        }
        let (from, to) = match hop {
            Hop::A => (&mut self.ab, &mut self.ba),
            Hop::B => (&mut self.ba, &mut self.ab),
        };
        let end = match ev {
            DirEvent::Done | DirEvent::Rendezvous => return,
            DirEvent::Closed(reason) => {
                from.finish(Some(frame::close(reason)), false);
                to.finish(None, false);
                RelayEnd::Closed(hop)
            }
            DirEvent::ReadEnded { error, truncated } => {
                tracing::debug!(?hop, ?error, truncated, "hop stopped sending");
                from.finish(Some(frame::peer_gone()), false);
                to.finish(None, false);
                if truncated {
                    let violation = FrameViolation::Truncated;
                    RelayEnd::Failed(RelayError::Protocol { hop, violation })
                } else {
                    RelayEnd::Vanished(hop)
                }
            }
            DirEvent::PeerError(code) => {
                tracing::debug!(?hop, ?code, "hop sent ERROR");
                from.finish(Some(frame::peer_gone()), false);
                to.finish(None, false);
                RelayEnd::PeerError { hop, code }
            }
            DirEvent::WriteFailed(e) => {
                tracing::debug!(hop = ?hop.other(), error = %e, "hop stopped receiving");
                from.abandon();
                to.finish(Some(frame::peer_gone()), true);
                RelayEnd::Vanished(hop.other())
            }
            DirEvent::Violation(violation) => {
                tracing::warn!(?hop, %violation, "protocol violation");
                from.finish(Some(frame::peer_gone()), false);
                to.finish(Some(frame::error(ErrorCode::ProtocolViolation)), true);
                RelayEnd::Failed(RelayError::Protocol { hop, violation })
            }
        };
        self.end.get_or_insert(end);
    }

    /// Ends the session for a reason found outside the directions (timers, shutdown).
    fn begin_end(&mut self, end: RelayEnd) {
        let last = match &end {
            RelayEnd::Failed(RelayError::IdleTimeout(_)) => frame::close(CloseReason::IdleTimeout),
            RelayEnd::Failed(_) => frame::error(ErrorCode::Timeout),
            _ => frame::error(ErrorCode::ShuttingDown),
        };
        tracing::info!(?end, "ending session");
        self.ab.finish(Some(last), true);
        self.ba.finish(Some(last), true);
        self.end = Some(end);
    }

    /// A closure giving the time of the last read from either hop.
    fn activity(&self) -> impl Fn() -> Instant + '_ {
        || self.ab.last_read().max(self.ba.last_read())
    }

    fn stats(&self, forced: bool, duration: Duration) -> RelayStats {
        RelayStats {
            a_to_b: self.ab.stats(),
            b_to_a: self.ba.stats(),
            end: self.end.clone().unwrap_or(RelayEnd::Shutdown),
            forced,
            duration,
        }
    }
}

/// One direction of a session: reads one hop, forwards to the other.
mod dir {
    use std::io;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::time::{Instant, Sleep};

    use rescue_proto::wire::signal::{CloseReason, ErrorCode, Message};

    use super::frame::{self, Control, FrameError, FrameType, Header};
    use super::frame::{CONTROL_FRAME_MAX, HEADER_LEN};
    use super::FrameViolation::{ControlTooLong, EmptyData, Malformed, Oversize, UnexpectedType};
    use super::{DirectionStats, FrameViolation, MAX_SPINS, RELAY_BUFFER};

    /// Zero bytes that complete a lost hop's partial DATA frame (reattach mode).
    static ZEROS: [u8; 4096] = [0; 4096];

    fn violation(v: FrameViolation) -> DirEvent {
        DirEvent::Violation(v)
    }

    /// What a direction reports to the session.
    #[derive(Debug)]
    pub(super) enum DirEvent {
        /// The direction finished its final frames and shut its writer down.
        Done,
        /// The reading hop sent CLOSE with this reason.
        Closed(CloseReason),
        /// The reading hop's stream ended (EOF or error); `truncated` if inside a frame.
        ReadEnded {
            error: Option<io::ErrorKind>,
            truncated: bool,
        },
        /// The reading hop sent ERROR with this code.
        PeerError(ErrorCode),
        /// Writing to the other hop failed.
        WriteFailed(io::Error),
        /// The reading hop broke the protocol.
        Violation(FrameViolation),
        /// The reading hop sent RENDEZVOUS (only with a signalling hook; both outboxes
        /// have room for a frame).
        Rendezvous,
    }

    /// Control frames waiting for a frame boundary on one hop's write side: at most
    /// [`OUTBOX_SLOTS`] (a PONG, and with the gateway's signalling one UDP_TOKEN or
    /// PEER_ADDR). Fixed slots: nothing is allocated per frame.
    #[derive(Debug, Default)]
    pub(super) struct Outbox {
        frames: [Option<Control>; OUTBOX_SLOTS],
        pos: usize,
        ops: u64,
    }

    /// Control frames one hop's outbox holds.
    const OUTBOX_SLOTS: usize = 2;

    impl Outbox {
        pub(super) fn is_empty(&self) -> bool {
            self.frames[0].is_none()
        }

        /// Whether another frame fits.
        pub(super) fn has_room(&self) -> bool {
            self.frames.iter().any(Option::is_none)
        }

        /// Count of frames queued plus frames sent, to detect progress.
        pub(super) fn ops(&self) -> u64 {
            self.ops
        }

        /// Queues `c` behind the frames already queued; `false` (nothing queued) when
        /// full. An empty frame is dropped (nothing to send).
        pub(super) fn put(&mut self, c: Control) -> bool {
            if c.as_bytes().is_empty() {
                return true;
            }
            let Some(slot) = self.frames.iter_mut().find(|f| f.is_none()) else {
                return false;
            };
            *slot = Some(c);
            self.ops += 1;
            true
        }

        fn poll_write<W: AsyncWrite>(
            &mut self,
            cx: &mut Context<'_>,
            mut w: Pin<&mut W>,
        ) -> Poll<io::Result<()>> {
            while let Some(f) = &self.frames[0] {
                let rest = f.as_bytes().get(self.pos..).unwrap_or_default();
                let n = ready!(w.as_mut().poll_write(cx, rest))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                if self.pos >= f.as_bytes().len() {
                    self.frames.rotate_left(1);
                    self.frames[OUTBOX_SLOTS - 1] = None;
                    self.pos = 0;
                    self.ops += 1;
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    enum Phase {
        Running,
        /// Reattach mode, reading the lost hop: write what is checked, pad the current
        /// DATA frame with zeros, send the outbox and `last` (PEER_GONE), flush.
        Sealing {
            last: Option<Control>,
        },
        /// Reattach mode, reading the survivor: read its current DATA frame to its end
        /// and drop it (the lost hop cannot take it).
        Skipping,
        /// Drain, finish the current frame (reading only if `read`), send `last`, shut down.
        Finishing {
            last: Option<Control>,
            read: bool,
        },
        Done,
    }

    /// A token bucket limiting the bytes read per second.
    struct Throttle {
        rate: u64,
        allowance: i64,
        last: Instant,
        sleep: Pin<Box<Sleep>>,
    }

    impl Throttle {
        /// How many bytes may be read now; pending while the bucket is empty.
        fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
            loop {
                let now = Instant::now();
                let nanos = now.saturating_duration_since(self.last).as_nanos();
                let earned = nanos.saturating_mul(u128::from(self.rate)) / 1_000_000_000;
                let burst = self.rate.max(RELAY_BUFFER as u64);
                let total = (self.allowance as i128).saturating_add(earned as i128);
                self.allowance = total.min(burst as i128) as i64;
                self.last = now;
                if self.allowance > 0 {
                    return Poll::Ready(self.allowance as usize);
                }
                let deficit = self.allowance.unsigned_abs().saturating_add(1);
                let wait = u128::from(deficit) * 1_000_000_000 / u128::from(self.rate);
                let wait = std::time::Duration::from_nanos(wait.min(u64::MAX as u128) as u64);
                self.sleep.as_mut().reset(now + wait);
                ready!(self.sleep.as_mut().poll(cx));
            }
        }
    }

    use std::future::Future as _;

    /// One direction's buffer: `[write_pos, validated)` is checked DATA not yet written,
    /// `[validated, filled)` is read but not yet checked.
    pub(super) struct Dir {
        buf: Box<[u8]>,
        write_pos: usize,
        validated: usize,
        filled: usize,
        /// Payload bytes of the current DATA frame not yet checked.
        remaining: usize,
        read_eof: bool,
        need_flush: bool,
        phase: Phase,
        last_read: Instant,
        stats: DirectionStats,
        throttle: Option<Throttle>,
        /// A PING waits for the previous PONG to leave (the session re-polls on that).
        stalled: bool,
        /// Reattach mode: sealing or skipping failed (the survivor is gone too).
        lost: bool,
    }

    impl Dir {
        pub(super) fn new(rate_limit: Option<u64>, now: Instant) -> Self {
            let throttle = rate_limit.filter(|r| *r > 0).map(|rate| Throttle {
                rate,
                allowance: rate.min(RELAY_BUFFER as u64) as i64,
                last: now,
                sleep: Box::pin(tokio::time::sleep_until(now)),
            });
            Self {
                buf: vec![0; RELAY_BUFFER].into_boxed_slice(),
                write_pos: 0,
                validated: 0,
                filled: 0,
                remaining: 0,
                read_eof: false,
                need_flush: false,
                phase: Phase::Running,
                last_read: now,
                stats: DirectionStats::default(),
                throttle,
                stalled: false,
                lost: false,
            }
        }

        /// Reattach mode: this direction reads the lost hop (see [`Phase::Sealing`]).
        pub(super) fn seal(&mut self, last: Control) {
            // Unchecked bytes of the lost hop are dropped: only whole frames go on.
            self.filled = self.validated;
            self.phase = Phase::Sealing { last: Some(last) };
        }

        /// Reattach mode: this direction reads the survivor (see [`Phase::Skipping`]).
        pub(super) fn skip(&mut self) {
            self.phase = Phase::Skipping;
        }

        /// Whether sealing or skipping failed.
        pub(super) fn is_lost(&self) -> bool {
            self.lost
        }

        /// Bytes read after the frame boundary that skipping stopped at.
        pub(super) fn read_ahead(&self) -> Vec<u8> {
            self.buf
                .get(self.validated..self.filled)
                .unwrap_or_default()
                .to_vec()
        }

        pub(super) fn is_done(&self) -> bool {
            matches!(self.phase, Phase::Done)
        }

        pub(super) fn last_read(&self) -> Instant {
            self.last_read
        }

        pub(super) fn stats(&self) -> DirectionStats {
            self.stats
        }

        /// Starts ending this direction (keeps the first final frame if called twice).
        pub(super) fn finish(&mut self, last: Option<Control>, read: bool) {
            self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Running => Phase::Finishing { last, read },
                Phase::Finishing { last: l, read: r } => Phase::Finishing {
                    last: l,
                    read: r && read,
                },
                // A detach in progress is not interrupted (it is bounded by the grace).
                p @ (Phase::Done | Phase::Sealing { .. } | Phase::Skipping) => p,
            };
        }

        /// Stops without writing anything more (the writer failed).
        pub(super) fn abandon(&mut self) {
            self.phase = Phase::Done;
        }

        /// Drives the direction; `out` holds control frames for the writing hop, `back`
        /// for the reading hop (PONGs).
        pub(super) fn poll<R, W>(
            &mut self,
            cx: &mut Context<'_>,
            r: Pin<&mut R>,
            w: Pin<&mut W>,
            out: &mut Outbox,
            back: &mut Outbox,
            signals: bool,
        ) -> Poll<DirEvent>
        where
            R: AsyncRead,
            W: AsyncWrite,
        {
            match self.phase {
                Phase::Done => Poll::Pending,
                Phase::Running => self.poll_running(cx, r, w, out, back, signals),
                Phase::Sealing { .. } | Phase::Skipping => {
                    let done = if matches!(self.phase, Phase::Skipping) {
                        ready!(self.poll_skipping(cx, r))
                    } else {
                        ready!(self.poll_sealing(cx, w, out))
                    };
                    self.phase = Phase::Done;
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "the surviving hop failed too");
                        self.lost = true;
                    }
                    Poll::Ready(DirEvent::Done)
                }
                Phase::Finishing { .. } => {
                    let done = ready!(self.poll_finishing(cx, r, w, out));
                    self.phase = Phase::Done;
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "final frames not delivered");
                    }
                    Poll::Ready(DirEvent::Done)
                }
            }
        }

        fn at_boundary(&self) -> bool {
            self.write_pos == self.validated && self.remaining == 0
        }

        fn poll_running<R, W>(
            &mut self,
            cx: &mut Context<'_>,
            mut r: Pin<&mut R>,
            mut w: Pin<&mut W>,
            out: &mut Outbox,
            back: &mut Outbox,
            signals: bool,
        ) -> Poll<DirEvent>
        where
            R: AsyncRead,
            W: AsyncWrite,
        {
            for _ in 0..MAX_SPINS {
                let mut progress = match self.poll_write_data(cx, w.as_mut()) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                    Poll::Pending => false,
                };
                if self.at_boundary() && !out.is_empty() {
                    match out.poll_write(cx, w.as_mut()) {
                        Poll::Ready(Ok(())) => (progress, self.need_flush) = (true, true),
                        Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                        Poll::Pending => {}
                    }
                }
                match self.poll_fill(cx, r.as_mut(), usize::MAX) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(e)) => {
                        let error = Some(e.kind());
                        let truncated = !self.at_boundary();
                        return Poll::Ready(DirEvent::ReadEnded { error, truncated });
                    }
                    Poll::Pending => {}
                }
                match self.scan(!out.is_empty(), back, signals) {
                    Ok(scanned) => progress |= scanned,
                    Err(ev) => return Poll::Ready(ev),
                }
                // A PING waiting for the previous PONG is not the end of the input.
                if self.read_eof && !progress && !self.stalled && self.write_pos == self.validated {
                    let truncated = self.remaining > 0 || self.validated < self.filled;
                    let error = None;
                    return Poll::Ready(DirEvent::ReadEnded { error, truncated });
                }
                self.compact();
                if !progress {
                    if self.need_flush && self.write_pos == self.validated {
                        match w.as_mut().poll_flush(cx) {
                            Poll::Ready(Ok(())) => self.need_flush = false,
                            Poll::Ready(Err(e)) => return Poll::Ready(DirEvent::WriteFailed(e)),
                            Poll::Pending => {}
                        }
                    }
                    return Poll::Pending;
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }

        /// Ends the direction: drain, finish the current frame, send the final frame,
        /// shut the writer down. An error means the final frames were not delivered.
        fn poll_finishing<R, W>(
            &mut self,
            cx: &mut Context<'_>,
            mut r: Pin<&mut R>,
            mut w: Pin<&mut W>,
            out: &mut Outbox,
        ) -> Poll<io::Result<()>>
        where
            R: AsyncRead,
            W: AsyncWrite,
        {
            loop {
                if self.write_pos < self.validated {
                    ready!(self.poll_write_data(cx, w.as_mut()))?;
                    continue;
                }
                if self.remaining == 0 {
                    if !out.is_empty() {
                        ready!(out.poll_write(cx, w.as_mut()))?;
                        continue;
                    }
                    if let Phase::Finishing { last, .. } = &mut self.phase {
                        if let Some(last) = last.take() {
                            out.put(last);
                            continue;
                        }
                    }
                    return w.as_mut().poll_shutdown(cx);
                }
                // Inside a DATA frame: its end must arrive before anything else is sent.
                let read = matches!(self.phase, Phase::Finishing { read: true, .. });
                if !read || self.read_eof {
                    ready!(w.as_mut().poll_shutdown(cx))?;
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                self.compact();
                ready!(self.poll_fill(cx, r.as_mut(), self.remaining))?;
                let take = self.remaining.min(self.filled - self.validated);
                self.validated += take;
                self.remaining -= take;
            }
        }

        /// See [`Phase::Sealing`]; `w` is the survivor.
        fn poll_sealing<W: AsyncWrite>(
            &mut self,
            cx: &mut Context<'_>,
            mut w: Pin<&mut W>,
            out: &mut Outbox,
        ) -> Poll<io::Result<()>> {
            loop {
                if self.write_pos < self.validated {
                    ready!(self.poll_write_data(cx, w.as_mut()))?;
                    continue;
                }
                if self.remaining > 0 {
                    let pad = ZEROS.get(..self.remaining.min(ZEROS.len()));
                    let n = ready!(w.as_mut().poll_write(cx, pad.unwrap_or_default()))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    self.remaining = self.remaining.saturating_sub(n);
                    continue;
                }
                if !out.is_empty() {
                    ready!(out.poll_write(cx, w.as_mut()))?;
                    continue;
                }
                if let Phase::Sealing { last } = &mut self.phase {
                    if let Some(last) = last.take() {
                        out.put(last);
                        continue;
                    }
                }
                return w.as_mut().poll_flush(cx);
            }
        }

        /// See [`Phase::Skipping`]; `r` is the survivor.
        fn poll_skipping<R: AsyncRead>(
            &mut self,
            cx: &mut Context<'_>,
            mut r: Pin<&mut R>,
        ) -> Poll<io::Result<()>> {
            loop {
                // Nothing more goes to the lost hop.
                self.write_pos = self.validated;
                if self.remaining == 0 {
                    return Poll::Ready(Ok(()));
                }
                let take = self.remaining.min(self.filled - self.validated);
                if take > 0 {
                    self.validated += take;
                    self.remaining -= take;
                    continue;
                }
                if self.read_eof {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                self.compact();
                ready!(self.poll_fill(cx, r.as_mut(), self.remaining))?;
            }
        }

        /// Writes checked bytes; ready with `Ok` after writing some.
        fn poll_write_data<W: AsyncWrite>(
            &mut self,
            cx: &mut Context<'_>,
            w: Pin<&mut W>,
        ) -> Poll<io::Result<()>> {
            let Some(data) = self.buf.get(self.write_pos..self.validated) else {
                return Poll::Ready(Err(io::ErrorKind::InvalidInput.into()));
            };
            if data.is_empty() {
                return Poll::Pending;
            }
            let n = ready!(w.poll_write(cx, data))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_pos += n.min(data.len());
            self.stats.bytes += n as u64;
            self.need_flush = true;
            Poll::Ready(Ok(()))
        }

        /// Reads at most `max` bytes into free space; ready after a read (or EOF).
        fn poll_fill<R: AsyncRead>(
            &mut self,
            cx: &mut Context<'_>,
            r: Pin<&mut R>,
            max: usize,
        ) -> Poll<io::Result<()>> {
            if self.read_eof || self.filled == self.buf.len() {
                return Poll::Pending;
            }
            let mut max = max;
            if let Some(t) = self.throttle.as_mut() {
                max = max.min(ready!(t.poll_allowance(cx)));
            }
            let end = self.buf.len().min(self.filled.saturating_add(max));
            let Some(space) = self.buf.get_mut(self.filled..end) else {
                return Poll::Pending;
            };
            let mut rb = ReadBuf::new(space);
            ready!(r.poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                self.read_eof = true;
                return Poll::Ready(Ok(()));
            }
            self.filled += n;
            self.last_read = Instant::now();
            if let Some(t) = self.throttle.as_mut() {
                t.allowance = t.allowance.saturating_sub(n as i64);
            }
            Poll::Ready(Ok(()))
        }

        /// Checks frames in `[validated, filled)`; handles control frames once every
        /// byte before them is written. `hold` stops at the next frame boundary so that
        /// a queued control frame can go out (so `out` is empty when a control frame is
        /// handled). `signals`: RENDEZVOUS is the gateway's (else a violation).
        /// Ok(true) if anything advanced.
        fn scan(&mut self, hold: bool, back: &mut Outbox, signals: bool) -> Result<bool, DirEvent> {
            let mut advanced = false;
            self.stalled = false;
            loop {
                if self.remaining > 0 {
                    let take = self.remaining.min(self.filled - self.validated);
                    if take == 0 {
                        return Ok(advanced);
                    }
                    self.validated += take;
                    self.remaining -= take;
                    advanced = true;
                    continue;
                }
                let hdr = self
                    .buf
                    .get(self.validated..self.filled)
                    .unwrap_or_default();
                let Some(hdr) = hdr.first_chunk::<HEADER_LEN>() else {
                    return Ok(advanced);
                };
                if hold {
                    return Ok(advanced);
                }
                let h = match Header::parse(hdr) {
                    Ok(h) => h,
                    Err(FrameError::Oversize(len)) => return Err(violation(Oversize(len))),
                    Err(FrameError::UnknownType(t)) => return Err(violation(UnexpectedType(t))),
                    Err(_) => return Ok(advanced),
                };
                let (ty, len) = (h.frame_type, h.payload_len);
                if ty == FrameType::Data {
                    if len == 0 {
                        return Err(violation(EmptyData));
                    }
                    self.validated += HEADER_LEN;
                    self.remaining = len;
                    self.stats.data_frames += 1;
                    advanced = true;
                    continue;
                }
                let code = ty.code();
                let rendezvous = signals && ty == FrameType::Rendezvous;
                if !rendezvous
                    && !matches!(
                        ty,
                        FrameType::Ping | FrameType::Pong | FrameType::Close | FrameType::Error
                    )
                {
                    return Err(violation(UnexpectedType(code)));
                }
                if len > frame::MAX_CONTROL_PAYLOAD {
                    return Err(violation(ControlTooLong { ty: code, len }));
                }
                let end = self.validated + HEADER_LEN + len;
                // Control frames are cut out of the stream: everything before must be out.
                if self.write_pos != self.validated || end > self.filled {
                    return Ok(advanced);
                }
                let payload = self.buf.get(self.validated + HEADER_LEN..end);
                let msg = Message::decode(ty, payload.unwrap_or_default());
                let msg = msg.map_err(|_| violation(Malformed(code)))?;
                let event = match msg {
                    Message::Ping(_) | Message::Rendezvous(_) if !back.has_room() => {
                        // Earlier answers are still going out: wait for them.
                        self.stalled = true;
                        return Ok(advanced);
                    }
                    Message::Ping(ping) => {
                        back.put(frame::pong(ping.nonce));
                        self.stats.pings += 1;
                        None
                    }
                    // PROTOCOL.md 3.13: answered (or ignored) by the gateway's hook.
                    Message::Rendezvous(_) => Some(DirEvent::Rendezvous),
                    Message::Close(close) => Some(DirEvent::Closed(close.reason)),
                    Message::Error(e) => Some(DirEvent::PeerError(e.code)),
                    _ => None,
                };
                (self.validated, self.write_pos) = (end, end);
                advanced = true;
                if let Some(event) = event {
                    return Err(event);
                }
            }
        }

        /// Reads and discards until the hop's EOF or error (after the session ended).
        pub(super) fn poll_discard<R: AsyncRead>(
            &mut self,
            cx: &mut Context<'_>,
            mut r: Pin<&mut R>,
        ) -> Poll<()> {
            for _ in 0..MAX_SPINS {
                if self.read_eof {
                    return Poll::Ready(());
                }
                let mut rb = ReadBuf::new(&mut self.buf);
                match r.as_mut().poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => self.read_eof = rb.filled().is_empty(),
                    Poll::Ready(Err(_)) => self.read_eof = true,
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }

        /// Reclaims buffer space once everything checked is written.
        fn compact(&mut self) {
            if self.write_pos != self.validated || self.validated == 0 {
                return;
            }
            let rest = self.filled - self.validated;
            if rest <= CONTROL_FRAME_MAX {
                self.buf.copy_within(self.validated..self.filled, 0);
                (self.write_pos, self.validated, self.filled) = (0, 0, rest);
            }
        }
    }
}

/// What was wrong with a frame a hop sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameViolation {
    /// The header announced more than the 65536-byte payload limit.
    #[error("frame length {0} exceeds the 65536-byte payload limit")]
    Oversize(usize),
    /// The frame type is unknown or not allowed once the session is paired.
    #[error("frame type {0:#04x} is not allowed once the session is paired")]
    UnexpectedType(u8),
    /// A DATA frame with an empty payload (PROTOCOL.md 3.8 rejects it).
    #[error("empty DATA frame")]
    EmptyData,
    /// A PING, PONG, CLOSE or ERROR payload does not parse (PROTOCOL.md section 3).
    #[error("malformed control frame {0:#04x}")]
    Malformed(u8),
    /// A PING, PONG, CLOSE or ERROR frame carried more than the control payload limit.
    #[error("control frame {ty:#04x} carries {len} bytes")]
    ControlTooLong {
        /// The frame type.
        ty: u8,
        /// The announced payload length.
        len: usize,
    },
    /// The hop's stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Frame helpers over `rescue_proto::wire`: control frames held by value.
pub(crate) mod frame {
    pub(crate) use rescue_proto::wire::frame::MAX_FRAME_LEN;
    pub(crate) use rescue_proto::wire::frame::{FrameError, FrameType, Header, HEADER_LEN};
    use rescue_proto::wire::limits::MAX_ERROR_MESSAGE_LEN;
    use rescue_proto::wire::signal::{Close, CloseReason, ErrorCode, ErrorMessage, Message};
    use rescue_proto::wire::signal::{PeerGone, Pong};

    /// Longest control payload accepted from a peer: ERROR with the longest message
    /// (PING and PONG take 8 bytes, CLOSE 2); a control frame must fit a fixed slot.
    pub(crate) const MAX_CONTROL_PAYLOAD: usize = 3 + MAX_ERROR_MESSAGE_LEN;
    /// Largest control frame, header included.
    pub(crate) const CONTROL_FRAME_MAX: usize = HEADER_LEN + MAX_CONTROL_PAYLOAD;

    /// A small encoded control frame held by value (no allocation).
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Control {
        bytes: [u8; CONTROL_FRAME_MAX],
        len: usize,
    }

    impl Control {
        /// Encodes `msg`; `None` if it is larger than [`CONTROL_FRAME_MAX`].
        pub(crate) fn new(msg: &Message) -> Option<Control> {
            let len = msg.frame_len();
            if len > CONTROL_FRAME_MAX {
                return None;
            }
            let mut bytes = [0; CONTROL_FRAME_MAX];
            // `len` fits, so the slice never runs out of room.
            msg.encode(&mut &mut bytes[..]).ok()?;
            Some(Control { bytes, len })
        }

        /// The encoded frame.
        pub(crate) fn as_bytes(&self) -> &[u8] {
            self.bytes.get(..self.len).unwrap_or_default()
        }
    }

    /// Encodes a message known to fit; an empty frame (nothing sent) otherwise.
    fn fixed(msg: Message) -> Control {
        let empty = Control {
            bytes: [0; CONTROL_FRAME_MAX],
            len: 0,
        };
        Control::new(&msg).unwrap_or(empty)
    }

    /// `ERROR{code, empty message}`.
    pub(crate) fn error(code: ErrorCode) -> Control {
        fixed(Message::Error(ErrorMessage::new(code)))
    }

    /// `CLOSE{reason}`.
    pub(crate) fn close(reason: CloseReason) -> Control {
        fixed(Message::Close(Close { reason }))
    }

    /// `PEER_GONE{grace_secs 0}`: the other party is gone for good.
    pub(crate) fn peer_gone() -> Control {
        fixed(Message::PeerGone(PeerGone { grace_secs: 0 }))
    }

    /// `PEER_GONE{grace_secs}` for a survivor that may see the other party back within
    /// `grace` (whole seconds, saturating).
    pub(crate) fn peer_gone_for(grace: std::time::Duration) -> Control {
        let grace_secs = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
        fixed(Message::PeerGone(PeerGone { grace_secs }))
    }

    /// `PONG{nonce}`.
    pub(crate) fn pong(nonce: u64) -> Control {
        fixed(Message::Pong(Pong { nonce }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const DATA: u8 = 0x08;
    const PING: u8 = 0x09;
    const PEER_GONE: u8 = 0x0B;
    const WAIT: Duration = Duration::from_secs(10);

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        let mut f = vec![ty, len[1], len[2], len[3]];
        f.extend_from_slice(payload);
        f
    }

    async fn read_frame(s: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 4];
        let read = tokio::time::timeout(WAIT, s.read_exact(&mut h)).await;
        assert!(matches!(read, Ok(Ok(_))), "a frame header in time");
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let mut p = vec![0; len];
        let read = tokio::time::timeout(WAIT, s.read_exact(&mut p)).await;
        assert!(matches!(read, Ok(Ok(_))), "the payload in time");
        (h[0], p)
    }

    type Outcome = (RelayStats, Option<Survivor<DuplexStream, DuplexStream>>);

    /// Peers A and B and a reattachable relay (grace 30 s) between them.
    fn reattachable() -> (DuplexStream, DuplexStream, tokio::task::JoinHandle<Outcome>) {
        let (peer_a, hop_a) = duplex(64 * 1024);
        let (peer_b, hop_b) = duplex(64 * 1024);
        let task = tokio::spawn(async move {
            let limits = RelayLimits::default();
            let guid = Guid::from_bytes([9; 16]);
            let token = CancellationToken::new();
            let grace = Duration::from_secs(30);
            relay_reattachable(hop_a, hop_b, guid, &limits, token, grace).await
        });
        (peer_a, peer_b, task)
    }

    async fn outcome(task: tokio::task::JoinHandle<Outcome>) -> Outcome {
        match tokio::time::timeout(WAIT, task).await {
            Ok(Ok(o)) => o,
            _ => panic!("the relay ends in time"),
        }
    }

    #[tokio::test]
    async fn a_vanished_hop_leaves_the_survivor_framed_with_peer_gone_and_read_ahead() {
        let (mut a, mut b, task) = reattachable();
        a.write_all(&frame(DATA, b"whole")).await.unwrap();
        // Half a frame, then A vanishes.
        let partial = frame(DATA, &[7u8; 10]);
        a.write_all(&partial[..8]).await.unwrap();
        assert_eq!(read_frame(&mut b).await, (DATA, b"whole".to_vec()));
        // B is inside a frame of its own when A goes; the rest of it, and a PING
        // after it, are already on the way.
        let mine = frame(DATA, &[1u8; 6]);
        b.write_all(&mine[..5]).await.unwrap();
        drop(a);
        b.write_all(&mine[5..]).await.unwrap();
        b.write_all(&frame(PING, &[3; 8])).await.unwrap();
        // The partial frame is completed with zeros, then PEER_GONE{30}.
        let (ty, padded) = read_frame(&mut b).await;
        assert_eq!((ty, &padded[..4]), (DATA, &[7u8; 4][..]));
        assert_eq!(&padded[4..], &[0u8; 6]);
        assert_eq!(
            read_frame(&mut b).await,
            (PEER_GONE, 30u32.to_be_bytes().to_vec())
        );
        let (stats, survivor) = outcome(task).await;
        assert_eq!(stats.end, RelayEnd::Vanished(Hop::A));
        let Some(Survivor::B { read_ahead, .. }) = survivor else {
            panic!("hop B survives");
        };
        // B's own frame was dropped at its end; the PING is left for the gateway
        // (all or part of it, the rest is still in the stream).
        let ping = frame(PING, &[3; 8]);
        assert!(ping.starts_with(&read_ahead), "{read_ahead:?}");
    }

    #[tokio::test]
    async fn without_a_survivor_nothing_is_handed_back() {
        let (a, b, task) = reattachable();
        drop(a);
        drop(b);
        let (stats, survivor) = outcome(task).await;
        assert!(matches!(stats.end, RelayEnd::Vanished(_)));
        assert!(survivor.is_none());
    }

    #[tokio::test]
    async fn close_still_ends_both_in_reattach_mode() {
        let (mut a, mut b, task) = reattachable();
        a.write_all(&frame(0x0C, &[0, 1])).await.unwrap();
        let (ty, _) = read_frame(&mut b).await;
        assert_eq!(ty, 0x0C);
        drop((a, b));
        let (stats, survivor) = outcome(task).await;
        assert_eq!(stats.end, RelayEnd::Closed(Hop::A));
        assert!(survivor.is_none());
    }

    #[test]
    fn hop_other_swaps() {
        assert_eq!(Hop::A.other(), Hop::B);
        assert_eq!(Hop::B.other(), Hop::A);
    }

    #[test]
    fn stats_error_only_for_failures() {
        let mut s = RelayStats {
            a_to_b: DirectionStats::default(),
            b_to_a: DirectionStats::default(),
            end: RelayEnd::Closed(Hop::A),
            forced: false,
            duration: Duration::ZERO,
        };
        assert_eq!(s.error(), None);
        s.end = RelayEnd::Failed(RelayError::IdleTimeout(IDLE_TIMEOUT));
        assert_eq!(s.error(), Some(&RelayError::IdleTimeout(IDLE_TIMEOUT)));
    }
}
