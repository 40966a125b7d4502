//! The state shared by a socket, its streams and its driver task, and the driver itself.
//!
//! Each poll of the driver: receive a bounded number of batches and hand every datagram
//! to the endpoint; fire the endpoint's timer if it is due (the clock is read before the
//! sleep is armed, so an overdue timer is never missed); forward connection events to the
//! wakers of the streams; send what the endpoint produces, up to a budget, keeping a
//! transmit the socket could not take; then arm the sleep. Work left over re-wakes the
//! task instead of looping, so one busy socket cannot starve the runtime.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ::tokio::time::Sleep;

use super::udp::{RecvBufs, UdpIo, MAX_UDP_PAYLOAD};
use super::{LINGER, MAX_TRANSMIT_SEGMENTS};
use crate::{CloseReason, ConnectionHandle, Endpoint, Event};

/// Receive batches handled per driver poll before the other steps get their turn.
const RECV_BATCHES_PER_POLL: usize = 8;
/// Transmits (each up to [`MAX_TRANSMIT_SEGMENTS`] datagrams) sent per driver poll; more
/// work re-wakes the task so other tasks on the runtime get a turn.
const TRANSMITS_PER_POLL: usize = 32;
/// Timer-then-transmit rounds per driver poll: a timeout usually produces a transmit that
/// may set the next (pacing) timer; bounded so a timer that keeps firing cannot spin.
const TIMER_ROUNDS_PER_POLL: usize = 4;

/// What the streams of one connection are waiting for, and what they have learned.
#[derive(Debug, Default)]
pub(crate) struct ConnSlot {
    pub(crate) read: Option<Waker>,
    pub(crate) write: Option<Waker>,
    pub(crate) connect: Option<Waker>,
    pub(crate) connected: bool,
    pub(crate) closed: Option<CloseReason>,
    /// The stream of this connection was dropped (or never created, for a timed-out
    /// connect): forget the slot once the connection is closed.
    pub(crate) released: bool,
}

/// The endpoint and the bookkeeping around it, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) endpoint: Endpoint,
    pub(crate) conns: HashMap<ConnectionHandle, ConnSlot>,
    pub(crate) accepted: VecDeque<ConnectionHandle>,
    pub(crate) accept_waker: Option<Waker>,
    pub(crate) driver: Option<Waker>,
    /// Live [`super::XtcpSocket`] handles.
    pub(crate) sockets: usize,
    /// Set when the driver has stopped; every later operation fails.
    pub(crate) stopped: bool,
}

impl State {
    /// Wakes the driver so it sends what the endpoint now has to send.
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

/// What a socket, its streams and its driver share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) udp: UdpIo,
}

