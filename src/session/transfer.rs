//! File transfers in the driver: the console's sends (a pump task reads and hashes the
//! file, the driver frames the chunks) and the applet's receives (a writer task writes
//! and hashes, the driver runs `FileReceiver` and commits the file only after
//! `verify` succeeded).
//!
//! Partial files are removed on every failure, cancel, revoked grant and session end:
//! the writer task owns the `IncomingFile`, whose drop deletes it.

use std::path::PathBuf;

use bytes::Bytes;
use rescue_proto::session::file::CHUNK_SIZE;
use rescue_proto::session::file::{self as pfile, FileEvent, FileMsg, FileReceiver, FileSender};
use rescue_proto::session::FILE;
use rescue_proto::{Permission, Role};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::{Bulk, Delivery, Driver, Internal, Reply};
use super::files::{FileError, IncomingFile, OutgoingFile, ReceivedFile};
use super::{SessionEvent, TransferId};

/// Operations queued to one file writer task: bounds buffered file data to
/// `WRITER_QUEUE` chunks.
const WRITER_QUEUE: usize = 8;
/// Most files received at once; more offers are rejected.
const MAX_INCOMING: usize = 4;
/// Longest a transfer may wait for its next piece (a chunk from the local reader on the
/// sending side, data from the peer on the receiving side) before it is cancelled: a
/// stalled transfer must not hold a partial file for the rest of the session.
pub(crate) const FILE_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Progress events at most every this many bytes (plus the first and the last): 1 GB makes
/// about a thousand events, not thirty thousand.
const PROGRESS_STEP: u64 = 1024 * 1024;

/// An operation for a file writer task.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Data(Bytes),
    Finish,
    Commit,
}

/// What a file writer task reports.
#[derive(Debug)]
pub(crate) enum WriterReport {
    /// All data written and synced: the digests of what is on disk (or why not).
    Digests(Result<rescue_crypto::Digests, String>),
    /// The verified file is in place (or why not).
    Placed(Result<ReceivedFile, String>),
}

/// A file this side sends.
#[derive(Debug)]
pub(crate) struct Outgoing {
    sender: FileSender,
    file: Option<OutgoingFile>,
    /// The grant it is sent under (`None`: the end user's own file).
    grant_id: Option<u32>,
    name: String,
    size: u64,
    pump: Option<JoinHandle<()>>,
    reported: u64,
    digests: Option<rescue_crypto::Digests>,
}

impl Outgoing {
    pub(crate) fn new(
        sender: FileSender,
        file: OutgoingFile,
        grant_id: Option<u32>,
        name: &str,
        size: u64,
    ) -> Self {
        Self {
            sender,
            file: Some(file),
            grant_id,
            name: name.to_owned(),
            size,
            pump: None,
            reported: 0,
            digests: None,
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
    }
}

/// A file this side receives.
#[derive(Debug)]
pub(crate) struct Incoming {
    receiver: FileReceiver,
    writer: Option<mpsc::Sender<WriteOp>>,
    result: Option<FileMsg>,
    reported: u64,
}

impl Incoming {
    pub(crate) fn writer(&self) -> Option<mpsc::Sender<WriteOp>> {
        self.writer.clone()
    }
}

impl Driver {
    pub(super) fn start_send(&mut self, out: Outgoing, offer: FileMsg, reply: Reply<TransferId>) {
        let id = TransferId(offer.id());
        if let Err(e) = self.core.send(FILE, offer.encode()) {
            return drop(reply.send(Err(e.into())));
        }
        self.outgoing.insert(id, out);
        let _ = reply.send(Ok(id));
    }

    pub(super) fn send_chunk(&mut self, id: TransferId, data: Bytes) {
        let Some(o) = self.outgoing.get_mut(&id) else {
            return;
        };
        match o.sender.chunk(data) {
            Ok(m) => {
                let _ = self.core.send(FILE, m.encode());
                let (done, size) = o.sender.progress();
                if o.reported == 0 || done == size || done - o.reported >= PROGRESS_STEP {
                    o.reported = done;
                    let ev = SessionEvent::FileProgress { id, done, size };
                    self.deliver(Delivery::Event(ev));
                }
            }
            Err(e) => self.cancel_outgoing(id, &e.to_string()),
        }
    }

