//! The connection's deadlines: one table, the earliest of which is
//! `Connection::poll_timeout`.

use std::time::Instant;

/// Deadlines (one table, the earliest is `poll_timeout`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Timers {
    /// Retransmission timeout (RFC 6298).
    pub(super) rto: Option<Instant>,
    /// Tail-loss probe (RFC 8985 §7).
    pub(super) tlp: Option<Instant>,
    /// RACK reordering window: re-run loss detection (RFC 8985 §6.2).
    pub(super) reorder: Option<Instant>,
    /// Send the delayed ACK.
    pub(super) delayed_ack: Option<Instant>,
    /// Probe a zero window (RFC 9293 §3.8.6.1).
    pub(super) persist: Option<Instant>,
    /// Send a keepalive probe.
    pub(super) keepalive: Option<Instant>,
    /// Close after the user timeout without hearing from the peer.
    pub(super) idle: Option<Instant>,
    /// Leave TIME-WAIT.
    pub(super) time_wait: Option<Instant>,
    /// The pacer lets the next segment go.
    pub(super) pacing: Option<Instant>,
}

impl Timers {
    /// The earliest deadline set.
    pub(super) fn next(&self) -> Option<Instant> {
        [
            self.rto,
            self.tlp,
            self.reorder,
            self.delayed_ack,
            self.persist,
            self.keepalive,
            self.idle,
            self.time_wait,
            self.pacing,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
