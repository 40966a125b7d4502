//! Control frames waiting for a frame boundary on one hop's write side.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use super::frame::Control;

/// Control frames waiting for a frame boundary on one hop's write side: at most
/// [`OUTBOX_SLOTS`] (a PONG, and with the gateway's signalling one UDP_TOKEN or
/// PEER_ADDR). Fixed slots: nothing is allocated per frame.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    frames: [Option<Control>; OUTBOX_SLOTS],
    pos: usize,
    ops: u64,
}

/// Control frames one hop's outbox holds.
const OUTBOX_SLOTS: usize = 2;

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.frames[0].is_none()
    }

    /// Whether another frame fits.
    pub(super) fn has_room(&self) -> bool {
        self.frames.iter().any(Option::is_none)
    }

    /// Count of frames queued plus frames sent, to detect progress.
    pub(super) fn ops(&self) -> u64 {
        self.ops
    }

    /// Queues `c` behind the frames already queued; `false` (nothing queued) when
    /// full. An empty frame is dropped (nothing to send).
    pub(super) fn put(&mut self, c: Control) -> bool {
        if c.as_bytes().is_empty() {
            return true;
        }
        let Some(slot) = self.frames.iter_mut().find(|f| f.is_none()) else {
            return false;
        };
        *slot = Some(c);
        self.ops += 1;
        true
    }

    pub(super) fn poll_write<W: AsyncWrite>(
        &mut self,
        cx: &mut Context<'_>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<()>> {
        while let Some(f) = &self.frames[0] {
            let rest = f.as_bytes().get(self.pos..).unwrap_or_default();
            let n = ready!(w.as_mut().poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
            if self.pos >= f.as_bytes().len() {
                self.frames.rotate_left(1);
                self.frames[OUTBOX_SLOTS - 1] = None;
                self.pos = 0;
                self.ops += 1;
            }
        }
        Poll::Ready(Ok(()))
    }
}
