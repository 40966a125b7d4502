//! The driver task: one per session. It owns the sans-IO core and runs the loop
//! "inputs → core → transmit → timers → forward events" (quinn's driver pattern).
//!
//! The loop never blocks on I/O: path writers, application channels, file writers and
//! the event queue are bounded queues, and an input that would produce output nobody
//! can take right now is not polled until there is room (backpressure). The end signal
//! is polled in every state, so nothing can delay the end of the session.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rescue_proto::audit::PathKind;
use rescue_proto::session::chat::MAX_CHAT_BYTES;
use rescue_proto::session::control::ControlMsg;
use rescue_proto::session::file::FileMsg;
use rescue_proto::session::frame::MAX_PAYLOAD;
use rescue_proto::session::permission::{Gatekeeper, Grant};
use rescue_proto::session::reliable::SessionError as CoreError;
use rescue_proto::session::{EndReason, PathId, Reliable, CONTROL, FILE};
use rescue_proto::wire::signal::CloseReason;
use rescue_proto::PermissionSet;
use tokio::sync::{mpsc, oneshot, Notify};

use super::paths::{close_reason, Inbound, PathIo, PathStream, INBOUND_QUEUE, WRITE_CHUNK};
use super::transfer::{Incoming, Outgoing, WriteOp, WriterReport};
use super::TransferId;
use super::{AppChannel, PathInfo, SessionConfig, SessionError, SessionEvent, Shared};
use crate::direct::{Link, Note, Request};

/// Room a control-class send needs before a command is taken: the largest control
/// payload (a chat message) plus slack.
const CONTROL_ROOM: usize = MAX_CHAT_BYTES + 64;
/// Internal reports (consent answers, file writer results) queued to the driver.
const INTERNAL_QUEUE: usize = 16;
/// How long the driver tries to hand its last events over after the session closed.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// How long the driver waits, once the session closed, for its paths to write their last
/// frames (the ACK of the peer's END) and CLOSE before it reports the session closed:
/// an application that exits right after must not cut them off (PROTOCOL.md 7.3).
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(5);

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SessionError>>;
pub(crate) type BoxPath = Box<dyn PathStream>;

/// Calls from the handle.
pub(crate) enum Command {
    Chat(String, Reply<()>),
    Request(Option<rescue_proto::Permission>, Reply<Grant>),
    Control(ControlMsg, Reply<()>),
    Revoke(u32, Reply<()>),
    SendFile(Box<Outgoing>, FileMsg, Reply<TransferId>),
    OpenChannel(String, Reply<AppChannel>),
    AddPath(BoxPath, PathKind, Reply<PathId>),
    ClosePath(PathId, Reply<()>),
    Media(super::media::MediaCommand),
}

/// Bulk writes: application channel data and file chunks, in order per source.
#[derive(Debug)]
pub(crate) enum Bulk {
    Data(u16, Bytes),
    Close(u16),
    FileChunk(TransferId, Bytes),
    FileDone(TransferId, rescue_crypto::Digests),
    FileFailed(TransferId, String),
}

/// Reports from tasks the driver spawned.
#[derive(Debug)]
pub(crate) enum Internal {
    Consent(u32, bool),
    Writer(TransferId, WriterReport),
}

/// Output for the application or a file writer, held while its queue is full.
pub(super) enum Delivery {
    Event(SessionEvent),
    Channel(u16, Bytes),
    File(TransferId, WriteOp),
}

/// Where the first held delivery goes.
enum Target {
    Events(mpsc::Sender<SessionEvent>),
    Bytes(mpsc::Sender<Bytes>),
    File(mpsc::Sender<WriteOp>),
}

