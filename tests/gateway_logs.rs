//! The full GUID is a session's verification code: the gateway's (and the peers')
//! tracing carries it shortened, never whole (issue 9, point 6).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::Setup;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

// One thread: the gateway's tasks run where the subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn logs_carry_the_guid_shortened_never_whole() {
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let setup = Setup::start().await;
    let issued = setup.issue();
    let registration = common::within(setup.applet(&issued).register())
        .await
        .unwrap();
    let console = setup.console().await;
    let (a, c) = common::within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    let (mut a, mut c) = (a.unwrap(), c.unwrap());
    common::exchange(&mut a, &mut c, b"ping", b"pong").await;
    drop((a, c));
    setup.gateway.shutdown().await;
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let full = issued.guid.to_string();
    let short = issued.guid.short().to_string();
    assert!(
        text.contains(&format!("guid={short}")),
        "the short GUID is logged"
    );
    assert!(!text.contains(&full), "the full GUID {full} is in the log");
    let hex: String = full.chars().filter(|c| *c != '-').collect();
    assert!(!text.contains(&hex), "the full GUID as hex is in the log");
}
