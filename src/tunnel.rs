//! The peer side of the relay: DATA frames over a gateway hop, as a byte stream.
//!
//! After `PAIRED`, [`DataTunnel`] wraps the outer hop `S` and is itself
//! `AsyncRead + AsyncWrite + Unpin`; the end-to-end TLS session runs over it. A write of
//! `n` bytes goes out as one DATA frame of `min(n, 65536)` bytes (one header per write);
//! reads return DATA payloads. Control frames from the gateway are handled inside:
//!
//! | frame     | effect                                                            |
//! | --------- | ----------------------------------------------------------------- |
//! | PING      | answered with PONG (at the next frame boundary of the write side) |
//! | PONG      | liveness only                                                     |
//! | CLOSE     | end of stream: reads return 0 bytes                               |
//! | PEER_GONE | `io::ErrorKind::ConnectionAborted`, [`TunnelError::PeerGone`]     |
//! | ERROR     | `io::ErrorKind::ConnectionReset`, [`TunnelError::Gateway`]        |
//! | UDP_TOKEN, PEER_ADDR | queued for [`TunnelSignals`] (PROTOCOL.md 3.13)        |
//! | other     | `io::ErrorKind::InvalidData`, [`TunnelError::Protocol`]           |
//!
//! [`DataTunnel::signals`] gives the handle through which the path manager sends
//! RENDEZVOUS (at the next frame boundary) and receives UDP_TOKEN and PEER_ADDR while
//! the end-to-end TLS runs over the tunnel (see [`signals`]).
//!
//! Errors are sticky: once the tunnel failed, every read returns the same error. Use
//! [`is_peer_gone`] or [`tunnel_error`] to tell them apart. Shutting the tunnel down
//! sends CLOSE and shuts the hop down; the reason is the one of [`shutdown_with`] when
//! the shutdown runs inside it (a session closing its paths: the tunnel is deep inside
//! the end-to-end stream it was handed), else [`DataTunnel::set_close_reason`]'s.
//!
//! What it never does: it never buffers more than one frame of written data, never
//! allocates on peer input (one fixed read buffer), never sends an empty DATA frame,
//! and never sends anything but DATA, PING, PONG, CLOSE and (when asked) RENDEZVOUS.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rescue_proto::wire::frame::{FrameType, Header, HEADER_LEN, MAX_PAYLOAD};
use rescue_proto::wire::scan::{Direction, FrameScanner, Scan};
use rescue_proto::wire::signal::{Close, CloseReason, ErrorCode, Message, Ping, Rendezvous};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::relay::frame::{self as ctl, Control};
use crate::relay::FrameViolation;

pub mod signals;

pub use signals::{TunnelGone, TunnelSignal, TunnelSignals, MAX_QUEUED_SIGNALS};

/// Read buffer of a tunnel: holds one maximal frame; larger payload reads go straight
/// into the caller's buffer.
pub const TUNNEL_READ_BUFFER: usize = HEADER_LEN + MAX_PAYLOAD;

/// Keepalive intervals without any frame from the gateway after which the hop is dead
/// (PROTOCOL.md section 5: `IDLE_TIMEOUT` is three `PING_INTERVAL`s).
pub const KEEPALIVE_MISSES: u32 = 3;

/// A payload read goes straight into the caller's buffer from this size on (no copy).
const DIRECT_READ_MIN: usize = 4096;

tokio::task_local! {
    /// The CLOSE reason of tunnels shut down inside [`shutdown_with`].
    static CLOSE_REASON: CloseReason;
}

/// Runs `fut` (typically the shutdown of a stream with a [`DataTunnel`] somewhere
/// inside it, such as the end-to-end TLS stream of a session path) so that a tunnel shut
/// down while it runs sends `CLOSE{reason}` (PROTOCOL.md 3.10).
pub async fn shutdown_with<F: Future>(reason: CloseReason, fut: F) -> F::Output {
    CLOSE_REASON.scope(reason, fut).await
}

/// Why a tunnel failed; the inner error of the `io::Error`s a [`DataTunnel`] returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The other party left (`PEER_GONE`); io kind `ConnectionAborted`. It may come
    /// back within `grace_secs` (0: the session has ended).
    #[error("the other party left (grace {grace_secs} s)")]
    PeerGone {
        /// Seconds the other party has to reattach.
        grace_secs: u32,
    },
    /// The gateway sent `ERROR`; io kind `ConnectionReset`.
    #[error("the gateway ended the hop: {0:?}")]
    Gateway(ErrorCode),
    /// The gateway sent a frame not allowed here, or a malformed one; io kind
    /// `InvalidData`.
    #[error("protocol violation by the gateway: {0}")]
    Protocol(FrameViolation),
    /// No frame from the gateway for [`KEEPALIVE_MISSES`] keepalive intervals; io kind
    /// `TimedOut`.
    #[error("no frame from the gateway for {0:?}")]
    KeepaliveTimeout(Duration),
}

