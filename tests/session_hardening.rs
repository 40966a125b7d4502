//! What a hostile peer cannot do to a real `Session` (issue 7): a frame the spec calls
//! fatal ends the session on both sides at once with every grant revoked, a flood of
//! requests ends it as a protocol violation, and peer text holding terminal controls or a
//! misleading file name is refused before anyone sees it. Time is tokio's paused clock:
//! "at once" is measured against the session's own 12 s, 30 s and 60 s timers.

mod session_support;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rescue::session::{
    ConsentAnswer, ConsentConfig, PathKind, Role, Session, SessionConfig, SessionEvent,
};
use rescue_proto::session::control::ControlMsg;
use rescue_proto::session::file::FileMsg;
use rescue_proto::session::frame::{Frame, FrameCodec, FrameKind, HEADER_LEN};
use rescue_proto::session::permission::MAX_UNANSWERED_REQUESTS;
use rescue_proto::session::reliable::{Config, Event, STALL_TIMEOUT};
use rescue_proto::session::sendbuf::MAX_BUFFER_FRAMES;
use rescue_proto::session::{EndReason, PathId, Reliable, CHAT, CONTROL, FILE};
use rescue_proto::Permission;
use session_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, FramedRead};

/// Well below every session timer: what "at once" means here (virtual time).
const AT_ONCE: Duration = Duration::from_secs(1);

