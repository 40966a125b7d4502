//! The streaming relay over loopback TCP (PROTOCOL.md 9.3): fan-out of sealed frames to
//! every joined console, a slow subscriber that does not slow the others and is dropped,
//! and the refusals (bad, expired or foreign tokens; wrong role; oversize; silence).

use std::time::{Duration, Instant};

use bytes::Bytes;
use rescue_crypto::ticket::TicketSigner;
use rescue_lens::client::{generate_key, ClientError, Publisher, Subscriber};
use rescue_lens::token::JoinToken;
use rescue_lens::wire::{read_msg, write_msg, MsgType};
use rescue_lens::{Lens, LensConfig, LensRole, MeetingId};
use rescue_proto::session::media_stream::MediaFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

async fn relay(cfg: LensConfig) -> (Lens, String, Vec<u8>) {
    let signer = TicketSigner::generate().unwrap();
    let pkcs8 = signer.pkcs8().to_vec();
    let lens = Lens::new(cfg, signer);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let me = lens.clone();
    tokio::spawn(async move { me.serve_relay(l).await });
    (lens, addr, pkcs8)
}

fn frame(i: u64, len: usize, t0: Instant) -> MediaFrame {
    MediaFrame {
        keyframe: i.is_multiple_of(15),
        capture_us: t0.elapsed().as_micros() as u64,
        data: Bytes::from(vec![(i % 251) as u8; len]),
    }
}

