//! Limits and timeouts of the roles, each a named constant with its reason, gathered in
//! [`GatewayLimits`] and [`PeerTimeouts`] so that tests (and deployments) can tighten them.
//!
//! Nothing here reads files or the environment; the examples parse their TOML themselves
//! and fill these structs.

use std::time::Duration;

/// One deadline from TCP accept to the first request: the protocol's
/// [`rescue_proto::wire::limits::PRE_AUTH_TIMEOUT`] (10 s).
///
/// Value: the same as [`rescue_proto::wire::limits::PRE_AUTH_TIMEOUT`].
pub const PRE_AUTH_TIMEOUT: Duration = rescue_proto::wire::limits::PRE_AUTH_TIMEOUT;

/// Unauthenticated connections held at once: the protocol's
/// [`rescue_proto::wire::limits::MAX_PRE_AUTH_CONNECTIONS`] (1,024).
pub const MAX_PRE_AUTH_CONNECTIONS: usize = rescue_proto::wire::limits::MAX_PRE_AUTH_CONNECTIONS;

/// Unauthenticated connections from one source: the protocol's
/// [`rescue_proto::wire::limits::MAX_PRE_AUTH_PER_SOURCE`] (32).
pub const MAX_PRE_AUTH_PER_SOURCE: usize = rescue_proto::wire::limits::MAX_PRE_AUTH_PER_SOURCE;

/// How long a registered, unclaimed session waits for a technician (TURN's default
/// allocation lifetime): a bound on parked connections that nobody claims.
///
/// Value: 10 min (600 s).
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// Authenticated connections (hops) one gateway holds: an applet whose REGISTER or
/// REATTACH was admitted, a console whose certificate and HELLO were accepted. A
/// connection that authenticates while all are taken gets `ERROR{overloaded}` ("gateway
/// connection limit"). Unauthenticated connections have their own pool
/// ([`MAX_PRE_AUTH_CONNECTIONS`]), so a flood of idle sockets never takes these: the
/// sockets a gateway holds open at once are at most `max_connections +
/// max_pre_auth_connections` (5,120 by default), and its file-descriptor limit must allow
/// that many plus a few.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a console connection may stay open between requests (QUEUE polling).
///
/// Value: 2 min (120 s).
pub const CONSOLE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a graceful shutdown waits for sessions to close before dropping them.
///
/// Value: 5 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Time a peer gives one gateway to accept the TCP connection before failing over to the
/// next in the list.
///
/// Value: 5 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a peer waits for each answer from the gateway (HELLO, REGISTERED, QUEUE_LIST).
///
/// Value: 10 s.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a peer allows for the inner (end-to-end) TLS handshake plus BIND and SAS.
///
/// Value: 15 s.
pub const INNER_SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a console's claim is tried again while the GUID is unknown to the gateway
/// (10 s): long enough for an applet started at the same moment to register, short
/// enough that a wrong GUID fails fast.
///
/// Value: 10 s.
pub const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// First pause before a claim is tried again because the applet had not registered yet
/// (100 ms).
///
/// Value: 100 ms.
pub const CLAIM_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two such claims (1 s): at most about 13 claims in
/// [`CLAIM_WAIT`].
///
/// Value: 1 s.
pub const CLAIM_RETRY_MAX: Duration = Duration::from_secs(1);

/// Bounds applied by a [`crate::gateway::Gateway`]. `Default` gives the named constants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayLimits {
    /// See [`PRE_AUTH_TIMEOUT`]: TLS handshake, HELLO and first request together.
    pub pre_auth_timeout: Duration,
    /// See [`MAX_PRE_AUTH_CONNECTIONS`].
    pub max_pre_auth_connections: usize,
    /// See [`MAX_PRE_AUTH_PER_SOURCE`].
    pub max_pre_auth_per_source: usize,
    /// See [`PENDING_LIFETIME`].
    pub pending_lifetime: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Live sessions in the table: `rescue_proto::wire::limits::MAX_SESSIONS`.
    pub max_sessions: usize,
    /// Live sessions of one account: `MAX_SESSIONS_PER_ACCOUNT`.
    pub max_sessions_per_account: usize,
    /// GUIDs remembered against replay (live or ended): `MAX_ENDED_REMEMBERED`.
    pub max_ended: usize,
    /// The same for one account: `MAX_ENDED_PER_ACCOUNT`.
    pub max_ended_per_account: usize,
    /// See [`CONSOLE_IDLE_TIMEOUT`].
    pub console_idle_timeout: Duration,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            pre_auth_timeout: PRE_AUTH_TIMEOUT,
            max_pre_auth_connections: MAX_PRE_AUTH_CONNECTIONS,
            max_pre_auth_per_source: MAX_PRE_AUTH_PER_SOURCE,
            pending_lifetime: PENDING_LIFETIME,
            max_connections: MAX_CONNECTIONS,
            max_sessions: rescue_proto::wire::limits::MAX_SESSIONS,
            max_sessions_per_account: rescue_proto::wire::limits::MAX_SESSIONS_PER_ACCOUNT,
            max_ended: rescue_proto::wire::limits::MAX_ENDED_REMEMBERED,
            max_ended_per_account: rescue_proto::wire::limits::MAX_ENDED_PER_ACCOUNT,
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
    /// How long a console's claim keeps trying while the gateway does not know the GUID
    /// yet (the applet has not registered); see [`CLAIM_WAIT`].
    pub claim_wait: Duration,
}

impl Default for PeerTimeouts {
    fn default() -> Self {
        Self {
            connect: CONNECT_TIMEOUT,
            reply: REPLY_TIMEOUT,
            pairing: PENDING_LIFETIME,
            inner_setup: INNER_SETUP_TIMEOUT,
            keepalive: rescue_proto::wire::limits::PING_INTERVAL,
            claim_wait: CLAIM_WAIT,
        }
    }
}