impl Shared {
    /// Locks the state. A panic elsewhere while holding the lock cannot leave the
    /// endpoint half-updated in a way we could repair, so keep going with what is there.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A transmit the socket could not take yet.
#[derive(Debug)]
struct Pending {
    destination: std::net::SocketAddr,
    size: usize,
    segment_size: Option<usize>,
}

/// The driver task of one socket.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    bufs: RecvBufs,
    send_buf: Vec<u8>,
    pending: Option<Pending>,
    timer: Pin<Box<Sleep>>,
    linger_until: Option<Instant>,
    /// Most datagrams per GSO send for this socket's MSS: [`MAX_TRANSMIT_SEGMENTS`],
    /// lowered so a whole batch fits in one UDP payload.
    max_segments: usize,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, max_payload: usize) -> Self {
        let gro = shared.udp.gro_segments();
        Self {
            bufs: RecvBufs::new(quinn_udp::BATCH_SIZE, max_payload, gro),
            shared,
            send_buf: Vec::new(),
            pending: None,
            timer: Box::pin(::tokio::time::sleep(Duration::ZERO)),
            linger_until: None,
            max_segments: (MAX_UDP_PAYLOAD / max_payload.max(1)).clamp(1, MAX_TRANSMIT_SEGMENTS),
        }
    }

    /// Receives and handles up to [`RECV_BATCHES_PER_POLL`] batches. Returns true when
    /// the budget ran out with datagrams possibly left.
    fn drive_recv(&mut self, cx: &mut Context<'_>, state: &mut State) -> bool {
        for _ in 0..RECV_BATCHES_PER_POLL {
            match self.bufs.poll_recv(cx, &self.shared.udp) {
                Poll::Pending => return false,
                // ECONNREFUSED and friends from ICMP: not fatal for a datagram socket.
                Poll::Ready(Err(e)) => tracing::trace!(error = %e, "UDP receive error"),
                Poll::Ready(Ok(n)) => {
                    let now = Instant::now();
                    for i in 0..n {
                        if let Some((from, datagrams)) = self.bufs.slot(i) {
                            for d in datagrams {
                                state.endpoint.handle(now, from, d);
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// Sends up to [`TRANSMITS_PER_POLL`] transmits. Returns true when the budget ran
    /// out with more to send; false when done or the socket is full (it wakes us).
    fn drive_transmit(&mut self, cx: &mut Context<'_>, state: &mut State) -> bool {
        let max = self.shared.udp.max_gso_segments().min(self.max_segments);
        for _ in 0..TRANSMITS_PER_POLL {
            let p = match self.pending.take() {
                Some(p) => p,
                None => {
                    self.send_buf.clear();
                    let now = Instant::now();
                    let Some(t) = state.endpoint.poll_transmit(now, max, &mut self.send_buf) else {
                        return false;
                    };
                    Pending {
                        destination: t.destination,
                        size: t.size,
                        segment_size: t.segment_size,
                    }
                }
            };
            let contents = self.send_buf.get(..p.size).unwrap_or(&self.send_buf);
            let t = quinn_udp::Transmit {
                destination: p.destination,
                ecn: None,
                contents,
                segment_size: p.segment_size.filter(|s| *s < contents.len()),
                src_ip: None,
            };
            if self.shared.udp.poll_send(cx, &t).is_pending() {
                self.pending = Some(p);
                return false;
            }
        }
        true
    }

    /// Forwards connection and endpoint events to the waiting streams.
    fn forward_events(state: &mut State) {
        while let Some(h) = state.endpoint.accept() {
            state.conns.entry(h).or_default().connected = true;
            state.accepted.push_back(h);
            if let Some(w) = state.accept_waker.take() {
                w.wake();
            }
        }
        let State {
            endpoint, conns, ..
        } = state;
        for (h, slot) in conns.iter_mut() {
            let Some(conn) = endpoint.connection(*h) else {
                if slot.closed.is_none() {
                    slot.closed = Some(CloseReason::Aborted);
                    wake_all(slot);
                }
                continue;
            };
            while let Some(ev) = conn.poll() {
                on_event(slot, ev);
            }
        }
    }

    /// Runs the endpoint's timer if it is due. Returns true when it fired.
    fn fire_due_timer(state: &mut State) -> bool {
        let now = Instant::now();
        match state.endpoint.poll_timeout() {
            Some(deadline) if deadline <= now => {
                state.endpoint.handle_timeout(now);
                true
            }
            _ => false,
        }
    }

    /// Arms the sleep for `at`, or re-wakes the task at once if `at` has already passed
    /// (the clock is checked first: a sleep polled under tokio's cooperative budget may
    /// stay pending past its deadline).
    fn arm_timer(&mut self, cx: &mut Context<'_>, at: Instant) {
        if at <= Instant::now() {
            cx.waker().wake_by_ref();
            return;
        }
        self.timer
            .as_mut()
            .reset(::tokio::time::Instant::from_std(at));
        if self.timer.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
    }

    /// Drops slots of closed connections whose streams are gone. Returns true when the
    /// driver should stop: no socket handle, no stream, nothing left to linger for.
    fn collect(&mut self, state: &mut State) -> bool {
        state
            .conns
            .retain(|_, s| !(s.released && s.closed.is_some()));
        let any_stream = state.conns.values().any(|s| !s.released);
        if state
            .conns
            .values()
            .all(|s| s.closed.is_none() || s.released)
        {
            state.endpoint.remove_closed();
        }
        if state.sockets > 0 || any_stream {
            self.linger_until = None;
            return false;
        }
        if state.conns.is_empty() {
            return true;
        }
        let until = *self.linger_until.get_or_insert(Instant::now() + LINGER);
        if Instant::now() >= until {
            for h in state.conns.keys() {
                if let Some(c) = state.endpoint.connection(*h) {
                    c.abort();
                }
            }
            return true;
        }
        false
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let shared = this.shared.clone();
        let mut state = shared.lock();
        state.driver = Some(cx.waker().clone());
        let mut busy = this.drive_recv(cx, &mut state);
        // Fire due timers and send, repeating while a timer fired, so that what a
        // timeout produced goes out in this poll.
        for round in 0..TIMER_ROUNDS_PER_POLL {
            let fired = Self::fire_due_timer(&mut state);
            Self::forward_events(&mut state);
            busy |= this.drive_transmit(cx, &mut state);
            if !fired {
                break;
            }
            busy |= round + 1 == TIMER_ROUNDS_PER_POLL;
        }
        if this.collect(&mut state) {
            state.stopped = true;
            wake_everyone(&mut state);
            return Poll::Ready(());
        }
        let wake_at = match (state.endpoint.poll_timeout(), this.linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = wake_at {
            this.arm_timer(cx, at);
        }
        drop(state);
        if busy {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

fn on_event(slot: &mut ConnSlot, ev: Event) {
    match ev {
        Event::Connected => {
            slot.connected = true;
            wake(&mut slot.connect);
            wake(&mut slot.write);
        }
        Event::Readable | Event::PeerFinished => wake(&mut slot.read),
        Event::Writable => wake(&mut slot.write),
        Event::Closed(reason) => {
            slot.closed = Some(reason);
            wake_all(slot);
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

fn wake_all(slot: &mut ConnSlot) {
    wake(&mut slot.read);
    wake(&mut slot.write);
    wake(&mut slot.connect);
}

fn wake_everyone(state: &mut State) {
    for slot in state.conns.values_mut() {
        wake_all(slot);
    }
    wake(&mut state.accept_waker);
}
