//! The I/O of one path: a reader task that splits the stream into frames and a writer
//! task that writes what the core emits. The driver never blocks on a path: it hands
//! bytes to the writer through a bounded queue and learns of room through a [`Notify`].
//!
//! What this never does: interpret frames (the core does), buffer more than
//! [`PATH_QUEUE`] chunks per direction, or wait on a write without [`WRITE_TIMEOUT`].
//! A stream the frame splitter refuses is reported as such ([`Inbound::BadFrame`]: fatal
//! to the session, PROTOCOL.md 7.1), not as a lost path. A path closed at the end of the
//! session writes what is queued (the ACK of the peer's END), then shuts the stream down
//! with the CLOSE reason of the end (PROTOCOL.md 3.10, 7.3).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rescue_proto::audit::PathKind;
use rescue_proto::session::frame::{FrameCodec, FrameCodecError, FrameError};
use rescue_proto::session::{EndReason, PathId};
use rescue_proto::wire::signal::CloseReason;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

/// Chunks queued to one path's writer (each at most [`WRITE_CHUNK`] bytes): bounds the
/// bytes committed to a path beyond the core's own buffer.
pub(crate) const PATH_QUEUE: usize = 8;
/// Bytes the driver gathers from the core into one write: large writes through TLS
/// (DESIGN "Performance facts": per-record handling is the ceiling).
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;
/// Longest a single write may stall before the path counts as dead.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames read ahead of the driver from all paths together: bounds received memory.
pub(crate) const INBOUND_QUEUE: usize = 64;

/// A stream that can carry a path.
pub trait PathStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PathStream for T {}

/// What a path's tasks tell the driver.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One whole frame.
    Frame(PathId, Bytes),
    /// The path failed (EOF, I/O error, a stream ending inside a frame, write timeout).
    Lost(PathId),
    /// The peer's byte stream broke the frame format (unknown kind, oversize length):
    /// fatal to the session.
    BadFrame(PathId, FrameError),
}

/// The CLOSE reason a path's hop is shut down with when the session ended for `reason`.
pub(crate) fn close_reason(reason: EndReason) -> CloseReason {
    match reason {
        EndReason::EndUser => CloseReason::EndUser,
        EndReason::Technician => CloseReason::Technician,
        _ => CloseReason::Normal,
    }
}

/// The driver's handle on one path.
#[derive(Debug)]
pub(crate) struct PathIo {
    pub(crate) id: PathId,
    pub(crate) kind: PathKind,
    writer: mpsc::Sender<Bytes>,
    close_reason: oneshot::Sender<CloseReason>,
    reader_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

impl PathIo {
    /// Starts the reader and writer tasks of `stream` as path `id`.
    pub(crate) fn start<S: PathStream>(
        id: PathId,
        kind: PathKind,
        stream: S,
        inbound: mpsc::Sender<Inbound>,
        writable: Arc<Notify>,
    ) -> Self {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(PATH_QUEUE);
        let (close_tx, close_rx) = oneshot::channel();
        let reader_task = tokio::spawn(read_loop(id, rd, inbound.clone()));
        let io = WriterIo {
            rx,
            close: close_rx,
            inbound,
            writable,
        };
        let writer_task = tokio::spawn(write_loop(id, wr, io));
        Self {
            id,
            kind,
            writer: tx,
            close_reason: close_tx,
            reader_task,
            writer_task,
        }
    }

    /// Whether the writer has room for one more chunk.
    pub(crate) fn has_room(&self) -> bool {
        self.writer.capacity() > 0
    }

    /// Queues `chunk`; `false` if the queue is full or the writer is gone.
    pub(crate) fn try_write(&self, chunk: Bytes) -> bool {
        self.writer.try_send(chunk).is_ok()
    }

    /// Stops reading now; the writer finishes what is queued, then shuts the stream down
    /// (a tunnel inside it sends `CLOSE{reason}`). The returned task ends by itself once
    /// that is done (bounded by [`WRITE_TIMEOUT`] per chunk): await it to know the last
    /// frames went out, or drop it.
    pub(crate) fn close(self, reason: CloseReason) -> JoinHandle<()> {
        self.reader_task.abort();
        let _ = self.close_reason.send(reason);
        drop(self.writer);
        self.writer_task
    }

    /// Drops the path at once (it is dead): both tasks are aborted.
    pub(crate) fn kill(self) {
        self.reader_task.abort();
        self.writer_task.abort();
    }
}

async fn read_loop<R: AsyncRead + Send + Unpin>(id: PathId, rd: R, inbound: mpsc::Sender<Inbound>) {
    let mut frames = FramedRead::new(rd, FrameCodec);
    while let Some(item) = frames.next().await {
        match item {
            Ok(frame) => {
                if inbound.send(Inbound::Frame(id, frame)).await.is_err() {
                    return; // the driver is gone
                }
            }
            // PROTOCOL.md 7.1: a frame the splitter refuses is fatal, not a lost path.
            Err(FrameCodecError::Frame(e)) => {
                let _ = inbound.send(Inbound::BadFrame(id, e)).await;
                return;
            }
            Err(e) => {
                tracing::debug!(path = id.0, error = %e, "path read failed");
                break;
            }
        }
    }
    let _ = inbound.send(Inbound::Lost(id)).await;
}

/// What a path's writer task talks to.
struct WriterIo {
    rx: mpsc::Receiver<Bytes>,
    close: oneshot::Receiver<CloseReason>,
    inbound: mpsc::Sender<Inbound>,
    writable: Arc<Notify>,
}

async fn write_loop<W: AsyncWrite + Send + Unpin>(id: PathId, mut wr: W, io: WriterIo) {
    let WriterIo {
        mut rx,
        mut close,
        inbound,
        writable,
    } = io;
    while let Some(chunk) = rx.recv().await {
        writable.notify_one();
        let res = tokio::time::timeout(WRITE_TIMEOUT, async {
            wr.write_all(&chunk).await?;
            wr.flush().await
        })
        .await;
        if !matches!(res, Ok(Ok(()))) {
            tracing::debug!(path = id.0, "path write failed or timed out");
            let _ = inbound.send(Inbound::Lost(id)).await;
            return;
        }
    }
    // The queue is closed: the driver closed the path (its reason was sent first).
    let reason = close.try_recv().unwrap_or(CloseReason::Normal);
    let shutdown = crate::tunnel::shutdown_with(reason, wr.shutdown());
    let _ = tokio::time::timeout(WRITE_TIMEOUT, shutdown).await;
}
