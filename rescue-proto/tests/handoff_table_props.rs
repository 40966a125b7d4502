//! The gateway session table under random operation sequences: its invariants hold
//! after every step, and the protocol rules hold against an independent record of
//! what was done (a GUID registers once per ticket; claims match the account and
//! happen once; nothing outlives its deadline once `expire` ran).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rescue_proto::handoff::gateway::{Limits, ReattachRequest, RegisterRequest, SessionState};
use rescue_proto::handoff::{ConsoleIdentity, HopId, SessionTable, TableError};
use rescue_proto::wire::signal::{
    AccountId, CloseReason, Message, Paired, ResumeSecret, Role, TechnicianName,
};
use rescue_proto::Guid;

const TICKET: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
enum Op {
    Register {
        g: u8,
        account: u8,
    },
    Claim {
        g: u8,
        account: u8,
    },
    Queue {
        account: u8,
    },
    HopLost {
        pick: usize,
    },
    Close {
        pick: usize,
    },
    Reattach {
        g: u8,
        console: bool,
        right_secret: bool,
    },
    Advance {
        secs: u64,
    },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, 0u8..3).prop_map(|(g, account)| Op::Register { g, account }),
        3 => (0u8..8, 0u8..3).prop_map(|(g, account)| Op::Claim { g, account }),
        1 => (0u8..3).prop_map(|account| Op::Queue { account }),
        2 => any::<usize>().prop_map(|pick| Op::HopLost { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        2 => (0u8..8, any::<bool>(), any::<bool>()).prop_map(|(g, console, right_secret)| Op::Reattach { g, console, right_secret }),
        2 => prop_oneof![0u64..40, 500u64..700, Just(4000)].prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Expire),
    ]
}

fn account(n: u8) -> AccountId {
    AccountId(u64::from(n))
}

fn identity(n: u8) -> ConsoleIdentity {
    ConsoleIdentity {
        account: account(n),
        technician: TechnicianName::new("Ana").expect("valid"),
    }
}

/// What the test did, recorded independently of the table.
#[derive(Default)]
struct Record {
    /// Successful registrations: GUID → (account, ticket expiry).
    registered: HashMap<u8, (u8, Instant)>,
    /// Current resume secret per (GUID, is console).
    secrets: HashMap<(u8, bool), ResumeSecret>,
    /// Hops handed out, in order.
    hops: Vec<HopId>,
    next: u64,
}

impl Record {
    fn fresh(&mut self) -> (HopId, ResumeSecret) {
        self.next += 1;
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&self.next.to_be_bytes());
        (HopId(self.next), ResumeSecret::from_bytes(s))
    }

    fn pick(&self, i: usize) -> Option<HopId> {
        (!self.hops.is_empty()).then(|| self.hops[i % self.hops.len()])
    }
}

