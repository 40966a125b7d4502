//! The gateway's one per-GUID session state: which task holds which hop of each live
//! session, in one table with one id counter and one drop guard.
//!
//! A session of this gateway is in one of four local states:
//!
//! | state | who waits | ended by |
//! | --- | --- | --- |
//! | [`Waiting`](State::Waiting) | the applet's task, for a console after CLAIM | hand-over, the applet leaving |
//! | [`Relaying`](State::Relaying) | a relay between both hops | its end; a REATTACH that displaces one hop |
//! | [`Survivor`](State::Survivor) | a hop parked for reattach: its task reads it and listens for the partner | the partner's return, the grace, the hop leaving |
//! | [`Returned`](State::Returned) | a returning hop, unread, for its survivor (or the other party's return) | being taken, the grace |
//!
//! The table holds connections and channels, never end-to-end keys; the session's
//! metadata (account, claim, resume secrets, deadlines) is the [`crate::directory`]'s.
//! It is bounded by the directory: a GUID gets an entry only for a session the
//! directory admitted (or is about to admit, see [`SessionTable::wait`]), one entry
//! per GUID. Every entry is owned by a [`Slot`] held by the task it belongs to; the
//! slot's drop removes the entry unless a newer one replaced it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rescue_proto::handoff::gateway::Pairing;
use rescue_proto::handoff::HopId;
use rescue_proto::wire::signal::Role;
use rescue_proto::Guid;
use tokio::sync::oneshot;

use crate::relay::Side;
use crate::signal::Hop;

/// What a console's task hands to the waiting applet task.
pub(crate) struct ConsoleHop {
    /// The console's framed connection, HELLO done, CLAIM accepted.
    pub(crate) hop: Hop,
    /// The console's hop id in the directory.
    pub(crate) hop_id: HopId,
    /// The PAIRED messages for both parties, from the directory.
    pub(crate) pairing: Pairing,
    /// The technician's name (from its certificate), for logs.
    pub(crate) technician: String,
}

/// One party's hop of a paired session, between two runs of the relay.
pub(crate) struct Entry {
    pub(crate) role: Role,
    pub(crate) hop_id: HopId,
    pub(crate) hop: Hop,
    /// A survivor of a relay: it was sent PEER_GONE and gets PEER_BACK before relaying.
    pub(crate) survivor: bool,
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

/// The local state of one session.
enum State {
    /// The applet's task waits for a console's hop.
    Waiting(oneshot::Sender<Box<ConsoleHop>>),
    /// A relay runs between these hops; `displaced` tells it that one was replaced.
    Relaying {
        applet: HopId,
        console: HopId,
        displaced: oneshot::Sender<Side>,
    },
    /// A survivor's task reads its hop and listens for a returning one.
    Survivor(Role, oneshot::Sender<Entry>),
    /// A returning hop waits, unread, to be taken; its task waits for `taken` to be
    /// dropped (it is held only for that).
    Returned(Role, Entry, #[allow(dead_code)] oneshot::Sender<()>),
}

type Map = Mutex<HashMap<Guid, (u64, State)>>;

/// The per-GUID session state of one gateway.
#[derive(Default)]
pub(crate) struct SessionTable {
    map: Arc<Map>,
    next_id: AtomicU64,
}

/// A task's hold on its entry; removes it when dropped (unless it was replaced).
pub(crate) struct Slot {
    guid: Guid,
    id: u64,
    map: Arc<Map>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if map.get(&self.guid).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.guid);
        }
    }
}

impl Slot {
    /// Takes a returned hop out of this slot's entry (the grace ended): `None` if a
    /// survivor took it or a newer entry replaced it.
    pub(crate) fn take_returned(&self) -> Option<Entry> {
        let mut map = lock(&self.map);
        if map.get(&self.guid).is_none_or(|(id, _)| *id != self.id) {
            return None;
        }
        match map.remove(&self.guid) {
            Some((_, State::Returned(_, entry, _))) => Some(entry),
            _ => None,
        }
    }
}

/// A waiting applet's entry and the channel its console arrives on.
pub(crate) struct WaitingApplet {
    pub(crate) rx: oneshot::Receiver<Box<ConsoleHop>>,
    #[allow(dead_code)]
    slot: Slot,
}

/// A running relay's entry and where it learns of a displaced hop.
pub(crate) struct RunningRelay {
    pub(crate) displaced: oneshot::Receiver<Side>,
    #[allow(dead_code)]
    slot: Slot,
}

/// What [`SessionTable::meet`] did with an entry.
pub(crate) enum Meet {
    /// A listening survivor took the entry: its task runs the relay.
    Handed,
    /// A returning hop of the other party was there: run the relay with it.
    Pair(Entry, Entry),
    /// A survivor with nobody to meet yet: listen (reading its hop).
    Listen(Entry, Listening),
    /// A returning hop, parked: wait until taken (or the grace ends).
    Parked(ParkedHop),
}

