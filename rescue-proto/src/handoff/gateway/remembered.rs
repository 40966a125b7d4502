//! The GUIDs a table refuses to register again: every session that ended while its
//! ticket was still valid, remembered until the ticket expires (PROTOCOL.md 4.3).
//!
//! An entry costs a GUID in a hash set (16 bytes plus one control byte, at a load
//! factor of at most 7/8) and a `(GUID, account)` pair in the vector of its expiry
//! bucket. Expiries are rounded *up* to [`EXPIRY_GRANULARITY`], so a GUID is forgotten
//! at most that long after its ticket expired and never before; buckets are kept in
//! order, so [`Remembered::expire`] touches only what is due.
//!
//! Cost: 17 bytes a slot in the set (at most 8/7 of the entries when full, twice that
//! just after it doubled) plus one 24-byte `(GUID, account)` pair in a bucket vector
//! (up to twice that while the vector grows). Measured with a counting allocator, table
//! churned to 30,000 / 40,000 / 60,000 / 100,000 remembered GUIDs of one account: 74 /
//! 65 / 74 / 60 bytes an entry (2.2 / 2.6 / 4.5 / 5.9 MB). So
//! [`crate::wire::limits::MAX_ENDED_REMEMBERED`] (100,000) costs about 6 MB, and at
//! most about 9 MB. [`Remembered::approx_bytes`] computes the same from the capacities
//! (within 1 % of the measurement).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::guid::Guid;
use crate::wire::signal::AccountId;

/// Resolution of remembered expiries: a remembered GUID is forgotten within this time
/// after its ticket expired. Coarse buckets keep the expiry index to a few dozen
/// vectors for a 30-minute ticket lifetime; the ticket itself is refused as expired
/// meanwhile, so remembering it a little longer costs only quota.
pub const EXPIRY_GRANULARITY: Duration = Duration::from_secs(10);

/// The remembered GUIDs, per account, indexed by expiry.
#[derive(Debug, Default)]
pub(crate) struct Remembered {
    /// The instant bucket numbers count from (the first `now` seen).
    epoch: Option<Instant>,
    guids: HashSet<Guid>,
    /// Bucket `b` holds the GUIDs whose ticket expires in `(epoch + (b-1)·G, epoch + b·G]`.
    buckets: BTreeMap<u32, Vec<(Guid, AccountId)>>,
    /// Remembered GUIDs per account (no zero entries).
    per_account: HashMap<AccountId, usize>,
}

impl Remembered {
    /// Remembers `guid` until `expires` (at least). A ticket that has expired already
    /// needs no memory (REGISTER refuses it as expired); a GUID remembered already
    /// keeps its first entry. Returns whether an entry was added.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        guid: Guid,
        account: &AccountId,
        expires: Instant,
    ) -> bool {
        if expires <= now || self.guids.contains(&guid) {
            return false;
        }
        let epoch = *self.epoch.get_or_insert(now);
        let bucket = bucket_of(epoch, expires);
        self.guids.insert(guid);
        self.buckets
            .entry(bucket)
            .or_default()
            .push((guid, *account));
        *self.per_account.entry(*account).or_default() += 1;
        true
    }

    /// Whether `guid` is remembered.
    pub(crate) fn contains(&self, guid: &Guid) -> bool {
        self.guids.contains(guid)
    }

    /// Number of remembered GUIDs.
    pub(crate) fn len(&self) -> usize {
        self.guids.len()
    }

    /// Number of remembered GUIDs of `account`.
    pub(crate) fn of_account(&self, account: &AccountId) -> usize {
        self.per_account.get(account).copied().unwrap_or(0)
    }

    /// Forgets every GUID whose bucket ended at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((&bucket, _)) = self.buckets.first_key_value() {
            if self.due_of(bucket).is_none_or(|due| due > now) {
                break;
            }
            let Some(entries) = self.buckets.remove(&bucket) else {
                break;
            };
            for (guid, account) in entries {
                self.guids.remove(&guid);
                if let Some(n) = self.per_account.get_mut(&account) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_account.remove(&account);
                    }
                }
            }
        }
    }

    /// When [`Remembered::expire`] next has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let (&bucket, _) = self.buckets.first_key_value()?;
        // A bucket too far out to be an `Instant` is never due.
        self.due_of(bucket)
    }

    /// The end of bucket `b`.
    fn due_of(&self, bucket: u32) -> Option<Instant> {
        let step = EXPIRY_GRANULARITY.checked_mul(bucket)?;
        self.epoch?.checked_add(step)
    }

    /// Bytes held by the containers (not counting allocator overhead): the hash set's
    /// buckets at hashbrown's 7/8 load factor and the bucket vectors' capacity.
    pub(crate) fn approx_bytes(&self) -> usize {
        let set_buckets = (self.guids.capacity() * 8 / 7).next_power_of_two();
        let set = set_buckets * (core::mem::size_of::<Guid>() + 1);
        let pair = core::mem::size_of::<(Guid, AccountId)>();
        let vectors: usize = self.buckets.values().map(|v| v.capacity() * pair).sum();
        let nodes = self.buckets.len() * (4 + core::mem::size_of::<Vec<(Guid, AccountId)>>());
        set + vectors + nodes
    }

    /// Checks that the indexes agree; panics with a description if not (tests).
    pub(crate) fn check_invariants(&self) {
        let filed: usize = self.buckets.values().map(Vec::len).sum();
        assert_eq!(filed, self.guids.len(), "remembered index");
        let mut counts: HashMap<&AccountId, usize> = HashMap::new();
        for (guid, account) in self.buckets.values().flatten() {
            assert!(self.guids.contains(guid), "remembered GUID filed");
            *counts.entry(account).or_default() += 1;
        }
        assert_eq!(counts.len(), self.per_account.len(), "remembered accounts");
        for (account, n) in counts {
            assert_eq!(self.per_account.get(account), Some(&n), "remembered count");
        }
    }
}

