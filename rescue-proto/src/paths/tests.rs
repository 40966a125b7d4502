use proptest::prelude::*;

use super::*;

fn actions(m: &mut PathManager) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_applet_listens_then_waits_for_udp_then_backs_off_doubling() {
    let t0 = Instant::now();
    let mut a = PathManager::new(Role::Applet, DirectConfig::default(), t0);
    assert_eq!(a.poll_timeout(), Some(t0));
    a.handle_timeout(t0);
    assert_eq!(
        actions(&mut a),
        [
            Action::Listen {
                round: 1,
                until: t0 + TCP_WINDOW
            },
            Action::SendCandidates { round: 1 }
        ]
    );
    let t1 = t0 + TCP_WINDOW;
    assert_eq!(a.poll_timeout(), Some(t1));
    a.handle_timeout(t1);
    assert_eq!(
        actions(&mut a),
        [
            Action::StopTcp { round: 1 },
            Action::Rendezvous { round: 1 }
        ]
    );
    assert_eq!(
        a.phase(),
        Phase::Udp {
            round: 1,
            until: t1 + UDP_WINDOW
        }
    );
    let t2 = t1 + UDP_WINDOW;
    a.handle_timeout(t2);
    assert_eq!(actions(&mut a), [Action::StopUdp { round: 1 }]);
    assert_eq!(a.phase(), Phase::Relayed(Some(t2 + RETRY_BASE)));
    // The second failed round doubles the wait.
    let t3 = t2 + RETRY_BASE;
    a.handle_timeout(t3);
    assert!(matches!(
        actions(&mut a)[..],
        [Action::Listen { round: 2, .. }, _]
    ));
    a.handle_timeout(t3 + TCP_WINDOW);
    a.handle_timeout(t3 + TCP_WINDOW + UDP_WINDOW);
    assert_eq!(
        a.phase(),
        Phase::Relayed(Some(t3 + TCP_WINDOW + UDP_WINDOW + RETRY_BASE * 2))
    );
    assert_eq!(a.current(), PathKind::Relay);
}

#[test]
fn the_console_dials_staggered_and_the_first_bound_path_wins() {
    let t0 = Instant::now();
    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    assert_eq!(c.poll_timeout(), None, "the console waits for candidates");
    c.on_candidates(t0, 1, 3);
    assert_eq!(actions(&mut c), [Action::Dial { round: 1, index: 0 }]);
    assert_eq!(c.poll_timeout(), Some(t0 + DIAL_STAGGER));
    c.handle_timeout(t0 + DIAL_STAGGER);
    assert_eq!(actions(&mut c), [Action::Dial { round: 1, index: 1 }]);
    let up = t0 + DIAL_STAGGER + Duration::from_millis(10);
    assert!(c.on_direct_up(up, PathKind::DirectTcp));
    assert_eq!(
        actions(&mut c),
        [
            Action::StopTcp { round: 1 },
            Action::Use(PathKind::DirectTcp)
        ]
    );
    assert_eq!(c.current(), PathKind::DirectTcp);
    // The third candidate is never dialled; a second path is not used.
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.on_direct_up(up, PathKind::DirectTcp));
    // Candidates of a new round while direct are ignored.
    c.on_candidates(up, 2, 1);
    assert!(actions(&mut c).is_empty());
}

#[test]
fn the_console_asks_for_udp_when_the_tcp_window_ends_or_every_dial_failed() {
    let t0 = Instant::now();
    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    c.on_candidates(t0, 1, 1);
    let _ = actions(&mut c);
    c.handle_timeout(t0 + TCP_WINDOW);
    assert_eq!(
        actions(&mut c),
        [
            Action::StopTcp { round: 1 },
            Action::Rendezvous { round: 1 }
        ]
    );
    assert!(c.on_direct_up(t0 + TCP_WINDOW + secs(1), PathKind::DirectUdp));
    assert_eq!(actions(&mut c), [Action::Use(PathKind::DirectUdp)]);

    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    c.on_candidates(t0, 1, 1);
    let _ = actions(&mut c);
    // Every dial failed: they stop, and the UDP phase starts with the window's end.
    c.on_tcp_failed(t0 + secs(1));
    assert_eq!(actions(&mut c), [Action::StopTcp { round: 1 }]);
    c.handle_timeout(t0 + TCP_WINDOW);
    // (StopTcp again: harmless, the dials are gone already.)
    assert_eq!(
        actions(&mut c),
        [
            Action::StopTcp { round: 1 },
            Action::Rendezvous { round: 1 }
        ]
    );
    c.on_udp_failed(t0 + TCP_WINDOW + secs(1));
    assert_eq!(actions(&mut c), [Action::StopUdp { round: 1 }]);
    assert_eq!(c.phase(), Phase::Relayed(None));
    // A stale round number is ignored, the next round is served (once half the backoff
    // has passed: the applet waits all of it).
    let later = t0 + TCP_WINDOW + secs(1) + RETRY_BASE / 2;
    assert!(!c.on_candidates(later, 1, 1));
    assert!(actions(&mut c).is_empty());
    assert!(c.on_candidates(later, 2, 1));
    assert_eq!(actions(&mut c), [Action::Dial { round: 2, index: 0 }]);
}

