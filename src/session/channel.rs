//! Application channels: ordered, reliable byte streams multiplexed in the session
//! (PROTOCOL.md 7.2), exposed as `AsyncRead + AsyncWrite`.
//!
//! Reads come from a bounded queue the driver fills (a slow reader is backpressure on
//! the whole session, never growth); writes go through the session's bounded bulk queue
//! in frames of at most `MAX_PAYLOAD` bytes. Shutting the write side down sends CLOSE,
//! which ends the channel in both directions (PROTOCOL.md 7.2: no half-close; read what
//! you expect before shutting down); dropping it does the same (best effort when the
//! queue is full).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use rescue_proto::session::frame::MAX_PAYLOAD;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::driver::Bulk;

/// Payloads queued from the driver to one channel's reader: bounds what a slow
/// application channel holds (at most this many frames of `MAX_PAYLOAD`).
pub(crate) const CHANNEL_QUEUE: usize = 16;

/// An application channel of a session.
pub struct AppChannel {
    id: u16,
    label: String,
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
    tx: PollSender<Bulk>,
    closed: bool,
}

impl AppChannel {
    pub(crate) fn new(
        id: u16,
        label: String,
        rx: mpsc::Receiver<Bytes>,
        tx: mpsc::Sender<Bulk>,
    ) -> Self {
        Self {
            id,
            label,
            rx,
            buf: Bytes::new(),
            tx: PollSender::new(tx),
            closed: false,
        }
    }

    /// The channel id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The label given by the side that opened it.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, item: Bulk) -> Poll<io::Result<()>> {
        ready!(self.tx.poll_reserve(cx)).map_err(|_| ended())?;
        self.tx.send_item(item).map_err(|_| ended())?;
        Poll::Ready(Ok(()))
    }
}

fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "session ended")
}

impl AsyncRead for AppChannel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.buf.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.buf = b,
                None => return Poll::Ready(Ok(())), // closed: EOF
            }
        }
        let n = self.buf.len().min(out.remaining());
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AppChannel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(ended()));
        }
        let n = data.len().min(MAX_PAYLOAD);
        let item = Bulk::Data(self.id, Bytes::copy_from_slice(&data[..n]));
        ready!(self.poll_send(cx, item))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued data is the session's: it is delivered reliably, or the session ends.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        let id = self.id;
        ready!(self.poll_send(cx, Bulk::Close(id)))?;
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for AppChannel {
    fn drop(&mut self) {
        if !self.closed {
            if let Some(tx) = self.tx.get_ref() {
                let _ = tx.try_send(Bulk::Close(self.id));
            }
        }
    }
}

impl std::fmt::Debug for AppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppChannel")
            .field("id", &self.id)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}