impl TunnelError {
    /// The `io::ErrorKind` this error is reported with.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            TunnelError::PeerGone { .. } => io::ErrorKind::ConnectionAborted,
            TunnelError::Gateway(_) => io::ErrorKind::ConnectionReset,
            TunnelError::Protocol(_) => io::ErrorKind::InvalidData,
            TunnelError::KeepaliveTimeout(_) => io::ErrorKind::TimedOut,
        }
    }
}

impl From<TunnelError> for io::Error {
    fn from(e: TunnelError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// The tunnel error inside an `io::Error` returned by a [`DataTunnel`], if any.
pub fn tunnel_error(e: &io::Error) -> Option<&TunnelError> {
    e.get_ref()?.downcast_ref::<TunnelError>()
}

/// Whether `e` says the other party left (the gateway sent `PEER_GONE`).
pub fn is_peer_gone(e: &io::Error) -> bool {
    matches!(tunnel_error(e), Some(TunnelError::PeerGone { .. }))
}

/// DATA frames over a gateway hop, as a byte stream (see the module docs).
pub struct DataTunnel<S> {
    inner: S,
    rbuf: Box<[u8]>,
    rpos: usize,
    rfilled: usize,
    /// The frame rules of what the gateway sends (where the current DATA frame ends).
    scanner: FrameScanner,
    eof: bool,
    failed: Option<TunnelError>,
    /// The unsent rest of the DATA frame being written (at most one frame).
    wbuf: Vec<u8>,
    wpos: usize,
    /// A control frame to send after `wbuf`.
    ctl: Option<(Control, usize)>,
    close_reason: CloseReason,
    close_queued: bool,
    keepalive: Option<Keepalive>,
    /// Gateway signalling (RENDEZVOUS out, UDP_TOKEN and PEER_ADDR in).
    signals: signals::Guard,
}

/// PING scheduling on an idle hop.
struct Keepalive {
    interval: Duration,
    sleep: Pin<Box<Sleep>>,
    last_rx: Instant,
    nonce: u64,
}

impl<S> std::fmt::Debug for DataTunnel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTunnel")
            .field("remaining", &self.scanner.remaining())
            .field("eof", &self.eof)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<S> DataTunnel<S> {
    /// Wraps a hop that has just received `PAIRED` (no keepalive).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rbuf: vec![0; TUNNEL_READ_BUFFER].into_boxed_slice(),
            rpos: 0,
            rfilled: 0,
            scanner: FrameScanner::new(Direction::FromGateway, std::time::Instant::now()),
            eof: false,
            failed: None,
            wbuf: Vec::new(),
            wpos: 0,
            ctl: None,
            close_reason: CloseReason::Normal,
            close_queued: false,
            keepalive: None,
            signals: signals::Guard::default(),
        }
    }

    /// The handle on this tunnel's gateway signalling (RENDEZVOUS, UDP_TOKEN,
    /// PEER_ADDR); it stays valid, reporting [`TunnelGone`], after the tunnel is gone.
    pub fn signals(&self) -> TunnelSignals {
        TunnelSignals::new(self.signals.0.clone())
    }

    /// Sends PING when nothing came from the gateway for `interval` (the protocol's
    /// `PING_INTERVAL` is 15 s), and fails with [`TunnelError::KeepaliveTimeout`] after
    /// [`KEEPALIVE_MISSES`] intervals of silence. Timers run while the tunnel is polled
    /// (a reader is always pending on a live session). Needs a tokio runtime.
    pub fn with_keepalive(mut self, interval: Duration) -> Self {
        let now = Instant::now();
        self.keepalive = Some(Keepalive {
            interval,
            sleep: Box::pin(tokio::time::sleep_until(now + interval)),
            last_rx: now,
            nonce: 0,
        });
        self
    }

    /// The reason sent in CLOSE when the tunnel is shut down (default: normal).
    pub fn set_close_reason(&mut self, reason: CloseReason) {
        self.close_reason = reason;
    }

