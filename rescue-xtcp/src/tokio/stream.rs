//! [`XtcpStream`]: one XTCP connection as `AsyncRead + AsyncWrite`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::driver::{ConnSlot, Shared, State};
use crate::{CloseReason, ConnectionHandle, ConnectionStats, ReadError, WriteError};

/// Bytes read before the driver is woken to announce the opened window (it is woken
/// anyway when a read finds nothing left). Well below the core's own update threshold
/// (a quarter of the receive buffer), so no update is held back by this.
const READ_WAKE_BYTES: usize = 64 << 10;
/// Unacknowledged bytes above which a write does not wake the driver: an ACK or a
/// retransmission timer is then due and runs it.
const WRITE_WAKE_OUTSTANDING: usize = 256 << 10;

/// One XTCP connection: a reliable, ordered byte stream.
///
/// Writes return `Pending` while the connection's send buffer is full and resume when the
/// peer acknowledges data. `poll_shutdown` sends FIN (the read side stays open until the
/// peer's FIN, which reads as end of stream). Dropping the stream closes it gracefully.
#[derive(Debug)]
pub struct XtcpStream {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
    peer: SocketAddr,
    shut_down: bool,
    /// Bytes read since the driver was last woken to announce the opened window.
    unannounced: usize,
}

impl XtcpStream {
    pub(crate) fn new(shared: Arc<Shared>, handle: ConnectionHandle, peer: SocketAddr) -> Self {
        Self {
            shared,
            handle,
            peer,
            shut_down: false,
            unannounced: 0,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// A snapshot of the connection's counters (`None` once the connection is gone).
    pub fn stats(&self) -> Option<ConnectionStats> {
        let mut state = self.shared.lock();
        state
            .endpoint
            .connection(self.handle)
            .map(|c| c.stats().clone())
    }

    /// Resets the connection at once (RST); unsent and unread data are discarded.
    pub fn abort(&self) {
        let mut state = self.shared.lock();
        if let Some(c) = state.endpoint.connection(self.handle) {
            c.abort();
        }
        state.wake_driver();
    }
}

impl AsyncRead for XtcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        let mut guard = this.shared.lock();
        let (conn, slot, driver) = match parts(&mut guard, this.handle) {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match conn.read(buf.initialize_unfilled()) {
            Ok(Some(n)) => {
                buf.advance(n);
                // Reading opens the window; the driver sends the update. Waking it for
                // every small read (TLS reads a few KiB at a time) costs a poll each.
                this.unannounced += n;
                if this.unannounced >= READ_WAKE_BYTES {
                    this.unannounced = 0;
                    wake(driver);
                }
                Poll::Ready(Ok(()))
            }
            Ok(None) => {
                if let Some(reason) = &slot.closed {
                    return Poll::Ready(Err(close_error(reason)));
                }
                slot.read = Some(cx.waker().clone());
                // About to wait for data: whatever window we opened must be announced.
                if this.unannounced > 0 {
                    this.unannounced = 0;
                    wake(driver);
                }
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(read_error(e))),
        }
    }
}

impl AsyncWrite for XtcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut_down {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut guard = self.shared.lock();
        let (conn, slot, driver) = match parts(&mut guard, self.handle) {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let outstanding = conn.unacked_bytes();
        match conn.write(buf) {
            Ok(n) => {
                // With much data outstanding, the next ACK or timer runs the driver,
                // which sends this too; otherwise wake it now.
                if outstanding < WRITE_WAKE_OUTSTANDING {
                    wake(driver);
                }
                Poll::Ready(Ok(n))
            }
            Err(WriteError::Blocked) => {
                slot.write = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(write_error(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the connection's send buffer; the driver sends them as the
        // window allows, like a kernel TCP socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut_down {
            self.shut_down = true;
            let mut state = self.shared.lock();
            if let Some(c) = state.endpoint.connection(self.handle) {
                c.close();
            }
            state.wake_driver();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for XtcpStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if !self.shut_down {
            if let Some(c) = state.endpoint.connection(self.handle) {
                c.close();
            }
        }
        if let Some(slot) = state.conns.get_mut(&self.handle) {
            slot.released = true;
            slot.read = None;
            slot.write = None;
            slot.connect = None;
        }
        state.wake_driver();
    }
}

/// The connection, its slot and the driver's waker, or the error for a gone connection.
fn parts(
    state: &mut State,
    handle: ConnectionHandle,
) -> io::Result<(&mut crate::Connection, &mut ConnSlot, &mut Option<Waker>)> {
    let State {
        endpoint,
        conns,
        driver,
        ..
    } = state;
    let Some(slot) = conns.get_mut(&handle) else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    match endpoint.connection(handle) {
        Some(conn) => Ok((conn, slot, driver)),
        None => Err(slot
            .closed
            .as_ref()
            .map_or_else(|| io::ErrorKind::NotConnected.into(), close_error)),
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// The I/O error for a connection that closed for `reason`.
pub(crate) fn close_error(reason: &CloseReason) -> io::Error {
    let kind = match reason {
        CloseReason::TimedOut => io::ErrorKind::TimedOut,
        CloseReason::Reset => io::ErrorKind::ConnectionReset,
        CloseReason::Refused => io::ErrorKind::ConnectionRefused,
        CloseReason::Aborted => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, format!("XTCP connection closed: {reason:?}"))
}

fn read_error(e: ReadError) -> io::Error {
    let ReadError::Closed(r) = e;
    close_error(&r)
}

fn write_error(e: WriteError) -> io::Error {
    match e {
        WriteError::Closed(r) => close_error(&r),
        _ => io::Error::new(io::ErrorKind::BrokenPipe, e),
    }
}
