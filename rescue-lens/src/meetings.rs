//! The meeting table the session manager and the relay share: meetings, participants,
//! the connected app of each meeting and the queue of each connected console.
//!
//! ```text
//!  create ─► Meeting{no participants} ─ join(role) ─► Participant + token ─ relay JOIN ─► Link
//!  leave / delete / expiry ──────────────────────────────────────────────► Link closed (BYE)
//! ```
//!
//! Every table is bounded ([`LensConfig`]); one mutex guards it (held for a push per
//! subscriber, never across I/O).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rescue_crypto::ticket::{TicketSigner, TicketVerifyKey};
use rescue_proto::session::media_queue::{FrameQueue, QueueItem, QueueLimits};
use tokio::sync::{watch, Notify, Semaphore};

use crate::token::{JoinToken, LensRole, TokenError};
use crate::wire::ByeReason;
use crate::MeetingId;

/// How a [`Lens`] is bounded and timed.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LensConfig {
    /// Each subscriber's latest-frame queue at the relay.
    pub subscriber_queue: QueueLimits,
    /// Longest a write to a subscriber may stall before it is dropped.
    pub write_timeout: Duration,
    /// Longest wait for JOIN on a new connection.
    pub join_timeout: Duration,
    /// Lifetime of join tokens.
    pub token_lifetime: Duration,
    /// Lifetime of a meeting.
    pub meeting_lifetime: Duration,
    /// Most meetings.
    pub max_meetings: usize,
    /// Most participants per meeting.
    pub max_participants: usize,
}

impl Default for LensConfig {
    fn default() -> Self {
        Self {
            subscriber_queue: QueueLimits {
                max_age: crate::SUBSCRIBER_QUEUE_AGE,
                max_bytes: crate::SUBSCRIBER_QUEUE_BYTES,
                max_frames: crate::SUBSCRIBER_QUEUE_FRAMES,
            },
            write_timeout: crate::SUBSCRIBER_WRITE_TIMEOUT,
            join_timeout: crate::JOIN_TIMEOUT,
            token_lifetime: crate::TOKEN_LIFETIME,
            meeting_lifetime: crate::MEETING_LIFETIME,
            max_meetings: crate::MAX_MEETINGS,
            max_participants: crate::MAX_PARTICIPANTS,
        }
    }
}

/// Why a meeting operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LensError {
    /// No such meeting (or it expired).
    #[error("no such meeting")]
    NoMeeting,
    /// No such participant in the meeting.
    #[error("no such participant")]
    NoParticipant,
    /// A table is full.
    #[error("limit reached")]
    Full,
    /// A meeting has one app.
    #[error("the meeting has an app already")]
    AppTaken,
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The participant is connected already.
    #[error("participant already connected")]
    Connected,
}

/// A frame as the relay forwards it: the whole MEDIA message, shared by every queue.
#[derive(Clone, Debug)]
pub(crate) struct RelayFrame {
    pub(crate) keyframe: bool,
    pub(crate) msg: Bytes,
}

impl QueueItem for RelayFrame {
    fn is_keyframe(&self) -> bool {
        self.keyframe
    }
    fn cost(&self) -> usize {
        self.msg.len()
    }
}

/// A connected participant.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) queue: Mutex<FrameQueue<RelayFrame>>,
    /// Subscribers: a frame was queued. The app: a keyframe is wanted.
    pub(crate) wake: Notify,
    /// Set with a reason when the link must close.
    pub(crate) close: watch::Sender<Option<ByeReason>>,
}

#[derive(Debug)]
struct Participant {
    role: LensRole,
    link: Option<Arc<Link>>,
}

#[derive(Debug)]
struct Meeting {
    session: String,
    expires: Instant,
    participants: BTreeMap<u32, Participant>,
    next_participant: u32,
    last_keyframe_request: Option<Instant>,
}

/// Relay counters (since start).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Frames uploaded by apps.
    pub frames_in: AtomicU64,
    /// Frames written to subscribers.
    pub frames_out: AtomicU64,
    /// Frames dropped by the subscriber queues' keyframe rule.
    pub frames_dropped: AtomicU64,
    /// Subscribers dropped for not reading.
    pub slow_dropped: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) cfg: LensConfig,
    signer: TicketSigner,
    verify: TicketVerifyKey,
    meetings: Mutex<HashMap<MeetingId, Meeting>>,
    pub(crate) pending: Semaphore,
    pub(crate) stats: RelayStats,
}

/// The Lens service: the meeting table, the relay and the session manager's operations.
#[derive(Clone)]
pub struct Lens {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Lens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lens").finish_non_exhaustive()
    }
}

impl Lens {
    /// A service signing join tokens with `join_signer` (its own key, not the portal's).
    pub fn new(cfg: LensConfig, join_signer: TicketSigner) -> Self {
        let verify = join_signer.verify_key();
        Self {
            inner: Arc::new(Inner {
                cfg,
                signer: join_signer,
                verify,
                meetings: Mutex::new(HashMap::new()),
                pending: Semaphore::new(crate::MAX_PENDING_JOINS),
                stats: RelayStats::default(),
            }),
        }
    }

    /// The key join tokens verify with.
    pub fn join_key(&self) -> TicketVerifyKey {
        self.inner.verify
    }

    /// Relay counters.
    pub fn stats(&self) -> &RelayStats {
        &self.inner.stats
    }

