//! Counters of a running gateway (relaxed atomics: monotonic figures for operators and
//! the demo, never used for decisions).

use std::sync::atomic::{AtomicU64, Ordering};

use rescue_proto::handoff::rendezvous::ProbeError;

/// A snapshot of a gateway's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections refused with an ERROR frame (or dropped before HELLO).
    pub refused: u64,
    /// Applets registered (REGISTERED sent).
    pub registered: u64,
    /// Sessions paired (PAIRED sent to both).
    pub paired: u64,
    /// Relays that have ended.
    pub relays_ended: u64,
    /// Bytes forwarded from applets to consoles (DATA frames, header and all).
    pub bytes_applet_to_console: u64,
    /// Bytes forwarded from consoles to applets (DATA frames, header and all).
    pub bytes_console_to_applet: u64,
    /// Sessions currently in the directory (waiting or paired).
    pub live_sessions: usize,
    /// The UDP rendezvous (PROTOCOL.md 3.13).
    pub rendezvous: RendezvousStats,
}

/// Counters of the UDP rendezvous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RendezvousStats {
    /// RENDEZVOUS frames received from running relays.
    pub requests: u64,
    /// RENDEZVOUS not answered (from the applet, too soon, one running, table full).
    pub requests_ignored: u64,
    /// Tokens handed out (two per answered RENDEZVOUS).
    pub tokens_issued: u64,
    /// Probes that spent a token.
    pub probes_accepted: u64,
    /// Datagrams dropped, by reason.
    pub probes_refused: ProbeRefusals,
    /// Rendezvous whose two probes arrived (PEER_ADDR sent to both).
    pub pairs_completed: u64,
    /// PEER_ADDR frames that found their relay gone or its inbox full.
    pub peer_addr_dropped: u64,
}

/// Datagrams the rendezvous socket dropped, by the reason of PROTOCOL.md 3.13.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeRefusals {
    /// Over the source's rate.
    pub rate_limited: u64,
    /// Not a probe (length, magic, version, role).
    pub malformed: u64,
    /// A token that was never issued (forged).
    pub unknown_token: u64,
    /// A token of the other party.
    pub wrong_party: u64,
    /// A stale token.
    pub expired: u64,
    /// A token already spent.
    pub replayed: u64,
}

impl ProbeRefusals {
    /// All refused datagrams.
    pub fn total(&self) -> u64 {
        self.rate_limited
            + self.malformed
            + self.unknown_token
            + self.wrong_party
            + self.expired
            + self.replayed
    }
}

impl GatewayStats {
    /// All bytes forwarded, both directions.
    pub fn bytes_forwarded(&self) -> u64 {
        self.bytes_applet_to_console
            .saturating_add(self.bytes_console_to_applet)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) registered: AtomicU64,
    pub(crate) paired: AtomicU64,
    pub(crate) relays_ended: AtomicU64,
    pub(crate) bytes_a2c: AtomicU64,
    pub(crate) bytes_c2a: AtomicU64,
    /// The Prometheus metrics, if the embedding application asked for them.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<super::metrics::GatewayMetrics>,
}

/// Hooks into the Prometheus metrics; without the `metrics` feature they do nothing.
impl Counters {
    /// A connection was refused with `code` (or without one).
    pub(crate) fn on_refused(&self, _code: Option<rescue_proto::wire::signal::ErrorCode>) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.refused(_code);
        }
    }

    /// Sessions waiting for a technician changed by `delta`.
    pub(crate) fn on_waiting(&self, _delta: i64) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.waiting(_delta);
        }
    }

    /// Running relays changed by `delta`.
    pub(crate) fn on_relaying(&self, _delta: i64) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.relaying(_delta);
        }
    }

    /// A session was paired.
    pub(crate) fn on_paired(&self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.paired();
        }
    }

    /// A relay run ended having forwarded these bytes.
    pub(crate) fn on_relayed(&self, _a2c: u64, _c2a: u64) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.relayed(_a2c, _c2a);
        }
    }

    /// A REATTACH was accepted.
    pub(crate) fn on_reattached(&self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.reattached();
        }
    }

    /// REGISTERED went out this long after TCP accept.
    pub(crate) fn on_registered_after(&self, _elapsed: std::time::Duration) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.registered_after(_elapsed);
        }
    }

    /// A call to the session store failed.
    pub(crate) fn on_store_error(&self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.store_error();
        }
    }
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, live_sessions: usize) -> GatewayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GatewayStats {
            connections: get(&self.connections),
            refused: get(&self.refused),
            registered: get(&self.registered),
            paired: get(&self.paired),
            relays_ended: get(&self.relays_ended),
            bytes_applet_to_console: get(&self.bytes_a2c),
            bytes_console_to_applet: get(&self.bytes_c2a),
            live_sessions,
            rendezvous: RendezvousStats::default(),
        }
    }
}

impl RendezvousCounters {
    pub(crate) fn snapshot(&self) -> RendezvousStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RendezvousStats {
            requests: get(&self.requests),
            requests_ignored: get(&self.requests_ignored),
            tokens_issued: get(&self.tokens_issued),
            probes_accepted: get(&self.probes_accepted),
            probes_refused: ProbeRefusals {
                rate_limited: get(&self.rate_limited),
                malformed: get(&self.malformed),
                unknown_token: get(&self.unknown_token),
                wrong_party: get(&self.wrong_party),
                expired: get(&self.expired),
                replayed: get(&self.replayed),
            },
            pairs_completed: get(&self.pairs_completed),
            peer_addr_dropped: get(&self.peer_addr_dropped),
        }
    }
}

/// Rendezvous counters (relaxed atomics), shared by the hooks and the socket task.
#[derive(Default)]
pub(crate) struct RendezvousCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) requests_ignored: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) probes_accepted: AtomicU64,
    pub(crate) pairs_completed: AtomicU64,
    pub(crate) peer_addr_dropped: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) unknown_token: AtomicU64,
    pub(crate) wrong_party: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) replayed: AtomicU64,
}

impl RendezvousCounters {
    pub(crate) fn refused(&self, e: ProbeError) {
        let c = match e {
            ProbeError::RateLimited => &self.rate_limited,
            ProbeError::Malformed(_) => &self.malformed,
            ProbeError::UnknownToken => &self.unknown_token,
            ProbeError::WrongParty => &self.wrong_party,
            ProbeError::Expired => &self.expired,
            _ => &self.replayed,
        };
        Counters::bump(c);
    }
}
