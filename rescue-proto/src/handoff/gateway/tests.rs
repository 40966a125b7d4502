//! Unit tests of the session table: one scenario per rule.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::signal::{CloseReason, PeerGone};

fn guid(n: u8) -> Guid {
    Guid::from_bytes([n; 16])
}

fn secret(n: u8) -> ResumeSecret {
    ResumeSecret::from_bytes([n; 32])
}

/// A distinct account number per test name (FNV-1a of the name).
fn acct(s: &str) -> AccountId {
    AccountId(s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }))
}

fn tech(account: &str) -> ConsoleIdentity {
    ConsoleIdentity {
        account: acct(account),
        technician: TechnicianName::new("Ana").expect("valid"),
    }
}

fn req(now: Instant, g: u8, account: &str, hop: u64) -> RegisterRequest {
    RegisterRequest {
        guid: guid(g),
        account: acct(account),
        ticket_expires: now + Duration::from_secs(3600),
        hop: HopId(hop),
        resume_secret: secret(g),
    }
}

#[test]
fn register_then_claim_pairs_the_two_hops() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    let reg = t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    assert_eq!(reg.lifetime_secs, 600);
    assert_eq!(t.queue(now, &acct("acme")).entries().len(), 1);
    let p = t
        .claim(now, guid(1), tech("acme"), HopId(20), secret(9))
        .expect("same account");
    assert_eq!(p.applet, HopId(10));
    assert_eq!(t.peer_of(HopId(10)), Some(HopId(20)));
    assert_eq!(t.peer_of(HopId(20)), Some(HopId(10)));
    assert!(t.queue(now, &acct("acme")).entries().is_empty());
    t.check_invariants();
}

#[test]
fn a_guid_is_registered_once_even_after_it_ended() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    assert_eq!(
        t.register(now, req(now, 1, "acme", 11)),
        Err(TableError::GuidTaken)
    );
    t.close(now, HopId(10), CloseReason::EndUser);
    assert_eq!(
        t.register(now, req(now, 1, "acme", 12)),
        Err(TableError::GuidTaken)
    );
    // Once the ticket has expired the GUID is forgotten; the ticket is useless anyway.
    t.expire(now + Duration::from_secs(3600));
    assert!(!t.is_ended(&guid(1)));
}

#[test]
fn claims_are_checked_for_account_and_uniqueness() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    assert_eq!(
        t.claim(now, guid(2), tech("acme"), HopId(20), secret(9))
            .err(),
        Some(TableError::UnknownGuid)
    );
    assert_eq!(
        t.claim(now, guid(1), tech("other"), HopId(20), secret(9))
            .err(),
        Some(TableError::WrongAccount)
    );
    assert!(t.queue(now, &acct("other")).entries().is_empty());
    t.claim(now, guid(1), tech("acme"), HopId(20), secret(9))
        .expect("first claim");
    assert_eq!(
        t.claim(now, guid(1), tech("acme"), HopId(21), secret(8))
            .err(),
        Some(TableError::AlreadyClaimed)
    );
    t.check_invariants();
}

#[test]
fn unclaimed_sessions_expire() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(600)));
    assert!(t.expire(now + Duration::from_secs(599)).is_empty());
    let out = t.expire(now + Duration::from_secs(600));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hop, HopId(10));
    assert!(out[0].close);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn a_lost_hop_can_reattach_within_the_grace_period() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    t.claim(now, guid(1), tech("acme"), HopId(20), secret(9))
        .expect("claim");
    let out = t.hop_lost(now, HopId(10));
    assert_eq!(
        out[0].message,
        Message::PeerGone(PeerGone { grace_secs: 30 })
    );
    assert_eq!(t.peer_of(HopId(20)), None);
    let mut r = ReattachRequest {
        guid: guid(1),
        role: Role::Applet,
        resume_secret: secret(7),
        identity: None,
        hop: HopId(11),
        new_secret: secret(3),
    };
    assert_eq!(
        t.reattach(now, r.clone()).err(),
        Some(TableError::BadResume),
        "wrong secret"
    );
    r.resume_secret = secret(1);
    let back = t
        .reattach(now + Duration::from_secs(5), r.clone())
        .expect("valid");
    assert!(back.resumed.paired);
    assert_eq!(back.notify.map(|o| o.hop), Some(HopId(20)));
    assert_eq!(t.peer_of(HopId(20)), Some(HopId(11)));
    r.hop = HopId(12);
    assert_eq!(
        t.reattach(now, r).err(),
        Some(TableError::BadResume),
        "a secret works once"
    );
    t.check_invariants();
}

