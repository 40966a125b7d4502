//! REATTACH through the gateway (PROTOCOL.md 3.12): when one hop of a relayed session
//! vanishes, the relay hands back the other (the survivor, sent `PEER_GONE{grace}`);
//! the survivor is parked here, answering PINGs, until its party's partner comes back
//! with REATTACH on a new hop, or the grace period ends.
//!
//! A REATTACH is checked by the directory only (`SessionTable::reattach`: GUID, current
//! resume secret compared in constant time, for a console the same certificate
//! identity, within the grace). The returning hop gets RESUMED, the survivor PEER_BACK,
//! and the relay runs again between them, in reattach mode again.
//!
//! Both hops of a session meet at a [`Rendezvous`] slot (one per GUID); a survivor's
//! task runs the relay (see [`Rendezvous`]). What it never does:
//! it never parks more than one hop per session (a newer hop of the same party replaces
//! the older, which is closed), never waits past the grace period, and never reads DATA
//! of a returned hop before the relay runs (the peer may already start its new
//! end-to-end TLS). DATA a parked survivor still sends belongs to its dead end-to-end
//! path and is dropped.
//!
//! A REATTACH that displaces a hop still inside a running relay (the gateway has not
//! yet seen the old hop fail) tells that relay, which drops the old hop and hands back
//! the other as the survivor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::BytesMut;
use futures_util::StreamExt;
use rescue_crypto::pki::ConsoleName;
use rescue_proto::handoff::gateway::ReattachRequest;
use rescue_proto::handoff::{ConsoleIdentity, HopId};
use rescue_proto::wire::signal::{
    Close, CloseReason, ErrorCode, Message, PeerBack, PeerGone, Pong, Reattach, Role,
    TechnicianName,
};
use rescue_proto::Guid;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::applet::table_refusal;
use super::conn::{refuse, Conn, Hop, Refusal};
use super::stats::Counters;
use super::Shared;
use crate::io::{BoxStream, Rewind};
use crate::relay::{relay_with_signals, Survivor};
use crate::signal::{self, RecvError};

/// One party's hop at the rendezvous.
pub(crate) struct Entry {
    role: Role,
    hop_id: HopId,
    hop: Hop,
    /// A survivor of a relay: it was sent PEER_GONE and gets PEER_BACK before relaying.
    survivor: bool,
}

impl Entry {
    /// A hop just paired (no PEER_GONE seen).
    pub(crate) fn paired(role: Role, hop_id: HopId, hop: Hop) -> Self {
        Self {
            role,
            hop_id,
            hop,
            survivor: false,
        }
    }
}

/// Where the two hops of a session meet again; bounded by the directory (one slot per
/// live session at most).
///
/// A survivor always runs the relay in its own task (for the applet's original hop
/// that is the task that registered it, whose end closes the session): it listens for
/// a returning hop. A returning hop is parked in the slot itself, unread, for a
/// survivor (or a second returning hop) to take.
#[derive(Default)]
pub(crate) struct Rendezvous {
    slots: Arc<Slots>,
    next_id: AtomicU64,
    /// Running relays: their two hops and where to say that one was displaced.
    relays: Arc<Relays>,
}

type Relays = Mutex<HashMap<Guid, Running>>;

struct Running {
    id: u64,
    applet: HopId,
    console: HopId,
    displaced: oneshot::Sender<crate::relay::Side>,
}

/// A running relay's registration; removed when dropped.
struct RelayGuard {
    guid: Guid,
    id: u64,
    relays: Arc<Relays>,
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        let mut relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        if relays.get(&self.guid).is_some_and(|r| r.id == self.id) {
            relays.remove(&self.guid);
        }
    }
}

enum Slot {
    /// A survivor's task waits for a returning hop.
    Listening(Role, u64, oneshot::Sender<Entry>),
    /// A returning hop waits to be taken; its task waits for the sender to be dropped
    /// (it is held only for that).
    #[allow(dead_code)]
    Parked(Role, u64, Entry, oneshot::Sender<()>),
}

