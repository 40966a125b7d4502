//! The path manager's decisions, sans-IO: when to look for a direct path, how to dial,
//! when to give up, when to go back to the relay and when to try again.
//!
//! Both ends run one [`PathManager`]; the tokio driver in the root crate feeds it events
//! (candidates received, a path bound, a path lost, attempts failed) and carries out the
//! [`Action`]s it emits: it never decides anything itself. Time is an argument; nothing
//! here reads a clock or touches a socket.
//!
//! A search for a direct path is a *round*, numbered from 1 and started by the applet
//! (which owns the listener):
//!
//! ```text
//!  applet                                     console
//!  Listen{round, until}, SendCandidates ───►  on_candidates(round, n)
//!                                             Dial{0}, Dial{1} .. every DIAL_STAGGER
//!  (a connection finishes TLS + BIND)  ◄───►  on_direct_up(DirectTcp) ─► Use(DirectTcp)
//!  tcp window over, no TCP path:              tcp window over: StopTcp, Rendezvous
//!  StopTcp, Rendezvous (await UDP_TOKEN)      (punch, XTCP, TLS, BIND) ─► Use(DirectUdp)
//!  round over without a path: back off       UDP deadline over: StopUdp, round over
//! ```
//!
//! While a direct path is current the relay stays open (make before break): when the
//! direct path is lost the manager says [`Action::FallBack`] and the session goes on over
//! the relay at once. The next round waits a backoff that doubles with each failed or
//! lost round ([`DirectConfig::retry_base`] up to [`DirectConfig::retry_max`]) and resets
//! once a direct path has stayed up for [`STABLE_AFTER`]; and no more than
//! [`DirectConfig::max_switches`] switches to a direct path happen in any
//! [`SWITCH_WINDOW`], so a flapping network cannot make the session hop more than a few
//! times a minute.

use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use crate::audit::PathKind;
use crate::party::Role;

/// Most candidate addresses one round carries (IPv4 and IPv6 of a few interfaces): bounds
/// the connection attempts a peer can make the console send.
pub const MAX_CANDIDATES: usize = 8;
/// Delay between two staggered dials of one round (RFC 8305 "Connection Attempt Delay").
///
/// Value: 250 ms.
pub const DIAL_STAGGER: Duration = Duration::from_millis(250);
/// Default time the applet's listener stays open and the console dials (the service we model: the
/// UDP path is tried when no TCP connection is made within 10 s).
///
/// Value: 10 s.
pub const TCP_WINDOW: Duration = Duration::from_secs(10);
/// Default time for the UDP phase of a round (rendezvous, punch, XTCP, TLS, BIND).
///
/// Value: 10 s.
pub const UDP_WINDOW: Duration = Duration::from_secs(10);
/// Default wait before the second round after a failed or lost one; doubles each time.
///
/// Value: 5 s.
pub const RETRY_BASE: Duration = Duration::from_secs(5);
/// Default longest wait between two rounds.
///
/// Value: 5 min (300 s).
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// A direct path that stayed up this long resets the backoff.
///
/// Value: 60 s.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The window in which at most [`DirectConfig::max_switches`] switches happen.
///
/// Value: 60 s.
pub const SWITCH_WINDOW: Duration = Duration::from_secs(60);
/// Default most switches to a direct path per [`SWITCH_WINDOW`].
pub const MAX_SWITCHES: usize = 3;

/// Which direct paths a session may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectPolicy {
    /// Relay only.
    Off,
    /// Direct TCP only.
    Tcp,
    /// UDP (XTCP over a punched path) only.
    Udp,
    /// TCP first, then UDP.
    Any,
}

impl DirectPolicy {
    fn tcp(self) -> bool {
        matches!(self, DirectPolicy::Tcp | DirectPolicy::Any)
    }

    fn udp(self) -> bool {
        matches!(self, DirectPolicy::Udp | DirectPolicy::Any)
    }
}

