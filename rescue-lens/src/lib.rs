//! Lens: the one-way camera stream from the end user's app to technicians, through a
//! streaming relay that cannot see the media (PROTOCOL.md section 9).
//!
//! - [`sframe`]: per-frame AEAD in the form of SFrame (RFC 9605, AES-256-GCM with
//!   HKDF-SHA512); the app holds the key and hands it to each technician over that
//!   technician's own end-to-end session, so the relay forwards ciphertext and learns
//!   only sizes, timing and the keyframe flag;
//! - [`Lens`]: the meeting table shared by the streaming relay ([`Lens::serve_relay`]:
//!   one upload per frame, fanned out to every joined console through a bounded
//!   latest-frame queue per subscriber) and the session manager ([`manager`]: create,
//!   delete, join, leave over REST, each request signed by the portal's key and refused
//!   before its body is parsed; join gives a short-lived [`token::JoinToken`]);
//! - [`client`]: the app's publisher and the console's subscriber.
//!
//! What this never does: hold a media key, buffer without bound (every queue is bounded
//! in time and bytes, a subscriber that does not read is dropped after the write
//! timeout), let a slow subscriber slow the others, or wait without a timeout.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod h264;
mod http;
pub mod manager;
mod meetings;
mod relay;
pub mod sframe;
pub mod signed;
pub mod token;
pub mod wire;

use std::time::Duration;

pub use meetings::{Lens, LensConfig, LensError, RelayStats};
pub use token::{Direction, LensRole};

/// A meeting id: 128 random bits from the OS CSPRNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeetingId(pub [u8; 16]);

impl std::fmt::Display for MeetingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for MeetingId {
    type Err = LensError;
    fn from_str(s: &str) -> Result<Self, LensError> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).map_err(|_| LensError::NoMeeting)?;
        Ok(MeetingId(b))
    }
}

/// Default per-subscriber queue age at the relay: as the session's sender (300 ms).
pub const SUBSCRIBER_QUEUE_AGE: Duration = rescue_proto::session::media_queue::MAX_QUEUE_AGE;
/// Default per-subscriber queue bytes: about one second of 720p video plus a keyframe.
pub const SUBSCRIBER_QUEUE_BYTES: usize = 1024 * 1024;
/// Default per-subscriber queue frames: two seconds at 30 fps.
pub const SUBSCRIBER_QUEUE_FRAMES: usize = 64;
/// Default longest a write to a subscriber may stall before it is dropped.
pub const SUBSCRIBER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest wait for a connection's JOIN.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default join token lifetime: a console connects right after it joins.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Default meeting lifetime: longer than any support session.
pub const MEETING_LIFETIME: Duration = Duration::from_secs(4 * 3600);
/// Default most meetings at once on one relay.
pub const MAX_MEETINGS: usize = 1000;
/// Default most participants of one meeting (the app and the technicians).
pub const MAX_PARTICIPANTS: usize = 16;
/// Most connections that have not sent a valid JOIN yet.
pub const MAX_PENDING_JOINS: usize = 256;
/// Least time between two keyframe requests the relay passes to the app per meeting.
pub const RELAY_KEYFRAME_INTERVAL: Duration =
    rescue_proto::session::media_stream::KEYFRAME_REQUEST_INTERVAL;
/// The current Unix time in seconds (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
