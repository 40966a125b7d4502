//! The public session API: chat, permissions with the end user's consent, verified file
//! transfer, application channels and path changes, over one end-to-end stream.
//!
//! A [`Session`] is built on the applet's or the console's end-to-end stream (any
//! `AsyncRead + AsyncWrite`; in tests a `tokio::io::duplex` pair). One driver task runs
//! the sans-IO core of `rescue_proto::session`: it reads frames from the paths, writes
//! what the core emits, runs its timers and forwards [`SessionEvent`]s.
//!
//! ```text
//!  Session (handle) ──commands (bounded)──► driver task ──► core (Reliable, Gatekeeper |
//!         ▲                                  │   ▲            Requester, files)
//!         └───── events() (bounded) ◄────────┘   └── path reader/writer tasks (bounded)
//! ```
//!
//! What this never does: act without a live [`Grant`] (the action APIs require one), ask
//! the end user about what the policy forbids, report a file as received before both
//! digests matched, grow a queue without bound (every queue is bounded: a slow reader is
//! backpressure), wait without a timeout, or let anything block the end user's
//! [`Session::end`].

mod auditing;
mod channel;
pub mod consent;
mod dispatch;
mod driver;
mod easy;
pub mod files;
pub mod media;
mod paths;
mod roles;
mod share;
mod transfer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rescue_crypto::sas::Sas;
use rescue_proto::session::chat::ChatError;
use rescue_proto::session::control::DenyReason;
use rescue_proto::session::file::FileSender;
use rescue_proto::session::permission::{PermissionError, Requester};
use rescue_proto::session::reliable::{Config as CoreConfig, PathError};
use rescue_proto::session::{EndReason, PathId, SendError};
use rescue_proto::{Guid, Permission, PermissionSet, Policy};
use tokio::sync::{mpsc, oneshot, Notify};

pub use channel::AppChannel;
pub use consent::{Consent, ConsentAnswer, ConsentConfig, ConsentRequest};
pub use files::{FileError, ReceivedFile};
pub use media::{CameraSender, CameraStream};
pub use paths::PathStream;
pub use rescue_proto::audit::PathKind;
pub use rescue_proto::paths::{DirectConfig, DirectPolicy};
pub use rescue_proto::session::media_stream::{MediaFrame, NumberedFrame};
pub use rescue_proto::session::permission::Grant;
pub use rescue_proto::session::Role;

use crate::audit::AuditSink;
use driver::Command;

/// Commands queued from the handles to the driver: bounds what callers can pile up.
const COMMAND_QUEUE: usize = 32;
/// Bulk writes (channel data, file chunks) queued to the driver.
const BULK_QUEUE: usize = 16;
/// Default capacity of the event queue: a slow consumer is backpressure on the session.
pub const DEFAULT_EVENT_CAPACITY: usize = 64;
/// Default bound on how long an API call waits for the driver (or the peer) to answer.
///
/// Value: 30 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on how long a permission request waits for the end user's answer:
/// a little more than the end user's own consent timeout.
///
/// Value: 75 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(75);

/// Who is on the other side, as far as this side verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The technician's name (on the applet side: from the console certificate).
    pub technician: String,
    /// The technician's account.
    pub account: String,
}

impl PeerInfo {
    /// A peer description.
    pub fn new(technician: &str, account: &str) -> Self {
        Self {
            technician: technician.to_owned(),
            account: account.to_owned(),
        }
    }
}

/// How a [`Session`] is set up.
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Which end this is.
    pub role: Role,
    /// The session GUID (for the audit trail).
    pub guid: Option<Guid>,
    /// The group policy (from the ticket); enforced on the applet side.
    pub policy: Policy,
    /// The short authentication string of the first path, to show on screen.
    pub sas: Option<Sas>,
    /// Who is on the other side.
    pub peer: PeerInfo,
    /// Who answers consent prompts (applet side); `None` refuses every request.
    pub consent: Option<ConsentConfig>,
    /// Where received files go; `None` refuses every offered file.
    pub download_dir: Option<PathBuf>,
    /// Largest file accepted.
    pub max_file_size: u64,
    /// Where audit events go.
    pub audit: Option<Arc<dyn AuditSink>>,
    /// Timers of the reliable core.
    pub core: CoreConfig,
    /// Capacity of the event queue.
    pub event_capacity: usize,
    /// Bound on waits for the driver.
    pub call_timeout: Duration,
    /// Bound on a permission request's wait for the answer.
    pub request_timeout: Duration,
    /// Direct paths: which to try (TCP, then UDP by default; `policy: Off` stays on the
    /// relay) and the path manager's timers. Only a session configured from a paired
    /// applet or console ([`SessionConfig::applet`], [`SessionConfig::console`]) on a
    /// relayed first path looks for one.
    pub direct: DirectConfig,
    /// What the path manager needs (path key, pinned leaf or identity); set by
    /// [`SessionConfig::applet`] and [`SessionConfig::console`].
    pub(crate) direct_setup: Option<Arc<crate::direct::DirectSetup>>,
}

