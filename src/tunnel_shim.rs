//! TEMPORARY stand-in for `crate::tunnel::DataTunnel` (being written by the relay
//! engineer) so the roles can be tested; removed when it lands.
#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use rescue_proto::wire::frame::{FrameType, Header, HEADER_LEN, MAX_PAYLOAD};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// DATA frames over a hop, as a byte stream.
pub struct DataTunnel<S> {
    inner: S,
    rbuf: BytesMut,
    remaining: usize,
    eof: bool,
    wbuf: BytesMut,
}

#[derive(Debug)]
struct PeerGone;
impl std::fmt::Display for PeerGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("peer gone")
    }
}
impl std::error::Error for PeerGone {}

/// Whether `e` says the other party left.
pub fn is_peer_gone(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<PeerGone>())
}

impl<S> DataTunnel<S> {
    /// Wraps a hop.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rbuf: BytesMut::new(),
            remaining: 0,
            eof: false,
            wbuf: BytesMut::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> DataTunnel<S> {
    fn fill(&mut self, cx: &mut Context<'_>, need: usize) -> Poll<io::Result<bool>> {
        while self.rbuf.len() < need {
            let mut tmp = [0u8; 16384];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(false));
            }
            self.rbuf.extend_from_slice(rb.filled());
        }
        Poll::Ready(Ok(true))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for DataTunnel<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.remaining > 0 {
                if this.rbuf.is_empty() && !ready!(this.fill(cx, 1))? {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                let n = this.remaining.min(this.rbuf.len()).min(buf.remaining());
                buf.put_slice(&this.rbuf[..n]);
                this.rbuf.advance(n);
                this.remaining -= n;
                return Poll::Ready(Ok(()));
            }
            if !ready!(this.fill(cx, HEADER_LEN))? {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    PeerGone,
                )));
            }
            let h = Header::parse(&this.rbuf[..HEADER_LEN])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            match h.frame_type {
                FrameType::Data => {
                    this.rbuf.advance(HEADER_LEN);
                    this.remaining = h.payload_len;
                }
                FrameType::Close => {
                    this.eof = true;
                }
                FrameType::PeerGone | FrameType::Error => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        PeerGone,
                    )));
                }
                _ => {
                    if !ready!(this.fill(cx, HEADER_LEN + h.payload_len))? {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                    this.rbuf.advance(HEADER_LEN + h.payload_len);
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DataTunnel<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.as_mut().poll_flush_buf(cx))?;
        let n = buf.len().min(MAX_PAYLOAD);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let h = Header::new(FrameType::Data, n).map_err(|e| io::Error::other(e.to_string()))?;
        self.wbuf.extend_from_slice(&h.to_bytes());
        self.wbuf.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> DataTunnel<S> {
    fn poll_flush_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.wbuf.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}
