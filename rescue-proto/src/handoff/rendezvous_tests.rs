use super::*;
use crate::wire::limits::UDP_TOKEN_LEN;
use proptest::prelude::*;

type Table = RendezvousTable<u64, &'static str>;

fn token(b: u8) -> RendezvousToken {
    RendezvousToken::from_bytes([b; UDP_TOKEN_LEN])
}

fn probe(role: Role, b: u8) -> [u8; crate::wire::probe::PROBE_LEN] {
    Probe {
        role,
        token: token(b),
    }
    .to_bytes()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn started(now: Instant) -> Table {
    let mut t = Table::new(Limits::default());
    t.start(now, 7, Role::Console, "relay 7", [token(1), token(2)])
        .unwrap();
    t
}

#[test]
fn both_probes_complete_the_pair_in_either_order() {
    let now = Instant::now();
    for applet_first in [true, false] {
        let mut t = started(now);
        let (a, c) = (addr("192.0.2.1:4000"), addr("198.51.100.2:5000"));
        let first = if applet_first {
            t.probe(now, &probe(Role::Applet, 1), a)
        } else {
            t.probe(now, &probe(Role::Console, 2), c)
        };
        assert_eq!(first, Ok(ProbeAccepted::Waiting { key: 7 }));
        let second = if applet_first {
            t.probe(now, &probe(Role::Console, 2), c)
        } else {
            t.probe(now, &probe(Role::Applet, 1), a)
        };
        assert_eq!(
            second,
            Ok(ProbeAccepted::Complete {
                key: 7,
                owner: "relay 7",
                applet: a,
                console: c
            })
        );
    }
}

#[test]
fn only_the_console_starts_and_one_rendezvous_runs_at_a_time() {
    let now = Instant::now();
    let mut t = Table::new(Limits::default());
    assert_eq!(
        t.start(now, 1, Role::Applet, "x", [token(1), token(2)]),
        Err(StartError::NotController)
    );
    assert!(t.is_empty());
    t.start(now, 1, Role::Console, "x", [token(1), token(2)])
        .unwrap();
    let again = now + Duration::from_secs(6);
    assert_eq!(
        t.start(again, 1, Role::Console, "x", [token(3), token(4)]),
        Err(StartError::InProgress)
    );
    // Complete it: the interval still applies.
    t.probe(now, &probe(Role::Applet, 1), addr("192.0.2.1:1"))
        .unwrap();
    t.probe(now, &probe(Role::Console, 2), addr("192.0.2.2:1"))
        .unwrap();
    let soon = now + Duration::from_secs(1);
    assert_eq!(
        t.start(soon, 1, Role::Console, "x", [token(3), token(4)]),
        Err(StartError::TooSoon)
    );
    t.start(again, 1, Role::Console, "x", [token(3), token(4)])
        .unwrap();
    // The old tokens are spent; the new ones work.
    assert_eq!(
        t.probe(again, &probe(Role::Applet, 1), addr("192.0.2.1:1")),
        Err(ProbeError::Replayed)
    );
    assert!(t
        .probe(again, &probe(Role::Applet, 3), addr("192.0.2.1:1"))
        .is_ok());
}

#[test]
fn a_token_works_once_whoever_sends_it_again() {
    let now = Instant::now();
    let mut t = started(now);
    let real = addr("192.0.2.1:4000");
    assert!(t.probe(now, &probe(Role::Applet, 1), real).is_ok());
    // The same datagram again, from the same source and from another one.
    assert_eq!(
        t.probe(now, &probe(Role::Applet, 1), real),
        Err(ProbeError::Replayed)
    );
    let other = addr("203.0.113.9:1234");
    assert_eq!(
        t.probe(now, &probe(Role::Applet, 1), other),
        Err(ProbeError::Replayed)
    );
    // The pair completes with the first address, not the replayer's.
    let done = t.probe(now, &probe(Role::Console, 2), addr("198.51.100.2:5000"));
    assert!(matches!(done, Ok(ProbeAccepted::Complete { applet, .. }) if applet == real));
}

#[test]
fn forged_stale_wrong_party_and_malformed_probes_are_typed() {
    let now = Instant::now();
    let mut t = started(now);
    let src = addr("192.0.2.1:4000");
    assert_eq!(
        t.probe(now, &probe(Role::Applet, 9), src),
        Err(ProbeError::UnknownToken)
    );
    assert_eq!(
        t.probe(now, &probe(Role::Console, 1), src),
        Err(ProbeError::WrongParty)
    );
    assert_eq!(
        t.probe(now, b"GET / HTTP/1.1\r\n", src),
        Err(ProbeError::Malformed(ProbeFormatError::Length(16)))
    );
    let late = now + limits::UDP_TOKEN_LIFETIME;
    assert_eq!(
        t.probe(late, &probe(Role::Applet, 1), src),
        Err(ProbeError::Expired)
    );
    // A stale token is remembered as such for another lifetime, then forgotten.
    t.expire(late);
    assert_eq!(
        t.probe(late, &probe(Role::Applet, 1), src),
        Err(ProbeError::Expired)
    );
    let forgotten = now + limits::UDP_TOKEN_LIFETIME * 2;
    t.expire(forgotten);
    assert!(t.is_empty());
    assert_eq!(
        t.probe(forgotten, &probe(Role::Applet, 1), src),
        Err(ProbeError::UnknownToken)
    );
}

#[test]
fn ending_a_session_forgets_its_tokens() {
    let now = Instant::now();
    let mut t = started(now);
    t.end(7);
    assert!(t.is_empty());
    assert_eq!(
        t.probe(now, &probe(Role::Applet, 1), addr("192.0.2.1:1")),
        Err(ProbeError::UnknownToken)
    );
}

#[test]
fn the_table_is_bounded() {
    let now = Instant::now();
    let limits = Limits {
        max_tokens: 4,
        ..Limits::default()
    };
    let mut t = Table::new(limits);
    t.start(now, 1, Role::Console, "a", [token(1), token(2)])
        .unwrap();
    t.start(now, 2, Role::Console, "b", [token(3), token(4)])
        .unwrap();
    assert_eq!(
        t.start(now, 3, Role::Console, "c", [token(5), token(6)]),
        Err(StartError::TableFull)
    );
    assert_eq!(t.len(), 4);
    // Once the old entries are forgotten there is room again.
    let later = now + limits::UDP_TOKEN_LIFETIME * 2;
    t.start(later, 3, Role::Console, "c", [token(5), token(6)])
        .unwrap();
    assert_eq!(
        t.start(later, 4, Role::Console, "d", [token(5), token(7)]),
        Err(StartError::DuplicateToken)
    );
}

#[test]
fn probes_per_source_are_rate_limited_per_window() {
    let now = Instant::now();
    let mut t = started(now);
    let src = addr("192.0.2.1:4000");
    let max = limits::MAX_PROBES_PER_SOURCE;
    for _ in 0..max {
        assert_ne!(t.probe(now, b"x", src), Err(ProbeError::RateLimited));
    }
    // Over the limit even with a good token, and from another port of the same host.
    assert_eq!(
        t.probe(now, &probe(Role::Applet, 1), src),
        Err(ProbeError::RateLimited)
    );
    assert_eq!(
        t.probe(now, b"x", addr("192.0.2.1:4001")),
        Err(ProbeError::RateLimited)
    );
    // Another source is not affected; the next window admits the first one again.
    assert!(t
        .probe(now, &probe(Role::Console, 2), addr("192.0.2.7:1"))
        .is_ok());
    let next = now + limits::PROBE_RATE_WINDOW;
    assert!(t.probe(next, &probe(Role::Applet, 1), src).is_ok());
}

#[test]
fn the_source_limiter_is_bounded_and_sweeps_once_per_window() {
    let now = Instant::now();
    let limits = Limits {
        max_sources: 2,
        ..Limits::default()
    };
    let mut t = Table::new(limits);
    assert_ne!(
        t.probe(now, b"x", addr("192.0.2.1:1")),
        Err(ProbeError::RateLimited)
    );
    assert_ne!(
        t.probe(now, b"x", addr("192.0.2.2:1")),
        Err(ProbeError::RateLimited)
    );
    assert_eq!(
        t.probe(now, b"x", addr("192.0.2.3:1")),
        Err(ProbeError::RateLimited)
    );
    let next = now + limits::PROBE_RATE_WINDOW;
    assert_ne!(
        t.probe(next, b"x", addr("192.0.2.3:1")),
        Err(ProbeError::RateLimited)
    );
}

#[test]
fn ipv6_sources_count_per_64_and_mapped_addresses_are_ipv4() {
    let now = Instant::now();
    let mut t = started(now);
    for i in 0..limits::MAX_PROBES_PER_SOURCE {
        let a = SocketAddr::new(format!("2001:db8::{i:x}").parse().unwrap(), 1);
        assert_ne!(t.probe(now, b"x", a), Err(ProbeError::RateLimited));
    }
    assert_eq!(
        t.probe(now, b"x", addr("[2001:db8::ffff]:1")),
        Err(ProbeError::RateLimited)
    );
    t.probe(now, &probe(Role::Applet, 1), addr("[::ffff:192.0.2.1]:7"))
        .unwrap();
    let done = t.probe(now, &probe(Role::Console, 2), addr("192.0.2.2:8"));
    assert!(
        matches!(done, Ok(ProbeAccepted::Complete { applet, .. }) if applet == addr("192.0.2.1:7"))
    );
}

#[test]
fn peer_addr_checks_refuse_what_no_probe_came_from() {
    let v4 = addr("192.0.2.1:1");
    assert_eq!(check_peer_addr(addr("198.51.100.1:40000"), v4), Ok(()));
    assert_eq!(check_peer_addr(addr("127.0.0.1:40000"), v4), Ok(()));
    for bad in [
        "0.0.0.0:1",
        "224.0.0.1:1",
        "255.255.255.255:1",
        "192.0.2.9:0",
    ] {
        assert_eq!(
            check_peer_addr(addr(bad), v4),
            Err(PeerAddrError::Unusable(addr(bad)))
        );
    }
    assert_eq!(
        check_peer_addr(addr("[2001:db8::1]:1"), v4),
        Err(PeerAddrError::Family(addr("[2001:db8::1]:1")))
    );
    assert_eq!(
        check_peer_addr(addr("[ff02::1]:1"), addr("[::1]:1")),
        Err(PeerAddrError::Unusable(addr("[ff02::1]:1")))
    );
}

/// What a driver may do to the table.
#[derive(Debug, Clone)]
enum Op {
    Start {
        key: u8,
        console: bool,
        a: u8,
        c: u8,
    },
    Probe {
        token: u8,
        console: bool,
        src: u8,
    },
    Garbage {
        len: u8,
        src: u8,
    },
    End {
        key: u8,
    },
    Advance {
        ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, any::<bool>(), 0u8..16, 0u8..16).prop_map(|(key, console, a, c)| Op::Start {
            key,
            console,
            a,
            c
        }),
        (0u8..16, any::<bool>(), 0u8..8).prop_map(|(token, console, src)| Op::Probe {
            token,
            console,
            src
        }),
        (0u8..40, 0u8..8).prop_map(|(len, src)| Op::Garbage { len, src }),
        (0u8..4).prop_map(|key| Op::End { key }),
        (0u16..6000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    /// Whatever the order of starts, probes, garbage, ends and time: the table stays
    /// within its size, a token completes at most one pair side, every pair completes
    /// at most once and only with the first address of each token.
    #[test]
    fn any_sequence_keeps_the_rules(ops in proptest::collection::vec(op(), 0..80)) {
        let limits = Limits { max_tokens: 6, ..Limits::default() };
        let mut t: RendezvousTable<u8, u8> = RendezvousTable::new(limits);
        let mut now = Instant::now();
        let mut accepted_tokens = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Start { key, console, a, c } => {
                    let role = if console { Role::Console } else { Role::Applet };
                    let r = t.start(now, key, role, key, [token(a), token(c)]);
                    if !console {
                        prop_assert_eq!(r, Err(StartError::NotController));
                    }
                    if r.is_ok() {
                        accepted_tokens.remove(&a);
                        accepted_tokens.remove(&c);
                    }
                }
                Op::Probe { token: b, console, src } => {
                    let role = if console { Role::Console } else { Role::Applet };
                    let src = SocketAddr::from(([192, 0, 2, src], 1000));
                    if t.probe(now, &probe(role, b), src).is_ok() {
                        prop_assert!(accepted_tokens.insert(b), "token {} accepted twice", b);
                    }
                }
                Op::Garbage { len, src } => {
                    let src = SocketAddr::from(([198, 51, 100, src], 1));
                    let g = vec![0x5a; usize::from(len)];
                    prop_assert!(t.probe(now, &g, src).is_err());
                }
                Op::End { key } => t.end(key),
                Op::Advance { ms } => {
                    now += Duration::from_millis(u64::from(ms));
                    t.expire(now);
                }
            }
            prop_assert!(t.len() <= 6);
        }
    }
}