impl SessionConfig {
    /// Defaults for `role` under `policy`: no consent (deny), no downloads, no audit.
    pub fn new(role: Role, policy: Policy) -> Self {
        Self {
            role,
            policy,
            guid: None,
            sas: None,
            peer: PeerInfo::default(),
            consent: None,
            download_dir: None,
            max_file_size: files::DEFAULT_MAX_FILE_SIZE,
            audit: None,
            core: CoreConfig::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            direct: DirectConfig::default(),
            direct_setup: None,
        }
    }
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("role", &self.role)
            .field("policy", &self.policy)
            .field("peer", &self.peer)
            .field("download_dir", &self.download_dir)
            .finish_non_exhaustive()
    }
}

/// The current path of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathInfo {
    /// The path id (assigned by the session, in order of [`Session::add_path`]).
    pub id: PathId,
    /// What kind of transport carries it.
    pub kind: PathKind,
}

/// Names one file transfer of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u32);

/// What happened in a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A chat message from the peer.
    Chat {
        /// The text.
        text: String,
    },
    /// The technician asked for permissions (applet side: the prompt is on screen).
    PermissionAsked {
        /// What was asked.
        permissions: PermissionSet,
    },
    /// A grant became live.
    PermissionGranted {
        /// The grant id.
        grant_id: u32,
        /// What it covers.
        permissions: PermissionSet,
    },
    /// A request was refused.
    PermissionDenied {
        /// What was asked.
        permissions: PermissionSet,
        /// Why.
        reason: DenyReason,
    },
    /// A grant ended (revoked by either side, or the end of the session).
    PermissionRevoked {
        /// The grant id.
        grant_id: u32,
    },
    /// The peer offers a file.
    FileOffered {
        /// The transfer.
        id: TransferId,
        /// The peer's name for it.
        name: String,
        /// Its size.
        size: u64,
    },
    /// Bytes of a transfer moved (either direction).
    FileProgress {
        /// The transfer.
        id: TransferId,
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        size: u64,
    },
    /// A file arrived and both digests matched.
    FileReceived {
        /// The transfer.
        id: TransferId,
        /// The stored file.
        file: ReceivedFile,
    },
    /// A file we sent was verified by the receiver.
    FileSent {
        /// The transfer.
        id: TransferId,
        /// MD5 and SHA-256 of what was sent.
        digests: rescue_crypto::Digests,
    },
    /// A transfer failed or was cancelled; any partial file is gone.
    FileFailed {
        /// The transfer.
        id: TransferId,
        /// Why.
        reason: String,
    },
    /// The peer opened an application channel.
    ChannelOpened(AppChannel),
    /// New frames now go on this path.
    PathChanged(PathInfo),
    /// A path died or was retired.
    PathLost {
        /// The path.
        id: PathId,
    },
    /// The session ended; every grant is void.
    Ended {
        /// Why.
        reason: EndReason,
        /// Whether the peer ended it.
        by_peer: bool,
    },
}

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session has ended; nothing more can be done in it.
    #[error("session ended")]
    Ended,
    /// The driver or the peer did not answer within the call's timeout.
    #[error("timed out")]
    Timeout,
    /// [`Session::events`] took the event queue; the conveniences that read it
    /// ([`Session::next_chat`], [`Session::ended`], ...) cannot.
    #[error("the event queue was taken by Session::events")]
    EventsTaken,
    /// This call is for the other side (for example `request` on the applet).
    #[error("not available on the {0:?} side")]
    WrongRole(Role),
    /// The end user or the policy refused the request.
    #[error("denied: {0:?}")]
    Denied(DenyReason),
    /// The grant is not live or does not cover the action.
    #[error(transparent)]
    Permission(#[from] PermissionError),
    /// The session core refused to send (too large, too many channels).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A chat message out of bounds.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// A local file operation failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The file-transfer protocol refused (no live grant, bad name, too large).
    #[error(transparent)]
    Transfer(#[from] rescue_proto::session::file::FileError),
    /// A new path was refused.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// State both the handle and the driver see.
pub(crate) struct Shared {
    pub(crate) role: Role,
    pub(crate) sas: Option<Sas>,
    pub(crate) peer: PeerInfo,
    pub(crate) end_reason: Mutex<Option<EndReason>>,
    pub(crate) end_signal: Notify,
    pub(crate) view: Mutex<View>,
    /// The console's request table (verify runs on the caller's `&Grant`).
    pub(crate) requester: Mutex<Requester>,
    /// The next transfer id this side offers.
    pub(crate) next_transfer: AtomicU32,
}

/// What the applet shows in its "you are being helped" bar.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) path: Option<PathInfo>,
    pub(crate) grants: std::collections::BTreeMap<u32, PermissionSet>,
    pub(crate) ended: bool,
}

/// A running session. Cheap calls go to the driver task through bounded queues.
pub struct Session {
    shared: Arc<Shared>,
    cmd: mpsc::Sender<Command>,
    events: Option<mpsc::Receiver<SessionEvent>>,
    call_timeout: Duration,
    request_timeout: Duration,
}

impl Session {
    /// Starts a session on its first path (of transport `kind`). Spawns the driver task
    /// on the current tokio runtime.
    pub fn start<S: PathStream>(stream: S, kind: PathKind, cfg: SessionConfig) -> Session {
        let shared = Arc::new(Shared {
            role: cfg.role,
            sas: cfg.sas,
            peer: cfg.peer.clone(),
            end_reason: Mutex::new(None),
            end_signal: Notify::new(),
            view: Mutex::new(View::default()),
            requester: Mutex::new(Requester::new()),
            next_transfer: AtomicU32::new(rescue_proto::session::file::first_transfer_id(cfg.role)),
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (bulk_tx, bulk_rx) = mpsc::channel(BULK_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(cfg.event_capacity.max(1));
        let (call_timeout, request_timeout) = (cfg.call_timeout, cfg.request_timeout);
        let direct = match &cfg.direct_setup {
            Some(setup) if kind == PathKind::Relay && cfg.direct.policy != DirectPolicy::Off => {
                Some(crate::direct::spawn(setup.clone(), cfg.direct))
            }
            _ => None,
        };
        let mut d = driver::Driver::new(cfg, shared.clone(), cmd_rx, (bulk_tx, bulk_rx), ev_tx);
        d.direct = direct;
        tokio::spawn(d.run(Box::new(stream), kind));
        Session {
            shared,
            cmd: cmd_tx,
            events: Some(ev_rx),
            call_timeout,
            request_timeout,
        }
    }

    /// The event stream; `None` after the first call (there is one consumer).
    ///
    /// The queue is bounded ([`SessionConfig::event_capacity`]): read it, or drop the
    /// receiver to discard events. A receiver that is kept but not read stops the session
    /// from taking input once the queue is full (backpressure; [`Session::end`] still
    /// works).
    pub fn events(&mut self) -> Option<mpsc::Receiver<SessionEvent>> {
        self.events.take()
    }

    /// Sends a chat message (UTF-8, at most `MAX_CHAT_BYTES`).
    pub async fn chat(&self, text: &str) -> Result<(), SessionError> {
        rescue_proto::session::chat::encode(text)?;
        self.call(
            |reply| Command::Chat(text.to_owned(), reply),
            self.call_timeout,
        )
        .await?
    }

    /// Technician side: asks the end user for `permission`.
    pub async fn request(&self, permission: Permission) -> Result<Grant, SessionError> {
        self.console_only()?;
        let t = self.request_timeout;
        self.call(|reply| Command::Request(Some(permission), reply), t)
            .await?
    }

    /// Technician side: the single prompt for every right the policy allows (refused
    /// when the policy does not allow the all-in-one prompt).
    pub async fn request_all(&self) -> Result<Grant, SessionError> {
        self.console_only()?;
        let t = self.request_timeout;
        self.call(|reply| Command::Request(None, reply), t).await?
    }

    /// Technician side: gives `grant` back (the end user's side sees it revoked).
    pub async fn release(&self, grant: Grant) -> Result<(), SessionError> {
        self.console_only()?;
        let msg = self
            .shared
            .requester
            .lock()
            .map_err(|_| SessionError::Ended)?
            .release(grant);
        match msg {
            Some(m) => {
                self.call(|reply| Command::Control(m, reply), self.call_timeout)
                    .await?
            }
            None => Ok(()),
        }
    }

    /// End-user side: revokes a live grant (always possible while the session runs).
    pub async fn revoke(&self, grant_id: u32) -> Result<(), SessionError> {
        if self.shared.role != Role::Applet {
            return Err(SessionError::WrongRole(self.shared.role));
        }
        self.call(|reply| Command::Revoke(grant_id, reply), self.call_timeout)
            .await?
    }

    /// Sends `size` bytes from `reader` as a file named `name`. Requires a live grant
    /// covering file transfer; progress and the outcome arrive as events.
    pub async fn send_file<R>(
        &self,
        reader: R,
        name: &str,
        size: u64,
        grant: &Grant,
    ) -> Result<TransferId, SessionError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        self.console_only()?;
        let id = self.shared.next_transfer.fetch_add(1, Ordering::Relaxed);
        let (sender, offer) = {
            let r = self
                .shared
                .requester
                .lock()
                .map_err(|_| SessionError::Ended)?;
            FileSender::offer(&r, grant, id, name, size)?
        };
        let file = files::OutgoingFile::new(Box::new(reader), size);
        let out = Box::new(transfer::Outgoing::new(
            sender,
            file,
            Some(grant.id()),
            name,
            size,
        ));
        self.call(
            |reply| Command::SendFile(out, offer, reply),
            self.call_timeout,
        )
        .await?
    }

    /// Sends the file at `path` (its name and size taken from the file system).
    pub async fn send_path(
        &self,
        path: &std::path::Path,
        grant: &Grant,
    ) -> Result<TransferId, SessionError> {
        let (reader, name, size) = files::open_path(path).await?;
        self.send_file(reader, &name, size, grant).await
    }

    /// Opens an application channel labelled `label` (byte stream, ordered, reliable).
    pub async fn open_channel(&self, label: &str) -> Result<AppChannel, SessionError> {
        self.call(
            |reply| Command::OpenChannel(label.to_owned(), reply),
            self.call_timeout,
        )
        .await?
    }

    /// Adds a new path (a reconnected or direct end-to-end stream, already bound). With
    /// a live path the session switches over gracefully (SWITCH); after a path died it
    /// resumes (RESUME) with nothing lost.
    pub async fn add_path<S: PathStream>(
        &self,
        stream: S,
        kind: PathKind,
    ) -> Result<PathId, SessionError> {
        let s = Box::new(stream);
        self.call(|reply| Command::AddPath(s, kind, reply), self.call_timeout)
            .await?
    }

    /// Closes path `id` at once, as if its transport had failed: the session goes on
    /// over another path (the relay, while a direct path is current), replaying what the
    /// closed one may have lost; the path manager tries a direct path again later. Paths
    /// are named by [`SessionEvent::PathChanged`].
    pub async fn close_path(&self, id: PathId) -> Result<(), SessionError> {
        self.call(|reply| Command::ClosePath(id, reply), self.call_timeout)
            .await?
    }

    /// Ends the session. Never blocks and cannot be refused: the END frame goes out
    /// ahead of any queued bulk data, and every grant is void at once.
    pub fn end(&self) {
        let reason = match self.shared.role {
            Role::Applet => EndReason::EndUser,
            _ => EndReason::Technician,
        };
        self.end_with(reason);
    }

    /// Ends the session with an explicit reason (see [`Session::end`]).
    pub fn end_with(&self, reason: EndReason) {
        if let Ok(mut r) = self.shared.end_reason.lock() {
            r.get_or_insert(reason);
        }
        self.shared.end_signal.notify_one();
    }

    /// The short authentication string to show on screen.
    pub fn sas(&self) -> Option<Sas> {
        self.shared.sas
    }

    /// The path new frames go on (`None` while there is none).
    pub fn path(&self) -> Option<PathInfo> {
        self.shared.view.lock().ok().and_then(|v| v.path.clone())
    }

    /// Live grants (id and permissions): what the end user's bar shows.
    pub fn grants(&self) -> Vec<(u32, PermissionSet)> {
        self.shared
            .view
            .lock()
            .map(|v| v.grants.iter().map(|(k, s)| (*k, *s)).collect())
            .unwrap_or_default()
    }

    /// Whether a live grant allows recording the session (shown to the end user).
    pub fn is_recorded(&self) -> bool {
        self.grants()
            .iter()
            .any(|(_, s)| s.contains(Permission::RecordSession))
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.shared.view.lock().map_or(true, |v| v.ended)
    }

    /// Who is on the other side.
    pub fn peer(&self) -> &PeerInfo {
        &self.shared.peer
    }

    /// Checks that `grant` is live and covers `p` (what every action API does).
    pub fn check_grant(&self, grant: &Grant, p: Permission) -> Result<(), SessionError> {
        self.console_only()?;
        let r = self
            .shared
            .requester
            .lock()
            .map_err(|_| SessionError::Ended)?;
        Ok(r.verify(grant, p)?)
    }

    fn console_only(&self) -> Result<(), SessionError> {
        match self.shared.role {
            Role::Console => Ok(()),
            r => Err(SessionError::WrongRole(r)),
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
        timeout: Duration,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        let fut = async {
            self.cmd
                .send(make(tx))
                .await
                .map_err(|_| SessionError::Ended)?;
            rx.await.map_err(|_| SessionError::Ended)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| SessionError::Timeout)?
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A dropped handle ends the session rather than leaving grants live.
        self.end_with(EndReason::Application);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.shared.role)
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}
