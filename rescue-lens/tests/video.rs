//! Real video: an H.264 stream encoded by ffmpeg goes from the app to two technicians,
//! once through the session's media channel and once through the Lens relay with the
//! key handed over each technician's own session; what each received decodes (ffprobe)
//! to every frame. Needs ffmpeg and ffprobe (.ci/deps/lens.sh); fails without them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rescue::session::consent::{Consent, ConsentFuture, ConsentRequest};
use rescue::session::{
    ConsentAnswer, ConsentConfig, MediaFrame, PathKind, Role, Session, SessionConfig,
};
use rescue_crypto::ticket::TicketSigner;
use rescue_lens::client::{generate_key, Publisher, Subscriber};
use rescue_lens::h264::split_all;
use rescue_lens::{Lens, LensConfig, LensRole};
use rescue_proto::{Permission, PermissionSet, Policy};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);
const FRAMES: usize = 60;

struct Allow;
impl Consent for Allow {
    fn ask(&self, _: ConsentRequest) -> ConsentFuture<'_> {
        Box::pin(async { ConsentAnswer::Allow })
    }
}

/// `FRAMES` frames of a test pattern, H.264 Annex B, a keyframe every 15 frames.
fn encode(dir: &Path) -> Vec<u8> {
    let out = dir.join("in.h264");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc=size=320x240:rate=30:duration={}",
            FRAMES / 30
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(&out)
        .status()
        .expect("ffmpeg is needed (.ci/deps/lens.sh installs it)");
    assert!(st.success(), "ffmpeg failed");
    std::fs::read(out).unwrap()
}

/// Frames ffprobe decodes from the H.264 file at `path`.
fn decoded_frames(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is needed (.ci/deps/lens.sh installs it)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// An applet and a console session with a live camera grant on both sides.
async fn camera_session() -> (Session, Session, rescue::session::CameraStream) {
    let policy = Policy {
        allowed: PermissionSet::EMPTY.with(Permission::Camera),
        ..Policy::default()
    };
    let mut acfg = SessionConfig::new(Role::Applet, policy);
    acfg.consent = Some(ConsentConfig::new(Arc::new(Allow)));
    let ccfg = SessionConfig::new(Role::Console, policy);
    let (a, c) = tokio::io::duplex(256 * 1024);
    let applet = Session::start(a, PathKind::Relay, acfg);
    let console = Session::start(c, PathKind::Relay, ccfg);
    let grant = console.request(Permission::Camera).await.unwrap();
    let stream = console.camera_stream(&grant).await.unwrap();
    // The grant is live on the applet once its answer went out; wait for it there.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !applet
        .grants()
        .iter()
        .any(|(_, s)| s.contains(Permission::Camera))
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (applet, console, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_through_the_relay_to_two_technicians_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let units = split_all(&encode(dir.path())).unwrap();
    assert_eq!(units.len(), FRAMES, "access units");
    assert!(units[0].keyframe && units[15].keyframe && !units[1].keyframe);

    let lens = Lens::new(LensConfig::default(), TicketSigner::generate().unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = l.local_addr().unwrap().to_string();
    let me = lens.clone();
    tokio::spawn(async move { me.serve_relay(l).await });
    let meeting = lens.create("video-test").unwrap();
    let key = generate_key(meeting, 1);

    // Each technician: its own session with the end user, the key over it, then the relay.
    let mut sessions = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..2 {
        let (applet, console, mut stream) = camera_session().await;
        let cam = applet.start_camera().await.unwrap();
        applet.send_stream_key(key.clone()).await.unwrap();
        let got = tokio::time::timeout(WAIT, stream.recv_key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, key);
        let (_, token) = lens.join(&meeting, LensRole::Console).unwrap();
        subs.push(Subscriber::connect(&relay, &token, &got).await.unwrap());
        sessions.push((applet, console, cam, stream));
    }
    let (_, app_token) = lens.join(&meeting, LensRole::App).unwrap();
    let mut app = Publisher::connect(&relay, &app_token, &key).await.unwrap();

    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let path = dir.path().join(format!("tech{i}.h264"));
            tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..FRAMES {
                    let f = tokio::time::timeout(WAIT, s.recv())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    out.extend_from_slice(&f.frame.data);
                }
                std::fs::write(&path, out).unwrap();
                path
            })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    for (i, u) in units.iter().enumerate() {
        tick.tick().await;
        let f = MediaFrame {
            keyframe: u.keyframe,
            capture_us: i as u64 * 33_333,
            data: u.data.clone(),
        };
        app.send(&f).await.unwrap();
    }
    for r in readers {
        let path = r.await.unwrap();
        assert_eq!(decoded_frames(&path), FRAMES, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_on_the_session_media_channel_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let units = split_all(&encode(dir.path())).unwrap();
    let (applet, _console, mut stream) = camera_session().await;
    let cam = applet.start_camera().await.unwrap();
    let path = dir.path().join("session.h264");
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..FRAMES {
            let f = tokio::time::timeout(WAIT, stream.recv())
                .await
                .unwrap()
                .unwrap();
            out.extend_from_slice(&f.frame.data);
        }
        out
    });
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    for (i, u) in units.iter().enumerate() {
        tick.tick().await;
        let f = MediaFrame {
            keyframe: u.keyframe,
            capture_us: i as u64 * 33_333,
            data: u.data.clone(),
        };
        cam.send(f).await.unwrap();
    }
    std::fs::write(&path, reader.await.unwrap()).unwrap();
    assert_eq!(decoded_frames(&path), FRAMES);
}