    /// The wrapped hop.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the hop; bytes read from it but not yet returned are lost.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Unwraps the hop for further framed use (a reconnect reads it again): the bytes
    /// read from it but not yet handled, from the next frame boundary on (a PEER_GONE
    /// or ERROR that failed the tunnel is still among them), and how many payload bytes
    /// of the DATA frame being read are still to come from the hop (skip them first).
    pub fn into_parts(self) -> (S, bytes::Bytes, usize) {
        let buffered = self.rbuf.get(self.rpos..self.rfilled).unwrap_or_default();
        let remaining = self.scanner.remaining();
        let skip_now = remaining.min(buffered.len());
        let rest = buffered.get(skip_now..).unwrap_or_default();
        let rest = bytes::Bytes::copy_from_slice(rest);
        (self.inner, rest, remaining - skip_now)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> DataTunnel<S> {
    /// Writes the pending frame rest and control frame; ready when nothing is pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let rest = self.wbuf.get(self.wpos..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        loop {
            if self.ctl.is_none() && self.signals.0.take_rendezvous() {
                // At a frame boundary: nothing of a DATA frame is pending.
                self.ctl = Control::new(&Message::Rendezvous(Rendezvous)).map(|c| (c, 0));
            }
            let Some((frame, pos)) = self.ctl.as_mut() else {
                break;
            };
            let rest = frame.as_bytes().get(*pos..).unwrap_or_default();
            if rest.is_empty() {
                self.ctl = None;
                continue;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *pos += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a control frame; pending while another one is still going out.
    fn poll_queue(&mut self, cx: &mut Context<'_>, frame: Control) -> Poll<io::Result<()>> {
        if self.ctl.is_some() {
            ready!(self.poll_drain(cx))?;
        }
        self.ctl = Some((frame, 0));
        // Best effort now; a later read, write or flush finishes it.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(()))
    }

    fn fail(&mut self, e: TunnelError) -> io::Error {
        tracing::debug!(error = %e, "tunnel failed");
        self.failed = Some(e.clone());
        e.into()
    }

    /// Sends PING or fails when the gateway has been silent too long.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(k) = self.keepalive.as_mut() else {
            return Poll::Pending;
        };
        if k.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = Instant::now();
        let silent = now.saturating_duration_since(k.last_rx);
        if silent >= k.interval * KEEPALIVE_MISSES {
            let timeout = k.interval * KEEPALIVE_MISSES;
            return Poll::Ready(Err(self.fail(TunnelError::KeepaliveTimeout(timeout))));
        }
        let next = if silent >= k.interval {
            k.nonce = k.nonce.wrapping_add(1);
            Some(k.nonce)
        } else {
            None
        };
        let wake_at = if next.is_some() { now } else { k.last_rx } + k.interval;
        k.sleep.as_mut().reset(wake_at);
        if let Some(nonce) = next {
            if let Some(ping) = Control::new(&Message::Ping(Ping { nonce })) {
                ready!(self.poll_queue(cx, ping))?;
            }
        }
        // Registers the re-armed timer.
        self.poll_keepalive(cx)
    }

    /// Reads more bytes from the hop into the read buffer; `Ok(false)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.rpos == self.rfilled {
            (self.rpos, self.rfilled) = (0, 0);
        } else if self.rfilled == self.rbuf.len() {
            self.rbuf.copy_within(self.rpos..self.rfilled, 0);
            (self.rpos, self.rfilled) = (0, self.rfilled - self.rpos);
        }
        let space = self.rbuf.get_mut(self.rfilled..).unwrap_or_default();
        let mut rb = ReadBuf::new(space);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.rfilled += n;
        if n > 0 {
            self.saw_traffic();
        }
        Poll::Ready(Ok(n > 0))
    }

    fn saw_traffic(&mut self) {
        if let Some(k) = self.keepalive.as_mut() {
            k.last_rx = Instant::now();
        }
    }

    /// Handles the frame header at `rpos` (whole control frames only). Returns
    /// `Ok(false)` when more bytes are needed.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let avail = self.rbuf.get(self.rpos..self.rfilled).unwrap_or_default();
        // The rules are rescue-proto's (the relay core reads with the same scanner).
        let (msg, len) = match self.scanner.scan(avail, std::time::Instant::now()) {
            Scan::Incomplete => return Poll::Ready(Ok(false)),
            Scan::Violation(v) => return self.violation(v),
            Scan::Forward(_) => {
                self.rpos += HEADER_LEN;
                return Poll::Ready(Ok(true));
            }
            Scan::Control { msg, len } => (msg, len),
            _ => return Poll::Ready(Ok(false)),
        };
        let code = msg.frame_type().code();
        match msg {
            Message::Ping(p) => ready!(self.poll_queue(cx, ctl::pong(p.nonce)))?,
            Message::Pong(_) => {}
            Message::Close(_) => self.eof = true,
            Message::PeerGone(g) => {
                let e = TunnelError::PeerGone {
                    grace_secs: g.grace_secs,
                };
                return Poll::Ready(Err(self.fail(e)));
            }
            Message::Error(e) => return Poll::Ready(Err(self.fail(TunnelError::Gateway(e.code)))),
            Message::UdpToken(t) => self.signals.0.push(TunnelSignal::UdpToken(t)),
            Message::PeerAddr(a) => self.signals.0.push(TunnelSignal::PeerAddr(a)),
            _ => return self.violation(FrameViolation::UnexpectedType(code)),
        }
        self.rpos += len;
        Poll::Ready(Ok(true))
    }

    fn violation(&mut self, v: FrameViolation) -> Poll<io::Result<bool>> {
        Poll::Ready(Err(self.fail(TunnelError::Protocol(v))))
    }

    /// Copies payload bytes of the current frame out, or reads them straight into
    /// `buf` when the read buffer is empty and `buf` is large.
    fn poll_payload(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let buffered = self.rfilled - self.rpos;
        if buffered > 0 {
            let n = buffered.min(buf.remaining());
            let n = self.scanner.take_payload(n, std::time::Instant::now());
            let src = self.rbuf.get(self.rpos..self.rpos + n).unwrap_or_default();
            buf.put_slice(src);
            self.rpos += n;
            return Poll::Ready(Ok(()));
        }
        let want = self.scanner.remaining().min(buf.remaining());
        if want < DIRECT_READ_MIN {
            if !ready!(self.poll_fill(cx))? {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            return self.poll_payload(cx, buf);
        }
        let dst = buf.initialize_unfilled_to(want);
        let mut rb = ReadBuf::new(dst);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.advance(n);
        self.scanner.take_payload(n, std::time::Instant::now());
        self.saw_traffic();
        Poll::Ready(Ok(()))
    }

    fn poll_read_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(e) = &self.failed {
                return Poll::Ready(Err(e.clone().into()));
            }
            if self.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !self.scanner.at_boundary() {
                return self.poll_payload(cx, buf);
            }
            if ready!(self.poll_frame(cx))? {
                continue;
            }
            if !ready!(self.poll_fill(cx))? {
                // The hop ended without CLOSE: the gateway (or the path to it) is gone.
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for DataTunnel<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A PONG queued by an earlier read goes out even if the app never writes.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        match this.poll_read_inner(cx, buf) {
            Poll::Pending => {
                // A RENDEZVOUS requested from now on wakes this reader to send it.
                this.signals.0.register(cx.waker());
                if this.ctl.is_none() && this.wbuf.is_empty() {
                    if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
                ready!(this.poll_keepalive(cx))?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DataTunnel<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let payload = buf.get(..MAX_PAYLOAD).unwrap_or(buf);
        let header = match Header::new(FrameType::Data, payload.len()) {
            Ok(h) => h.to_bytes(),
            Err(e) => return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidInput, e))),
        };
        let frame_len = HEADER_LEN + payload.len();
        let sent = if this.inner.is_write_vectored() {
            let bufs = [io::IoSlice::new(&header), io::IoSlice::new(payload)];
            ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs))?
        } else {
            0
        };
        if sent < frame_len {
            // Commit the rest of the frame: it goes out before anything else.
            this.wbuf.clear();
            this.wbuf
                .extend_from_slice(header.get(sent.min(HEADER_LEN)..).unwrap_or_default());
            this.wbuf.extend_from_slice(
                payload
                    .get(sent.saturating_sub(HEADER_LEN)..)
                    .unwrap_or_default(),
            );
            this.wpos = 0;
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(payload.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.close_queued {
            let reason = CLOSE_REASON.try_with(|r| *r).unwrap_or(this.close_reason);
            if let Some(close) = Control::new(&Message::Close(Close { reason })) {
                this.ctl = Some((close, 0));
            }
            this.close_queued = true;
            ready!(this.poll_drain(cx))?;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_sends_close_with_the_scoped_reason() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for (scoped, want) in [
            (None, CloseReason::Normal),
            (Some(CloseReason::EndUser), CloseReason::EndUser),
            (Some(CloseReason::Technician), CloseReason::Technician),
        ] {
            let (hop, mut gateway) = tokio::io::duplex(1024);
            let mut t = DataTunnel::new(hop);
            match scoped {
                Some(r) => shutdown_with(r, t.shutdown()).await.unwrap(),
                None => t.shutdown().await.unwrap(),
            }
            let mut got = Vec::new();
            gateway.read_to_end(&mut got).await.unwrap();
            let close = Control::new(&Message::Close(Close { reason: want })).unwrap();
            assert_eq!(got, close.as_bytes(), "{scoped:?}");
        }
    }

    #[test]
    fn tunnel_errors_keep_their_kind_through_io_error() {
        let e: io::Error = TunnelError::PeerGone { grace_secs: 0 }.into();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(is_peer_gone(&e));
        let e: io::Error = TunnelError::Gateway(ErrorCode::ShuttingDown).into();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(!is_peer_gone(&e));
        assert_eq!(
            tunnel_error(&e),
            Some(&TunnelError::Gateway(ErrorCode::ShuttingDown))
        );
        assert_eq!(tunnel_error(&io::ErrorKind::Other.into()), None);
    }
}