    pub(super) fn send_done(&mut self, id: TransferId, d: rescue_crypto::Digests) {
        let Some(o) = self.outgoing.get_mut(&id) else {
            return;
        };
        o.digests = Some(d);
        match o.sender.finish(to_proto(d)) {
            Ok(m) => {
                let _ = self.core.send(FILE, m.encode());
            }
            Err(e) => self.cancel_outgoing(id, &e.to_string()),
        }
    }

    /// Stops a send (read error, revoked grant, end): CANCEL to the peer, an event.
    pub(super) fn cancel_outgoing(&mut self, id: TransferId, why: &str) {
        let Some(mut o) = self.outgoing.remove(&id) else {
            return;
        };
        if let Some(m) = o.sender.cancel() {
            let _ = self.core.send(FILE, m.encode());
        }
        self.audit_file_failed(&o.name, why);
        let ev = SessionEvent::FileFailed {
            id,
            reason: why.to_owned(),
        };
        self.deliver(Delivery::Event(ev));
    }

    pub(super) fn cancel_transfers_of(&mut self, grant_id: u32) {
        let ids: Vec<TransferId> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.grant_id == Some(grant_id))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .for_each(|id| self.cancel_outgoing(id, "grant revoked"));
        let still = self
            .gate
            .as_ref()
            .is_some_and(|g| g.is_granted(Permission::FileTransfer));
        if !still {
            let ids: Vec<TransferId> = self.incoming.keys().copied().collect();
            ids.into_iter()
                .for_each(|id| self.cancel_incoming(id, "grant revoked"));
        }
    }

    pub(super) fn cancel_all_transfers(&mut self) {
        let ids: Vec<TransferId> = self.outgoing.keys().copied().collect();
        ids.into_iter()
            .for_each(|id| self.cancel_outgoing(id, "session ended"));
        let ids: Vec<TransferId> = self.incoming.keys().copied().collect();
        ids.into_iter()
            .for_each(|id| self.cancel_incoming(id, "session ended"));
    }

    fn cancel_incoming(&mut self, id: TransferId, why: &str) {
        let Some(mut i) = self.incoming.remove(&id) else {
            return;
        };
        let (msg, _) = i.receiver.cancel();
        if let Some(m) = msg {
            let _ = self.core.send(FILE, m.encode());
        }
        let name = i.receiver.offer().0.to_owned();
        self.audit_file_failed(&name, why);
        // Dropping the writer's queue ends its task, which removes the partial file.
        let ev = SessionEvent::FileFailed {
            id,
            reason: why.to_owned(),
        };
        self.deliver(Delivery::Event(ev));
    }

    pub(super) fn on_file_msg(&mut self, m: FileMsg) {
        let id = TransferId(m.id());
        match m {
            FileMsg::Offer { .. } => self.on_offer(&m),
            FileMsg::Chunk { .. } | FileMsg::Done { .. } => self.on_incoming_msg(id, m),
            // PROTOCOL.md 7.6: the id's top bit names the sender of the file.
            FileMsg::Cancel { .. } if pfile::transfer_sender(id.0) != self.cfg.role => {
                self.on_incoming_msg(id, m)
            }
            _ => self.on_outgoing_msg(id, &m),
        }
    }

    fn on_offer(&mut self, m: &FileMsg) {
        let id = TransferId(m.id());
        // PROTOCOL.md 7.6: the console's files need a live grant at the applet; the end
        // user's own files need nothing but a console that stores received files (the
        // download folder, checked below). An id from the wrong half is refused.
        let permitted = pfile::transfer_sender(id.0) != self.cfg.role
            && match self.cfg.role {
                Role::Applet => self
                    .gate
                    .as_ref()
                    .is_some_and(|g| g.is_granted(Permission::FileTransfer)),
                Role::Console => true,
            };
        // PROTOCOL.md 7.6: grant, size limit and name are all checked before ACCEPT.
        let limit = self.cfg.max_file_size;
        let accepted = FileReceiver::on_offer(m, permitted, limit).and_then(|r| {
            let full = self.incoming.len() >= MAX_INCOMING || self.incoming.contains_key(&id);
            match &self.cfg.download_dir {
                Some(dir) if !full => Ok((r, dir.clone())),
                _ => Err(pfile::FileError::NotPermitted),
            }
        });
        let (mut receiver, dir) = match accepted {
            Ok(x) => x,
            Err(e) => {
                let name = match m {
                    FileMsg::Offer { name, .. } => Some(name.as_str()),
                    _ => None,
                };
                return self.reject_offer(id, name, &e);
            }
        };
        let (name, size) = (receiver.offer().0.to_owned(), receiver.offer().1);
        let writer = self.spawn_writer(id, dir, &name, size);
        let _ = self.core.send(FILE, receiver.accept().encode());
        self.incoming.insert(
            id,
            Incoming {
                receiver,
                writer: Some(writer),
                result: None,
                reported: 0,
            },
        );
        self.deliver(Delivery::Event(SessionEvent::FileOffered {
            id,
            name,
            size,
        }));
    }

