//! [`XtcpStream`]: one XTCP connection as `AsyncRead + AsyncWrite`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::driver::{ConnSlot, Shared, State};
use crate::{CloseReason, ConnectionHandle, ConnectionStats, ReadError, WriteError};

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
}

impl XtcpStream {
    pub(crate) fn new(shared: Arc<Shared>, handle: ConnectionHandle, peer: SocketAddr) -> Self {
        Self {
            shared,
            handle,
            peer,
            shut_down: false,
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

    /// Runs `f` on the connection and its slot, or fails with the reason it is gone.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut crate::Connection, &mut ConnSlot) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut guard = self.shared.lock();
        let State {
            endpoint, conns, ..
        } = &mut *guard;
        let Some(slot) = conns.get_mut(&self.handle) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        match endpoint.connection(self.handle) {
            Some(conn) => f(conn, slot),
            None => Err(slot
                .closed
                .as_ref()
                .map_or_else(|| io::ErrorKind::NotConnected.into(), close_error)),
        }
    }
}

impl AsyncRead for XtcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let res = self.with_conn(|conn, slot| match conn.read(buf.initialize_unfilled()) {
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => match &slot.closed {
                Some(reason) => Err(close_error(reason)),
                None => {
                    slot.read = Some(cx.waker().clone());
                    Ok(None)
                }
            },
            Err(e) => Err(read_error(e)),
        });
        match res {
            Ok(Some(n)) => {
                buf.advance(n);
                // Reading opened the window: the driver may owe the peer an update.
                self.shared.lock().wake_driver();
                Poll::Ready(Ok(()))
            }
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
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
        let res = self.with_conn(|conn, slot| match conn.write(buf) {
            Ok(n) => Ok(Some(n)),
            Err(WriteError::Blocked) => {
                slot.write = Some(cx.waker().clone());
                Ok(None)
            }
            Err(e) => Err(write_error(e)),
        });
        match res {
            Ok(Some(n)) => {
                self.shared.lock().wake_driver();
                Poll::Ready(Ok(n))
            }
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
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
