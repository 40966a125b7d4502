//! Lens end to end in one process on loopback: the session manager and the streaming
//! relay, a portal that creates a meeting and joins the app and two technicians over
//! signed REST, one end-to-end session per technician carrying the camera grant and the
//! media key, then the app's camera through the relay to both consoles, each writing
//! what it received to a file.
//!
//! ```text
//! cargo run -p rescue-lens --example lens_demo                      # synthetic frames
//! ffmpeg -f lavfi -i testsrc=size=640x480:rate=30 -t 5 -c:v libx264 -preset ultrafast \
//!     -tune zerolatency -g 30 -bf 0 -f h264 - | cargo run -p rescue-lens --example lens_demo -- --input -
//! cargo run -p rescue-lens --example lens_demo -- --input in.h264 --out-dir /tmp/lens --technicians 3
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rescue::session::consent::{Consent, ConsentFuture, ConsentRequest};
use rescue::session::{
    ConsentAnswer, ConsentConfig, MediaFrame, PathKind, Role, Session, SessionConfig,
};
use rescue_crypto::ticket::TicketSigner;
use rescue_lens::client::{generate_key, Publisher, Subscriber};
use rescue_lens::manager::{Manager, ManagerClient};
use rescue_lens::signed::RequestVerifier;
use rescue_lens::{Lens, LensConfig, LensRole};
use rescue_proto::{Permission, PermissionSet, Policy};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    input: Option<String>,
    out_dir: PathBuf,
    technicians: usize,
    frames: usize,
}

fn args() -> Args {
    let mut a = Args {
        input: None,
        out_dir: std::env::temp_dir().join("lens-demo"),
        technicians: 2,
        frames: 150,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--input" => a.input = Some(v),
            "--out-dir" => a.out_dir = v.into(),
            "--technicians" => a.technicians = v.parse().unwrap_or(2).clamp(1, 8),
            "--frames" => a.frames = v.parse().unwrap_or(150),
            _ => eprintln!("unknown argument {k}"),
        }
    }
    a
}

/// The end user says yes to the camera (a real applet shows a prompt).
struct Allow;
impl Consent for Allow {
    fn ask(&self, req: ConsentRequest) -> ConsentFuture<'_> {
        println!("end user: allowing {req:?}");
        Box::pin(async { ConsentAnswer::Allow })
    }
}

/// Encoded frames: from an H.264 Annex B stream, or synthetic (keyframe 40 KB every 30
/// frames, deltas 3–8 KB: about 1.2 Mbit/s at 30 fps).
fn frames(a: &Args) -> Result<Vec<(bool, Bytes)>, Error> {
    let Some(input) = &a.input else {
        return Ok((0..a.frames)
            .map(|i| {
                let len = if i % 30 == 0 {
                    40_000
                } else {
                    3_000 + (i * 977) % 5_000
                };
                (i % 30 == 0, Bytes::from(vec![(i % 251) as u8; len]))
            })
            .collect());
    };
    let mut data = Vec::new();
    if input == "-" {
        std::io::stdin().read_to_end(&mut data)?;
    } else {
        data = std::fs::read(input)?;
    }
    let units = rescue_lens::h264::split_all(&data)?;
    Ok(units.into_iter().map(|u| (u.keyframe, u.data)).collect())
}

/// One technician's end-to-end session with the end user (in memory here; over the
/// gateway in a deployment), with a live camera grant.
async fn session_with_camera_grant(
) -> Result<(Session, Session, rescue::session::CameraStream), Error> {
    let policy = Policy {
        allowed: PermissionSet::EMPTY.with(Permission::Camera),
        ..Policy::default()
    };
    let mut acfg = SessionConfig::new(Role::Applet, policy);
    acfg.consent = Some(ConsentConfig::new(Arc::new(Allow)));
    let (a, c) = tokio::io::duplex(256 * 1024);
    let applet = Session::start(a, PathKind::Relay, acfg);
    let console = Session::start(
        c,
        PathKind::Relay,
        SessionConfig::new(Role::Console, policy),
    );
    let grant = console.request(Permission::Camera).await?;
    let stream = console.camera_stream(&grant).await?;
    while !applet
        .grants()
        .iter()
        .any(|(_, s)| s.contains(Permission::Camera))
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((applet, console, stream))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args();
    let frames = frames(&a)?;
    std::fs::create_dir_all(&a.out_dir)?;

    // The Lens service: relay and session manager sharing one meeting table.
    let portal = TicketSigner::generate()?;
    let lens = Lens::new(LensConfig::default(), TicketSigner::generate()?);
    let manager = Manager::new(
        lens.clone(),
        RequestVerifier::new(vec![portal.verify_key()]),
    );
    let api_l = TcpListener::bind("127.0.0.1:0").await?;
    let api = api_l.local_addr()?.to_string();
    tokio::spawn(async move { manager.serve(api_l).await });
    let relay_l = TcpListener::bind("127.0.0.1:0").await?;
    let relay = relay_l.local_addr()?.to_string();
    let r = lens.clone();
    tokio::spawn(async move { r.serve_relay(relay_l).await });
    println!("session manager on {api}, relay on {relay}");

    // The portal: a meeting for the support session, the app and each technician joined.
    let portal = ManagerClient::new(&api, portal);
    let meeting = portal
        .create("0123abcd-4567-89ef-0011-223344556677")
        .await?;
    println!("meeting {meeting}");
    let key = generate_key(meeting, 1);

    let mut sessions = Vec::new();
    let mut readers = Vec::new();
    let t0 = Instant::now();
    for i in 0..a.technicians {
        let (applet, console, mut stream) = session_with_camera_grant().await?;
        let cam = applet.start_camera().await?;
        applet.send_stream_key(key.clone()).await?;
        let their_key = stream.recv_key().await.ok_or("no key")?;
        let joined = portal.join(&meeting, LensRole::Console).await?;
        let mut sub = Subscriber::connect(&relay, &joined.token, &their_key).await?;
        let path = a.out_dir.join(format!("technician{i}.h264"));
        let n = frames.len();
        readers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut lat = Vec::new();
            while lat.len() < n {
                match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
                    Ok(Ok(Some(f))) => {
                        lat.push(t0.elapsed().as_micros() as u64 - f.frame.capture_us);
                        out.extend_from_slice(&f.frame.data);
                    }
                    _ => break,
                }
            }
            let _ = std::fs::write(&path, &out);
            lat.sort_unstable();
            (path, lat)
        }));
        sessions.push((applet, console, cam, stream));
    }
    let app_join = portal.join(&meeting, LensRole::App).await?;
    let mut app = Publisher::connect(&relay, &app_join.token, &key).await?;

    let mut tick = tokio::time::interval(Duration::from_millis(33));
    for (keyframe, data) in &frames {
        tick.tick().await;
        let f = MediaFrame {
            keyframe: *keyframe,
            capture_us: t0.elapsed().as_micros() as u64,
            data: data.clone(),
        };
        app.send(&f).await?;
    }
    for r in readers {
        let (path, lat) = r.await?;
        let pct = |p: usize| {
            lat.get(lat.len().saturating_sub(1) * p / 100)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{}: {} of {} frames, latency p50 {} µs p99 {} µs",
            path.display(),
            lat.len(),
            frames.len(),
            pct(50),
            pct(99)
        );
    }
    portal.delete(&meeting).await?;
    println!("relay held no media key; meeting deleted");
    Ok(())
}
