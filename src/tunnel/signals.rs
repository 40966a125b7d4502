//! [`TunnelSignals`]: the gateway signalling of a running relay (PROTOCOL.md 3.13),
//! next to the DATA stream of a [`super::DataTunnel`].
//!
//! The path manager holds this handle while the end-to-end TLS runs over the tunnel (the
//! tunnel itself is deep inside that stream). [`TunnelSignals::rendezvous`] asks the
//! tunnel to send RENDEZVOUS: the tunnel's writer emits it at its next frame boundary
//! (between two DATA frames, never inside one), woken by this call if nothing else is
//! going on. UDP_TOKEN and PEER_ADDR frames the tunnel reads from the gateway are
//! queued here, at most [`MAX_QUEUED_SIGNALS`]; further ones are dropped and counted
//! ([`TunnelSignals::dropped`]). A malformed one fails the tunnel as a protocol
//! violation, like any malformed frame.
//!
//! What it never does: it never touches DATA (the tunnel checks one atomic flag per
//! drain, nothing is copied), never blocks, and never queues more than its limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::task::AtomicWaker;
use rescue_proto::wire::signal::{PeerAddr, UdpToken};
use tokio::sync::Notify;

/// Signals a tunnel keeps for its reader: one rendezvous brings one UDP_TOKEN and one
/// PEER_ADDR; four leave room for a late pair and bound what a gateway can queue.
pub const MAX_QUEUED_SIGNALS: usize = 4;

/// A signalling frame the gateway sent on the hop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelSignal {
    /// UDP_TOKEN: the token to probe with and the gateway's UDP port.
    UdpToken(UdpToken),
    /// PEER_ADDR: the other party's reflexive UDP address.
    PeerAddr(PeerAddr),
}

/// The tunnel this handle belonged to is gone (dropped or unwrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the tunnel is gone")]
#[non_exhaustive]
pub struct TunnelGone;

/// A handle on a tunnel's signalling (see the module docs). Cheap to clone; one task
/// should read [`TunnelSignals::recv`] at a time.
#[derive(Debug, Clone)]
pub struct TunnelSignals {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    /// A RENDEZVOUS waits for the tunnel's writer.
    rendezvous: AtomicBool,
    /// The tunnel's reader, woken to emit a requested RENDEZVOUS.
    waker: AtomicWaker,
    queue: Mutex<Queue>,
    notify: Notify,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    signals: VecDeque<TunnelSignal>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Push and pop leave the queue consistent: a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tunnel's writer: whether a RENDEZVOUS is to be sent now (clears the request).
    pub(super) fn take_rendezvous(&self) -> bool {
        self.rendezvous.load(Ordering::Relaxed) && self.rendezvous.swap(false, Ordering::AcqRel)
    }

    /// The tunnel's reader is about to return `Pending`.
    pub(super) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// The tunnel read a signal.
    pub(super) fn push(&self, signal: TunnelSignal) {
        let mut q = self.lock();
        if q.signals.len() >= MAX_QUEUED_SIGNALS {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("gateway signal dropped: queue full");
            return;
        }
        q.signals.push_back(signal);
        drop(q);
        self.notify.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

impl TunnelSignals {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Asks the tunnel to send RENDEZVOUS at its next frame boundary (several requests
    /// before it went out make one frame). The gateway answers with UDP_TOKEN, or not at
    /// all (PROTOCOL.md 3.13): wait for it with a timeout.
    pub async fn rendezvous(&self) -> Result<(), TunnelGone> {
        if self.shared.lock().closed {
            return Err(TunnelGone);
        }
        self.shared.rendezvous.store(true, Ordering::Release);
        self.shared.waker.wake();
        Ok(())
    }

    /// The next signal, waiting for one; `None` once the tunnel is gone and nothing is
    /// left. Cancel-safe.
    pub async fn recv(&self) -> Option<TunnelSignal> {
        loop {
            let notified = self.shared.notify.notified();
            {
                let mut q = self.shared.lock();
                if let Some(s) = q.signals.pop_front() {
                    return Some(s);
                }
                if q.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next signal if one is queued.
    pub fn try_recv(&self) -> Option<TunnelSignal> {
        self.shared.lock().signals.pop_front()
    }

    /// Drops every queued signal (stale ones from an earlier rendezvous); returns how many.
    pub fn clear(&self) -> usize {
        let mut q = self.shared.lock();
        let n = q.signals.len();
        q.signals.clear();
        n
    }

    /// Signals dropped because [`MAX_QUEUED_SIGNALS`] were queued.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// Held by the tunnel: closes the signals when the tunnel goes.
#[derive(Debug, Default)]
pub(super) struct Guard(pub(super) Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.close();
    }
}