/// A console that joins and then never reads, with a tiny receive buffer.
async fn stuck_console(addr: &str, token: &[u8]) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let mut s = s.connect(addr.parse().unwrap()).await.unwrap();
    write_msg(&mut s, MsgType::Join, token).await.unwrap();
    let (t, _) = read_msg(&mut s).await.unwrap().unwrap();
    assert_eq!(t, MsgType::Joined);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_does_not_slow_the_others_and_is_dropped() {
    let mut cfg = LensConfig::default();
    cfg.write_timeout = Duration::from_secs(2);
    let (lens, addr, _) = relay(cfg).await;
    let m = lens.create("session-1").unwrap();
    let key = generate_key(m, 1);
    let (_, app_tok) = lens.join(&m, LensRole::App).unwrap();
    let mut subs = Vec::new();
    for _ in 0..2 {
        let (_, t) = lens.join(&m, LensRole::Console).unwrap();
        subs.push(Subscriber::connect(&addr, &t, &key).await.unwrap());
    }
    let (_, slow_tok) = lens.join(&m, LensRole::Console).unwrap();
    let _stuck = stuck_console(&addr, &slow_tok).await;
    let mut app = Publisher::connect(&addr, &app_tok, &key).await.unwrap();

    let t0 = Instant::now();
    let frames = 120u64;
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut last = None;
                while lat.len() < frames as usize {
                    let f = tokio::time::timeout(WAIT, s.recv())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    lat.push(t0.elapsed().as_micros() as u64 - f.frame.capture_us);
                    assert_eq!(f.frame.data.len(), 100_000);
                    if let Some(l) = last {
                        assert_eq!(f.counter, l + 1, "a fast subscriber lost a frame");
                    }
                    last = Some(f.counter);
                }
                lat.sort_unstable();
                lat
            })
        })
        .collect();
    // 100 KB frames at 30 fps (24 Mbit/s): the stuck console's socket fills in a moment.
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    for i in 0..frames {
        tick.tick().await;
        app.send(&frame(i, 100_000, t0)).await.unwrap();
    }
    for r in readers {
        let lat = r.await.unwrap();
        let p99 = lat[lat.len() * 99 / 100];
        assert!(p99 < 500_000, "fast subscriber p99 {p99} µs");
    }
    let stats = lens.stats();
    let dropped = || {
        stats
            .slow_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + WAIT;
    while dropped() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dropped(), 1, "the stuck subscriber was not dropped");
    assert!(
        stats
            .frames_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

#[tokio::test]
async fn frames_are_sealed_end_to_end_and_open_only_with_the_key() {
    let (lens, addr, _) = relay(LensConfig::default()).await;
    let m = lens.create("s").unwrap();
    let key = generate_key(m, 7);
    let (_, app_tok) = lens.join(&m, LensRole::App).unwrap();
    let (_, c1) = lens.join(&m, LensRole::Console).unwrap();
    let (_, c2) = lens.join(&m, LensRole::Console).unwrap();
    let mut good = Subscriber::connect(&addr, &c1, &key).await.unwrap();
    let mut wrong = Subscriber::connect(&addr, &c2, &generate_key(m, 7))
        .await
        .unwrap();
    let mut app = Publisher::connect(&addr, &app_tok, &key).await.unwrap();
    let t0 = Instant::now();
    let f = frame(0, 5000, t0);
    app.send(&f).await.unwrap();
    let got = tokio::time::timeout(WAIT, good.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.frame, f);
    let bad = tokio::time::timeout(WAIT, wrong.recv()).await.unwrap();
    assert!(matches!(bad, Err(ClientError::Sframe(_))), "{bad:?}");
    // A keyframe request from a console reaches the app.
    assert!(
        app.keyframe_wanted(),
        "a new publisher starts with a keyframe"
    );
    good.request_keyframe().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !app.keyframe_wanted() {
        assert!(Instant::now() < deadline, "keyframe request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn refused(addr: &str, token: &[u8]) -> ClientError {
    let key = generate_key(MeetingId([0; 16]), 1);
    match Subscriber::connect(addr, token, &key).await {
        Err(e) => e,
        Ok(_) => panic!("token accepted"),
    }
}

#[tokio::test]
async fn bad_tokens_roles_and_messages_are_refused() {
    let (lens, addr, pkcs8) = relay(LensConfig::default()).await;
    let signer = TicketSigner::from_pkcs8(&pkcs8).unwrap();
    let m = lens.create("s").unwrap();
    let (pid, _) = lens.join(&m, LensRole::Console).unwrap();
    let tok = |meeting, exp| {
        JoinToken {
            meeting,
            participant: pid,
            role: LensRole::Console,
            expires_at_unix: exp,
        }
        .sign(&signer)
    };
    let now = rescue_lens::unix_now();
    assert!(
        matches!(refused(&addr, &tok(m, now - 1)).await, ClientError::Bye(1)),
        "expired"
    );
    assert!(
        matches!(
            refused(&addr, &tok(MeetingId([9; 16]), now + 60)).await,
            ClientError::Bye(1)
        ),
        "other meeting"
    );
    let foreign = JoinToken {
        meeting: m,
        participant: pid,
        role: LensRole::Console,
        expires_at_unix: now + 60,
    }
    .sign(&TicketSigner::generate().unwrap());
    assert!(
        matches!(refused(&addr, &foreign).await, ClientError::Bye(1)),
        "foreign key"
    );
    // A participant that left cannot connect with its (still unexpired) token.
    let (pid2, t2) = lens.join(&m, LensRole::Console).unwrap();
    lens.leave(&m, pid2).unwrap();
    assert!(
        matches!(refused(&addr, &t2).await, ClientError::Bye(1)),
        "left"
    );

    // A console that publishes is cut off.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    write_msg(&mut s, MsgType::Join, &tok(m, now + 60))
        .await
        .unwrap();
    assert_eq!(read_msg(&mut s).await.unwrap().unwrap().0, MsgType::Joined);
    write_msg(&mut s, MsgType::Media, &[1, 2, 3]).await.unwrap();
    let (t, b) = read_msg(&mut s).await.unwrap().unwrap();
    assert_eq!((t, &b[..]), (MsgType::Bye, &[4u8][..]));

    // An oversize length is refused before anything is allocated; silence times out.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0x01, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let (t, _) = read_msg(&mut s).await.unwrap().unwrap();
    assert_eq!(t, MsgType::Bye);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &buf[..n],
        &[0x05, 0, 0, 0, 1, 4],
        "BYE after the join timeout"
    );
}
