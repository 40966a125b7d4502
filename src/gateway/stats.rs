//! Counters of a running gateway (relaxed atomics: monotonic figures for operators and
//! the demo, never used for decisions).

use std::sync::atomic::{AtomicU64, Ordering};

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
        }
    }
}
