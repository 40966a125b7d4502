//! The gateway's limits against guessing (PROTOCOL.md 4.3, section 5): failed
//! REGISTERs per source, failed CLAIMs per source and per account, counted by
//! rescue-proto's sans-IO [`FailureLimiter`]s. A refusal for a bad ticket or GUID counts;
//! a timeout, a closed connection or a full gateway does not.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rescue_proto::handoff::failures::FailureLimiter;
use rescue_proto::wire::limits::{
    FAILURE_WINDOW, MAX_CLAIM_FAILURES_PER_ACCOUNT, MAX_CLAIM_FAILURES_PER_SOURCE,
    MAX_FAILURE_KEYS, MAX_REGISTER_FAILURES_PER_SOURCE,
};
use rescue_proto::wire::signal::{AccountId, ErrorCode};

use super::refusal::Refusal;

struct Limiters {
    register: FailureLimiter<IpAddr>,
    claim_source: FailureLimiter<IpAddr>,
    claim_account: FailureLimiter<AccountId>,
}

/// The failure limits of one gateway.
pub(crate) struct Failures(Mutex<Limiters>);

impl Default for Failures {
    fn default() -> Self {
        let (w, keys) = (FAILURE_WINDOW, MAX_FAILURE_KEYS);
        Self(Mutex::new(Limiters {
            register: FailureLimiter::new(MAX_REGISTER_FAILURES_PER_SOURCE, w, keys),
            claim_source: FailureLimiter::new(MAX_CLAIM_FAILURES_PER_SOURCE, w, keys),
            claim_account: FailureLimiter::new(MAX_CLAIM_FAILURES_PER_ACCOUNT, w, keys),
        }))
    }
}

/// Whether a refusal is a failed guess (a bad ticket or GUID) that counts.
fn counts(r: &Refusal) -> bool {
    matches!(
        r.code,
        Some(
            ErrorCode::BadTicket
                | ErrorCode::ExpiredTicket
                | ErrorCode::WrongAccount
                | ErrorCode::GuidTaken
                | ErrorCode::UnknownGuid
                | ErrorCode::AlreadyClaimed
        )
    )
}

impl Failures {
    fn lock(&self) -> MutexGuard<'_, Limiters> {
        // Each call leaves the limiters consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A refusal for a source over its REGISTER failure limit, if it is.
    pub(crate) fn check_register(&self, source: Option<IpAddr>) -> Result<(), Refusal> {
        let now = Instant::now();
        match source {
            Some(ip) if self.lock().register.is_blocked(&ip, now) => Err(Refusal::new(
                ErrorCode::Overloaded,
                "too many failed registrations from this source",
            )),
            _ => Ok(()),
        }
    }

    /// Counts a refused REGISTER if it was a failed guess.
    pub(crate) fn register_refused(&self, source: Option<IpAddr>, r: &Refusal) {
        if let (Some(ip), true) = (source, counts(r)) {
            self.lock().register.record(ip, Instant::now());
        }
    }

    /// A refusal for a source or account over its CLAIM failure limit, if it is.
    pub(crate) fn check_claim(
        &self,
        source: Option<IpAddr>,
        account: AccountId,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        let l = self.lock();
        let by_source = source.is_some_and(|ip| l.claim_source.is_blocked(&ip, now));
        if by_source || l.claim_account.is_blocked(&account, now) {
            return Err(Refusal::new(
                ErrorCode::Overloaded,
                "too many failed claims, retry later",
            ));
        }
        Ok(())
    }

    /// Counts a refused CLAIM if it was a failed guess.
    pub(crate) fn claim_refused(&self, source: Option<IpAddr>, account: AccountId, r: &Refusal) {
        if !counts(r) {
            return;
        }
        let now = Instant::now();
        let mut l = self.lock();
        if let Some(ip) = source {
            l.claim_source.record(ip, now);
        }
        l.claim_account.record(account, now);
    }
}