    /// Answers an offer with REJECT: no grant, no room, too large, or a bad name (then
    /// `name` is `None`: a name the decoder refused is never audited or shown).
    pub(super) fn reject_offer(
        &mut self,
        id: TransferId,
        name: Option<&str>,
        e: &pfile::FileError,
    ) {
        let _ = self.core.send(FILE, FileMsg::Reject { id: id.0 }.encode());
        if let Some(name) = name {
            self.audit_file_failed(name, &format!("rejected: {e}"));
        }
        let ev = SessionEvent::FileFailed {
            id,
            reason: e.to_string(),
        };
        self.deliver(Delivery::Event(ev));
    }

    fn spawn_writer(
        &self,
        id: TransferId,
        dir: PathBuf,
        name: &str,
        size: u64,
    ) -> mpsc::Sender<WriteOp> {
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let report = self.internal_tx.clone();
        let (name, limit) = (name.to_owned(), self.cfg.max_file_size);
        tokio::spawn(async move {
            let r = writer_task(&dir, &name, size, limit, rx, id, &report).await;
            if let Err(e) = r {
                let msg = Internal::Writer(id, WriterReport::Digests(Err(e.to_string())));
                let _ = report.send(msg).await;
            }
        });
        tx
    }

    fn on_incoming_msg(&mut self, id: TransferId, m: FileMsg) {
        let Some(i) = self.incoming.get_mut(&id) else {
            return;
        };
        let events = i.receiver.handle(m);
        self.on_receiver_events(id, events);
    }

    fn on_receiver_events(&mut self, id: TransferId, events: Vec<FileEvent>) {
        for e in events {
            match e {
                FileEvent::Write { data, .. } => {
                    self.deliver(Delivery::File(id, WriteOp::Data(data)))
                }
                FileEvent::Progress { done, total } => self.progress_in(id, done, total),
                FileEvent::VerifyNow => self.deliver(Delivery::File(id, WriteOp::Finish)),
                FileEvent::Completed { .. } => self.deliver(Delivery::File(id, WriteOp::Commit)),
                FileEvent::Failed(err) => self.fail_incoming(id, &err.to_string()),
                _ => {} // RemovePartial: dropping the writer removes it
            }
        }
    }

    fn progress_in(&mut self, id: TransferId, done: u64, size: u64) {
        let Some(i) = self.incoming.get_mut(&id) else {
            return;
        };
        if i.reported == 0 || done == size || done - i.reported >= PROGRESS_STEP {
            i.reported = done;
            self.deliver(Delivery::Event(SessionEvent::FileProgress {
                id,
                done,
                size,
            }));
        }
    }

    fn fail_incoming(&mut self, id: TransferId, why: &str) {
        let Some(i) = self.incoming.remove(&id) else {
            return;
        };
        let name = i.receiver.offer().0.to_owned();
        self.audit_file_failed(&name, why);
        let ev = SessionEvent::FileFailed {
            id,
            reason: why.to_owned(),
        };
        self.deliver(Delivery::Event(ev));
    }

    pub(super) fn on_writer(&mut self, id: TransferId, report: WriterReport) {
        match report {
            WriterReport::Digests(Ok(d)) => {
                let Some(i) = self.incoming.get_mut(&id) else {
                    return;
                };
                let (result, events) = i.receiver.verify(to_proto(d));
                if events
                    .iter()
                    .any(|e| matches!(e, FileEvent::Completed { .. }))
                {
                    i.result = result; // sent once the file is in place
                } else if let Some(r) = result {
                    let _ = self.core.send(FILE, r.encode());
                }
                self.on_receiver_events(id, events);
            }
            WriterReport::Digests(Err(e)) => {
                let Some(mut i) = self.incoming.remove(&id) else {
                    return;
                };
                if let (Some(m), _) = i.receiver.cancel() {
                    let _ = self.core.send(FILE, m.encode());
                }
                self.incoming.insert(id, i);
                self.fail_incoming(id, &e);
            }
            WriterReport::Placed(r) => self.on_placed(id, r),
        }
    }

