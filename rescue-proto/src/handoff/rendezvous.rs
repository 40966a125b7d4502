//! The gateway's UDP rendezvous table (`PROTOCOL.md` 3.13): tokens handed out on a
//! RENDEZVOUS, the probes that spend them, and the PEER_ADDR pair once both arrived.
//!
//! ```text
//!   RENDEZVOUS (console hop)          PROBE{applet token}      PROBE{console token}
//!  --------------------------> Issued -------------------> Half ---------------------> Complete
//!   two tokens, one per party    |    (either order)                 PEER_ADDR to both,
//!                                |                                   both tokens spent
//!                                +-- UDP_TOKEN_LIFETIME without both probes --> Stale
//! ```
//!
//! [`RendezvousTable::start`] takes the two tokens (drawn by the caller from a CSPRNG:
//! nothing here draws random numbers) and the caller's `owner` value (where PEER_ADDR
//! goes); [`RendezvousTable::probe`] takes a datagram and its source and says whether it
//! completed a pair. Time is an argument everywhere; nothing here performs I/O.
//!
//! Every limit is a named constant of [`crate::wire::limits`] (through [`Limits`]):
//! tokens per session, the least interval between two rendezvous of one session, the
//! token lifetime, the table size and the probe rate per source. A token works once:
//! the first probe that carries it binds that party's address, every later one (the
//! same datagram again, or from elsewhere) is [`ProbeError::Replayed`]. Spent and stale
//! tokens are remembered for one more lifetime so that the refusal says which.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use crate::party::Role;
use crate::wire::limits;
use crate::wire::probe::{Probe, ProbeFormatError};
use crate::wire::signal::RendezvousToken;

/// The limits of a [`RendezvousTable`]; `Default` gives the protocol's constants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// [`limits::UDP_TOKEN_LIFETIME`].
    pub token_lifetime: Duration,
    /// [`limits::RENDEZVOUS_INTERVAL`].
    pub interval: Duration,
    /// [`limits::MAX_RENDEZVOUS_TOKENS`].
    pub max_tokens: usize,
    /// [`limits::MAX_PROBES_PER_SOURCE`].
    pub max_probes_per_source: u32,
    /// [`limits::PROBE_RATE_WINDOW`].
    pub probe_window: Duration,
    /// [`limits::MAX_PROBE_SOURCES`].
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            token_lifetime: limits::UDP_TOKEN_LIFETIME,
            interval: limits::RENDEZVOUS_INTERVAL,
            max_tokens: limits::MAX_RENDEZVOUS_TOKENS,
            max_probes_per_source: limits::MAX_PROBES_PER_SOURCE,
            probe_window: limits::PROBE_RATE_WINDOW,
            max_sources: limits::MAX_PROBE_SOURCES,
        }
    }
}

/// Why a RENDEZVOUS gets no tokens. The session goes on relayed; nothing is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Only the console (the controlling side) starts a rendezvous.
    #[error("only the console starts a rendezvous")]
    NotController,
    /// The session's previous rendezvous is still running (its tokens are live):
    /// [`limits::MAX_TOKENS_PER_HOP`].
    #[error("a rendezvous of this session is still running")]
    InProgress,
    /// Less than [`limits::RENDEZVOUS_INTERVAL`] since the session's last rendezvous.
    #[error("rendezvous requested again too soon")]
    TooSoon,
    /// The table holds [`limits::MAX_RENDEZVOUS_TOKENS`] tokens.
    #[error("rendezvous table full")]
    TableFull,
    /// A token drawn by the caller is already in the table (a broken generator).
    #[error("token already in use")]
    DuplicateToken,
}

/// Why a datagram on the rendezvous port was dropped. The gateway never answers over
/// UDP, and nothing changes in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The source sent more than [`limits::MAX_PROBES_PER_SOURCE`] in the window, or
    /// the limiter tracks [`limits::MAX_PROBE_SOURCES`] others.
    #[error("probe rate limit of the source reached")]
    RateLimited,
    /// Not a probe (length, magic, version, role).
    #[error(transparent)]
    Malformed(#[from] ProbeFormatError),
    /// No such token was issued (a forged or guessed token), or it was forgotten.
    #[error("unknown token")]
    UnknownToken,
    /// The token was issued to the other party.
    #[error("token of the other party")]
    WrongParty,
    /// The token is older than [`limits::UDP_TOKEN_LIFETIME`].
    #[error("stale token")]
    Expired,
    /// The token was spent by an earlier probe (from this source or another one).
    #[error("token already used")]
    Replayed,
}

