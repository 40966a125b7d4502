//! A paired session of this gateway: the relay between its two hops, again after each
//! reattach (PROTOCOL.md 3.12), until the session ends.
//!
//! When one hop of a relayed session vanishes, the relay hands back the other (the
//! survivor, sent `PEER_GONE{grace}`); the survivor is kept here, its PINGs answered,
//! until its partner comes back with REATTACH on a new hop (the reattach side checks
//! that and brings the hop to the session table's `meet`), or the grace period ends.
//! The returning hop gets RESUMED, the survivor PEER_BACK, and the relay runs again
//! between them.
//!
//! What it never does: it never parks more than one hop per party (a newer hop of the
//! same party replaces the older, which is closed), never waits past the grace period,
//! and never reads DATA of a returned hop before the relay runs (the peer may already
//! start its new end-to-end TLS). DATA a parked survivor still sends belongs to its
//! dead end-to-end path and is dropped.

use std::time::Instant;

use futures_util::StreamExt;
use rescue_proto::wire::signal::{Close, CloseReason, Message, PeerBack, PeerGone, Pong, Role};
use rescue_proto::Guid;

use super::shared::Shared;
use super::stats::Counters;
use super::table::{Entry, Listening, Meet, ParkedHop};
use crate::io::{BoxStream, Rewind};
use crate::relay::{relay_with_signals, Survivor};
use crate::signal;

/// Relays between the two hops of `pair` (applet's and console's, either order), again
/// after each reattach, until the session ends.
pub(crate) async fn relay_session(shared: &Shared, guid: Guid, pair: (Entry, Entry)) {
    let mut pair = pair;
    loop {
        let (mut applet, mut console) = match pair.0.role {
            Role::Applet => (pair.0, pair.1),
            _ => (pair.1, pair.0),
        };
        let mut left = false;
        for e in [&mut applet, &mut console] {
            if e.survivor {
                if drain_ready(shared, e).await {
                    let _ = signal::send(&mut e.hop, Message::PeerBack(PeerBack)).await;
                } else {
                    left = true;
                }
            }
        }
        if left {
            // The survivor left just as its partner came back: the session ends.
            let now = Instant::now();
            let _ = shared
                .directory
                .close(now, applet.hop_id, CloseReason::Normal)
                .await;
            let _ = shared
                .directory
                .close(now, console.hop_id, CloseReason::Normal)
                .await;
            return;
        }
        let grace = shared.config.reattach_grace;
        let (a_id, c_id) = (applet.hop_id, console.hop_id);
        let a = signal::unframe(applet.hop);
        let c = signal::unframe(console.hop);
        let running = shared.sessions.relaying(guid, a_id, c_id);
        let displaced = running.displaced;
        let displaced = async move {
            match displaced.await {
                Ok(hop) => hop,
                Err(_) => std::future::pending().await,
            }
        };
        // Each run of the relay has its own rendezvous (a REATTACH starts afresh).
        let hook: Box<dyn crate::relay::RelaySignals> = Box::new(shared.relay_hook());
        let ctx = (guid, &shared.config.relay, shared.shutdown.clone(), grace);
        shared.stats.on_relaying(1);
        let (stats, survivor) = relay_with_signals(a, c, ctx, displaced, Some(hook)).await;
        shared.stats.on_relaying(-1);
        shared
            .stats
            .on_relayed(stats.a_to_b.bytes, stats.b_to_a.bytes);
        Counters::add(&shared.stats.bytes_a2c, stats.a_to_b.bytes);
        Counters::add(&shared.stats.bytes_c2a, stats.b_to_a.bytes);
        Counters::bump(&shared.stats.relays_ended);
        tracing::info!(end = ?stats.end, kept = ?survivor.as_ref().map(Survivor::hop), "relay ended");
        let now = Instant::now();
        let Some(survivor) = survivor else {
            let _ = shared.directory.close(now, a_id, CloseReason::Normal).await;
            let _ = shared.directory.close(now, c_id, CloseReason::Normal).await;
            return;
        };
        let (role, hop_id, lost, stream, read_ahead) = match survivor {
            Survivor::A { stream, read_ahead } => (Role::Applet, a_id, c_id, stream, read_ahead),
            Survivor::B { stream, read_ahead } => (Role::Console, c_id, a_id, stream, read_ahead),
        };
        // PEER_GONE went out from the relay already.
        let _ = shared.directory.hop_lost(now, lost).await;
        let stream: BoxStream = Box::new(Rewind::new(read_ahead.into(), stream));
        let entry = Entry {
            role,
            hop_id,
            hop: signal::framed(stream),
            survivor: true,
        };
        pair = match shared.sessions.meet(guid, entry) {
            Meet::Pair(mine, other) => (mine, other),
            Meet::Listen(entry, waiting) => match wait(shared, entry, waiting).await {
                Some(next) => next,
                None => return,
            },
            Meet::Handed => return,
            Meet::Parked(parked) => return wait_parked(parked, shared).await,
        };
    }
}