#[test]
fn a_console_must_show_the_same_identity_to_reattach() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    t.claim(now, guid(1), tech("acme"), HopId(20), secret(9))
        .expect("claim");
    t.hop_lost(now, HopId(20));
    let mut r = ReattachRequest {
        guid: guid(1),
        role: Role::Console,
        resume_secret: secret(9),
        identity: Some(ConsoleIdentity {
            account: acct("acme"),
            technician: TechnicianName::new("Bob").expect("ok"),
        }),
        hop: HopId(21),
        new_secret: secret(4),
    };
    assert_eq!(
        t.reattach(now, r.clone()).err(),
        Some(TableError::BadResume)
    );
    r.identity = Some(tech("acme"));
    assert!(t.reattach(now, r).is_ok());
}

#[test]
fn grace_over_ends_the_session_and_tells_the_survivor() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    t.claim(now, guid(1), tech("acme"), HopId(20), secret(9))
        .expect("claim");
    t.hop_lost(now, HopId(20));
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(30)));
    let out = t.expire(now + Duration::from_secs(30));
    assert_eq!(
        out,
        vec![Outgoing {
            hop: HopId(10),
            message: Message::PeerGone(PeerGone { grace_secs: 0 }),
            close: true
        }]
    );
    assert!(t.is_empty() && t.is_ended(&guid(1)));
    t.check_invariants();
}

#[test]
fn limits_refuse_new_sessions() {
    let now = Instant::now();
    let limits = Limits {
        max_sessions: 3,
        max_per_account: 2,
        ..Limits::default()
    };
    let mut t = SessionTable::new(limits);
    t.register(now, req(now, 1, "a", 1)).expect("room");
    t.register(now, req(now, 2, "a", 2)).expect("room");
    assert_eq!(
        t.register(now, req(now, 3, "a", 3)),
        Err(TableError::AccountSessionQuota)
    );
    t.register(now, req(now, 4, "b", 4)).expect("room");
    assert_eq!(
        t.register(now, req(now, 5, "c", 5)),
        Err(TableError::SessionLimit)
    );
    assert_eq!(
        t.register(now, req(now, 6, "c", 1)),
        Err(TableError::HopInUse)
    );
    t.check_invariants();
}

/// Registers and closes `n` sessions of `account` (GUIDs from `first`), hops from `hop`.
fn churn(t: &mut SessionTable, now: Instant, account: &str, first: u8, n: u8, hop: u64) {
    for i in 0..n {
        let h = hop + u64::from(i);
        t.register(now, req(now, first + i, account, h))
            .expect("room");
        t.close(now, HopId(h), CloseReason::Normal);
    }
}

#[test]
fn an_account_over_its_remembered_quota_is_refused_and_no_other() {
    let now = Instant::now();
    let limits = Limits {
        max_ended: 10,
        max_ended_per_account: 4,
        ..Limits::default()
    };
    let mut t = SessionTable::new(limits);
    churn(&mut t, now, "a", 1, 4, 100);
    assert_eq!(t.len(), 0, "no live session");
    assert_eq!(
        t.register(now, req(now, 50, "a", 1)),
        Err(TableError::AccountEndedQuota)
    );
    // Another account is not affected.
    t.register(now, req(now, 51, "b", 2))
        .expect("other account");
    // A live session counts against its account's quota too.
    churn(&mut t, now, "b", 60, 3, 200);
    assert_eq!(
        t.register(now, req(now, 70, "b", 3)),
        Err(TableError::AccountEndedQuota)
    );
    // The gateway-wide capacity: 4 + 4 remembered, two more fit, then nobody.
    churn(&mut t, now, "c", 80, 2, 300);
    assert_eq!(
        t.register(now, req(now, 90, "d", 4)),
        Err(TableError::EndedCapacity)
    );
    // Once the tickets expire, the GUIDs are forgotten and there is room again.
    let later = now + Duration::from_secs(3600) + EXPIRY_GRANULARITY;
    t.expire(later);
    assert_eq!(t.ended_len(), 0);
    t.register(later, req(later, 91, "a", 5))
        .expect("room again");
    t.check_invariants();
}

