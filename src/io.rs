//! Small stream adapters used by the roles: a boxed duplex stream type, a stream that
//! replays bytes already read (`Rewind`), and an observation hook ([`Tap`]) that sees
//! every byte a gateway hop reads or writes after outer-TLS decryption.
//!
//! These adapters never buffer beyond what they are given: `Rewind` holds only the
//! prefix handed to it, `Tapped` copies nothing.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A duplex byte stream the roles can box: TCP, TLS over TCP, or a test double.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + ?Sized> Duplex for T {}

/// A boxed [`Duplex`] stream: one gateway hop or one peer's outer connection.
pub type BoxStream = Box<dyn Duplex>;

/// Which way bytes went through a tapped hop, seen from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TapDirection {
    /// Bytes the gateway read from a peer (after outer-TLS decryption).
    Read,
    /// Bytes the gateway wrote to a peer (before outer-TLS encryption).
    Written,
}

/// An observer of every plaintext byte a gateway hop reads or writes (the bytes inside
/// the outer TLS). Used by tests to prove the gateway never sees end-to-end plaintext,
/// and usable for metrics. It must be cheap: it runs inside the I/O path.
pub trait Tap: Send + Sync {
    /// Called with every chunk read from or written to a hop.
    fn observe(&self, direction: TapDirection, bytes: &[u8]);
}

/// A stream that reports every byte through a [`Tap`].
pub(crate) struct Tapped<S> {
    inner: S,
    tap: Arc<dyn Tap>,
}

impl<S> Tapped<S> {
    /// Wraps `inner`, reporting through `tap`.
    pub(crate) fn new(inner: S, tap: Arc<dyn Tap>) -> Self {
        Self { inner, tap }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            // A read only appends to `buf`, so `before` is within it; `get` keeps a
            // misbehaving inner stream from panicking us.
            if let Some(new) = buf.filled().get(before..).filter(|n| !n.is_empty()) {
                self.tap.observe(TapDirection::Read, new);
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            // `n <= buf.len()` is the AsyncWrite contract; `get` keeps a broken inner
            // stream from panicking us.
            if let Some(sent) = buf.get(..n) {
                self.tap.observe(TapDirection::Written, sent);
            }
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream that first yields `prefix` (bytes already read from `inner`, e.g. left in a
/// codec buffer), then reads from `inner`. Writes go straight to `inner`.
pub(crate) struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// Replays `prefix` before reading `inner`.
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            // `n <= prefix.len()`, so the slice is in bounds.
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(TapDirection, Vec<u8>)>>);

    impl Tap for Recorder {
        fn observe(&self, direction: TapDirection, bytes: &[u8]) {
            if let Ok(mut v) = self.0.lock() {
                v.push((direction, bytes.to_vec()));
            }
        }
    }

    #[tokio::test]
    async fn rewind_replays_prefix_then_inner() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"world").await.unwrap();
        drop(a);
        let mut r = Rewind::new(Bytes::from_static(b"hello "), b);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn tap_sees_reads_and_writes() {
        let (a, mut b) = tokio::io::duplex(64);
        let rec = Arc::new(Recorder::default());
        let mut t = Tapped::new(a, rec.clone());
        t.write_all(b"out").await.unwrap();
        b.write_all(b"in").await.unwrap();
        let mut buf = [0u8; 2];
        t.read_exact(&mut buf).await.unwrap();
        let seen = rec.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (TapDirection::Written, b"out".to_vec()),
                (TapDirection::Read, b"in".to_vec())
            ]
        );
    }
}
