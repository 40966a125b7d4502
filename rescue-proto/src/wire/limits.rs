//! Every size limit and timeout of the gateway layer, with the reason for its value.
//!
//! `PROTOCOL.md` section 5 lists the same values; a change here is a protocol change.

use core::time::Duration;

pub use super::probe::PROBE_LEN;

/// Protocol version sent in HELLO; a peer with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest frame payload: one inner TLS record (16 KiB + overhead) fits many times over,
/// and a receiver never buffers more than this per frame.
pub const MAX_PAYLOAD: usize = 65_536;

/// Largest applet ticket in REGISTER: a signed ticket with a long gateway list stays
/// well under 4 KiB; anything larger is an attack on the verifier.
pub const MAX_TICKET_LEN: usize = 4096;

/// Longest account id in PAIRED: the canonical decimal form of a `u64` has at most 20
/// digits.
pub const MAX_ACCOUNT_LEN: usize = crate::party::MAX_ACCOUNT_DIGITS;

/// Longest technician name in PAIRED, in bytes of UTF-8: a display name, not a document.
pub const MAX_TECHNICIAN_NAME_LEN: usize = 128;

/// Longest ERROR message, in bytes of UTF-8: a hint for logs; the code is what counts.
pub const MAX_ERROR_MESSAGE_LEN: usize = 128;

/// Most entries in one QUEUE_LIST: a technician reads a screenful, not a database
/// (256 entries are 5,122 payload bytes).
pub const MAX_QUEUE_ENTRIES: usize = 256;

/// Length of a resume secret: 256 bits, unguessable for the grace period and beyond.
pub const RESUME_SECRET_LEN: usize = 32;

/// Length of a UDP rendezvous token: 128 bits, unguessable while it is valid.
pub const UDP_TOKEN_LEN: usize = 16;

/// One deadline at the gateway, from TCP accept to the first request received: the
/// outer TLS handshake, HELLO and the first request (REGISTER, REATTACH, or for a
/// console, whose certificate authenticated it in the handshake, HELLO alone) must all
/// be in within it. A peer sends HELLO and its first request right after its handshake,
/// so a slow mobile link needs about two round trips; one deadline for all three steps
/// means a connection that trickles bytes cannot reset a timer at each step, so an
/// unauthenticated connection holds its slot at most this long.
///
/// Value: 10 s.
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a peer waits, after its outer TLS handshake, for the gateway's HELLO (a peer
/// waits `HELLO_TIMEOUT` + [`REQUEST_TIMEOUT`] for HELLO and the first answer): the
/// gateway sends it as soon as it has read the peer's.
///
/// Value: 5 s.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Most unauthenticated connections one gateway holds at once (accepted, first request
/// not yet received and accepted): a pool apart from authenticated hops, so a flood
/// of idle sockets cannot take the slots of running sessions; beyond it, new sockets
/// wait in the kernel's accept backlog. 1,024 handshakes in flight is far more than
/// 1,000 set-ups a minute need (each is pre-authentication for about two round trips).
pub const MAX_PRE_AUTH_CONNECTIONS: usize = 1024;

/// Most unauthenticated connections from one source (an IPv4 address, or an IPv6 /64
/// prefix, which one host usually holds whole): one source cannot fill the pre-auth
/// pool; its connections beyond this are closed at once. 32 leaves room for a busy
/// office behind one NAT address setting up many sessions at the same moment.
pub const MAX_PRE_AUTH_PER_SOURCE: usize = 32;

/// Time a peer waits for an answer to a request (REGISTER, QUEUE, CLAIM, REATTACH): one
/// round trip plus a lookup, with a wide margin. (The gateway's wait for the first
/// request is within [`PRE_AUTH_TIMEOUT`].)
///
/// Value: 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval of PING on an idle hop: keeps NAT bindings and middleboxes warm (iroh 15 s).
///
/// Value: 15 s.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Silence after which a hop is dead: three missed pings.
///
/// Value: 45 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Lifetime of a waiting (registered, unclaimed) session: long enough for a technician
/// to pick it from the queue, short enough that abandoned applets free their slot
/// (TURN's default allocation lifetime).
///
/// Value: 10 min (600 s).
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// Time a party that lost its hop has to REATTACH before the session ends: covers a
/// Wi-Fi to mobile hand-over or a gateway fail-over, not a long absence.
///
/// Value: 30 s.
pub const REATTACH_GRACE: Duration = Duration::from_secs(30);

/// Most live sessions in one gateway's table (waiting, paired or in grace): bounds
/// memory at a few MiB whatever clients do.
pub const MAX_SESSIONS: usize = 10_000;

/// Most live sessions of one account: one tenant cannot take the whole gateway.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 1_000;

/// Most GUIDs one gateway must refuse to register again: live sessions plus ended ones
/// remembered until their ticket expires, so that a ticket cannot be replayed. Sized for
/// a busy service: 1,000 set-ups a minute with 30-minute tickets keep about 30,000
/// remembered (plus the table's 10 s expiry rounding), so 100,000 leaves room for three
/// such tenants; at 60 to 75 bytes an entry (measured, see `handoff::gateway`) that is
/// about 6 MB. When reached, REGISTER is refused.
pub const MAX_ENDED_REMEMBERED: usize = 100_000;