/// The bucket whose end is the first multiple of the granularity at or after `expires`
/// (saturated: a ticket valid for centuries sits in the last bucket).
fn bucket_of(epoch: Instant, expires: Instant) -> u32 {
    let since = expires.saturating_duration_since(epoch);
    let g = EXPIRY_GRANULARITY.as_nanos();
    let n = since.as_nanos().div_ceil(g);
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(s: &str) -> AccountId {
        AccountId(s.bytes().fold(0, |h, b| h * 256 + u64::from(b)))
    }

    #[test]
    fn a_guid_is_kept_until_its_expiry_and_forgotten_within_the_granularity() {
        let now = Instant::now();
        let mut r = Remembered::default();
        let g = Guid::from_bytes([1; 16]);
        let expires = now + Duration::from_secs(95);
        assert!(r.insert(now, g, &acct("a"), expires));
        assert!(!r.insert(now, g, &acct("a"), expires), "kept once");
        r.expire(expires - Duration::from_nanos(1));
        assert!(r.contains(&g), "forgotten before its ticket expired");
        let due = r.poll_timeout().expect("due");
        assert!(due >= expires && due <= expires + EXPIRY_GRANULARITY);
        r.expire(due);
        assert!(!r.contains(&g) && r.of_account(&acct("a")) == 0);
        assert_eq!(r.poll_timeout(), None);
        r.check_invariants();
    }

    #[test]
    fn an_expired_ticket_is_not_remembered() {
        let now = Instant::now();
        let mut r = Remembered::default();
        assert!(!r.insert(now, Guid::from_bytes([2; 16]), &acct("a"), now));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn thirty_thousand_entries_cost_a_few_dozen_bytes_each() {
        let now = Instant::now();
        let mut r = Remembered::default();
        let n = 30_000u32;
        for i in 0..n {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_be_bytes());
            // 1,000 set-ups a minute, 30-minute tickets.
            let expires = now + Duration::from_secs(1800 + u64::from(i) * 60 / 1000);
            r.insert(now, Guid::from_bytes(b), &acct("busy"), expires);
        }
        assert_eq!(r.len(), 30_000);
        let per_entry = r.approx_bytes() / 30_000;
        let pair = core::mem::size_of::<(Guid, AccountId)>();
        // The set's 17-byte slots at most doubled plus the pair at most doubled.
        assert!(
            per_entry <= 2 * (17 * 8 / 7 + 1) + 2 * pair,
            "{per_entry} B"
        );
        r.check_invariants();
    }
}
