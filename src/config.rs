//! Limits and timeouts of the roles, each a named constant with its reason, gathered in
//! [`GatewayLimits`] and [`PeerTimeouts`] so that tests (and deployments) can tighten them.
//!
//! Nothing here reads files or the environment; the examples parse their TOML themselves
//! and fill these structs.

use std::time::Duration;

/// Time a peer has to finish the outer TLS handshake and send HELLO: long enough for a
/// slow mobile link, short enough that a silent socket does not hold a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a peer has, after HELLO, to send its first request (REGISTER, QUEUE or CLAIM).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a registered, unclaimed session waits for a technician (TURN's default
/// allocation lifetime): a bound on parked connections that nobody claims.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// Concurrent connections one gateway accepts; beyond it, new sockets wait in the
/// kernel backlog rather than costing memory and a TLS handshake each.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a console connection may stay open between requests (QUEUE polling).
pub const CONSOLE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a graceful shutdown waits for sessions to close before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Time a peer gives one gateway to accept the TCP connection before failing over to the
/// next in the list.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a peer waits for each answer from the gateway (HELLO, REGISTERED, QUEUE_LIST).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a peer allows for the inner (end-to-end) TLS handshake plus BIND and SAS.
pub const INNER_SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Bounds applied by a [`crate::gateway::Gateway`]. `Default` gives the named constants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayLimits {
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`PENDING_LIFETIME`].
    pub pending_lifetime: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`CONSOLE_IDLE_TIMEOUT`].
    pub console_idle_timeout: Duration,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            pending_lifetime: PENDING_LIFETIME,
            max_connections: MAX_CONNECTIONS,
            console_idle_timeout: CONSOLE_IDLE_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Timeouts applied by the applet and the console. `Default` gives the named constants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerTimeouts {
    /// See [`CONNECT_TIMEOUT`]; also bounds the outer TLS handshake.
    pub connect: Duration,
    /// See [`REPLY_TIMEOUT`].
    pub reply: Duration,
    /// How long an applet waits for PAIRED; defaults to [`PENDING_LIFETIME`].
    pub pairing: Duration,
    /// See [`INNER_SETUP_TIMEOUT`].
    pub inner_setup: Duration,
    /// Interval of keepalive PINGs on the hop once the relay runs; defaults to the
    /// protocol's `PING_INTERVAL` (the relay's idle timeout is longer).
    pub keepalive: Duration,
}

impl Default for PeerTimeouts {
    fn default() -> Self {
        Self {
            connect: CONNECT_TIMEOUT,
            reply: REPLY_TIMEOUT,
            pairing: PENDING_LIFETIME,
            inner_setup: INNER_SETUP_TIMEOUT,
            keepalive: rescue_proto::wire::limits::PING_INTERVAL,
        }
    }
}