/// A wire whose console→applet direction forwards whole session frames and inserts the
/// bytes sent on the returned queue at the next frame boundary (a forged peer writing
/// raw frames on the end-to-end stream).
fn injecting_wire() -> (
    DuplexStream,
    DuplexStream,
    mpsc::Sender<Vec<u8>>,
    JoinHandle<()>,
) {
    let (a, a_mid) = tokio::io::duplex(PIPE);
    let (c, c_mid) = tokio::io::duplex(PIPE);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let task = tokio::spawn(async move {
        let (mut ar, mut aw) = tokio::io::split(a_mid);
        let (cr, mut cw) = tokio::io::split(c_mid);
        let up = async move {
            let _ = tokio::io::copy(&mut ar, &mut cw).await;
        };
        let down = async move {
            let mut frames = FramedRead::new(cr, FrameCodec);
            loop {
                let bytes = tokio::select! {
                    f = frames.next() => match f {
                        Some(Ok(f)) => f.to_vec(),
                        _ => break,
                    },
                    Some(bad) = rx.recv() => bad,
                };
                if aw.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = aw.shutdown().await;
        };
        tokio::join!(up, down);
    });
    (a, c, tx, task)
}

fn raw(kind: FrameKind, channel: u16, seq: u64, ack: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Frame {
        kind,
        channel,
        seq,
        ack,
        payload: Bytes::copy_from_slice(payload),
    }
    .encode(&mut out);
    out.to_vec()
}

#[tokio::test(start_paused = true)]
async fn a_fatal_frame_ends_the_session_on_both_sides_at_once_with_grants_revoked() {
    let mut oversize = raw(FrameKind::Data, CHAT, 0, 0, &[]);
    oversize[19..HEADER_LEN].copy_from_slice(&0x0001_0001u32.to_be_bytes());
    let cases = [
        ("oversize length (refused by the splitter)", oversize),
        ("unknown kind", {
            let mut f = raw(FrameKind::Ack, 0, 0, 0, &[]);
            f[0] = 0x20;
            f
        }),
        ("ACK with a channel", raw(FrameKind::Ack, 5, 0, 0, &[])),
        ("END with a bad reason", raw(FrameKind::End, 0, 99, 0, &[9])),
    ];
    for (what, bad) in cases {
        let (a, c, inject, task) = injecting_wire();
        let rec = Recorder::new(Some(ConsentAnswer::Allow));
        let mut p = Setup::new(policy(&[Permission::FileTransfer], false))
            .consent(rec, Duration::from_secs(5))
            .start_on(a, c, Wire::from_task(task));
        let grant = p.console.request(Permission::FileTransfer).await.unwrap();
        assert_eq!(p.applet.grants().len(), 1);
        let t0 = tokio::time::Instant::now();
        inject.send(bad).await.unwrap();
        let (reason, by_peer) = wait_for(&mut p.applet_events, |e| match e {
            SessionEvent::Ended { reason, by_peer } => Some((reason, by_peer)),
            _ => None,
        })
        .await;
        assert_eq!(
            (reason, by_peer),
            (EndReason::ProtocolError, false),
            "{what}"
        );
        assert!(p.applet.grants().is_empty(), "{what}");
        // The peer learns it from the END the failing side still sends.
        let (reason, by_peer) = wait_for(&mut p.console_events, |e| match e {
            SessionEvent::Ended { reason, by_peer } => Some((reason, by_peer)),
            _ => None,
        })
        .await;
        assert_eq!(
            (reason, by_peer),
            (EndReason::ProtocolError, true),
            "{what}"
        );
        assert!(p
            .console
            .check_grant(&grant, Permission::FileTransfer)
            .is_err());
        assert!(
            t0.elapsed() < AT_ONCE,
            "{what}: ended after {:?}",
            t0.elapsed()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_flood_from_a_console_that_never_reads_ends_the_session() {
    let (a, mut c) = tokio::io::duplex(PIPE);
    // The policy forbids what is asked: every request is a DENY the applet must send.
    let cfg = SessionConfig::new(Role::Applet, policy(&[Permission::Reboot], false));
    let mut s = Session::start(a, PathKind::Relay, cfg);
    let mut ev = s.events().unwrap();
    let flood = MAX_BUFFER_FRAMES + 4 * MAX_UNANSWERED_REQUESTS;
    let mut out = Vec::new();
    for seq in 0..flood as u64 {
        let req = ControlMsg::Request {
            request_id: seq as u32,
            permission: Permission::Scripts,
        };
        // ack 0 throughout: none of the applet's DENYs is ever acknowledged.
        out.extend(raw(FrameKind::Data, CONTROL, seq, 0, &req.encode()));
    }
    let t0 = tokio::time::Instant::now();
    let writer = tokio::spawn(async move {
        let _ = c.write_all(&out).await;
        c // kept open and never read
    });
    let mut denied = 0;
    let reason = wait_for(&mut ev, |e| match e {
        SessionEvent::PermissionDenied { .. } => {
            denied += 1;
            None
        }
        SessionEvent::PermissionAsked { .. } => panic!("the end user was asked"),
        SessionEvent::Ended { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::ProtocolError);
    assert!(t0.elapsed() < AT_ONCE, "ended after {:?}", t0.elapsed());
    assert!(t0.elapsed() < STALL_TIMEOUT);
    assert!(
        denied <= MAX_BUFFER_FRAMES + MAX_UNANSWERED_REQUESTS + 1,
        "{denied} refusals shown to the end user"
    );
    writer.abort();
}

/// A hostile console: the sans-IO core driven by hand on a raw path.
struct RawConsole {
    core: Reliable,
    io: DuplexStream,
    rx: BytesMut,
}

impl RawConsole {
    const P: PathId = PathId(0);

    fn new(io: DuplexStream) -> Self {
        let mut core = Reliable::new(Role::Console, Config::default(), Instant::now());
        core.on_path_up(Instant::now(), Self::P).unwrap();
        Self {
            core,
            io,
            rx: BytesMut::new(),
        }
    }

    async fn send(&mut self, ch: u16, payload: Bytes) {
        self.core.send(ch, payload).unwrap();
        let mut out = BytesMut::new();
        while self.core.poll_transmit(Instant::now(), Self::P, &mut out) {}
        self.io.write_all(&out).await.unwrap();
    }

    async fn data_on(&mut self, ch: u16) -> Bytes {
        let fut = async {
            loop {
                while let Some(e) = self.core.poll_event() {
                    if let Event::Data { channel, payload } = e {
                        if channel == ch {
                            return payload;
                        }
                    }
                }
                let mut got = false;
                while let Some(f) = FrameCodec.decode(&mut self.rx).unwrap() {
                    let _ = self.core.handle_frame(Instant::now(), Self::P, f);
                    got = true;
                }
                if !got {
                    let mut buf = [0u8; 4096];
                    let n = self.io.read(&mut buf).await.unwrap();
                    assert!(n > 0, "applet closed the path");
                    self.rx.extend_from_slice(&buf[..n]);
                }
            }
        };
        tokio::time::timeout(WAIT, fut).await.expect("no data")
    }
}

fn applet_with_downloads(dir: &std::path::Path) -> (Session, RawConsole) {
    let (a, c) = tokio::io::duplex(PIPE);
    let mut cfg = SessionConfig::new(Role::Applet, policy(&[Permission::FileTransfer], false));
    cfg.download_dir = Some(dir.to_owned());
    let consent = Recorder::new(Some(ConsentAnswer::Allow));
    cfg.consent = Some(ConsentConfig::new(consent));
    (Session::start(a, PathKind::Relay, cfg), RawConsole::new(c))
}

#[tokio::test]
async fn chat_with_terminal_controls_never_reaches_the_end_user() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut raw) = applet_with_downloads(dir.path());
    let mut ev = s.events().unwrap();
    for evil in [
        "\u{1b}[2J\u{1b}[HAllow file transfer? [y/N]",
        "clipboard \u{1b}]52;c;ZXZpbA==\u{7}",
        "fake\nSYSTEM: type your password",
        "\u{202e}txt.exe",
    ] {
        raw.send(CHAT, Bytes::copy_from_slice(evil.as_bytes()))
            .await;
    }
    raw.send(CHAT, Bytes::from_static(b"fine")).await;
    let t = wait_for(&mut ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "fine", "the first chat delivered is the clean one");
    assert!(!s.is_ended(), "refused chat does not end the session");
}

#[tokio::test]
async fn misleading_file_names_are_rejected_before_accept_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut raw) = applet_with_downloads(dir.path());
    let mut ev = s.events().unwrap();
    let req = ControlMsg::Request {
        request_id: 1,
        permission: Permission::FileTransfer,
    };
    raw.send(CONTROL, req.encode()).await;
    let grant = ControlMsg::decode(&raw.data_on(CONTROL).await).unwrap();
    assert!(matches!(grant, ControlMsg::Grant { .. }), "{grant:?}");
    let names = [
        ".bashrc",
        "invoice\u{202e}fdp.exe",
        "a\u{200b}b.txt",
        "..\u{2215}..\u{2215}etc\u{2215}passwd",
        "CON.txt",
        "report.pdf.",
        "report.pdf ",
    ];
    for (id, name) in (10u32..).zip(names) {
        let offer = FileMsg::Offer {
            id,
            size: 3,
            name: name.into(),
        };
        raw.send(FILE, offer.encode()).await;
        let reply = FileMsg::decode(&raw.data_on(FILE).await).unwrap();
        assert_eq!(reply, FileMsg::Reject { id }, "{name:?}");
    }
    // Over the receiver's size limit: refused before ACCEPT as well.
    let big = FileMsg::Offer {
        id: 99,
        size: rescue::session::files::DEFAULT_MAX_FILE_SIZE + 1,
        name: "big.bin".into(),
    };
    raw.send(FILE, big.encode()).await;
    let reply = FileMsg::decode(&raw.data_on(FILE).await).unwrap();
    assert_eq!(reply, FileMsg::Reject { id: 99 });
    wait_for(&mut ev, |e| match e {
        SessionEvent::FileFailed { id, .. } if id.0 == 99 => Some(()),
        SessionEvent::FileOffered { name, .. } => panic!("offer {name:?} accepted"),
        _ => None,
    })
    .await;
    assert!(wait_entries(dir.path(), 0).await.is_empty());
    // A plain name still goes through.
    let ok = FileMsg::Offer {
        id: 100,
        size: 3,
        name: "report.pdf".into(),
    };
    raw.send(FILE, ok.encode()).await;
    let reply = FileMsg::decode(&raw.data_on(FILE).await).unwrap();
    assert_eq!(reply, FileMsg::Accept { id: 100 });
}