#[test]
fn the_console_paces_the_applets_rounds_by_its_own_backoff() {
    let t0 = Instant::now();
    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    let mut now = t0;
    // A hostile applet starts a new round the moment the last one failed: the console
    // takes one only after half of its own (doubling) backoff.
    let mut taken = Vec::new();
    for round in 1..=40u32 {
        if c.on_candidates(now, round, 8) {
            taken.push(now.duration_since(t0));
            let _ = actions(&mut c);
            // Every dial and the UDP phase fail at once.
            c.on_tcp_failed(now);
            c.handle_timeout(now + TCP_WINDOW);
            now += TCP_WINDOW;
            c.on_udp_failed(now);
            let _ = actions(&mut c);
        }
        now += secs(1);
    }
    assert!(taken.len() >= 2, "{taken:?}");
    for (i, pair) in taken.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // Round i+1 failed after TCP_WINDOW; then half of RETRY_BASE * 2^i.
        let min = TCP_WINDOW + (RETRY_BASE * (1 << i)).min(RETRY_MAX) / 2;
        assert!(
            gap >= min,
            "round {} taken {gap:?} after the last, want >= {min:?}",
            i + 2
        );
    }
}

#[test]
fn udp_candidates_count_only_in_the_round_they_name() {
    let t0 = Instant::now();
    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    assert!(!c.on_udp_candidates(1), "no round yet");
    c.on_candidates(t0, 1, 1);
    assert!(c.on_udp_candidates(1), "TCP phase: the applet may be ahead");
    assert!(!c.on_udp_candidates(2), "not this round");
    c.handle_timeout(t0 + TCP_WINDOW);
    assert!(c.on_udp_candidates(1), "UDP phase");
    c.on_udp_failed(t0 + TCP_WINDOW + secs(1));
    assert!(!c.on_udp_candidates(1), "the round is over");
    let tcp_only = DirectConfig {
        policy: DirectPolicy::Tcp,
        ..DirectConfig::default()
    };
    let mut c = PathManager::new(Role::Console, tcp_only, t0);
    c.on_candidates(t0, 1, 1);
    assert!(!c.on_udp_candidates(1), "no UDP allowed");
}

#[test]
fn candidates_beyond_the_limit_are_not_dialled() {
    let t0 = Instant::now();
    let mut c = PathManager::new(Role::Console, DirectConfig::default(), t0);
    c.on_candidates(t0, 1, 1000);
    let mut dials = 0;
    let mut t = t0;
    while t < t0 + TCP_WINDOW {
        c.handle_timeout(t);
        dials += actions(&mut c)
            .iter()
            .filter(|a| matches!(a, Action::Dial { .. }))
            .count();
        t += Duration::from_millis(50);
    }
    assert_eq!(dials, MAX_CANDIDATES);
}

#[test]
fn a_lost_direct_path_falls_back_at_once_and_retries_later() {
    let t0 = Instant::now();
    let mut a = PathManager::new(Role::Applet, DirectConfig::default(), t0);
    a.handle_timeout(t0);
    let _ = actions(&mut a);
    assert!(a.on_direct_up(t0 + secs(1), PathKind::DirectTcp));
    let _ = actions(&mut a);
    a.on_direct_lost(t0 + secs(2));
    assert_eq!(actions(&mut a), [Action::FallBack]);
    assert_eq!(a.current(), PathKind::Relay);
    assert_eq!(a.phase(), Phase::Relayed(Some(t0 + secs(2) + RETRY_BASE)));
    // A path that stayed up past STABLE_AFTER resets the backoff.
    let t1 = t0 + secs(2) + RETRY_BASE;
    a.handle_timeout(t1);
    let _ = actions(&mut a);
    assert!(a.on_direct_up(t1, PathKind::DirectTcp));
    let lost = t1 + STABLE_AFTER;
    a.on_direct_lost(lost);
    assert_eq!(a.phase(), Phase::Relayed(Some(lost + RETRY_BASE)));
}