/// The manager's settings; [`Default`] gives the protocol's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectConfig {
    /// Which direct paths to try.
    pub policy: DirectPolicy,
    /// How long the TCP phase of a round lasts.
    pub tcp_window: Duration,
    /// How long the UDP phase of a round lasts.
    pub udp_window: Duration,
    /// Wait before the second round; doubles per failed or lost round.
    pub retry_base: Duration,
    /// Longest wait between rounds.
    pub retry_max: Duration,
    /// Most switches to a direct path per [`SWITCH_WINDOW`] (at least 1).
    pub max_switches: usize,
    /// Wait after the relayed session is up before the first round (default 0: at once).
    pub first_round_after: Duration,
    /// Longest XTCP simultaneous open toward one address in the UDP phase (default
    /// [`crate::wire::limits::PUNCH_TIMEOUT`]); the UDP window bounds it too.
    pub punch_timeout: Duration,
}

impl Default for DirectConfig {
    fn default() -> Self {
        Self {
            policy: DirectPolicy::Any,
            tcp_window: TCP_WINDOW,
            udp_window: UDP_WINDOW,
            retry_base: RETRY_BASE,
            retry_max: RETRY_MAX,
            max_switches: MAX_SWITCHES,
            first_round_after: Duration::ZERO,
            punch_timeout: crate::wire::limits::PUNCH_TIMEOUT,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Applet: open the TCP listener for this round, until the instant.
    Listen {
        /// The round.
        round: u32,
        /// When the listener closes at the latest.
        until: Instant,
    },
    /// Applet: send this round's candidate addresses over the control channel.
    SendCandidates {
        /// The round.
        round: u32,
    },
    /// Console: dial candidate `index` of this round.
    Dial {
        /// The round.
        round: u32,
        /// Index into the round's candidate list.
        index: usize,
    },
    /// Close the listener (applet) or cancel the dials (console) of this round.
    StopTcp {
        /// The round.
        round: u32,
    },
    /// The UDP phase of this round: the console asks the gateway for a rendezvous
    /// (RENDEZVOUS); the applet waits for the UDP_TOKEN that brings.
    Rendezvous {
        /// The round.
        round: u32,
    },
    /// Stop punching and drop this round's UDP socket unless it carries the path.
    StopUdp {
        /// The round.
        round: u32,
    },
    /// A direct path is bound: make it the session's current path (SWITCH).
    Use(PathKind),
    /// The direct path is gone: the session is on the relay again.
    FallBack,
}

/// Where the manager is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// On the relay; the next round starts at the instant (`None`: the console waits for
    /// the applet's candidates; or direct paths are off).
    Relayed(Option<Instant>),
    /// A round's TCP phase runs until the instant.
    Tcp {
        /// The round.
        round: u32,
        /// End of the phase.
        until: Instant,
    },
    /// A round's UDP phase runs until the instant.
    Udp {
        /// The round.
        round: u32,
        /// End of the phase.
        until: Instant,
    },
    /// A direct path is current, since the instant.
    Direct {
        /// Which.
        kind: PathKind,
        /// Since when.
        since: Instant,
    },
}

/// The path manager of one end (see the module docs).
#[derive(Debug, Clone)]
pub struct PathManager {
    role: Role,
    cfg: DirectConfig,
    phase: Phase,
    round: u32,
    /// Console: candidates of the current round, and the next one to dial.
    candidates: usize,
    next_dial: usize,
    next_dial_at: Option<Instant>,
    /// Failed or lost rounds since the last stable direct path.
    failures: u32,
    /// Console: no round of the applet's is taken before this instant (half the backoff
    /// after a failed round), so a hostile applet cannot drive rounds faster than an
    /// honest one would.
    not_before: Option<Instant>,
    /// Instants of the recent switches to a direct path (at most `max_switches`).
    switches: VecDeque<Instant>,
    actions: VecDeque<Action>,
}

impl PathManager {
    /// A manager for `role`, on a session whose relayed path is up at `now`. The applet
    /// starts its first round at once; the console waits for candidates.
    pub fn new(role: Role, cfg: DirectConfig, now: Instant) -> Self {
        let cfg = DirectConfig {
            max_switches: cfg.max_switches.max(1),
            ..cfg
        };
        let first = match (role, cfg.policy) {
            (_, DirectPolicy::Off) | (Role::Console, _) => None,
            (Role::Applet, _) => Some(now + cfg.first_round_after),
        };
        Self {
            role,
            cfg,
            phase: Phase::Relayed(first),
            round: 0,
            candidates: 0,
            next_dial: 0,
            next_dial_at: None,
            failures: 0,
            not_before: None,
            switches: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &DirectConfig {
        &self.cfg
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The path the session should be on.
    pub fn current(&self) -> PathKind {
        match self.phase {
            Phase::Direct { kind, .. } => kind,
            _ => PathKind::Relay,
        }
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`PathManager::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Relayed(at) => at,
            Phase::Tcp { until, .. } | Phase::Udp { until, .. } => Some(until),
            Phase::Direct { .. } => None,
        };
        match (phase, self.next_dial_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Console: the applet's candidates for `round` arrived (`count` addresses; more than
    /// [`MAX_CANDIDATES`] are not dialled). Stale rounds, candidates while a direct path
    /// is current, and a round sooner than half the backoff after the last failed one
    /// (the applet waits the whole backoff) are ignored.
    ///
    /// Returns whether the round was taken: only then do its addresses name the
    /// [`Action::Dial`] indexes that follow.
    pub fn on_candidates(&mut self, now: Instant, round: u32, count: usize) -> bool {
        if self.role != Role::Console || round <= self.round {
            return false;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        if !matches!(self.phase, Phase::Relayed(_)) || self.cfg.policy == DirectPolicy::Off {
            return false;
        }
        self.round = round;
        self.candidates = count.min(MAX_CANDIDATES);
        self.next_dial = 0;
        if self.cfg.policy.tcp() && self.candidates > 0 {
            self.phase = Phase::Tcp {
                round,
                until: now + self.cfg.tcp_window,
            };
            self.next_dial_at = Some(now);
            self.dial_due(now);
        } else {
            self.start_udp(now);
        }
        true
    }

    /// Console: every dial of the round failed before the window ended. The dials stop;
    /// the UDP phase still starts when the window ends, not before, so that the applet
    /// (whose window started earlier) is waiting for its UDP_TOKEN when the gateway sends
    /// it.
    pub fn on_tcp_failed(&mut self, _now: Instant) {
        if let Phase::Tcp { round, .. } = self.phase {
            if self.role == Role::Console && self.next_dial >= self.candidates {
                self.actions.push_back(Action::StopTcp { round });
                self.next_dial_at = None;
            }
        }
    }

    /// Applet: this round has no TCP candidate to offer (no listener, no usable address):
    /// its TCP phase ends now and the UDP phase starts, as the console's does when it gets
    /// the empty CANDIDATES.
    pub fn on_no_candidates(&mut self, now: Instant) {
        if let Phase::Tcp { round, .. } = self.phase {
            if self.role == Role::Applet {
                self.actions.push_back(Action::StopTcp { round });
                self.start_udp(now);
            }
        }
    }

    /// The other end's UDP_CANDIDATES for `round` arrived: whether to punch toward them
    /// (only in the TCP or UDP phase of that very round, and only if UDP is allowed; the
    /// other end may be in its UDP phase before this one is).
    pub fn on_udp_candidates(&self, round: u32) -> bool {
        self.cfg.policy.udp()
            && round == self.round
            && matches!(self.phase, Phase::Tcp { .. } | Phase::Udp { .. })
    }

    /// The UDP attempt of the round failed (no token, no peer address, punch timed out).
    pub fn on_udp_failed(&mut self, now: Instant) {
        if let Phase::Udp { round, .. } = self.phase {
            self.actions.push_back(Action::StopUdp { round });
            self.round_failed(now);
        }
    }

    /// A direct path of `kind` finished TLS and BIND. Returns whether the session should
    /// use it (it is ignored when a direct path is current already, or past the switch
    /// budget; the driver then closes it).
    pub fn on_direct_up(&mut self, now: Instant, kind: PathKind) -> bool {
        let round = match self.phase {
            Phase::Tcp { round, .. } | Phase::Udp { round, .. } => round,
            Phase::Relayed(_) | Phase::Direct { .. } => return false,
        };
        let allowed = match kind {
            PathKind::DirectTcp => self.cfg.policy.tcp(),
            PathKind::DirectUdp => self.cfg.policy.udp(),
            PathKind::Relay => false,
        };
        if !allowed || !self.switch_allowed(now) {
            return false;
        }
        if matches!(self.phase, Phase::Tcp { .. }) {
            self.actions.push_back(Action::StopTcp { round });
        }
        if matches!(self.phase, Phase::Udp { .. }) && kind != PathKind::DirectUdp {
            self.actions.push_back(Action::StopUdp { round });
        }
        self.next_dial_at = None;
        self.switches.push_back(now);
        while self.switches.len() > self.cfg.max_switches {
            self.switches.pop_front();
        }
        self.phase = Phase::Direct { kind, since: now };
        self.actions.push_back(Action::Use(kind));
        true
    }

    /// The current direct path died: back to the relay at once, next round after the
    /// backoff.
    pub fn on_direct_lost(&mut self, now: Instant) {
        if let Phase::Direct { since, .. } = self.phase {
            if now.saturating_duration_since(since) >= STABLE_AFTER {
                self.failures = 0;
            }
            self.actions.push_back(Action::FallBack);
            self.round_failed(now);
        }
    }

    /// Runs the deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.dial_due(now);
        match self.phase {
            Phase::Relayed(Some(at)) if at <= now => self.start_round(now),
            Phase::Tcp { round, until } if until <= now => {
                self.actions.push_back(Action::StopTcp { round });
                self.next_dial_at = None;
                self.start_udp(now);
            }
            Phase::Udp { round, until } if until <= now => {
                self.actions.push_back(Action::StopUdp { round });
                self.round_failed(now);
            }
            _ => {}
        }
    }

    fn dial_due(&mut self, now: Instant) {
        let Phase::Tcp { round, .. } = self.phase else {
            return;
        };
        while self.next_dial < self.candidates && self.next_dial_at.is_some_and(|t| t <= now) {
            self.actions.push_back(Action::Dial {
                round,
                index: self.next_dial,
            });
            self.next_dial += 1;
            self.next_dial_at = self.next_dial_at.map(|t| t + DIAL_STAGGER);
        }
        if self.next_dial >= self.candidates {
            self.next_dial_at = None;
        }
    }

    /// Applet: a new round, if the switch budget allows one now.
    fn start_round(&mut self, now: Instant) {
        if let Some(later) = self.budget_frees_at(now) {
            self.phase = Phase::Relayed(Some(later));
            return;
        }
        self.round = self.round.saturating_add(1);
        let round = self.round;
        if self.cfg.policy.tcp() {
            let until = now + self.cfg.tcp_window;
            self.actions.push_back(Action::Listen { round, until });
            self.phase = Phase::Tcp { round, until };
        } else {
            self.phase = Phase::Udp {
                round,
                until: now + self.cfg.udp_window,
            };
            self.actions.push_back(Action::Rendezvous { round });
        }
        self.actions.push_back(Action::SendCandidates { round });
    }

    /// After the TCP phase: the UDP phase if allowed (the console asks the gateway), else
    /// the round has failed.
    fn start_udp(&mut self, now: Instant) {
        if !self.cfg.policy.udp() {
            return self.round_failed(now);
        }
        self.phase = Phase::Udp {
            round: self.round,
            until: now + self.cfg.udp_window,
        };
        self.actions
            .push_back(Action::Rendezvous { round: self.round });
    }

    fn round_failed(&mut self, now: Instant) {
        self.next_dial_at = None;
        self.failures = self.failures.saturating_add(1);
        let next = match self.role {
            // The applet starts the next round; the console waits for its candidates.
            Role::Applet => Some(now + self.backoff()),
            Role::Console => {
                self.not_before = Some(now + self.backoff() / 2);
                None
            }
        };
        self.phase = Phase::Relayed(next);
    }

    /// The wait before the next round: `retry_base * 2^(failures - 1)`, at most
    /// `retry_max`.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        self.cfg
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.cfg.retry_max)
    }

    fn switch_allowed(&self, now: Instant) -> bool {
        self.budget_frees_at(now).is_none()
    }

    /// `None` if a switch is allowed at `now`, else when the oldest recent switch leaves
    /// the window.
    fn budget_frees_at(&self, now: Instant) -> Option<Instant> {
        let recent = self
            .switches
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < SWITCH_WINDOW)
            .count();
        if recent < self.cfg.max_switches {
            return None;
        }
        self.switches.front().map(|t| *t + SWITCH_WINDOW)
    }
}

#[cfg(test)]
mod tests;
