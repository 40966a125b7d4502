//! Every size limit and timeout of the gateway layer, with the reason for its value.
//!
//! `PROTOCOL.md` section 5 lists the same values; a change here is a protocol change.

use core::time::Duration;

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

/// Time for the outer TLS handshake: a slow mobile link needs a few round trips, an
/// idle half-open connection must not hold a slot longer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time from the end of the TLS handshake to the peer's HELLO: the peer sends it at once.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Time for an answer to a request (REGISTER, QUEUE, CLAIM, REATTACH, and the first
/// request after HELLO): one round trip plus a lookup, with a wide margin.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval of PING on an idle hop: keeps NAT bindings and middleboxes warm (iroh 15 s).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Silence after which a hop is dead: three missed pings.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Lifetime of a waiting (registered, unclaimed) session: long enough for a technician
/// to pick it from the queue, short enough that abandoned applets free their slot
/// (TURN's default allocation lifetime).
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// Time a party that lost its hop has to REATTACH before the session ends: covers a
/// Wi-Fi to mobile hand-over or a gateway fail-over, not a long absence.
pub const REATTACH_GRACE: Duration = Duration::from_secs(30);

/// Most live sessions in one gateway's table (waiting, paired or in grace): bounds
/// memory at a few MiB whatever clients do.
pub const MAX_SESSIONS: usize = 10_000;

/// Most live sessions of one account: one tenant cannot take the whole gateway.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 1_000;

/// Most ended GUIDs remembered (until their ticket expires) so that a ticket cannot be
/// replayed to register its GUID again; when full, new registrations are refused.
pub const MAX_ENDED_REMEMBERED: usize = 4 * MAX_SESSIONS;