#[test]
fn policies_restrict_what_is_tried() {
    let t0 = Instant::now();
    let off = DirectConfig {
        policy: DirectPolicy::Off,
        ..DirectConfig::default()
    };
    let mut a = PathManager::new(Role::Applet, off, t0);
    assert_eq!(a.poll_timeout(), None);
    let mut c = PathManager::new(Role::Console, off, t0);
    c.on_candidates(t0, 1, 2);
    assert!(actions(&mut a).is_empty() && actions(&mut c).is_empty());
    assert!(!c.on_direct_up(t0, PathKind::DirectTcp));

    let udp = DirectConfig {
        policy: DirectPolicy::Udp,
        ..DirectConfig::default()
    };
    let mut c = PathManager::new(Role::Console, udp, t0);
    c.on_candidates(t0, 1, 2);
    assert_eq!(actions(&mut c), [Action::Rendezvous { round: 1 }]);
    let mut a = PathManager::new(Role::Applet, udp, t0);
    a.handle_timeout(t0);
    assert_eq!(
        actions(&mut a),
        [
            Action::Rendezvous { round: 1 },
            Action::SendCandidates { round: 1 }
        ]
    );

    let tcp = DirectConfig {
        policy: DirectPolicy::Tcp,
        ..DirectConfig::default()
    };
    let mut c = PathManager::new(Role::Console, tcp, t0);
    c.on_candidates(t0, 1, 1);
    let _ = actions(&mut c);
    c.handle_timeout(t0 + TCP_WINDOW);
    assert_eq!(actions(&mut c), [Action::StopTcp { round: 1 }]);
    assert_eq!(c.phase(), Phase::Relayed(None));
    assert!(!c.on_direct_up(t0 + TCP_WINDOW, PathKind::DirectUdp));
}

/// What a driver can tell a manager.
#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    Candidates(u32, usize),
    TcpFailed,
    UdpFailed,
    Up(bool),
    Lost,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0u64..3_000).prop_map(Event::Advance),
        1 => (0u64..60_000).prop_map(Event::Advance),
        3 => (0u32..40, 0usize..12).prop_map(|(r, n)| Event::Candidates(r, n)),
        1 => Just(Event::TcpFailed),
        1 => Just(Event::UdpFailed),
        3 => any::<bool>().prop_map(Event::Up),
        2 => Just(Event::Lost),
    ]
}

fn policy() -> impl Strategy<Value = DirectPolicy> {
    prop_oneof![
        Just(DirectPolicy::Off),
        Just(DirectPolicy::Tcp),
        Just(DirectPolicy::Udp),
        Just(DirectPolicy::Any)
    ]
}

proptest! {
    /// Whatever the network does, a manager never exceeds the switch budget, never tries
    /// what its policy forbids, reports a current path that matches its last Use or
    /// FallBack, and never asks to be woken in the past.
    #[test]
    fn any_event_order_keeps_the_invariants(
        applet in any::<bool>(),
        policy in policy(),
        events in proptest::collection::vec(event(), 1..200),
    ) {
        let role = if applet { Role::Applet } else { Role::Console };
        let cfg = DirectConfig { policy, ..DirectConfig::default() };
        let t0 = Instant::now();
        let mut now = t0;
        let mut m = PathManager::new(role, cfg, now);
        let mut uses: Vec<Instant> = Vec::new();
        let mut on = PathKind::Relay;
        for e in events {
            match e {
                Event::Advance(ms) => {
                    let target = now + Duration::from_millis(ms);
                    while let Some(t) = m.poll_timeout().filter(|t| *t <= target) {
                        now = t.max(now);
                        m.handle_timeout(now);
                        prop_assert!(m.poll_timeout().is_none_or(|n| n > now || !m.actions.is_empty()),
                            "woken at {:?} but asks for {:?} again", now - t0, m.poll_timeout().map(|n| n - t0));
                        drain(&mut m, &mut uses, &mut on, now, cfg)?;
                    }
                    now = target;
                }
                Event::Candidates(r, n) => {
                    m.on_candidates(now, r, n);
                }
                Event::TcpFailed => m.on_tcp_failed(now),
                Event::UdpFailed => m.on_udp_failed(now),
                Event::Up(tcp) => {
                    let kind = if tcp { PathKind::DirectTcp } else { PathKind::DirectUdp };
                    m.on_direct_up(now, kind);
                }
                Event::Lost => m.on_direct_lost(now),
            }
            drain(&mut m, &mut uses, &mut on, now, cfg)?;
            prop_assert_eq!(m.current(), on);
        }
        for (i, t) in uses.iter().enumerate() {
            let in_window = uses[i..].iter().filter(|u| u.saturating_duration_since(*t) < SWITCH_WINDOW).count();
            prop_assert!(in_window <= cfg.max_switches, "{} switches within a minute", in_window);
        }
    }
}

fn drain(
    m: &mut PathManager,
    uses: &mut Vec<Instant>,
    on: &mut PathKind,
    now: Instant,
    cfg: DirectConfig,
) -> Result<(), TestCaseError> {
    while let Some(a) = m.poll_action() {
        match a {
            Action::Listen { .. } | Action::Dial { .. } => prop_assert!(cfg.policy.tcp()),
            Action::Rendezvous { .. } => prop_assert!(cfg.policy.udp()),
            Action::SendCandidates { .. } => prop_assert!(cfg.policy != DirectPolicy::Off),
            Action::Use(kind) => {
                prop_assert_eq!(*on, PathKind::Relay, "Use while already direct");
                uses.push(now);
                *on = kind;
            }
            Action::FallBack => {
                prop_assert_ne!(*on, PathKind::Relay);
                *on = PathKind::Relay;
            }
            Action::StopTcp { .. } | Action::StopUdp { .. } => {}
        }
    }
    Ok(())
}