/// Keeps a survivor's `entry` (reading its hop) until its partner arrives (`Some`), or the grace ends, the hop goes,
/// a newer hop of the same party displaces it, or the gateway shuts down (`None`).
pub(crate) async fn wait(
    shared: &Shared,
    entry: Entry,
    waiting: Listening,
) -> Option<(Entry, Entry)> {
    let (mut entry, mut waiting) = (entry, waiting);
    let deadline = tokio::time::Instant::now() + shared.config.reattach_grace;
    loop {
        tokio::select! {
            // The survivor's frames first: DATA it sent before PEER_BACK belongs to the
            // dead path and must be dropped before the relay runs again.
            biased;
            frame = entry.hop.next() => {
                let msg = match frame {
                    Some(Ok(f)) => f.message().ok(),
                    _ => None,
                };
                if !on_parked_message(shared, &mut entry, msg).await {
                    return None;
                }
            }
            other = &mut waiting.rx => {
                return match other {
                    Ok(other) => Some((entry, other)),
                    Err(_) => {
                        tracing::debug!(hop = ?entry.hop_id, "displaced by a newer hop");
                        None
                    }
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("reattach grace over, ending the session");
                let gone = Message::PeerGone(PeerGone { grace_secs: 0 });
                let _ = signal::send(&mut entry.hop, gone).await;
                let _ = shared.directory.close(Instant::now(), entry.hop_id, CloseReason::Normal).await;
                return None;
            }
            _ = shared.shutdown.cancelled() => {
                let close = Message::Close(Close { reason: CloseReason::ShuttingDown });
                let _ = signal::send(&mut entry.hop, close).await;
                return None;
            }
        }
    }
}

/// Most frames [`drain_ready`] handles before the relay runs again: a survivor that
/// floods PINGs cannot hold its partner back.
const MAX_DRAIN: usize = 64;

/// Handles a survivor's frames that are readable now (stale DATA is dropped, PINGs are
/// answered) so they do not reach the returning party; `false` if the survivor left.
async fn drain_ready(shared: &Shared, e: &mut Entry) -> bool {
    for _ in 0..MAX_DRAIN {
        // A zero timeout still polls the read once: only what is ready is taken.
        let Ok(frame) = tokio::time::timeout(std::time::Duration::ZERO, e.hop.next()).await else {
            return true;
        };
        let msg = match frame {
            Some(Ok(f)) => f.message().ok(),
            _ => None,
        };
        if !on_parked_message(shared, e, msg).await {
            return false;
        }
    }
    true
}

/// A frame from a parked survivor (`None`: its stream ended or broke). `false` ends
/// the wait.
async fn on_parked_message(shared: &Shared, entry: &mut Entry, msg: Option<Message>) -> bool {
    let now = Instant::now();
    match msg {
        Some(Message::Ping(p)) => {
            let pong = Message::Pong(Pong { nonce: p.nonce });
            if signal::send(&mut entry.hop, pong).await.is_ok() {
                return true;
            }
            let _ = shared.directory.hop_lost(now, entry.hop_id).await;
            false
        }
        // PONGs, and DATA of the dead end-to-end path, are dropped.
        Some(Message::Pong(_) | Message::Data(_)) => true,
        Some(Message::Close(c)) => {
            let _ = shared.directory.close(now, entry.hop_id, c.reason).await;
            false
        }
        _ => {
            // Gone too (or broke the protocol): both parties are away now, which ends
            // the session in the directory.
            let _ = shared.directory.hop_lost(now, entry.hop_id).await;
            false
        }
    }
}

/// A returning hop parked for its survivor: waits until it is taken; past the grace or
/// at shutdown, takes it back and ends it.
pub(crate) async fn wait_parked(parked: ParkedHop, shared: &Shared) {
    let mut parked = parked;
    let deadline = tokio::time::Instant::now() + shared.config.reattach_grace;
    let shutting_down = tokio::select! {
        _ = &mut parked.taken => return,
        _ = tokio::time::sleep_until(deadline) => false,
        _ = shared.shutdown.cancelled() => true,
    };
    let Some(mut entry) = parked.slot.take_returned() else {
        return;
    };
    let last = if shutting_down {
        Message::Close(Close {
            reason: CloseReason::ShuttingDown,
        })
    } else {
        tracing::info!("reattach grace over, ending the session");
        let _ = shared
            .directory
            .close(Instant::now(), entry.hop_id, CloseReason::Normal)
            .await;
        Message::PeerGone(PeerGone { grace_secs: 0 })
    };
    let _ = signal::send(&mut entry.hop, last).await;
}
