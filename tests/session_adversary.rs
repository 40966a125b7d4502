//! A hostile console (the sans-IO core driven by hand, no `Session`) against a real
//! applet `Session`: actions without a grant are refused, forged answers end the
//! session, malformed input is rejected without a panic.

mod session_support;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rescue::session::{PathKind, Role, Session, SessionConfig, SessionEvent};
use rescue_proto::session::control::ControlMsg;
use rescue_proto::session::file::FileMsg;
use rescue_proto::session::frame::FrameCodec;
use rescue_proto::session::reliable::{Config, Event};
use rescue_proto::session::{EndReason, PathId, Reliable, CHAT, CONTROL, FILE};
use rescue_proto::{Permission, PermissionSet};
use session_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::Decoder;

const P: PathId = PathId(0);

struct Raw {
    core: Reliable,
    io: DuplexStream,
    rx: BytesMut,
}

impl Raw {
    fn new(io: DuplexStream) -> Self {
        let mut core = Reliable::new(Role::Console, Config::default(), Instant::now());
        core.on_path_up(Instant::now(), P).unwrap();
        Self {
            core,
            io,
            rx: BytesMut::new(),
        }
    }

    async fn send(&mut self, ch: u16, payload: Bytes) {
        self.core.send(ch, payload).unwrap();
        self.flush().await;
    }

    async fn flush(&mut self) {
        let mut out = BytesMut::new();
        while self.core.poll_transmit(Instant::now(), P, &mut out) {}
        self.io.write_all(&out).await.unwrap();
    }

    /// The next core event, reading frames as needed.
    async fn event(&mut self) -> Event {
        let fut = async {
            loop {
                if let Some(e) = self.core.poll_event() {
                    return e;
                }
                while let Some(f) = FrameCodec.decode(&mut self.rx).unwrap() {
                    let _ = self.core.handle_frame(Instant::now(), P, f);
                }
                if let Some(e) = self.core.poll_event() {
                    return e;
                }
                self.flush().await;
                let mut buf = [0u8; 4096];
                let n = self.io.read(&mut buf).await.unwrap();
                assert!(n > 0, "applet closed the path");
                self.rx.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(WAIT, fut).await.expect("no event")
    }

    async fn data_on(&mut self, ch: u16) -> Bytes {
        loop {
            if let Event::Data { channel, payload } = self.event().await {
                if channel == ch {
                    return payload;
                }
            }
        }
    }
}

fn applet(allowed: &[Permission], dir: Option<&std::path::Path>) -> (Session, Raw) {
    let (a, c) = tokio::io::duplex(PIPE);
    let mut cfg = SessionConfig::new(Role::Applet, policy(allowed, false));
    cfg.download_dir = dir.map(ToOwned::to_owned);
    let consent = Recorder::new(Some(rescue::session::ConsentAnswer::Allow));
    cfg.consent = Some(rescue::session::ConsentConfig::new(consent));
    (Session::start(a, PathKind::Relay, cfg), Raw::new(c))
}

#[tokio::test]
async fn a_file_offered_without_a_grant_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut raw) = applet(&[Permission::FileTransfer], Some(dir.path()));
    let mut ev = s.events().unwrap();
    let offer = FileMsg::Offer {
        id: 7,
        size: 3,
        name: "evil.sh".into(),
    };
    raw.send(FILE, offer.encode()).await;
    let chunk = FileMsg::Chunk {
        id: 7,
        offset: 0,
        data: Bytes::from_static(b"abc"),
    };
    raw.send(FILE, chunk.encode()).await;
    let reply = FileMsg::decode(&raw.data_on(FILE).await).unwrap();
    assert_eq!(reply, FileMsg::Reject { id: 7 });
    wait_for(&mut ev, |e| match e {
        SessionEvent::FileFailed { .. } => Some(()),
        SessionEvent::FileOffered { .. } => panic!("offer accepted without a grant"),
        _ => None,
    })
    .await;
    assert!(wait_entries(dir.path(), 0).await.is_empty());
}

#[tokio::test]
async fn a_forged_grant_ends_the_session() {
    let (mut s, mut raw) = applet(&[Permission::Reboot], None);
    let mut ev = s.events().unwrap();
    let forged = ControlMsg::Grant {
        request_id: 1,
        grant_id: 1,
        permissions: PermissionSet::ALL,
    };
    raw.send(CONTROL, forged.encode()).await;
    let reason = wait_for(&mut ev, |e| match e {
        SessionEvent::Ended { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::ProtocolError);
    assert!(s.grants().is_empty());
}

#[tokio::test]
async fn malformed_chat_is_dropped_and_the_session_goes_on() {
    let (mut s, mut raw) = applet(&[], None);
    let mut ev = s.events().unwrap();
    raw.send(CHAT, Bytes::from_static(b"\xff\xfe")).await;
    let long = vec![b'x'; rescue_proto::session::chat::MAX_CHAT_BYTES + 1];
    raw.send(CHAT, Bytes::from(long)).await;
    raw.send(CHAT, Bytes::from_static(b"fine")).await;
    let t = wait_for(&mut ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "fine");
}

#[tokio::test]
async fn a_request_the_policy_forbids_is_denied_without_a_prompt() {
    let (mut s, mut raw) = applet(&[Permission::DesktopView], None);
    let mut ev = s.events().unwrap();
    let req = ControlMsg::Request {
        request_id: 3,
        permission: Permission::Scripts,
    };
    raw.send(CONTROL, req.encode()).await;
    let reply = ControlMsg::decode(&raw.data_on(CONTROL).await).unwrap();
    assert!(
        matches!(reply, ControlMsg::Deny { request_id: 3, .. }),
        "{reply:?}"
    );
    wait_for(&mut ev, |e| match e {
        SessionEvent::PermissionDenied { .. } => Some(()),
        SessionEvent::PermissionAsked { .. } => panic!("the end user was asked"),
        _ => None,
    })
    .await;
    assert!(!s.is_ended(), "a refused request must not end the session");
}