    /// Creates a meeting for the support session `session` (its GUID, for the logs).
    pub fn create(&self, session: &str) -> Result<MeetingId, LensError> {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| LensError::Full)?;
        let now = Instant::now();
        let mut t = self.table();
        t.retain(|_, m| m.expires > now);
        if t.len() >= self.inner.cfg.max_meetings {
            return Err(LensError::Full);
        }
        t.insert(
            MeetingId(id),
            Meeting {
                session: session.chars().take(64).collect(),
                expires: now + self.inner.cfg.meeting_lifetime,
                participants: BTreeMap::new(),
                next_participant: 1,
                last_keyframe_request: None,
            },
        );
        Ok(MeetingId(id))
    }

    /// Deletes a meeting: every connection of it is closed.
    pub fn delete(&self, id: &MeetingId) -> Result<(), LensError> {
        let m = self.table().remove(id).ok_or(LensError::NoMeeting)?;
        tracing::debug!(session = %m.session, "meeting deleted");
        for p in m.participants.values() {
            close(p, ByeReason::Left);
        }
        Ok(())
    }

    /// Joins `role` to a meeting: a participant id and its signed join token.
    pub fn join(&self, id: &MeetingId, role: LensRole) -> Result<(u32, Vec<u8>), LensError> {
        let mut t = self.table();
        let m = live(&mut t, id)?;
        if m.participants.len() >= self.inner.cfg.max_participants {
            return Err(LensError::Full);
        }
        if role == LensRole::App && m.participants.values().any(|p| p.role == LensRole::App) {
            return Err(LensError::AppTaken);
        }
        let pid = m.next_participant;
        m.next_participant = pid.checked_add(1).ok_or(LensError::Full)?;
        m.participants.insert(pid, Participant { role, link: None });
        let token = JoinToken {
            meeting: *id,
            participant: pid,
            role,
            expires_at_unix: crate::unix_now() + self.inner.cfg.token_lifetime.as_secs(),
        };
        Ok((pid, token.sign(&self.inner.signer)))
    }

    /// Removes a participant; its connection is closed.
    pub fn leave(&self, id: &MeetingId, participant: u32) -> Result<(), LensError> {
        let mut t = self.table();
        let m = live(&mut t, id)?;
        let p = m
            .participants
            .remove(&participant)
            .ok_or(LensError::NoParticipant)?;
        close(&p, ByeReason::Left);
        Ok(())
    }

    /// Number of live meetings.
    pub fn meetings(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> MutexGuard<'_, HashMap<MeetingId, Meeting>> {
        // A poisoned lock only means another task panicked mid-update of plain maps.
        self.inner
            .meetings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A verified token's participant connects: its link.
    pub(crate) fn attach(&self, tok: &JoinToken) -> Result<Arc<Link>, LensError> {
        let mut t = self.table();
        let m = live(&mut t, &tok.meeting)?;
        let p = m
            .participants
            .get_mut(&tok.participant)
            .ok_or(LensError::NoParticipant)?;
        if p.role != tok.role {
            return Err(LensError::Token(TokenError::Role));
        }
        if p.link.is_some() {
            return Err(LensError::Connected);
        }
        let (close, _) = watch::channel(None);
        let link = Arc::new(Link {
            queue: Mutex::new(FrameQueue::new(self.inner.cfg.subscriber_queue)),
            wake: Notify::new(),
            close,
        });
        p.link = Some(link.clone());
        Ok(link)
    }

    /// The connection of `tok` ended.
    pub(crate) fn detach(&self, tok: &JoinToken, link: &Arc<Link>) {
        let mut t = self.table();
        if let Some(p) = t
            .get_mut(&tok.meeting)
            .and_then(|m| m.participants.get_mut(&tok.participant))
        {
            if p.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                p.link = None;
            }
        }
    }

    /// The app uploaded a frame: into every connected console's queue, no copy.
    pub(crate) fn fan_out(&self, meeting: &MeetingId, frame: RelayFrame, now: Instant) {
        let stats = &self.inner.stats;
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut t = self.table();
        let Some(m) = t.get_mut(meeting) else { return };
        let mut want_key = false;
        for p in m
            .participants
            .values()
            .filter(|p| p.role == LensRole::Console)
        {
            let Some(link) = &p.link else { continue };
            let mut q = lock(&link.queue);
            let before = q.dropped();
            q.push(now, frame.clone());
            want_key |= q.take_keyframe_request();
            stats
                .frames_dropped
                .fetch_add(q.dropped() - before, Ordering::Relaxed);
            drop(q);
            link.wake.notify_one();
        }
        if want_key {
            request_keyframe(m, now);
        }
    }

    /// A console asked for a keyframe (or its queue dropped frames).
    pub(crate) fn keyframe_wanted(&self, meeting: &MeetingId, now: Instant) {
        let mut t = self.table();
        if let Some(m) = t.get_mut(meeting) {
            request_keyframe(m, now);
        }
    }
}

fn request_keyframe(m: &mut Meeting, now: Instant) {
    if m.last_keyframe_request
        .is_some_and(|t| now < t + crate::RELAY_KEYFRAME_INTERVAL)
    {
        return;
    }
    m.last_keyframe_request = Some(now);
    for p in m.participants.values().filter(|p| p.role == LensRole::App) {
        if let Some(l) = &p.link {
            l.wake.notify_one();
        }
    }
}

fn live<'a>(
    t: &'a mut HashMap<MeetingId, Meeting>,
    id: &MeetingId,
) -> Result<&'a mut Meeting, LensError> {
    let now = Instant::now();
    match t.get(id).map(|m| m.expires > now) {
        Some(true) => t.get_mut(id).ok_or(LensError::NoMeeting),
        Some(false) => {
            if let Some(m) = t.remove(id) {
                m.participants
                    .values()
                    .for_each(|p| close(p, ByeReason::Left));
            }
            Err(LensError::NoMeeting)
        }
        None => Err(LensError::NoMeeting),
    }
}

fn close(p: &Participant, why: ByeReason) {
    if let Some(l) = &p.link {
        let _ = l.close.send(Some(why));
        l.wake.notify_one();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