fn apply(
    t: &mut SessionTable,
    rec: &mut Record,
    now: &mut Instant,
    op: Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Register { g, account: a } => {
            let (hop, secret) = rec.fresh();
            let req = RegisterRequest {
                guid: Guid::from_bytes([g; 16]),
                account: account(a),
                ticket_expires: *now + TICKET,
                hop,
                resume_secret: secret.clone(),
            };
            let res = t.register(*now, req);
            // Each refusal names a limit its account (or the gateway) is really at: the
            // GUIDs whose ticket is valid are a lower bound of what the table holds,
            // every GUID registered so far an upper bound.
            let valid = |of: Option<u8>| {
                rec.registered
                    .values()
                    .filter(|(acct, exp)| *exp > *now && of.is_none_or(|o| o == *acct))
                    .count()
            };
            let ever = |of: u8| rec.registered.values().filter(|r| r.0 == of).count();
            let limits = *t.limits();
            match &res {
                Err(TableError::AccountEndedQuota) => {
                    prop_assert!(
                        ever(a) >= limits.max_ended_per_account,
                        "quota of an account under it"
                    );
                }
                Err(TableError::EndedCapacity) => {
                    prop_assert!(
                        rec.registered.len() >= limits.max_ended,
                        "capacity not reached"
                    );
                }
                Err(TableError::AccountSessionQuota) => {
                    prop_assert!(
                        ever(a) >= limits.max_per_account,
                        "session quota of an account under it"
                    );
                }
                Ok(_) => {
                    prop_assert!(
                        valid(Some(a)) < limits.max_ended_per_account,
                        "account quota exceeded"
                    );
                    prop_assert!(valid(None) < limits.max_ended, "capacity exceeded");
                }
                Err(_) => {}
            }
            if let Ok(reply) = &res {
                // A GUID registers at most once while a ticket for it is valid.
                if let Some((_, exp)) = rec.registered.get(&g) {
                    prop_assert!(*exp <= *now, "GUID {g} registered twice");
                }
                prop_assert!(reply.resume_secret.ct_eq(&secret));
                rec.registered.insert(g, (a, *now + TICKET));
                rec.secrets.insert((g, false), secret);
                rec.hops.push(hop);
            }
        }
        Op::Claim { g, account: a } => {
            let (hop, secret) = rec.fresh();
            let before = t.session(&Guid::from_bytes([g; 16]));
            match t.claim(
                *now,
                Guid::from_bytes([g; 16]),
                identity(a),
                hop,
                secret.clone(),
            ) {
                Ok(p) => {
                    let before = before.expect("claimed a live session");
                    prop_assert_eq!(before.state, SessionState::Waiting, "claimed twice");
                    prop_assert_eq!(
                        rec.registered.get(&g).map(|r| r.0),
                        Some(a),
                        "claim across accounts"
                    );
                    prop_assert_eq!(Some(p.applet), before.applet);
                    prop_assert!(
                        matches!(p.to_console, Paired::ToConsole { .. }),
                        "PAIRED for the console"
                    );
                    rec.secrets.insert((g, true), secret);
                    rec.hops.push(hop);
                }
                Err(TableError::WrongAccount) => {
                    prop_assert_ne!(rec.registered.get(&g).map(|r| r.0), Some(a))
                }
                Err(TableError::AlreadyClaimed) => {
                    prop_assert_eq!(before.map(|b| b.state), Some(SessionState::Paired))
                }
                Err(_) => {}
            }
        }
        Op::Queue { account: a } => {
            for e in t.queue(*now, &account(a)).entries() {
                let info = t.session(&e.guid).expect("queued sessions are live");
                prop_assert_eq!(info.account, account(a), "queue shows another account");
                prop_assert_eq!(info.state, SessionState::Waiting);
            }
        }
        Op::HopLost { pick } => {
            if let Some(hop) = rec.pick(pick) {
                for o in t.hop_lost(*now, hop) {
                    prop_assert_ne!(o.hop, hop);
                    prop_assert!(matches!(o.message, Message::PeerGone(_)));
                }
            }
        }
        Op::Close { pick } => {
            if let Some(hop) = rec.pick(pick) {
                for o in t.close(*now, hop, CloseReason::Normal) {
                    prop_assert_ne!(o.hop, hop);
                    prop_assert!(o.close);
                }
                prop_assert_eq!(t.hop(hop), None);
            }
        }
        Op::Reattach {
            g,
            console,
            right_secret,
        } => {
            let (hop, new_secret) = rec.fresh();
            let current = rec.secrets.get(&(g, console)).cloned();
            let presented = match (&current, right_secret) {
                (Some(s), true) => s.clone(),
                _ => ResumeSecret::from_bytes([0xee; 32]),
            };
            let role = if console { Role::Console } else { Role::Applet };
            let identity = console.then(|| identity(rec.registered.get(&g).map_or(0, |r| r.0)));
            let req = ReattachRequest {
                guid: Guid::from_bytes([g; 16]),
                role,
                resume_secret: presented,
                identity,
                hop,
                new_secret: new_secret.clone(),
            };
            if let Ok(r) = t.reattach(*now, req) {
                prop_assert!(
                    right_secret && current.is_some(),
                    "reattach without the secret"
                );
                prop_assert!(r.resumed.resume_secret.ct_eq(&new_secret));
                rec.secrets.insert((g, console), new_secret);
                rec.hops.push(hop);
            }
        }
        Op::Advance { secs } => *now += Duration::from_secs(secs),
        Op::Expire => {
            t.expire(*now);
            // Nothing is left past its deadline.
            if let Some(next) = t.poll_timeout() {
                prop_assert!(next > *now, "a deadline at or before now survived expire");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_and_rules_hold_under_random_operations(ops in proptest::collection::vec(op(), 1..80)) {
        let limits = Limits {
            max_sessions: 5,
            max_per_account: 3,
            max_ended: 6,
            max_ended_per_account: 3,
            ..Limits::default()
        };
        let mut t = SessionTable::new(limits);
        let mut rec = Record::default();
        let mut now = Instant::now();
        for op in ops {
            apply(&mut t, &mut rec, &mut now, op)?;
            t.check_invariants();
            prop_assert!(t.len() <= 5);
        }
    }
}
