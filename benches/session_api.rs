//! Session API throughput over an in-memory transport, as a ratio to the raw transport
//! in the same run: 16 MiB through a `tokio::io::duplex` pair directly, through an
//! application channel of two `Session`s, and as a verified file transfer (MD5 +
//! SHA-256 on both sides, written and fsynced to a temporary directory on disk, and on
//! tmpfs when `/dev/shm` exists).
//!
//! `cargo bench --bench session_api`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rescue::session::consent::{ConsentFn, ConsentRequest};
use rescue::session::{
    ConsentAnswer, ConsentConfig, PathKind, Role, Session, SessionConfig, SessionEvent,
};
use rescue_proto::{Permission, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEN: usize = 16 * 1024 * 1024;
const PIPE: usize = 256 * 1024;

fn policy() -> Policy {
    Policy {
        allowed: [Permission::FileTransfer].into_iter().collect(),
        ..Policy::default()
    }
}

fn pair(dir: Option<&std::path::Path>) -> (Session, Session) {
    let (a, c) = tokio::io::duplex(PIPE);
    let mut acfg = SessionConfig::new(Role::Applet, policy());
    acfg.download_dir = dir.map(ToOwned::to_owned);
    let yes = ConsentFn(|_: ConsentRequest| async { ConsentAnswer::Allow });
    acfg.consent = Some(ConsentConfig::new(Arc::new(yes)));
    let applet = Session::start(a, PathKind::Relay, acfg);
    let console = Session::start(
        c,
        PathKind::Relay,
        SessionConfig::new(Role::Console, policy()),
    );
    (applet, console)
}

async fn raw(data: &[u8]) {
    let (mut a, mut c) = tokio::io::duplex(PIPE);
    let rd = tokio::spawn(async move {
        let mut buf = vec![0u8; PIPE];
        let mut n = 0;
        while n < LEN {
            n += c.read(&mut buf).await.unwrap();
        }
    });
    a.write_all(data).await.unwrap();
    rd.await.unwrap();
}

async fn channel(data: &[u8]) {
    let (mut applet, console) = pair(None);
    let mut ev = applet.events().unwrap();
    let mut ch = console.open_channel("bench").await.unwrap();
    let mut peer = loop {
        if let Some(SessionEvent::ChannelOpened(c)) = ev.recv().await {
            break c;
        }
    };
    let rd = tokio::spawn(async move {
        let mut buf = vec![0u8; PIPE];
        let mut n = 0;
        while n < LEN {
            n += peer.read(&mut buf).await.unwrap();
        }
    });
    ch.write_all(data).await.unwrap();
    rd.await.unwrap();
    finish(&console, &mut ev).await;
}

/// Ends the session and waits for the applet's driver to finish, so no session of a
/// previous iteration still runs during the next.
async fn finish(console: &Session, ev: &mut tokio::sync::mpsc::Receiver<SessionEvent>) {
    console.end();
    while ev.recv().await.is_some() {}
}

async fn file(data: &[u8], tmpfs: bool) {
    let dir = match tmpfs {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let (mut applet, console) = pair(Some(dir.path()));
    let mut ev = applet.events().unwrap();
    let g = console.request(Permission::FileTransfer).await.unwrap();
    let src = std::io::Cursor::new(data.to_vec());
    console
        .send_file(src, "bench.bin", LEN as u64, &g)
        .await
        .unwrap();
    loop {
        match ev.recv().await {
            Some(SessionEvent::FileReceived { .. }) => break,
            Some(SessionEvent::FileFailed { reason, .. }) => panic!("{reason}"),
            Some(_) => {}
            None => panic!("session ended"),
        }
    }
    finish(&console, &mut ev).await;
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut g = c.benchmark_group("session_api_16MiB");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("raw_duplex", |b| b.iter(|| rt.block_on(raw(&data))));
    g.bench_function("app_channel", |b| b.iter(|| rt.block_on(channel(&data))));
    g.bench_function("file_verified_disk", |b| {
        b.iter(|| rt.block_on(file(&data, false)))
    });
    if std::path::Path::new("/dev/shm").is_dir() {
        g.bench_function("file_verified_tmpfs", |b| {
            b.iter(|| rt.block_on(file(&data, true)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