impl Slot {
    fn id(&self) -> u64 {
        match self {
            Slot::Listening(_, id, _) | Slot::Parked(_, id, ..) => *id,
        }
    }
}

type Slots = Mutex<HashMap<Guid, Slot>>;

/// What [`Rendezvous::meet`] did with an entry.
enum Meet {
    /// A listening survivor took the entry: its task runs the relay.
    Handed,
    /// A returning hop of the other party was parked: run the relay with it.
    Pair(Entry, Entry),
    /// A survivor with nobody to meet yet: listen (reading its hop).
    Listen(Entry, Waiting),
    /// A returning hop, parked in the slot: wait until taken (or the grace ends).
    Parked(ParkedWait),
}

/// A listening survivor's slot; removed when dropped.
struct Waiting {
    guid: Guid,
    id: u64,
    slots: Arc<Slots>,
    rx: oneshot::Receiver<Entry>,
}

/// A parked returning hop's claim on its slot.
struct ParkedWait {
    guid: Guid,
    id: u64,
    slots: Arc<Slots>,
    /// Closes when the entry is taken or displaced.
    taken: oneshot::Receiver<()>,
}

impl Rendezvous {
    /// Registers a running relay; the receiver learns of a displaced hop.
    fn running(
        &self,
        guid: Guid,
        applet: HopId,
        console: HopId,
    ) -> (oneshot::Receiver<crate::relay::Side>, RelayGuard) {
        let (displaced, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let running = Running {
            id,
            applet,
            console,
            displaced,
        };
        let mut relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        relays.insert(guid, running);
        let relays = self.relays.clone();
        (rx, RelayGuard { guid, id, relays })
    }

    /// A REATTACH replaced `hop`: if it is inside a running relay, that relay drops it
    /// and keeps the other hop (PROTOCOL.md 3.12, displaced hops).
    fn displace(&self, guid: Guid, hop: HopId) {
        let mut relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        let side = match relays.get(&guid) {
            Some(r) if r.applet == hop => crate::relay::Side::A,
            Some(r) if r.console == hop => crate::relay::Side::B,
            _ => return,
        };
        if let Some(r) = relays.remove(&guid) {
            let _ = r.displaced.send(side);
        }
    }

    fn meet(&self, guid: Guid, entry: Entry) -> Meet {
        let mut entry = entry;
        let mut slots = lock(&self.slots);
        match slots.remove(&guid) {
            Some(Slot::Listening(role, _, tx)) if role != entry.role => match tx.send(entry) {
                Ok(()) => return Meet::Handed,
                Err(back) => entry = back,
            },
            Some(Slot::Parked(role, _, other, _)) if role != entry.role => {
                return Meet::Pair(entry, other);
            }
            // The same party on an older hop: dropping the slot closes that hop (or
            // tells its task it is displaced).
            _ => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let role = entry.role;
        if entry.survivor {
            let (tx, rx) = oneshot::channel();
            slots.insert(guid, Slot::Listening(role, id, tx));
            let slots = self.slots.clone();
            return Meet::Listen(
                entry,
                Waiting {
                    guid,
                    id,
                    slots,
                    rx,
                },
            );
        }
        let (tx, taken) = oneshot::channel();
        slots.insert(guid, Slot::Parked(role, id, entry, tx));
        let slots = self.slots.clone();
        Meet::Parked(ParkedWait {
            guid,
            id,
            slots,
            taken,
        })
    }
}

fn lock(slots: &Slots) -> MutexGuard<'_, HashMap<Guid, Slot>> {
    // Single insert/remove calls cannot leave the map inconsistent.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the slot `id` of `guid` if it is still there.
fn remove_own(slots: &Slots, guid: Guid, id: u64) -> Option<Slot> {
    let mut slots = lock(slots);
    if slots.get(&guid).is_some_and(|s| s.id() == id) {
        return slots.remove(&guid);
    }
    None
}

impl Drop for Waiting {
    fn drop(&mut self) {
        remove_own(&self.slots, self.guid, self.id);
    }
}

impl ParkedWait {
    /// Waits until the parked entry is taken; past the grace or at shutdown, takes it
    /// back and ends it.
    async fn wait(mut self, shared: &Shared) {
        let deadline = tokio::time::Instant::now() + shared.config.reattach_grace;
        let shutting_down = tokio::select! {
            _ = &mut self.taken => return,
            _ = tokio::time::sleep_until(deadline) => false,
            _ = shared.shutdown.cancelled() => true,
        };
        let Some(Slot::Parked(_, _, mut entry, _)) = remove_own(&self.slots, self.guid, self.id)
        else {
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
                .close(Instant::now(), entry.hop_id, CloseReason::Normal);
            Message::PeerGone(PeerGone { grace_secs: 0 })
        };
        let _ = signal::send(&mut entry.hop, last).await;
    }
}

/// Reads the first request after HELLO: a REATTACH is served here (`None`), anything
/// else is put back in front of the hop's input for the normal path (`Some`).
pub(crate) async fn divert(
    shared: &Arc<Shared>,
    mut hop: Hop,
    hop_id: HopId,
    role: Role,
    console: Option<&ConsoleName>,
    conn: &Conn,
) -> Option<Hop> {
    // An applet's first request is within the connection's one deadline; a console
    // authenticated already and may wait for its technician.
    let wait = match role {
        Role::Applet => conn.left(),
        _ => shared.config.limits.console_idle_timeout,
    };
    let msg = tokio::select! {
        m = signal::recv(&mut hop, wait) => m,
        // The normal path answers a shutdown itself.
        _ = shared.shutdown.cancelled() => return Some(hop),
    };
    let msg = match msg {
        Ok(m) => m,
        // A console that leaves is not a refusal (as in the console's request loop);
        // an applet that leaves before REGISTER is counted as one (as before).
        Err(RecvError::Closed) if role != Role::Applet => return None,
        Err(e) => {
            refuse(shared, hop, Refusal::from_recv(e, "request")).await;
            return None;
        }
    };
    let Message::Reattach(r) = msg else {
        let mut front = BytesMut::with_capacity(msg.frame_len() + hop.read_buffer().len());
        if msg.encode(&mut front).is_err() {
            refuse(
                shared,
                hop,
                Refusal::new(ErrorCode::Internal, "re-encoding"),
            )
            .await;
            return None;
        }
        front.extend_from_slice(hop.read_buffer());
        *hop.read_buffer_mut() = front;
        return Some(hop);
    };
    let span = tracing::info_span!("reattach", guid = %r.guid, ?role);
    serve(shared, hop, hop_id, role, console, r, conn)
        .instrument(span)
        .await;
    None
}

/// Checks a REATTACH with the directory, answers RESUMED, meets the partner.
async fn serve(
    shared: &Shared,
    mut hop: Hop,
    hop_id: HopId,
    role: Role,
    console: Option<&ConsoleName>,
    r: Reattach,
    conn: &Conn,
) {
    let identity = match (role, console) {
        (Role::Console, Some(name)) => match identity_of(name) {
            Some(i) => Some(i),
            None => {
                let r = Refusal::new(ErrorCode::WrongAccount, "unusable console certificate");
                return refuse(shared, hop, r).await;
            }
        },
        _ => None,
    };
    let Some(new_secret) = super::random_secret() else {
        let r = Refusal::new(ErrorCode::Internal, "random generator failed");
        return refuse(shared, hop, r).await;
    };
    let guid = r.guid;
    let req = ReattachRequest {
        guid,
        role,
        resume_secret: r.resume_secret,
        identity,
        hop: hop_id,
        new_secret,
    };
    let re = match shared.directory.reattach(Instant::now(), req) {
        Ok(re) => re,
        Err(e) => return refuse(shared, hop, table_refusal(e)).await,
    };
    // The resume secret authenticated the connection.
    if let Err(r) = conn.authenticate() {
        let _ = shared.directory.hop_lost(Instant::now(), hop_id);
        return refuse(shared, hop, r).await;
    }
    tracing::info!(displaced = ?re.displaced, "reattached");
    if let Some(old) = re.displaced {
        shared.rendezvous.displace(guid, old);
    }
    let paired = re.resumed.paired;
    if signal::send(&mut hop, Message::Resumed(re.resumed))
        .await
        .is_err()
    {
        let _ = shared.directory.hop_lost(Instant::now(), hop_id);
        return;
    }
    if !paired {
        // A waiting applet's hop ends its session (the applet side has no parking for
        // a returning hop yet): nothing to relay to.
        let r = Refusal::new(ErrorCode::UnknownGuid, "session not paired");
        return refuse(shared, hop, r).await;
    }
    let entry = Entry {
        role,
        hop_id,
        hop,
        survivor: false,
    };
    match shared.rendezvous.meet(guid, entry) {
        Meet::Handed => {}
        Meet::Pair(mine, other) => relay_session(shared, guid, (mine, other)).await,
        Meet::Parked(parked) => parked.wait(shared).await,
        Meet::Listen(entry, waiting) => {
            // Only survivors listen; a returning hop never gets here.
            if let Some(pair) = wait(shared, entry, waiting).await {
                relay_session(shared, guid, pair).await;
            }
        }
    }
}

/// The console's identity in the directory's terms.
fn identity_of(name: &ConsoleName) -> Option<ConsoleIdentity> {
    Some(ConsoleIdentity {
        account: name.account,
        technician: TechnicianName::new(name.technician.clone()).ok()?,
    })
}

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
                .close(now, applet.hop_id, CloseReason::Normal);
            let _ = shared
                .directory
                .close(now, console.hop_id, CloseReason::Normal);
            return;
        }
        let grace = shared.config.reattach_grace;
        let (a_id, c_id) = (applet.hop_id, console.hop_id);
        let a = signal::unframe(applet.hop);
        let c = signal::unframe(console.hop);
        let (displaced, _running) = shared.rendezvous.running(guid, a_id, c_id);
        let displaced = async move {
            match displaced.await {
                Ok(hop) => hop,
                Err(_) => std::future::pending().await,
            }
        };
        // Each run of the relay has its own rendezvous (a REATTACH starts afresh).
        let hook: Box<dyn crate::relay::RelaySignals> = Box::new(shared.relay_hook());
        let ctx = (guid, &shared.config.relay, shared.shutdown.clone(), grace);
        let (stats, survivor) = relay_with_signals(a, c, ctx, displaced, Some(hook)).await;
        Counters::add(&shared.stats.bytes_a2c, stats.a_to_b.bytes);
        Counters::add(&shared.stats.bytes_c2a, stats.b_to_a.bytes);
        Counters::bump(&shared.stats.relays_ended);
        tracing::info!(end = ?stats.end, kept = ?survivor.as_ref().map(Survivor::hop), "relay ended");
        let now = Instant::now();
        let Some(survivor) = survivor else {
            let _ = shared.directory.close(now, a_id, CloseReason::Normal);
            let _ = shared.directory.close(now, c_id, CloseReason::Normal);
            return;
        };
        let (role, hop_id, lost, stream, read_ahead) = match survivor {
            Survivor::A { stream, read_ahead } => (Role::Applet, a_id, c_id, stream, read_ahead),
            Survivor::B { stream, read_ahead } => (Role::Console, c_id, a_id, stream, read_ahead),
        };
        // PEER_GONE went out from the relay already.
        let _ = shared.directory.hop_lost(now, lost);
        let stream: BoxStream = Box::new(Rewind::new(read_ahead.into(), stream));
        let entry = Entry {
            role,
            hop_id,
            hop: signal::framed(stream),
            survivor: true,
        };
        pair = match shared.rendezvous.meet(guid, entry) {
            Meet::Pair(mine, other) => (mine, other),
            Meet::Listen(entry, waiting) => match wait(shared, entry, waiting).await {
                Some(next) => next,
                None => return,
            },
            Meet::Handed => return,
            Meet::Parked(parked) => return parked.wait(shared).await,
        };
    }
}

