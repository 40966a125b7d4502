//! Adapter from the directory calls to the session table.
//!
//! TEMPORARY: a minimal table until `rescue_proto::handoff::SessionTable` lands; then
//! this file only translates calls and errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rescue_crypto::pki::AccountId;
use rescue_proto::wire::limits::{MAX_SESSIONS, MAX_SESSIONS_PER_ACCOUNT};
use rescue_proto::Guid;

use super::super::{DirectoryError, WaitingSession};

struct Entry {
    account: AccountId,
    since: Instant,
    expires: Instant,
    claimed: bool,
}

pub(super) struct Table {
    live: HashMap<Guid, Entry>,
}

impl Table {
    pub(super) fn new() -> Self {
        Self {
            live: HashMap::new(),
        }
    }

    pub(super) fn register(
        &mut self,
        guid: Guid,
        account: AccountId,
        lifetime: Duration,
        now: Instant,
    ) -> Result<(), DirectoryError> {
        if self.live.contains_key(&guid) {
            return Err(DirectoryError::Taken);
        }
        let of_account = self.live.values().filter(|e| e.account == account).count();
        if self.live.len() >= MAX_SESSIONS || of_account >= MAX_SESSIONS_PER_ACCOUNT {
            return Err(DirectoryError::Full);
        }
        let entry = Entry {
            account,
            since: now,
            expires: now + lifetime,
            claimed: false,
        };
        self.live.insert(guid, entry);
        Ok(())
    }

    pub(super) fn claim(
        &mut self,
        guid: Guid,
        account: AccountId,
        now: Instant,
    ) -> Result<(), DirectoryError> {
        let e = self.live.get_mut(&guid).ok_or(DirectoryError::Unknown)?;
        if e.account != account {
            return Err(DirectoryError::WrongAccount);
        }
        if e.claimed {
            return Err(DirectoryError::AlreadyClaimed);
        }
        if now >= e.expires {
            return Err(DirectoryError::Unknown);
        }
        e.claimed = true;
        Ok(())
    }

    pub(super) fn waiting(
        &self,
        account: AccountId,
        max: usize,
        now: Instant,
    ) -> Vec<WaitingSession> {
        let mut v: Vec<WaitingSession> = self
            .live
            .iter()
            .filter(|(_, e)| e.account == account && !e.claimed && now < e.expires)
            .map(|(g, e)| WaitingSession {
                guid: *g,
                waiting: now.saturating_duration_since(e.since),
            })
            .collect();
        v.sort_by_key(|w| std::cmp::Reverse(w.waiting));
        v.truncate(max);
        v
    }

    pub(super) fn end(&mut self, guid: Guid, _now: Instant) {
        self.live.remove(&guid);
    }

    pub(super) fn expire(&mut self, now: Instant) -> Vec<Guid> {
        let gone: Vec<Guid> = self
            .live
            .iter()
            .filter(|(_, e)| !e.claimed && now >= e.expires)
            .map(|(g, _)| *g)
            .collect();
        for g in &gone {
            self.live.remove(g);
        }
        gone
    }

    pub(super) fn len(&self) -> usize {
        self.live.len()
    }
}