/// What an accepted probe did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeAccepted<K, P> {
    /// The first probe of the pair: the address is kept, the other party's is awaited.
    Waiting {
        /// The session.
        key: K,
    },
    /// Both probes are in: send each party the other's address (PEER_ADDR).
    Complete {
        /// The session.
        key: K,
        /// The `owner` given to [`RendezvousTable::start`].
        owner: P,
        /// Where the applet's probe came from (goes to the console).
        applet: SocketAddr,
        /// Where the console's probe came from (goes to the applet).
        console: SocketAddr,
    },
}

#[derive(Debug)]
enum TokenState {
    Live,
    Spent,
}

#[derive(Debug)]
struct TokenEntry<K> {
    key: K,
    role: Role,
    issued: Instant,
    state: TokenState,
}

#[derive(Debug)]
struct Pair<P> {
    owner: P,
    tokens: [RendezvousToken; 2],
    started: Instant,
    applet: Option<SocketAddr>,
    console: Option<SocketAddr>,
    done: bool,
}

/// The gateway's rendezvous state: tokens by value, sessions by `K` (the caller's key,
/// e.g. its relay id), `P` the caller's handle for PEER_ADDR delivery.
#[derive(Debug)]
pub struct RendezvousTable<K, P> {
    limits: Limits,
    tokens: HashMap<RendezvousToken, TokenEntry<K>>,
    pairs: HashMap<K, Pair<P>>,
    sources: SourceLimiter,
}

impl<K: Copy + Eq + Hash, P: Clone> RendezvousTable<K, P> {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        let sources = SourceLimiter::new(&limits);
        Self {
            limits,
            tokens: HashMap::new(),
            pairs: HashMap::new(),
            sources,
        }
    }

    /// Tokens held (live, spent or stale but remembered).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// A RENDEZVOUS from `from` on session `key`: registers `tokens` (`[applet's,
    /// console's]`, fresh from a CSPRNG) until [`Limits::token_lifetime`] after `now`.
    /// On success, send each party its token in UDP_TOKEN.
    pub fn start(
        &mut self,
        now: Instant,
        key: K,
        from: Role,
        owner: P,
        tokens: [RendezvousToken; 2],
    ) -> Result<(), StartError> {
        // PROTOCOL.md 3.13: "the console (the controlling side) sends RENDEZVOUS".
        if from != Role::Console {
            return Err(StartError::NotController);
        }
        if let Some(p) = self.pairs.get(&key) {
            if !p.done && now < p.started + self.limits.token_lifetime {
                return Err(StartError::InProgress);
            }
            if now < p.started + self.limits.interval {
                return Err(StartError::TooSoon);
            }
        }
        if self.tokens.len() + 2 > self.limits.max_tokens {
            self.expire(now);
            if self.tokens.len() + 2 > self.limits.max_tokens {
                return Err(StartError::TableFull);
            }
        }
        let [a, c] = &tokens;
        if a == c || self.tokens.contains_key(a) || self.tokens.contains_key(c) {
            return Err(StartError::DuplicateToken);
        }
        if let Some(old) = self.pairs.remove(&key) {
            // The previous rendezvous of this session is over: its tokens are spent.
            for t in &old.tokens {
                if let Some(e) = self.tokens.get_mut(t) {
                    e.state = TokenState::Spent;
                }
            }
        }
        for (token, role) in [(a, Role::Applet), (c, Role::Console)] {
            let entry = TokenEntry {
                key,
                role,
                issued: now,
                state: TokenState::Live,
            };
            self.tokens.insert(token.clone(), entry);
        }
        let pair = Pair {
            owner,
            tokens,
            started: now,
            applet: None,
            console: None,
            done: false,
        };
        self.pairs.insert(key, pair);
        Ok(())
    }

    /// A datagram from `src` on the rendezvous port.
    pub fn probe(
        &mut self,
        now: Instant,
        datagram: &[u8],
        src: SocketAddr,
    ) -> Result<ProbeAccepted<K, P>, ProbeError> {
        if !self.sources.allow(now, src.ip()) {
            return Err(ProbeError::RateLimited);
        }
        let probe = Probe::parse(datagram)?;
        let entry = self
            .tokens
            .get_mut(&probe.token)
            .ok_or(ProbeError::UnknownToken)?;
        if entry.role != probe.role {
            return Err(ProbeError::WrongParty);
        }
        if now >= entry.issued + self.limits.token_lifetime {
            return Err(ProbeError::Expired);
        }
        // "The first probe that carries a token binds the address; a token works once."
        if !matches!(entry.state, TokenState::Live) {
            return Err(ProbeError::Replayed);
        }
        entry.state = TokenState::Spent;
        let key = entry.key;
        let Some(pair) = self.pairs.get_mut(&key) else {
            // A live token always has its pair; treat a missing one as forgotten.
            return Err(ProbeError::UnknownToken);
        };
        let src = canonical(src);
        match probe.role {
            Role::Applet => pair.applet = Some(src),
            Role::Console => pair.console = Some(src),
        }
        match (pair.applet, pair.console) {
            (Some(applet), Some(console)) => {
                pair.done = true;
                Ok(ProbeAccepted::Complete {
                    key,
                    owner: pair.owner.clone(),
                    applet,
                    console,
                })
            }
            _ => Ok(ProbeAccepted::Waiting { key }),
        }
    }

    /// Forgets the session `key` (its relay ended): its tokens stop working at once.
    pub fn end(&mut self, key: K) {
        if let Some(pair) = self.pairs.remove(&key) {
            for t in &pair.tokens {
                self.tokens.remove(t);
            }
        }
    }

    /// Forgets what is older than two lifetimes (tokens, sessions) and source windows
    /// that are over. Call it at least every [`Limits::token_lifetime`].
    pub fn expire(&mut self, now: Instant) {
        let keep = self.limits.token_lifetime * 2;
        self.tokens.retain(|_, e| now < e.issued + keep);
        // A session record outlives its tokens by nothing: it only holds the interval.
        let hold = keep.max(self.limits.interval);
        self.pairs.retain(|_, p| now < p.started + hold);
        self.sources.sweep(now);
    }

    /// When [`RendezvousTable::expire`] next has something to forget.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keep = self.limits.token_lifetime * 2;
        self.tokens.values().map(|e| e.issued + keep).min()
    }
}