/// A listening survivor's entry.
pub(crate) struct Listening {
    pub(crate) rx: oneshot::Receiver<Entry>,
    #[allow(dead_code)]
    slot: Slot,
}

/// A parked returning hop's hold on its entry.
pub(crate) struct ParkedHop {
    /// Closes when the entry is taken or displaced.
    pub(crate) taken: oneshot::Receiver<()>,
    pub(crate) slot: Slot,
}

impl SessionTable {
    fn insert(&self, map: &mut HashMap<Guid, (u64, State)>, guid: Guid, state: State) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(guid, (id, state));
        Slot {
            guid,
            id,
            map: self.map.clone(),
        }
    }

    /// An applet's task waits under `guid` for a console; `None` if the GUID has an
    /// entry already (it is taken). Called before the directory admits the session,
    /// so a CLAIM can never find it without a waiting task.
    pub(crate) fn wait(&self, guid: Guid) -> Option<WaitingApplet> {
        let (tx, rx) = oneshot::channel();
        let mut map = lock(&self.map);
        if map.contains_key(&guid) {
            return None;
        }
        let slot = self.insert(&mut map, guid, State::Waiting(tx));
        Some(WaitingApplet { rx, slot })
    }

    /// Hands `console` to the applet waiting under `guid`; gives it back when nobody
    /// waits.
    pub(crate) fn hand_over(
        &self,
        guid: Guid,
        console: Box<ConsoleHop>,
    ) -> Result<(), Box<ConsoleHop>> {
        let mut map = lock(&self.map);
        if !matches!(map.get(&guid), Some((_, State::Waiting(_)))) {
            return Err(console);
        }
        match map.remove(&guid) {
            Some((_, State::Waiting(tx))) => tx.send(console),
            _ => Err(console),
        }
    }

    /// A relay starts between `applet` and `console` of `guid`.
    pub(crate) fn relaying(&self, guid: Guid, applet: HopId, console: HopId) -> RunningRelay {
        let (displaced, rx) = oneshot::channel();
        let state = State::Relaying {
            applet,
            console,
            displaced,
        };
        let slot = self.insert(&mut lock(&self.map), guid, state);
        RunningRelay {
            displaced: rx,
            slot,
        }
    }

    /// A REATTACH replaced `hop`: if it is inside a running relay, that relay drops it
    /// and keeps the other hop (PROTOCOL.md 3.12, displaced hops).
    pub(crate) fn displace(&self, guid: Guid, hop: HopId) {
        let mut map = lock(&self.map);
        let side = match map.get(&guid) {
            Some((_, State::Relaying { applet, .. })) if *applet == hop => Side::A,
            Some((_, State::Relaying { console, .. })) if *console == hop => Side::B,
            _ => return,
        };
        if let Some((_, State::Relaying { displaced, .. })) = map.remove(&guid) {
            let _ = displaced.send(side);
        }
    }

    /// Brings a hop of a paired session to its partner: a survivor of a relay, or a
    /// hop returning with REATTACH.
    pub(crate) fn meet(&self, guid: Guid, entry: Entry) -> Meet {
        let mut entry = entry;
        let mut map = lock(&self.map);
        match map.remove(&guid) {
            Some((_, State::Survivor(role, tx))) if role != entry.role => match tx.send(entry) {
                Ok(()) => return Meet::Handed,
                Err(back) => entry = back,
            },
            Some((_, State::Returned(role, other, _))) if role != entry.role => {
                return Meet::Pair(entry, other);
            }
            // The same party on an older hop: dropping the entry closes that hop (or
            // tells its task it is displaced); a finished relay's entry goes too.
            _ => {}
        }
        let role = entry.role;
        if entry.survivor {
            let (tx, rx) = oneshot::channel();
            let slot = self.insert(&mut map, guid, State::Survivor(role, tx));
            return Meet::Listen(entry, Listening { rx, slot });
        }
        let (tx, taken) = oneshot::channel();
        let slot = self.insert(&mut map, guid, State::Returned(role, entry, tx));
        Meet::Parked(ParkedHop { taken, slot })
    }

    /// Live entries (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