#[test]
fn every_limit_has_its_own_message_and_the_code_overloaded() {
    let limits = [
        TableError::SessionLimit,
        TableError::AccountSessionQuota,
        TableError::EndedCapacity,
        TableError::AccountEndedQuota,
    ];
    let texts: std::collections::HashSet<String> = limits.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), limits.len(), "messages must differ");
    for e in limits {
        assert_eq!(e.code(), ErrorCode::Overloaded);
        assert!(
            e.to_string().contains("limit")
                || e.to_string().contains("quota")
                || e.to_string().contains("capacity")
        );
    }
}

#[test]
fn a_restored_guid_is_refused_until_its_ticket_expires() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    let expires = now + Duration::from_secs(60);
    assert!(t.remember_ended(now, guid(1), &acct("a"), expires));
    let mut r = req(now, 1, "a", 1);
    r.ticket_expires = expires;
    assert_eq!(t.register(now, r.clone()), Err(TableError::GuidTaken));
    t.expire(expires + EXPIRY_GRANULARITY);
    assert!(!t.is_ended(&guid(1)));
    t.check_invariants();
}

#[test]
fn the_queue_is_oldest_first_bounded_and_hides_away_applets() {
    let now = Instant::now();
    let limits = Limits {
        max_per_account: 400,
        ..Limits::default()
    };
    let mut t = SessionTable::new(limits);
    for i in 0..300u16 {
        let mut r = req(now, 0, "acme", u64::from(i) + 1);
        let mut g = [0u8; 16];
        g[..2].copy_from_slice(&i.to_be_bytes());
        r.guid = Guid::from_bytes(g);
        t.register(now + Duration::from_secs(u64::from(i)), r)
            .expect("room");
    }
    let later = now + Duration::from_secs(400);
    let q = t.queue(later, &acct("acme"));
    assert_eq!(q.entries().len(), crate::wire::limits::MAX_QUEUE_ENTRIES);
    assert_eq!(q.entries()[0].waiting_secs, 400);
    assert!(q
        .entries()
        .windows(2)
        .all(|w| w[0].waiting_secs >= w[1].waiting_secs));
    // The oldest applet loses its hop: it leaves the queue and cannot be claimed.
    t.hop_lost(later, HopId(1));
    let q = t.queue(later, &acct("acme"));
    assert_eq!(q.entries()[0].waiting_secs, 399);
    let oldest = Guid::from_bytes([0; 16]);
    assert_eq!(
        t.claim(later, oldest, tech("acme"), HopId(9999), secret(1))
            .err(),
        Some(TableError::UnknownGuid)
    );
    t.check_invariants();
}

#[test]
fn a_waiting_applet_reattaches_and_a_stale_hop_is_displaced() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    // The gateway has not noticed hop 10 died; the applet reconnects on hop 11.
    let r = ReattachRequest {
        guid: guid(1),
        role: Role::Applet,
        resume_secret: secret(1),
        identity: None,
        hop: HopId(11),
        new_secret: secret(5),
    };
    let back = t.reattach(now, r).expect("valid secret");
    assert!(!back.resumed.paired);
    assert_eq!(back.displaced, Some(HopId(10)));
    assert_eq!(back.notify, None);
    assert_eq!(t.hop(HopId(10)), None);
    assert_eq!(t.session(&guid(1)).and_then(|s| s.applet), Some(HopId(11)));
    // Losing or closing an unknown hop changes nothing.
    assert!(t.hop_lost(now, HopId(10)).is_empty());
    assert!(t.close(now, HopId(77), CloseReason::Normal).is_empty());
    assert_eq!(t.len(), 1);
    t.check_invariants();
}

#[test]
fn an_away_waiting_applet_expires_with_its_session() {
    let now = Instant::now();
    let mut t = SessionTable::default();
    t.register(now, req(now, 1, "acme", 10)).expect("fresh");
    let late = now + Duration::from_secs(590);
    t.hop_lost(late, HopId(10));
    // The grace is cut at the pending lifetime.
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(600)));
    t.expire(now + Duration::from_secs(600));
    assert!(t.is_empty());
}

#[test]
fn a_ticket_binds_to_the_gateways_it_lists() {
    let names = vec!["gw1.example:443".to_string(), "192.0.2.1:7443".to_string()];
    assert!(ticket_lists_gateway(["other:1", "GW1.Example:443"], &names));
    assert!(ticket_lists_gateway(["192.0.2.1:7443"], &names));
    assert!(!ticket_lists_gateway(
        ["gw1.example:444", "192.0.2.1:744"],
        &names
    ));
    assert!(!ticket_lists_gateway(["gw1.example:443"], &[]));
}