pub(crate) struct Driver {
    pub(super) cfg: SessionConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) core: Reliable,
    pub(super) gate: Option<Gatekeeper>,
    cmd_rx: mpsc::Receiver<Command>,
    bulk_rx: mpsc::Receiver<Bulk>,
    pub(super) bulk_tx: mpsc::Sender<Bulk>,
    events: mpsc::Sender<SessionEvent>,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound_rx: mpsc::Receiver<Inbound>,
    pub(super) internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    writable: Arc<Notify>,
    paths: Vec<PathIo>,
    next_path: u64,
    held: VecDeque<Delivery>,
    pub(super) channels: BTreeMap<u16, mpsc::Sender<Bytes>>,
    pub(super) requests: BTreeMap<u32, (PermissionSet, Reply<Grant>)>,
    pub(super) outgoing: BTreeMap<TransferId, Outgoing>,
    pub(super) incoming: BTreeMap<TransferId, Incoming>,
    pub(super) ended: bool,
    /// Why the session ended (the CLOSE reason of its paths follows from it).
    pub(super) end_reason: Option<EndReason>,
    /// The path manager's queues, when direct paths are on.
    pub(super) direct: Option<Link>,
    /// The camera stream, if one runs (media.rs).
    pub(super) media: super::media::MediaState,
}

impl Driver {
    pub(crate) fn new(
        cfg: SessionConfig,
        shared: Arc<Shared>,
        cmd_rx: mpsc::Receiver<Command>,
        bulk: (mpsc::Sender<Bulk>, mpsc::Receiver<Bulk>),
        events: mpsc::Sender<SessionEvent>,
    ) -> Self {
        let core = Reliable::new(cfg.role, cfg.core, now());
        let timeout = cfg
            .consent
            .as_ref()
            .map_or(super::consent::DEFAULT_CONSENT_TIMEOUT, |c| c.timeout);
        let gate = (cfg.role == super::Role::Applet).then(|| Gatekeeper::new(cfg.policy, timeout));
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
        Self {
            cfg,
            shared,
            core,
            gate,
            cmd_rx,
            bulk_rx: bulk.1,
            bulk_tx: bulk.0,
            events,
            inbound_tx,
            inbound_rx,
            internal_tx,
            internal_rx,
            writable: Arc::new(Notify::new()),
            paths: Vec::new(),
            next_path: 0,
            held: VecDeque::new(),
            channels: BTreeMap::new(),
            requests: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            ended: false,
            end_reason: None,
            direct: None,
            media: Default::default(),
        }
    }

    /// Runs the session to its end on `first` as the first path.
    pub(crate) async fn run(mut self, first: BoxPath, kind: PathKind) {
        self.audit_start();
        if let Err(e) = self.add_path(first, kind) {
            tracing::warn!(error = %e, "first path refused");
        }
        self.pump();
        while !self.core.is_closed() {
            self.step().await;
            self.pump();
        }
        self.shutdown().await;
    }

    /// Waits for one input and feeds it to the core.
    async fn step(&mut self) {
        let deadline = self.deadline();
        // Check the clock before arming a sleep: a past deadline runs now.
        if deadline.is_some_and(|d| d <= now()) {
            return self.on_timeout();
        }
        let ctrl_ready = !self.ended && self.core.can_send(CONTROL, CONTROL_ROOM);
        let bulk_ready = !self.ended && self.core.can_send(FILE, MAX_PAYLOAD);
        let accept = self.held.is_empty();
        let target = self.held_target();
        let shared = self.shared.clone();
        let writable = self.writable.clone();
        tokio::select! {
            biased;
            () = shared.end_signal.notified() => self.on_end_signal(),
            () = sleep_until(deadline) => self.on_timeout(),
            Some(i) = self.internal_rx.recv() => self.on_internal(i),
            () = wait_room(target) => self.flush_held(),
            Some(inb) = self.inbound_rx.recv(), if accept => self.on_inbound(inb),
            // Commands make at most a few events each: they stay open while events are held,
            // so revoke, add_path and the like work even when the application is slow.
            c = self.cmd_rx.recv(), if ctrl_ready || self.ended => match c {
                Some(c) => self.on_command(c),
                None => self.end(EndReason::Application),
            },
            // Camera frames are always taken: the latest-frame queue drops, never blocks.
            f = self.media.next_frame(), if !self.ended => self.on_camera_frame(f),
            Some(b) = self.bulk_rx.recv(), if bulk_ready && accept => self.on_bulk(b),
            Some(r) = direct_request(&mut self.direct), if ctrl_ready && !self.ended => self.on_direct(r),
            () = writable.notified() => {}
        }
    }

