//! The camera stream on the media channel (PROTOCOL.md 9.1), driven by the session
//! driver: the applet's [`CameraSender`] and the console's [`CameraStream`].
//!
//! The rules are rescue-proto's ([`MediaSender`], [`MediaReceiver`], [`feed`]); this
//! file only moves frames between them, the application and the core:
//!
//! - applet: frames from the [`CameraSender`] go into the latest-frame queue at once
//!   (the application is never blocked by the network); before every transmit the
//!   driver feeds the core what fits in the media window. The stream needs a live
//!   camera grant (policy ∧ the end user's consent); it stops when the end user drops
//!   the sender or revokes the grant, or the session ends; start and stop are audited;
//! - console: a [`CameraStream`] needs a live camera grant; whole frames go to its
//!   bounded queue; a full queue drops to the next keyframe and asks for one. A stream
//!   that breaks the format is closed (the offender), the session goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rescue_proto::session::media::{MediaError, MediaMsg, StreamKey};
use rescue_proto::session::media_queue::QueueLimits;
use rescue_proto::session::media_stream::{
    feed, MediaFrame, MediaReceiver, MediaSender, MediaStats, NumberedFrame,
};
use rescue_proto::session::permission::Grant;
use rescue_proto::session::MEDIA;
use rescue_proto::Permission;
use tokio::sync::{mpsc, Notify};

use super::driver::{now, Command, Driver, Reply};
use super::{Role, Session, SessionError};

/// Frames queued from a [`CameraSender`] to the driver, which takes them at once into
/// its latest-frame queue: a hand-over, not a buffer.
pub const CAMERA_QUEUE: usize = 4;
/// Whole frames queued to a [`CameraStream`] (about a quarter second at 30 fps); when
/// it is full the receiver drops to the next keyframe.
pub const STREAM_QUEUE: usize = 8;

/// Media calls from the handle to the driver.
pub(crate) enum MediaCommand {
    Start(Reply<CameraSender>),
    Subscribe(u32, Reply<CameraStream>),
    Key(StreamKey, Reply<()>),
}

/// Set when the receiver (or the queue's drop rule) wants a keyframe.
#[derive(Debug, Default)]
struct KeyframeFlag {
    wanted: AtomicBool,
    notify: Notify,
}

/// End-user side: sends encoded camera frames while the camera grant lives.
#[derive(Debug)]
pub struct CameraSender {
    tx: mpsc::Sender<MediaFrame>,
    flag: Arc<KeyframeFlag>,
}

impl CameraSender {
    /// Queues one encoded frame. Waits only for the driver to take it (never for the
    /// network); an error means the stream is over (grant revoked, session ended).
    pub async fn send(&self, frame: MediaFrame) -> Result<(), SessionError> {
        self.tx.send(frame).await.map_err(|_| SessionError::Ended)
    }

    /// Whether the encoder should make its next frame a keyframe (the technician's side
    /// asked, or frames were dropped); true once per request.
    pub fn keyframe_wanted(&self) -> bool {
        self.flag.wanted.swap(false, Ordering::AcqRel)
    }

    /// Waits until a keyframe is wanted (then [`CameraSender::keyframe_wanted`] is true).
    pub async fn keyframe_requested(&self) {
        if self.flag.wanted.load(Ordering::Acquire) {
            return;
        }
        self.flag.notify.notified().await;
    }

    /// Whether the stream is over.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Technician side: the frames of the end user's camera, in order, whole.
#[derive(Debug)]
pub struct CameraStream {
    rx: mpsc::Receiver<NumberedFrame>,
    keys: mpsc::Receiver<StreamKey>,
}

impl CameraStream {
    /// The next frame; `None` when the stream is over (grant gone, session ended, or a
    /// violation of the format by the sender).
    pub async fn recv(&mut self) -> Option<NumberedFrame> {
        self.rx.recv().await
    }

