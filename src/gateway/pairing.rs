//! Parked applet hops: an applet's connection task waits here (one oneshot per GUID)
//! until a console's task hands it the console hop after a successful CLAIM.
//!
//! Size is bounded by the directory: a GUID is parked only after the directory accepted
//! it, and the entry is removed when the waiting task ends (the guard's drop).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rescue_proto::Guid;
use tokio::sync::oneshot;

use super::conn::Hop;

/// What a console's task hands to the waiting applet task.
pub(crate) struct ConsoleHop {
    /// The console's framed connection, HELLO done, CLAIM accepted.
    pub(crate) hop: Hop,
    /// The console's hop id in the directory.
    pub(crate) hop_id: rescue_proto::handoff::HopId,
    /// The PAIRED messages for both parties, from the directory.
    pub(crate) pairing: rescue_proto::handoff::gateway::Pairing,
    /// The technician's name (from its certificate), for logs.
    pub(crate) technician: String,
}

type Slot = (u64, oneshot::Sender<Box<ConsoleHop>>);
type Slots = Mutex<HashMap<Guid, Slot>>;

/// The parked applets of one gateway.
#[derive(Default)]
pub(crate) struct Parking {
    slots: Arc<Slots>,
    next_id: AtomicU64,
}

/// Held by a waiting applet task; removes its slot when dropped.
pub(crate) struct Parked {
    guid: Guid,
    id: u64,
    slots: Arc<Slots>,
    pub(crate) rx: oneshot::Receiver<Box<ConsoleHop>>,
}

impl Parking {
    /// Parks `guid`; `None` if another task already waits under it (the GUID is taken).
    pub(crate) fn park(&self, guid: Guid) -> Option<Parked> {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut slots = lock(&self.slots);
        if slots.contains_key(&guid) {
            return None;
        }
        slots.insert(guid, (id, tx));
        Some(Parked {
            guid,
            id,
            slots: self.slots.clone(),
            rx,
        })
    }

    /// Hands `console` to the applet parked under `guid`. Gives it back when nobody waits.
    pub(crate) fn hand_over(
        &self,
        guid: Guid,
        console: Box<ConsoleHop>,
    ) -> Result<(), Box<ConsoleHop>> {
        let slot = lock(&self.slots).remove(&guid);
        match slot {
            Some((_, tx)) => tx.send(console),
            None => Err(console),
        }
    }
}

fn lock(slots: &Slots) -> MutexGuard<'_, HashMap<Guid, Slot>> {
    // A panic while holding this lock cannot leave the map inconsistent (single
    // insert/remove calls), so a poisoned lock is still usable.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Parked {
    fn drop(&mut self) {
        let mut slots = lock(&self.slots);
        // Remove only our own slot: it may already have been taken, or replaced.
        if slots.get(&self.guid).is_some_and(|(id, _)| *id == self.id) {
            slots.remove(&self.guid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(b: u8) -> Guid {
        Guid::from_bytes([b; 16])
    }

    #[test]
    fn a_guid_parks_once_and_its_slot_goes_with_the_waiter() {
        let parking = Parking::default();
        let first = parking.park(guid(1)).expect("fresh GUID parks");
        assert!(
            parking.park(guid(1)).is_none(),
            "a second waiter must be refused"
        );
        assert!(parking.park(guid(2)).is_some());
        drop(first);
        assert!(parking.park(guid(1)).is_some(), "the slot is freed on drop");
    }

    #[test]
    fn nobody_waiting_means_nothing_to_hand_over() {
        let parking = Parking::default();
        let parked = parking.park(guid(3)).unwrap();
        drop(parked);
        assert!(lock(&parking.slots).is_empty());
    }

    #[test]
    fn a_dropped_waiter_does_not_remove_a_newer_slot() {
        let parking = Parking::default();
        let old = parking.park(guid(4)).unwrap();
        // The old slot is taken (as a hand-over would), then a new waiter parks.
        let taken = lock(&parking.slots).remove(&guid(4));
        assert!(taken.is_some());
        let _new = parking.park(guid(4)).unwrap();
        drop(old);
        assert!(lock(&parking.slots).contains_key(&guid(4)));
    }
}
