//! The interactive parts of the applet and console examples (included as modules):
//! the applet's terminal consent (a line answers an open prompt, otherwise it is chat;
//! a prompt that timed out is a refusal) and the console's file sending (asks for the
//! permission, follows the progress events to the end, reports the verified digests).

// `main` and the terminal loop are not called here; each example is its own crate and
// brings its own copy of `examples/terminal`, so this test loads that module twice.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/applet.rs"]
mod applet;
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/console.rs"]
mod console;

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use rescue::session::consent::{ConsentFn, ConsentRequest};
use rescue::session::{
    Consent, ConsentAnswer, ConsentConfig, PathKind, Role, Session, SessionConfig, SessionEvent,
};
use rescue_crypto::FileDigest;
use rescue_proto::{Permission, PermissionSet, Policy};
use tokio::sync::mpsc::Receiver;

/// Longest a test waits for one event.
const WAIT: Duration = Duration::from_secs(20);

fn request() -> ConsentRequest {
    ConsentRequest::single(Permission::FileTransfer, "alice", "42")
}

#[tokio::test]
async fn a_line_answers_the_open_prompt_and_is_chat_otherwise() {
    let c = applet::TerminalConsent::new(Duration::from_secs(5));
    assert!(!c.answer("y"), "no prompt open: the line is chat");

    let yes = c.ask(request());
    assert!(c.answer(" Y "));
    assert_eq!(yes.await, ConsentAnswer::Allow);
    assert!(
        !c.answer("y"),
        "the prompt was answered: the next line is chat"
    );

    for line in ["", "n", "no", "sure", "yes please"] {
        let ans = c.ask(request());
        assert!(c.answer(line));
        assert_eq!(ans.await, ConsentAnswer::Deny, "{line:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_prompt_is_a_refusal_and_a_late_line_is_chat() {
    let c = Arc::new(applet::TerminalConsent::new(Duration::from_secs(5)));
    let cfg = ConsentConfig::new(c.clone()).with_timeout(Duration::from_secs(5));
    assert_eq!(cfg.ask(request()).await, ConsentAnswer::Deny);
    assert!(!c.answer("y"), "the prompt is gone: the line is chat");
}

/// A console and an applet session over an in-memory pipe; the applet answers `answer`
/// and saves files into `dir`.
fn pair(answer: ConsentAnswer, dir: &std::path::Path) -> (Session, Session) {
    let policy = Policy {
        allowed: PermissionSet::EMPTY.with(Permission::FileTransfer),
        ..Policy::default()
    };
    let (a, c) = tokio::io::duplex(64 * 1024);
    let mut a_cfg = SessionConfig::new(Role::Applet, policy);
    let consent = ConsentFn(move |_r: ConsentRequest| async move { answer });
    a_cfg.consent = Some(ConsentConfig::new(Arc::new(consent)).with_timeout(WAIT));
    a_cfg.download_dir = Some(dir.to_owned());
    let applet = Session::start(a, PathKind::Relay, a_cfg);
    let console = Session::start(
        c,
        PathKind::Relay,
        SessionConfig::new(Role::Console, policy),
    );
    (applet, console)
}

async fn received(ev: &mut Receiver<SessionEvent>) -> rescue::session::ReceivedFile {
    let fut = async {
        loop {
            match ev.recv().await.expect("applet events closed") {
                SessionEvent::FileReceived { file, .. } => return file,
                SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, fut).await.expect("no file")
}

fn write_source(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let path = dir.join("report.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_file_asks_then_sends_and_the_bar_follows_to_the_end() {
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (path, data) = write_source(src.path(), 3 * 1024 * 1024 + 5);
    let (mut applet, mut console) = pair(ConsentAnswer::Allow, dst.path());
    let (mut a_ev, mut c_ev) = (applet.events().unwrap(), console.events().unwrap());

    // The example's whole --send-file path: request, send, follow, print.
    let (sent, file) = tokio::join!(
        console::send_file(&console, &mut c_ev, &path),
        received(&mut a_ev)
    );
    sent.unwrap();
    assert_eq!(std::fs::read(&file.path).unwrap(), data);

    // The bar on its own: the progress events take it to the file size, and the
    // receiver's verified digests are those of the source.
    let grant = console.request(Permission::FileTransfer).await.unwrap();
    let id = console.send_path(&path, &grant).await.unwrap();
    let bar = ProgressBar::hidden(); // no length: only progress events move it
    let (digests, file) = tokio::join!(
        console::follow_transfer(&mut c_ev, id, &bar),
        received(&mut a_ev)
    );
    let digests = digests.unwrap();
    let mut d = FileDigest::new();
    d.update(&data);
    assert_eq!(digests, d.finish());
    assert_eq!(file.digests, digests);
    assert_eq!(bar.position(), data.len() as u64);
}

#[tokio::test]
async fn send_file_stops_when_the_end_user_says_no() {
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (path, _) = write_source(src.path(), 1000);
    let (_applet, mut console) = pair(ConsentAnswer::Deny, dst.path());
    let mut c_ev = console.events().unwrap();
    let r = console::send_file(&console, &mut c_ev, &path).await;
    assert!(r.unwrap_err().to_string().contains("denied"));
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);
}