/// Keeps a survivor's `entry` (reading its hop) until its partner arrives (`Some`), or the grace ends, the hop goes,
/// a newer hop of the same party displaces it, or the gateway shuts down (`None`).
async fn wait(shared: &Shared, entry: Entry, waiting: Waiting) -> Option<(Entry, Entry)> {
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
                let _ = shared.directory.close(Instant::now(), entry.hop_id, CloseReason::Normal);
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
            let _ = shared.directory.hop_lost(now, entry.hop_id);
            false
        }
        // PONGs, and DATA of the dead end-to-end path, are dropped.
        Some(Message::Pong(_) | Message::Data(_)) => true,
        Some(Message::Close(c)) => {
            let _ = shared.directory.close(now, entry.hop_id, c.reason);
            false
        }
        _ => {
            // Gone too (or broke the protocol): both parties are away now, which ends
            // the session in the directory.
            let _ = shared.directory.hop_lost(now, entry.hop_id);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: Role, id: u64, survivor: bool) -> Entry {
        let (a, _b) = tokio::io::duplex(64);
        Entry {
            role,
            hop_id: HopId(id),
            hop: signal::framed(Box::new(a)),
            survivor,
        }
    }

    fn guid() -> Guid {
        Guid::from_bytes([5; 16])
    }

    #[tokio::test]
    async fn a_returning_hop_is_handed_to_the_listening_survivor() {
        let r = Rendezvous::default();
        let Meet::Listen(_, mut waiting) = r.meet(guid(), entry(Role::Console, 1, true)) else {
            panic!("the survivor listens");
        };
        assert!(matches!(
            r.meet(guid(), entry(Role::Applet, 2, false)),
            Meet::Handed
        ));
        let got = waiting.rx.try_recv().expect("handed over");
        assert_eq!((got.role, got.hop_id), (Role::Applet, HopId(2)));
    }

    #[tokio::test]
    async fn a_survivor_takes_a_parked_returning_hop_and_runs_the_relay() {
        let r = Rendezvous::default();
        let Meet::Parked(mut parked) = r.meet(guid(), entry(Role::Applet, 2, false)) else {
            panic!("a returning hop parks");
        };
        let Meet::Pair(mine, other) = r.meet(guid(), entry(Role::Console, 1, true)) else {
            panic!("the survivor pairs");
        };
        assert_eq!((mine.hop_id, other.hop_id), (HopId(1), HopId(2)));
        // The parked task learns that its hop was taken.
        assert!(matches!(
            parked.taken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(lock(&r.slots).is_empty());
    }

    #[tokio::test]
    async fn a_newer_hop_of_the_same_party_displaces_the_older() {
        let r = Rendezvous::default();
        let Meet::Listen(_, mut old) = r.meet(guid(), entry(Role::Console, 1, true)) else {
            panic!("listens");
        };
        let Meet::Parked(_new) = r.meet(guid(), entry(Role::Console, 3, false)) else {
            panic!("the newer hop parks");
        };
        assert!(
            old.rx.try_recv().is_err(),
            "the older hop is told it is displaced"
        );
        drop(old);
        assert_eq!(
            lock(&r.slots).len(),
            1,
            "the older waiter leaves the newer slot"
        );
    }

    #[tokio::test]
    async fn slots_go_with_their_waiters() {
        let r = Rendezvous::default();
        let Meet::Listen(_, waiting) = r.meet(guid(), entry(Role::Applet, 1, true)) else {
            panic!("listens");
        };
        drop(waiting);
        assert!(lock(&r.slots).is_empty());
    }
}