    /// After every input: let the machines react, then write what they emit.
    fn pump(&mut self) {
        // Transmitting can make events (a path retired), which can make frames.
        for _ in 0..4 {
            self.drain_machines();
            self.transmit();
            if self.drain_machines() == 0 {
                return;
            }
        }
    }

    fn transmit(&mut self) {
        self.feed_media();
        let now = now();
        for p in &self.paths {
            while p.has_room() {
                let mut buf = BytesMut::with_capacity(WRITE_CHUNK.min(64 * 1024));
                while buf.len() < WRITE_CHUNK && self.core.poll_transmit(now, p.id, &mut buf) {}
                if buf.is_empty() || !p.try_write(buf.freeze()) {
                    break;
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let gate = self.gate.as_ref().and_then(Gatekeeper::poll_timeout);
        [self.core.poll_timeout(), gate, self.media.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timeout(&mut self) {
        let now = now();
        if let Some(g) = self.gate.as_mut() {
            g.handle_timeout(now);
        }
        self.media_timeout();
        if let Err(e) = self.core.handle_timeout(now) {
            self.on_core_error(e);
        }
    }

    fn on_end_signal(&mut self) {
        let reason = self
            .shared
            .end_reason
            .lock()
            .ok()
            .and_then(|r| *r)
            .unwrap_or(EndReason::Application);
        self.end(reason);
    }

    /// Ends the session (END frame, grants void); the core reports `Ended` at once.
    pub(super) fn end(&mut self, reason: EndReason) {
        self.core.end(reason);
    }

    fn on_inbound(&mut self, inb: Inbound) {
        let now = now();
        match inb {
            Inbound::Frame(path, bytes) => {
                if let Err(e) = self.core.handle_frame(now, path, bytes) {
                    self.on_core_error(e);
                }
            }
            Inbound::Lost(path) => {
                tracing::debug!(role = ?self.cfg.role, path = path.0, "path lost (transport)");
                let _ = self.core.on_path_lost(now, path);
                self.kill_path(path);
            }
            Inbound::BadFrame(path, e) => {
                if let Err(e) = self.core.on_bad_frame(path, e) {
                    self.on_core_error(e);
                }
            }
        }
    }

    /// A fatal error of the core: it has failed (and owes the peer one END, which the
    /// next transmit sends); the loop ends after this step.
    fn on_core_error(&mut self, e: CoreError) {
        tracing::warn!(role = ?self.cfg.role, error = %e, "session failed");
        self.on_ended(e.end_reason(), false);
    }

    fn on_command(&mut self, c: Command) {
        if self.ended {
            return refuse(c);
        }
        match c {
            Command::Chat(text, reply) => {
                let _ = reply.send(self.send_chat(&text));
            }
            Command::Request(p, reply) => self.send_request(p, reply),
            Command::Control(msg, reply) => {
                let r = self.core.send(CONTROL, msg.encode()).map_err(Into::into);
                if let ControlMsg::Revoke { grant_id } = msg {
                    self.on_grant_gone(grant_id);
                }
                let _ = reply.send(r);
            }
            Command::Revoke(id, reply) => {
                if let Some(g) = self.gate.as_mut() {
                    g.revoke(id);
                }
                let _ = reply.send(Ok(()));
            }
            Command::SendFile(out, offer, reply) => self.start_send(*out, offer, reply),
            Command::OpenChannel(label, reply) => {
                let r = self
                    .core
                    .open_channel(&label)
                    .map(|id| self.new_channel(id, label));
                let _ = reply.send(r.map_err(Into::into));
            }
            Command::ClosePath(id, reply) => {
                // As if its transport failed: the core replays on another path.
                let _ = reply.send(self.core.on_path_lost(now(), id).map_err(Into::into));
            }
            Command::AddPath(stream, kind, reply) => {
                let _ = reply.send(self.add_path(stream, kind));
            }
            Command::Media(m) => self.on_media_command(m),
        }
    }

    /// A request of the path manager: candidates to send, a bound direct path to add.
    fn on_direct(&mut self, r: Request) {
        match r {
            Request::SendCandidates(payload) => {
                if let Err(e) = self.core.send(CONTROL, payload) {
                    tracing::debug!(error = %e, "candidates not sent");
                }
            }
            Request::AddPath(stream, kind) => {
                if let Err(e) = self.add_path(Box::new(stream), kind) {
                    tracing::info!(error = %e, "direct path refused by the session");
                }
            }
        }
    }

    /// Hands the path manager a peer's CANDIDATES (dropped if its queue is full: a peer
    /// that floods them loses rounds, nothing else).
    pub(super) fn note_direct(&self, n: Note) {
        if let Some(link) = &self.direct {
            let _ = link.notes.try_send(n);
        }
    }

    /// Tells the path manager its direct path is gone (never dropped).
    pub(super) fn note_direct_lost(&self) {
        if let Some(link) = &self.direct {
            link.direct_lost.notify_one();
        }
    }

    fn on_bulk(&mut self, b: Bulk) {
        match b {
            Bulk::Data(ch, data) => {
                if self.core.send(ch, data).is_err() {
                    self.channels.remove(&ch);
                }
            }
            Bulk::Close(ch) => {
                let _ = self.core.close_channel(ch);
                self.channels.remove(&ch);
            }
            Bulk::FileChunk(id, data) => self.send_chunk(id, data),
            Bulk::FileDone(id, d) => self.send_done(id, d),
            Bulk::FileFailed(id, why) => self.cancel_outgoing(id, &why),
        }
    }

    fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::Consent(q, yes) => {
                if let Some(g) = self.gate.as_mut() {
                    g.answer(q, yes);
                }
            }
            Internal::Writer(id, report) => self.on_writer(id, report),
        }
    }

    /// A new application channel (opened by either side) and its receiving queue.
    pub(super) fn new_channel(&mut self, id: u16, label: String) -> AppChannel {
        let (tx, rx) = mpsc::channel(super::channel::CHANNEL_QUEUE);
        self.channels.insert(id, tx);
        AppChannel::new(id, label, rx, self.bulk_tx.clone())
    }

    fn add_path(&mut self, stream: BoxPath, kind: PathKind) -> Result<PathId, SessionError> {
        let id = PathId(self.next_path);
        tracing::debug!(role = ?self.cfg.role, path = id.0, "path up");
        self.core.on_path_up(now(), id)?;
        self.next_path += 1;
        let io = PathIo::start(
            id,
            kind,
            stream,
            self.inbound_tx.clone(),
            self.writable.clone(),
        );
        self.paths.push(io);
        Ok(id)
    }

    pub(super) fn path_info(&self, id: PathId) -> Option<PathInfo> {
        self.paths
            .iter()
            .find(|p| p.id == id)
            .map(|p| PathInfo { id, kind: p.kind })
    }

    pub(super) fn kill_path(&mut self, id: PathId) {
        if let Some(i) = self.paths.iter().position(|p| p.id == id) {
            self.paths.swap_remove(i).kill();
        }
    }

    pub(super) fn retire_path(&mut self, id: PathId) {
        if let Some(i) = self.paths.iter().position(|p| p.id == id) {
            // The session goes on elsewhere: this hop simply ends.
            drop(self.paths.swap_remove(i).close(CloseReason::Normal));
        }
    }

    /// Queues output for the application (or a file writer) behind anything held.
    pub(super) fn deliver(&mut self, d: Delivery) {
        self.held.push_back(d);
        self.flush_held();
    }

    fn held_target(&self) -> Option<Target> {
        Some(match self.held.front()? {
            Delivery::Event(_) => Target::Events(self.events.clone()),
            Delivery::Channel(ch, _) => Target::Bytes(self.channels.get(ch)?.clone()),
            Delivery::File(id, _) => Target::File(self.incoming.get(id)?.writer()?),
        })
    }

    /// Hands over held deliveries while their queues have room; drops those whose
    /// receiver is gone (a dropped channel, an abandoned event stream).
    fn flush_held(&mut self) {
        while let Some(d) = self.held.pop_front() {
            let full = match d {
                Delivery::Event(e) => try_put(&self.events, e).map_err(Delivery::Event),
                Delivery::Channel(ch, b) => match self.channels.get(&ch) {
                    Some(tx) => try_put(tx, b).map_err(|b| Delivery::Channel(ch, b)),
                    None => Ok(()),
                },
                Delivery::File(id, op) => match self.incoming.get(&id).and_then(Incoming::writer) {
                    Some(tx) => try_put(&tx, op).map_err(|op| Delivery::File(id, op)),
                    None => Ok(()),
                },
            };
            if let Err(d) = full {
                self.held.push_front(d);
                return;
            }
        }
    }

    async fn shutdown(mut self) {
        // The path manager ends with the session (its listener and dials with it).
        self.direct = None;
        if !self.ended {
            self.on_ended(EndReason::Timeout, false);
            self.drain_machines();
        }
        // Every path writes what is queued (our ACK of the peer's END, or the END owed
        // after a failure), then CLOSE with the reason of the end (PROTOCOL.md 7.3).
        let reason = close_reason(self.end_reason.unwrap_or(EndReason::Application));
        let writers: Vec<_> = std::mem::take(&mut self.paths)
            .into_iter()
            .map(|p| p.close(reason))
            .collect();
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
        self.audit_flush();
        let events = self.events.clone();
        let held = std::mem::take(&mut self.held);
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, async move {
            for d in held {
                if let Delivery::Event(e) = d {
                    if events.send(e).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
    }
}

/// The next request of the path manager, or never when there is none.
async fn direct_request(direct: &mut Option<Link>) -> Option<Request> {
    match direct {
        Some(link) => link.requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers a call that came in after the end of the session.
fn refuse(c: Command) {
    fn no<T>(r: Reply<T>) {
        let _ = r.send(Err(SessionError::Ended));
    }
    match c {
        Command::Chat(_, r) | Command::Control(_, r) | Command::Revoke(_, r) => no(r),
        Command::Request(_, r) => no(r),
        Command::SendFile(_, _, r) => no(r),
        Command::OpenChannel(_, r) => no(r),
        Command::AddPath(_, _, r) => no(r),
        Command::ClosePath(_, r) => no(r),
        Command::Media(m) => super::media::refuse(m),
    }
}

/// The session clock: tokio's, so tests can run on paused virtual time.
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the target's queue has room (or its receiver is gone).
async fn wait_room(target: Option<Target>) {
    // The driver is each queue's only producer: room seen here is still there when
    // `flush_held` runs right after.
    let _ = match target {
        None => return std::future::pending().await,
        Some(Target::Events(tx)) => tx.reserve().await.map(drop),
        Some(Target::Bytes(tx)) => tx.reserve().await.map(drop),
        Some(Target::File(tx)) => tx.reserve().await.map(drop),
    };
}

/// `Err(item)` when the queue is full; a closed queue swallows the item.
fn try_put<T>(tx: &mpsc::Sender<T>, item: T) -> Result<(), T> {
    match tx.try_send(item) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Full(item)) => Err(item),
    }
}