/// An IPv4-mapped IPv6 source as the IPv4 address it is (a dual-stack socket reports
/// IPv4 peers that way), so both parties' addresses are of the family they dial.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A source of probes: an IPv4 address, or an IPv6 /64 (which one host usually holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl SourceKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&o[..8]);
                SourceKey::V6(prefix)
            }
        }
    }
}

/// Fixed-window probe counts per source, in a bounded map.
#[derive(Debug)]
struct SourceLimiter {
    max: u32,
    window: Duration,
    capacity: usize,
    windows: HashMap<SourceKey, (Instant, u32)>,
    last_sweep: Option<Instant>,
}

impl SourceLimiter {
    fn new(limits: &Limits) -> Self {
        Self {
            max: limits.max_probes_per_source,
            window: limits.probe_window,
            capacity: limits.max_sources,
            windows: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Counts a datagram from `ip`; false when it is over the limit.
    fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let key = SourceKey::of(ip);
        if let Some((start, count)) = self.windows.get_mut(&key) {
            if now >= *start + self.window {
                (*start, *count) = (now, 0);
            }
            if *count >= self.max {
                return false;
            }
            *count += 1;
            return true;
        }
        if self.windows.len() >= self.capacity {
            // At most one sweep per window: a flood of sources cannot make each
            // datagram scan the map.
            if self.last_sweep.is_none_or(|t| now >= t + self.window) {
                self.sweep(now);
            }
            if self.windows.len() >= self.capacity {
                return false;
            }
        }
        self.windows.insert(key, (now, 1));
        self.max > 0
    }

    fn sweep(&mut self, now: Instant) {
        let window = self.window;
        self.windows.retain(|_, (start, _)| now < *start + window);
        self.last_sweep = Some(now);
    }
}

/// Why a PEER_ADDR is not an address a peer will send datagrams to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerAddrError {
    /// Port 0, or an unspecified, multicast or broadcast address: no probe came from
    /// there, so the gateway did not send it.
    #[error("{0} cannot be the other party's address")]
    Unusable(SocketAddr),
    /// Not of the family of the socket that probed (it dials the family it probed with).
    #[error("{0} is not of the family the gateway was reached with")]
    Family(SocketAddr),
}

/// The peer's check of a PEER_ADDR before it sends anything there (PROTOCOL.md 3.13):
/// a unicast address of `family_of`'s family with a non-zero port.
pub fn check_peer_addr(addr: SocketAddr, family_of: SocketAddr) -> Result<(), PeerAddrError> {
    let ip = addr.ip();
    let unusable = addr.port() == 0
        || ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(PeerAddrError::Unusable(addr));
    }
    if addr.is_ipv4() != family_of.is_ipv4() {
        return Err(PeerAddrError::Family(addr));
    }
    Ok(())
}

#[cfg(test)]
#[path = "rendezvous_tests.rs"]
mod tests;