fn lock(map: &Map) -> MutexGuard<'_, HashMap<Guid, (u64, State)>> {
    // Single insert/remove calls cannot leave the map inconsistent, so a poisoned lock
    // is still usable.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: Role, id: u64, survivor: bool) -> Entry {
        let (a, _b) = tokio::io::duplex(64);
        Entry {
            role,
            hop_id: HopId(id),
            hop: crate::signal::framed(Box::new(a)),
            survivor,
        }
    }

    fn guid(b: u8) -> Guid {
        Guid::from_bytes([b; 16])
    }

    #[test]
    fn a_guid_waits_once_and_its_entry_goes_with_the_waiter() {
        let t = SessionTable::default();
        let first = t.wait(guid(1)).expect("fresh GUID waits");
        assert!(t.wait(guid(1)).is_none(), "a second waiter is refused");
        assert!(t.wait(guid(2)).is_some());
        drop(first);
        assert!(t.wait(guid(1)).is_some(), "the entry is freed on drop");
    }

    #[tokio::test]
    async fn a_guid_in_any_state_is_taken_for_a_new_waiter() {
        let t = SessionTable::default();
        let _relay = t.relaying(guid(1), HopId(1), HopId(2));
        assert!(t.wait(guid(1)).is_none(), "relaying");
        let Meet::Listen(_, _l) = t.meet(guid(2), entry(Role::Console, 1, true)) else {
            panic!("the survivor listens");
        };
        assert!(t.wait(guid(2)).is_none(), "a survivor parked for reattach");
    }

    #[tokio::test]
    async fn nobody_waiting_means_nothing_to_hand_over() {
        let t = SessionTable::default();
        let (a, _b) = tokio::io::duplex(64);
        let console = Box::new(ConsoleHop {
            hop: crate::signal::framed(Box::new(a)),
            hop_id: HopId(9),
            pairing: test_pairing(),
            technician: "t".into(),
        });
        let waiting = t.wait(guid(3)).unwrap();
        drop(waiting);
        assert!(t.hand_over(guid(3), console).is_err());
        assert_eq!(t.len(), 0);
    }

    fn test_pairing() -> Pairing {
        use rescue_proto::wire::signal::{Paired, ResumeSecret};
        let to_console = Paired::ToConsole {
            guid: guid(3),
            resume_secret: ResumeSecret::from_bytes([1; 32]),
        };
        Pairing {
            applet: HopId(1),
            to_applet: to_console.clone(),
            to_console,
        }
    }

    #[test]
    fn a_dropped_waiter_does_not_remove_a_newer_entry() {
        let t = SessionTable::default();
        let old = t.wait(guid(4)).unwrap();
        // The old entry is replaced (as a relay's start would), then the old waiter ends.
        let _relay = t.relaying(guid(4), HopId(1), HopId(2));
        drop(old);
        assert_eq!(t.len(), 1);
    }

    #[tokio::test]
    async fn a_displaced_hop_tells_its_relay_which_side() {
        let t = SessionTable::default();
        let mut relay = t.relaying(guid(5), HopId(1), HopId(2));
        t.displace(guid(5), HopId(3));
        assert!(relay.displaced.try_recv().is_err(), "not one of its hops");
        t.displace(guid(5), HopId(2));
        assert_eq!(relay.displaced.try_recv().ok(), Some(Side::B));
    }

    #[tokio::test]
    async fn a_returning_hop_is_handed_to_the_listening_survivor() {
        let t = SessionTable::default();
        let Meet::Listen(_, mut l) = t.meet(guid(5), entry(Role::Console, 1, true)) else {
            panic!("the survivor listens");
        };
        assert!(matches!(
            t.meet(guid(5), entry(Role::Applet, 2, false)),
            Meet::Handed
        ));
        let got = l.rx.try_recv().expect("handed over");
        assert_eq!((got.role, got.hop_id), (Role::Applet, HopId(2)));
    }

    #[tokio::test]
    async fn a_survivor_takes_a_parked_returning_hop_and_runs_the_relay() {
        let t = SessionTable::default();
        let Meet::Parked(mut parked) = t.meet(guid(5), entry(Role::Applet, 2, false)) else {
            panic!("a returning hop parks");
        };
        let Meet::Pair(mine, other) = t.meet(guid(5), entry(Role::Console, 1, true)) else {
            panic!("the survivor pairs");
        };
        assert_eq!((mine.hop_id, other.hop_id), (HopId(1), HopId(2)));
        assert!(matches!(
            parked.taken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(parked.slot.take_returned().is_none(), "taken already");
        assert_eq!(t.len(), 0);
    }

    #[tokio::test]
    async fn a_newer_hop_of_the_same_party_displaces_the_older() {
        let t = SessionTable::default();
        let Meet::Listen(_, mut old) = t.meet(guid(5), entry(Role::Console, 1, true)) else {
            panic!("listens");
        };
        let Meet::Parked(new) = t.meet(guid(5), entry(Role::Console, 3, false)) else {
            panic!("the newer hop parks");
        };
        assert!(old.rx.try_recv().is_err(), "the older hop is told");
        drop(old);
        assert_eq!(t.len(), 1, "the older waiter leaves the newer entry");
        let back = new.slot.take_returned().expect("still parked");
        assert_eq!(back.hop_id, HopId(3));
    }
}