    fn on_placed(&mut self, id: TransferId, r: Result<ReceivedFile, String>) {
        let Some(mut i) = self.incoming.remove(&id) else {
            return;
        };
        match r {
            Ok(file) => {
                if let Some(m) = i.result.take() {
                    let _ = self.core.send(FILE, m.encode());
                }
                self.audit_file_done(true, &file.name, file.size, &file.digests);
                self.deliver(Delivery::Event(SessionEvent::FileReceived { id, file }));
            }
            Err(e) => {
                let _ = self.core.send(
                    FILE,
                    FileMsg::Result {
                        id: id.0,
                        ok: false,
                    }
                    .encode(),
                );
                self.incoming.insert(id, i);
                self.fail_incoming(id, &e);
            }
        }
    }

    fn on_outgoing_msg(&mut self, id: TransferId, m: &FileMsg) {
        let Some(o) = self.outgoing.get_mut(&id) else {
            return;
        };
        match o.sender.handle(m) {
            Ok(Some(true)) => {
                let Some(o) = self.outgoing.remove(&id) else {
                    return;
                };
                if let Some(d) = o.digests {
                    self.audit_file_done(false, &o.name, o.size, &d);
                    self.deliver(Delivery::Event(SessionEvent::FileSent { id, digests: d }));
                }
            }
            Ok(_) => {
                if o.sender.is_sending() && o.pump.is_none() {
                    if let Some(file) = o.file.take() {
                        o.pump = Some(tokio::spawn(pump(id, file, self.bulk_tx.clone())));
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                let Some(o) = self.outgoing.remove(&id) else {
                    return;
                };
                self.audit_file_failed(&o.name, &why);
                self.deliver(Delivery::Event(SessionEvent::FileFailed {
                    id,
                    reason: why,
                }));
            }
        }
    }
}

/// Reads the file in chunks into the bulk queue (bounded: backpressure), then DONE.
async fn pump(id: TransferId, mut file: OutgoingFile, bulk: mpsc::Sender<Bulk>) {
    loop {
        let next = tokio::time::timeout(FILE_IDLE_TIMEOUT, file.next_chunk(CHUNK_SIZE)).await;
        let Ok(next) = next else {
            let _ = bulk
                .send(Bulk::FileFailed(id, "file reader stalled".into()))
                .await;
            return;
        };
        match next {
            Ok(c) if c.is_empty() => {
                let _ = bulk.send(Bulk::FileDone(id, file.digests())).await;
                return;
            }
            Ok(c) => {
                if bulk
                    .send(Bulk::FileChunk(id, Bytes::from(c)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = bulk.send(Bulk::FileFailed(id, e.to_string())).await;
                return;
            }
        }
    }
}

/// Writes one incoming file; dropping `rx` (cancel, failure, end) drops the
/// `IncomingFile`, which removes the partial file.
async fn writer_task(
    dir: &std::path::Path,
    name: &str,
    size: u64,
    limit: u64,
    mut rx: mpsc::Receiver<WriteOp>,
    id: TransferId,
    report: &mpsc::Sender<Internal>,
) -> Result<(), FileError> {
    let mut f = IncomingFile::create(dir, name, size, limit).await?;
    loop {
        let op = match tokio::time::timeout(FILE_IDLE_TIMEOUT, rx.recv()).await {
            Ok(Some(op)) => op,
            Ok(None) => return Ok(()), // cancelled: dropping `f` removes the partial file
            Err(_) => return Err(FileError::Cancelled), // stalled: reported, then removed
        };
        match op {
            WriteOp::Data(b) => f.write(&b).await?,
            WriteOp::Finish => {
                let d = f.sync_digests().await?;
                let _ = report
                    .send(Internal::Writer(id, WriterReport::Digests(Ok(d))))
                    .await;
            }
            WriteOp::Commit => {
                let r = f.commit().await.map_err(|e| e.to_string());
                let _ = report
                    .send(Internal::Writer(id, WriterReport::Placed(r)))
                    .await;
                return Ok(());
            }
        }
    }
}

pub(super) fn to_proto(d: rescue_crypto::Digests) -> pfile::Digests {
    pfile::Digests {
        md5: d.md5,
        sha256: d.sha256,
    }
}