/// Most remembered GUIDs (live or ended) of one account: one tenant churning sessions
/// is refused at its own quota and cannot fill the gateway's memory for the others.
/// 40,000 is one tenant at 1,000 set-ups a minute with 30-minute tickets, plus a third.
pub const MAX_ENDED_PER_ACCOUNT: usize = 40_000;

/// Lifetime of a UDP_TOKEN (PROTOCOL.md 3.13): a peer probes within a round trip of
/// receiving it; [`REQUEST_TIMEOUT`] leaves a wide margin. After it, the token is
/// stale; the gateway remembers it for one more lifetime, to say so.
///
/// Value: 10 s.
pub const UDP_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// Live (unspent, unexpired) tokens one hop holds: one rendezvous runs at a time per
/// session, so each party has at most one token to probe with.
pub const MAX_TOKENS_PER_HOP: usize = 1;

/// Least time between two RENDEZVOUS of one session that the gateway answers: a
/// console retrying a failed punch backs off anyway; a flood gets nothing.
///
/// Value: 5 s.
pub const RENDEZVOUS_INTERVAL: Duration = Duration::from_secs(5);

/// Most tokens in a gateway's rendezvous table, live or remembered (spent, stale):
/// 4,096 sessions in rendezvous at once, at about 100 bytes a token under 1 MiB. Full:
/// RENDEZVOUS is not answered (the session stays relayed).
pub const MAX_RENDEZVOUS_TOKENS: usize = 8192;

/// Most probes the gateway handles from one source (an IPv4 address or an IPv6 /64) per
/// [`PROBE_RATE_WINDOW`]: a peer sends [`PROBE_ATTEMPTS`], so 32 leave room for an
/// office behind one NAT address; more is a flood and is dropped unread.
pub const MAX_PROBES_PER_SOURCE: u32 = 32;

/// The window of [`MAX_PROBES_PER_SOURCE`].
///
/// Value: 1 s.
pub const PROBE_RATE_WINDOW: Duration = Duration::from_secs(1);

/// Most sources the probe rate limiter tracks; when all are in their window, a probe
/// from yet another source is dropped until a window ends (bounded memory, about
/// 64 KiB).
pub const MAX_PROBE_SOURCES: usize = 4096;

/// Probes a peer sends for one token (a lost datagram is sent again), at most one per
/// [`PROBE_RETRY_INTERVAL`]; they go to the gateway, never to the other party.
pub const PROBE_ATTEMPTS: u32 = 5;

/// Pause between two probes of one token, until PEER_ADDR arrives.
///
/// Value: 250 ms.
pub const PROBE_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// How long a peer waits for PEER_ADDR after its first probe: the other party may
/// probe later, but both tokens are stale after [`UDP_TOKEN_LIFETIME`].
///
/// Value: the same as [`UDP_TOKEN_LIFETIME`].
pub const PEER_ADDR_TIMEOUT: Duration = UDP_TOKEN_LIFETIME;

/// Longest a punch (the XTCP simultaneous open toward the address in PEER_ADDR) may
/// take before the UDP path is given up.
///
/// Value: 10 s.
pub const PUNCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The first SYN retransmission timeout of a punch (then doubling): with
/// [`PUNCH_TIMEOUT`], at most [`MAX_PUNCH_SYNS`] datagrams go to an address the other
/// party named, at most two a second (ICE's consent spirit, RFC 7675).
///
/// Value: 500 ms.
pub const PUNCH_INITIAL_RTO: Duration = Duration::from_millis(500);

/// SYNs of one punch: at 0, 0.5, 1.5, 3.5 and 7.5 s, within [`PUNCH_TIMEOUT`].
pub const MAX_PUNCH_SYNS: u32 = 5;

/// Failed REGISTERs (bad, expired or foreign tickets, taken GUIDs) one source (an IPv4
/// address or IPv6 /64) may make per [`FAILURE_WINDOW`]; beyond it the source's
/// REGISTERs are refused `overloaded` until the window ends. An applet retries a few
/// times; an office behind one NAT address has a few applets failing at once; a
/// guesser or a flood makes far more.
pub const MAX_REGISTER_FAILURES_PER_SOURCE: u32 = 60;

/// Failed CLAIMs (unknown or taken GUIDs) one source may make per [`FAILURE_WINDOW`]: a
/// console that claims before its applet registered retries about 13 times in its
/// 10 s claim wait, so a few such claims at once stay well under it.
pub const MAX_CLAIM_FAILURES_PER_SOURCE: u32 = 60;

/// Failed CLAIMs one account's consoles may make per [`FAILURE_WINDOW`], from all
/// sources together: guessing GUIDs from many addresses is bounded too.
pub const MAX_CLAIM_FAILURES_PER_ACCOUNT: u32 = 600;

/// The window of the failure limits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Sources and accounts the failure limits track; beyond them a new one is not counted
/// until a window ends (the per-account limit and the connection pools still hold).
pub const MAX_FAILURE_KEYS: usize = 4096;
