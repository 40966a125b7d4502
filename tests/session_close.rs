//! The end of a session (PROTOCOL.md 7.3 and 3.10): the side that receives END has
//! written its ACK and shut its path down (CLOSE) before it reports the session closed,
//! so an application that exits right after cannot cut them off; through a real gateway
//! the other side then sees a clean end with the reason, never PEER_GONE, and the side
//! that ended is answered without waiting out its END linger.

mod common;
mod session_support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use common::{within, Setup as GatewaySetup};
use rescue::io::TapDirection;
use rescue::session::{PathKind, Role, Session, SessionConfig, SessionEvent};
use rescue_proto::session::reliable::END_LINGER;
use rescue_proto::session::EndReason;
use rescue_proto::wire::signal::{Close, CloseReason, Message, PeerGone};
use session_support::{drain, policy, wait_for, Wire, WAIT};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::Sleep;

/// A path whose every write first waits [`Slow::DELAY`], and which records when it was
/// shut down: a slow network under the last frames of a session.
struct Slow<S> {
    inner: S,
    delay: Option<Pin<Box<Sleep>>>,
    shut_down: Arc<AtomicBool>,
}

impl<S> Slow<S> {
    const DELAY: Duration = Duration::from_millis(50);

    fn new(inner: S) -> (Self, Arc<AtomicBool>) {
        let shut_down = Arc::new(AtomicBool::new(false));
        let s = Self {
            inner,
            delay: None,
            shut_down: shut_down.clone(),
        };
        (s, shut_down)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Slow<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slow<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let delay = self
            .delay
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Self::DELAY)));
        ready!(delay.as_mut().poll(cx));
        self.delay = None;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        self.shut_down.store(true, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// Reads events until the stream ends; panics on a lost path or after [`WAIT`].
async fn until_closed(rx: &mut mpsc::Receiver<SessionEvent>, who: &str) {
    let fut = async {
        while let Some(e) = rx.recv().await {
            if let SessionEvent::PathLost { .. } = e {
                panic!("{who}: the path died before the session closed");
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{who}: never closed"));
}

#[tokio::test(start_paused = true)]
async fn the_receiver_of_end_has_sent_its_ack_and_close_when_it_reports_closed() {
    let mut wire = Wire::new();
    let (a, shut_down) = Slow::new(wire.applet.take().unwrap());
    let c = wire.console.take().unwrap();
    let pol = policy(&[], false);
    let mut applet = Session::start(a, PathKind::Relay, SessionConfig::new(Role::Applet, pol));
    let mut console = Session::start(c, PathKind::Relay, SessionConfig::new(Role::Console, pol));
    let (mut a_ev, mut c_ev) = (applet.events().unwrap(), console.events().unwrap());
    applet.chat("ready").await.unwrap();
    wait_for(&mut c_ev, |e| {
        matches!(e, SessionEvent::Chat { .. }).then_some(())
    })
    .await;

    let t0 = tokio::time::Instant::now();
    console.end();
    let by_peer = wait_for(&mut a_ev, |e| match e {
        SessionEvent::Ended { reason, by_peer } => Some((reason, by_peer)),
        _ => None,
    })
    .await;
    assert_eq!(by_peer, (EndReason::Technician, true));
    // What an application does next: wait for the session to close, then exit. By then
    // the ACK and the shutdown (CLOSE on a gateway hop) must be out.
    until_closed(&mut a_ev, "applet").await;
    assert!(
        shut_down.load(Ordering::SeqCst),
        "the applet reported closed before its path was shut down"
    );
    // The console got the ACK: it closed without waiting out its END linger.
    until_closed(&mut c_ev, "console").await;
    assert!(t0.elapsed() < END_LINGER, "closed after {:?}", t0.elapsed());
}

fn frame_bytes(m: Message) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    m.encode(&mut b).unwrap();
    b.to_vec()
}

/// Whether the gateway read (or wrote) `frame` in one chunk.
fn tapped(setup: &GatewaySetup, direction: TapDirection, frame: &[u8]) -> bool {
    let chunks = setup.tap.chunks.lock().unwrap();
    chunks
        .iter()
        .any(|(d, c)| *d == direction && common::contains(c, frame))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_end_the_other_side_sees_close_with_the_reason_never_peer_gone() {
    for (ender, reason, close) in [
        (Role::Applet, EndReason::EndUser, CloseReason::EndUser),
        (
            Role::Console,
            EndReason::Technician,
            CloseReason::Technician,
        ),
    ] {
        let setup = GatewaySetup::start().await;
        let (a, c) = setup.session().await;
        let pol = policy(&[], false);
        let mut applet = Session::start(a, PathKind::Relay, SessionConfig::new(Role::Applet, pol));
        let mut console =
            Session::start(c, PathKind::Relay, SessionConfig::new(Role::Console, pol));
        let (mut a_ev, mut c_ev) = (applet.events().unwrap(), console.events().unwrap());
        let (ending, other_events) = match ender {
            Role::Applet => (&applet, &mut c_ev),
            _ => (&console, &mut a_ev),
        };
        let t0 = std::time::Instant::now();
        ending.end();
        let got = wait_for(other_events, |e| match e {
            SessionEvent::Ended { reason, by_peer } => Some((reason, by_peer)),
            _ => None,
        })
        .await;
        assert_eq!(got, (reason, true));
        until_closed(&mut a_ev, "applet").await;
        until_closed(&mut c_ev, "console").await;
        assert!(t0.elapsed() < END_LINGER, "closed after {:?}", t0.elapsed());
        // The gateway's relay ended on a peer's CLOSE carrying the reason, and it never
        // reported a lost party.
        within(async {
            while setup.gateway.stats().relays_ended == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let close = frame_bytes(Message::Close(Close { reason: close }));
        let gone = frame_bytes(Message::PeerGone(PeerGone { grace_secs: 0 }));
        assert!(
            tapped(&setup, TapDirection::Read, &close),
            "{ender:?} ended: no CLOSE"
        );
        assert!(
            !tapped(&setup, TapDirection::Written, &gone[..4]),
            "{ender:?} ended: PEER_GONE sent"
        );
        drop((applet, console));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applet_that_exits_right_after_the_end_still_acknowledges_it() {
    for _ in 0..5 {
        let setup = GatewaySetup::start().await;
        let (a, c) = setup.session().await;
        let pol = policy(&[], false);
        let mut console =
            Session::start(c, PathKind::Relay, SessionConfig::new(Role::Console, pol));
        let mut c_ev = console.events().unwrap();
        // The applet runs on a runtime of its own, dropped (as a process exits) as soon as
        // its session reports closed; its network is a little slow.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let applet = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (a, _) = Slow::new(a);
                let mut s =
                    Session::start(a, PathKind::Relay, SessionConfig::new(Role::Applet, pol));
                let mut ev = s.events().unwrap();
                let _ = ready_tx.send(());
                let ended = drain(&mut ev).await;
                assert!(ended
                    .iter()
                    .any(|e| matches!(e, SessionEvent::Ended { by_peer: true, .. })));
                drop(s);
            });
            drop(rt);
        });
        ready_rx.await.unwrap();
        let t0 = std::time::Instant::now();
        console.end();
        until_closed(&mut c_ev, "console").await;
        assert!(
            t0.elapsed() < END_LINGER,
            "the console waited {:?} for the ACK",
            t0.elapsed()
        );
        tokio::task::spawn_blocking(move || applet.join())
            .await
            .unwrap()
            .unwrap();
    }
}
