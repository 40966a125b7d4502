//! Both directions of one relayed session and the two hops: events, ends, detach.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rescue_proto::wire::signal::{CloseReason, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::dir::{Dir, DirEvent};
use super::outbox::Outbox;
use super::{frame, Control, FrameViolation, RelayEnd, RelayError, RelayLimits, RelaySignals};
use super::{RelayStats, Side, Survivor, MAX_SPINS};

/// Both directions of one session and the two hops.
pub(super) struct Core<'s, A, B> {
    pub(super) a: A,
    pub(super) b: B,
    /// Reads hop A, writes hop B.
    pub(super) ab: Dir,
    /// Reads hop B, writes hop A.
    pub(super) ba: Dir,
    /// Control frames waiting to be written to hop A.
    out_a: Outbox,
    /// Control frames waiting to be written to hop B.
    out_b: Outbox,
    pub(super) end: Option<RelayEnd>,
    /// Reattach mode: the PEER_GONE a survivor gets (`None`: a vanished hop ends all).
    pub(super) reattach: Option<frame::Control>,
    /// Reattach mode: the hop that vanished (the other is being kept).
    detached: Option<Side>,
    /// The gateway's signalling hook (RENDEZVOUS, UDP_TOKEN, PEER_ADDR).
    pub(super) signals: Option<Box<dyn RelaySignals + 's>>,
    /// A frame from the hook waiting for room in its hop's outbox.
    insert: Option<(Side, Control)>,
}

impl<A, B> Core<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(a: A, b: B, limits: &RelayLimits, now: Instant, rendezvous: bool) -> Self {
        Self {
            a,
            b,
            ab: Dir::new(limits.rate_limit, now, rendezvous),
            ba: Dir::new(limits.rate_limit, now, rendezvous),
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
                Side::A => &mut self.out_a,
                Side::B => &mut self.out_b,
            };
            if !outbox.put(frame) {
                // Re-polled when the outbox drains (a write is progress).
                self.insert = Some((hop, frame));
                return;
            }
        }
    }

    /// A RENDEZVOUS from `hop`: its UDP_TOKENs go out at the next frame boundaries.
    fn on_rendezvous(&mut self, hop: Side) {
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
    pub(super) fn into_survivor(self, forced: bool) -> Option<Survivor<A, B>> {
        let lost = self.detached?;
        if forced || self.ab.is_lost() || self.ba.is_lost() {
            return None;
        }
        Some(match lost {
            Side::B => Survivor::A {
                read_ahead: self.ab.read_ahead(),
                stream: self.a,
            },
            Side::A => Survivor::B {
                read_ahead: self.ba.read_ahead(),
                stream: self.b,
            },
        })
    }

    /// Reattach mode: keeps the hop other than `lost`. The direction reading `lost`
    /// seals what goes to the survivor; the one reading the survivor skips to a frame
    /// boundary. `false` when not in reattach mode or the session is already ending.
    pub(super) fn detach(&mut self, lost: Side) -> bool {
        let Some(gone) = self.reattach else {
            return false;
        };
        if self.end.is_some() {
            return false;
        }
        let (from_lost, from_survivor) = match lost {
            Side::A => (&mut self.ab, &mut self.ba),
            Side::B => (&mut self.ba, &mut self.ab),
        };
        tracing::debug!(?lost, "hop vanished, keeping the other for a reattach");
        from_lost.seal(gone);
        from_survivor.skip();
        self.detached = Some(lost);
        self.end = Some(RelayEnd::Vanished(lost));
        true
    }

    /// Drives both directions; ready when both are done.
    pub(super) fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_SPINS {
            self.poll_inserts(cx);
            let ops = self.out_a.ops() + self.out_b.ops();
            let ab = self.ab.poll(
                cx,
                Pin::new(&mut self.a),
                Pin::new(&mut self.b),
                &mut self.out_b,
                &mut self.out_a,
            );
            if let Poll::Ready(ev) = ab {
                self.on_event(Side::A, ev);
                continue;
            }
            let ba = self.ba.poll(
                cx,
                Pin::new(&mut self.b),
                Pin::new(&mut self.a),
                &mut self.out_a,
                &mut self.out_b,
            );
            if let Poll::Ready(ev) = ba {
                self.on_event(Side::B, ev);
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
    fn on_event(&mut self, hop: Side, ev: DirEvent) {
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
            Side::A => (&mut self.ab, &mut self.ba),
            Side::B => (&mut self.ba, &mut self.ab),
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
    pub(super) fn begin_end(&mut self, end: RelayEnd) {
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
    pub(super) fn activity(&self) -> impl Fn() -> Instant + '_ {
        || self.ab.last_read().max(self.ba.last_read())
    }

    pub(super) fn stats(&self, forced: bool, duration: Duration) -> RelayStats {
        RelayStats {
            a_to_b: self.ab.stats(),
            b_to_a: self.ba.stats(),
            end: self.end.clone().unwrap_or(RelayEnd::Shutdown),
            forced,
            duration,
        }
    }
}
