//! The streaming relay's connections (PROTOCOL.md 9.3): JOIN with a token, then the app
//! uploads MEDIA once and every joined console gets it through its own bounded
//! latest-frame queue. The relay never decrypts: it reads the flags byte and forwards
//! the message as it came.
//!
//! Each connection runs a reader and a writer side by side; whichever ends first ends
//! the connection. A console whose writes stall for [`LensConfig::write_timeout`] is
//! dropped, and until then its queue drops late frames to the next keyframe: the
//! others never wait for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use crate::meetings::{lock, Link, RelayFrame};
use crate::token::{self, JoinToken, LensRole};
use crate::wire::{encode_msg, read_msg, write_msg, ByeReason, MsgType, FLAG_KEYFRAME};
use crate::{Lens, LensError};

impl Lens {
    /// Serves relay connections from `listener` until it fails.
    pub async fn serve_relay(&self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (s, _) = listener.accept().await?;
            let _ = s.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move { me.serve_conn(s).await });
        }
    }

    /// Serves one relay connection (any byte stream: TCP, or TLS in front of it).
    pub async fn serve_conn<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, s: S) {
        let Ok(permit) = self.inner.pending.try_acquire() else {
            return; // too many connections without a JOIN: refused at once
        };
        let (mut rd, mut wr) = tokio::io::split(s);
        let cfg = self.inner.cfg;
        let first = timeout(cfg.join_timeout, read_msg(&mut rd)).await;
        let body = match first {
            Ok(Ok(Some((MsgType::Join, body)))) => body,
            _ => return bye(&mut wr, ByeReason::Protocol, cfg.write_timeout).await,
        };
        let attached = token::verify(&body, &self.inner_key(), crate::unix_now())
            .map_err(LensError::from)
            .and_then(|t| self.attach(&t).map(|l| (t, l)));
        let (tok, link) = match attached {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "relay join refused");
                let why = match e {
                    LensError::Full => ByeReason::Full,
                    _ => ByeReason::Refused,
                };
                return bye(&mut wr, why, cfg.write_timeout).await;
            }
        };
        drop(permit);
        let joined = timeout(cfg.write_timeout, write_msg(&mut wr, MsgType::Joined, &[])).await;
        if matches!(joined, Ok(Ok(()))) {
            match tok.role {
                LensRole::App => self.run_app(&tok, &link, rd, wr).await,
                _ => self.run_console(&tok, &link, rd, wr).await,
            }
        }
        self.detach(&tok, &link);
    }

    fn inner_key(&self) -> rescue_crypto::ticket::TicketVerifyKey {
        self.join_key()
    }

    async fn run_app<R, W>(&self, tok: &JoinToken, link: &Arc<Link>, mut rd: R, mut wr: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let cfg = self.inner.cfg;
        let reader = async {
            loop {
                match read_msg(&mut rd).await {
                    Ok(Some((MsgType::Media, body))) => {
                        let keyframe = body[0] & FLAG_KEYFRAME != 0;
                        let msg = encode_msg(MsgType::Media, &body);
                        self.fan_out(&tok.meeting, RelayFrame { keyframe, msg }, Instant::now());
                    }
                    Ok(None) => return None,
                    _ => return Some(ByeReason::Protocol),
                }
            }
        };
        let mut close = link.close.subscribe();
        let writer = async {
            loop {
                tokio::select! {
                    () = link.wake.notified() => {
                        let w = write_msg(&mut wr, MsgType::Keyframe, &[]);
                        if !matches!(timeout(cfg.write_timeout, w).await, Ok(Ok(()))) {
                            return;
                        }
                    }
                    _ = close.changed() => return,
                }
            }
        };
        let why = tokio::select! {
            r = reader => r,
            () = writer => None,
        };
        let why = why.or(*link.close.borrow());
        if let Some(why) = why {
            bye(&mut wr, why, cfg.write_timeout).await;
        }
    }

    async fn run_console<R, W>(&self, tok: &JoinToken, link: &Arc<Link>, mut rd: R, mut wr: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let cfg = self.inner.cfg;
        let stats = &self.inner.stats;
        let reader = async {
            loop {
                match read_msg(&mut rd).await {
                    Ok(Some((MsgType::Keyframe, _))) => {
                        self.keyframe_wanted(&tok.meeting, Instant::now());
                    }
                    Ok(None) => return None,
                    _ => return Some(ByeReason::Protocol),
                }
            }
        };
        let mut close = link.close.subscribe();
        let writer = async {
            loop {
                if let Some(why) = *close.borrow_and_update() {
                    return Some(why);
                }
                loop {
                    let Some(f) = lock(&link.queue).pop(Instant::now()) else {
                        break;
                    };
                    match timeout(cfg.write_timeout, wr.write_all(&f.msg)).await {
                        Ok(Ok(())) => stats.frames_out.fetch_add(1, Ordering::Relaxed),
                        _ => {
                            stats.slow_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("relay: subscriber dropped (did not read)");
                            return None; // its socket is stuck: no BYE can get through
                        }
                    };
                }
                if !matches!(timeout(cfg.write_timeout, wr.flush()).await, Ok(Ok(()))) {
                    return None;
                }
                tokio::select! {
                    () = link.wake.notified() => {}
                    _ = close.changed() => {}
                }
            }
        };
        let why = tokio::select! {
            r = reader => r,
            r = writer => r,
        };
        if let Some(why) = why {
            bye(&mut wr, why, cfg.write_timeout).await;
        }
    }
}

async fn bye<W: AsyncWrite + Unpin>(wr: &mut W, why: ByeReason, t: std::time::Duration) {
    let _ = timeout(t, async {
        let _ = write_msg(wr, MsgType::Bye, &[why as u8]).await;
        let _ = wr.shutdown().await;
    })
    .await;
}