    /// The next Lens meeting key the end user's side handed over (PROTOCOL.md 9.2).
    pub async fn recv_key(&mut self) -> Option<StreamKey> {
        self.keys.recv().await
    }
}

/// The driver's media state.
#[derive(Debug, Default)]
pub(crate) struct MediaState {
    /// Applet: the stream's queue, input and grant.
    send: Option<Sending>,
    /// Console: reassembly and the application's queues.
    recv: Option<Receiving>,
}

#[derive(Debug)]
struct Sending {
    grant_id: u32,
    core: MediaSender,
    rx: mpsc::Receiver<MediaFrame>,
    flag: Arc<KeyframeFlag>,
}

#[derive(Debug)]
struct Receiving {
    grant_id: u32,
    core: MediaReceiver,
    tx: mpsc::Sender<NumberedFrame>,
    keys: mpsc::Sender<StreamKey>,
}

impl MediaState {
    /// The next frame from the application (never, when no stream runs).
    pub(crate) async fn next_frame(&mut self) -> Option<MediaFrame> {
        match &mut self.send {
            Some(s) => s.rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// The earliest media timer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let a = self.send.as_ref().and_then(|s| s.core.poll_timeout());
        let b = self.recv.as_ref().and_then(|r| r.core.poll_timeout());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Session {
    /// End-user side: starts the camera stream. Needs a live grant covering
    /// [`Permission::Camera`] (the technician asked, the policy allows, the end user
    /// said yes); one stream at a time. Drop the sender, or revoke the grant, to stop.
    pub async fn start_camera(&self) -> Result<CameraSender, SessionError> {
        self.media_call(MediaCommand::Start).await
    }

    /// Technician side: receives the end user's camera under `grant` (which must cover
    /// [`Permission::Camera`]). A new stream replaces an earlier one.
    pub async fn camera_stream(&self, grant: &Grant) -> Result<CameraStream, SessionError> {
        self.check_grant(grant, Permission::Camera)?;
        let id = grant.id();
        self.media_call(|r| MediaCommand::Subscribe(id, r)).await
    }

    /// End-user side: hands the technician a Lens meeting key over this end-to-end
    /// session (PROTOCOL.md 9.2), under the live camera stream's grant.
    pub async fn send_stream_key(&self, key: StreamKey) -> Result<(), SessionError> {
        self.media_call(|r| MediaCommand::Key(key, r)).await
    }
}

impl Driver {
    pub(super) fn on_media_command(&mut self, c: MediaCommand) {
        match c {
            MediaCommand::Start(reply) => {
                let _ = reply.send(self.start_camera());
            }
            MediaCommand::Subscribe(grant_id, reply) => {
                let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                let (ktx, krx) = mpsc::channel(STREAM_QUEUE);
                self.stop_media();
                self.media.recv = Some(Receiving {
                    grant_id,
                    core: MediaReceiver::new(),
                    tx,
                    keys: ktx,
                });
                self.audit_camera_started(grant_id);
                let _ = reply.send(Ok(CameraStream { rx, keys: krx }));
            }
            MediaCommand::Key(key, reply) => {
                let r = match &self.media.send {
                    Some(_) => self.core.send(MEDIA, MediaMsg::StreamKey(key).encode()),
                    None => Err(rescue_proto::session::SendError::ChannelNotOpen),
                };
                let _ = reply.send(r.map_err(Into::into));
            }
        }
    }

    fn start_camera(&mut self) -> Result<CameraSender, SessionError> {
        if self.cfg.role != Role::Applet {
            return Err(SessionError::WrongRole(self.cfg.role));
        }
        let grant_id = self
            .shared
            .view
            .lock()
            .ok()
            .and_then(|v| {
                v.grants
                    .iter()
                    .find(|(_, s)| s.contains(Permission::Camera))
                    .map(|(id, _)| *id)
            })
            .ok_or(SessionError::Permission(
                rescue_proto::session::permission::PermissionError::NotCovered(Permission::Camera),
            ))?;
        self.stop_media();
        let (tx, rx) = mpsc::channel(CAMERA_QUEUE);
        let flag = Arc::new(KeyframeFlag::default());
        self.media.send = Some(Sending {
            grant_id,
            core: MediaSender::new(QueueLimits::default()),
            rx,
            flag: flag.clone(),
        });
        self.audit_camera_started(grant_id);
        Ok(CameraSender { tx, flag })
    }

    /// A frame from the application (or `None`: the sender was dropped, the end user
    /// stopped the camera).
    pub(super) fn on_camera_frame(&mut self, f: Option<MediaFrame>) {
        let Some(f) = f else {
            return self.stop_media();
        };
        if let Some(s) = self.media.send.as_mut() {
            if let Err(e) = s.core.push(now(), f) {
                tracing::debug!(error = %e, "camera frame refused");
            }
            raise(s);
        }
    }

    /// Before every transmit: media into the core under the window (PROTOCOL.md 9.1).
    pub(super) fn feed_media(&mut self) {
        let t = now();
        if let Some(s) = self.media.send.as_mut() {
            if feed(t, &mut s.core, &mut self.core).is_err() {
                tracing::debug!("media feed stopped: session ending");
            }
            raise(s);
        }
        if let Some(r) = self.media.recv.as_mut() {
            while let Some(m) = r.core.poll_transmit(t) {
                let _ = self.core.send(MEDIA, m);
            }
        }
    }

    pub(super) fn media_timeout(&mut self) {
        if let Some(r) = self.media.recv.as_mut() {
            r.core.handle_timeout(now());
        }
    }

    /// A media channel payload from the peer.
    pub(super) fn on_media(&mut self, payload: Bytes) {
        let msg = match MediaMsg::decode(&payload) {
            Ok(m) => m,
            Err(e) => return self.media_violation(e),
        };
        match (self.cfg.role, msg) {
            (Role::Applet, MediaMsg::KeyframeRequest) => {
                if let Some(s) = self.media.send.as_mut() {
                    s.core.on_keyframe_request();
                    raise(s);
                }
            }
            (Role::Console, MediaMsg::Fragment(f)) => {
                let Some(r) = self.media.recv.as_mut() else {
                    return; // no stream asked for (or one just ended): discarded
                };
                match r.core.handle_fragment(now(), f) {
                    Ok(Some(frame)) => {
                        if r.tx.try_send(frame).is_err() {
                            r.core.on_lost();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => self.media_violation(e),
                }
            }
            (Role::Console, MediaMsg::StreamKey(k)) => {
                if let Some(r) = self.media.recv.as_ref() {
                    let _ = r.keys.try_send(k);
                }
            }
            _ => self.media_violation(MediaError::Direction),
        }
    }

    /// The peer broke the media format: its stream ends, the session goes on.
    fn media_violation(&mut self, e: MediaError) {
        tracing::warn!(error = %e, "media stream closed: protocol violation");
        self.stop_media();
    }

    /// A grant ended: a stream under it stops.
    pub(super) fn media_grant_gone(&mut self, grant_id: u32) {
        let sending = self.media.send.as_ref().map(|s| s.grant_id);
        let receiving = self.media.recv.as_ref().map(|r| r.grant_id);
        if sending == Some(grant_id) || receiving == Some(grant_id) {
            self.stop_media();
        }
    }

    /// Stops whatever stream runs (audited with its counters).
    pub(super) fn stop_media(&mut self) {
        let stats = match (self.media.send.take(), self.media.recv.take()) {
            (Some(s), _) => s.core.stats(),
            (None, Some(r)) => r.core.stats(),
            (None, None) => return,
        };
        let MediaStats {
            frames, dropped, ..
        } = stats;
        self.audit_camera_stopped(frames, dropped);
    }
}

/// Passes the queue's keyframe wish to the application's sender.
fn raise(s: &mut Sending) {
    if s.core.take_keyframe_wanted() {
        s.flag.wanted.store(true, Ordering::Release);
        s.flag.notify.notify_one();
    }
}

impl Session {
    async fn media_call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> MediaCommand,
    ) -> Result<T, SessionError> {
        self.call(|reply| Command::Media(make(reply)), self.call_timeout)
            .await?
    }
}

/// Answers a media call that came in after the end of the session.
pub(super) fn refuse(c: MediaCommand) {
    match c {
        MediaCommand::Start(r) => drop(r.send(Err(SessionError::Ended))),
        MediaCommand::Subscribe(_, r) => drop(r.send(Err(SessionError::Ended))),
        MediaCommand::Key(_, r) => drop(r.send(Err(SessionError::Ended))),
    }
}
