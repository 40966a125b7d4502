//! The embedding API (issue 11) as a new user holds it: everything from the one `rescue`
//! crate (this file imports nothing of the lower crates), a local stack in one call, the
//! pairing order made harmless, a paired end turned into a `Session` in one call, the
//! common waits without a filter loop, and files in both directions.

use std::time::Duration;

use rescue::dev::LocalStack;
use rescue::error::Error;
use rescue::gateway::GatewayStats;
use rescue::session::{SessionConfig, SessionError};
use rescue::{
    Digests, EndReason, FileDigest, PeerTimeouts, Permission, Policy, Session, SessionEvent,
};
use tokio::time::{timeout, Instant};

/// Longest wait for any one step here.
const STEP: Duration = Duration::from_secs(20);

/// Short timeouts, a claim that waits `claim_wait` for the registration.
fn timeouts(claim_wait: Duration) -> PeerTimeouts {
    let mut t = PeerTimeouts::default();
    t.connect = Duration::from_secs(2);
    t.reply = Duration::from_secs(2);
    t.pairing = Duration::from_secs(10);
    t.claim_wait = claim_wait;
    t
}

async fn stack(claim_wait: Duration) -> LocalStack {
    LocalStack::start()
        .await
        .expect("local stack")
        .with_timeouts(timeouts(claim_wait))
}

/// Waits until the gateway's statistics satisfy `cond`.
async fn gateway_until(stack: &LocalStack, cond: impl Fn(&GatewayStats) -> bool) {
    timeout(STEP, async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if cond(&stack.gateway().stats()) {
                return;
            }
        }
    })
    .await
    .expect("the gateway never reached the awaited state");
}

async fn chat_both_ways(applet: &mut Session, console: &mut Session) {
    console.chat("hello from the technician").await.unwrap();
    assert_eq!(
        applet.next_chat_within(STEP).await.unwrap(),
        "hello from the technician"
    );
    applet.chat("hello from the end user").await.unwrap();
    assert_eq!(
        console.next_chat_within(STEP).await.unwrap(),
        "hello from the end user"
    );
}

#[tokio::test]
async fn a_claim_sent_before_the_applet_registers_waits_and_pairs() {
    let stack = stack(Duration::from_secs(10)).await;
    let issued = stack.issue(Policy::default()).unwrap();
    let console = stack.console().await.unwrap();
    let key = issued.claim_key();
    let claim = tokio::spawn(async move { console.start_session(key).await });
    // The gateway has refused the first claim (the GUID is not registered yet) ...
    gateway_until(&stack, |s| s.refused >= 1 && s.registered == 0).await;
    // ... and only then does the end user's applet start.
    let mut applet = timeout(STEP, stack.applet(&issued).unwrap().start_session())
        .await
        .expect("the applet pairs in time")
        .expect("applet session");
    let mut console = timeout(STEP, claim)
        .await
        .expect("the claim finishes in time")
        .unwrap()
        .expect("console session");
    assert_eq!(applet.sas(), console.sas(), "one end-to-end session");
    chat_both_ways(&mut applet, &mut console).await;
    console.end();
    assert_eq!(applet.ended().await.unwrap(), EndReason::Technician);
    assert_eq!(console.ended().await.unwrap(), EndReason::Technician);
}

#[tokio::test]
async fn both_orders_of_a_join_pair() {
    let stack = stack(Duration::from_secs(10)).await;
    for console_first in [true, false] {
        let issued = stack.issue(Policy::default()).unwrap();
        let applet = stack.applet(&issued).unwrap();
        let console = stack.console().await.unwrap();
        let (a, c) = if console_first {
            let (c, a) = tokio::join!(
                console.start_session(issued.claim_key()),
                applet.start_session()
            );
            (a, c)
        } else {
            tokio::join!(
                applet.start_session(),
                console.start_session(issued.claim_key())
            )
        };
        let (mut a, mut c) = (a.unwrap(), c.unwrap());
        chat_both_ways(&mut a, &mut c).await;
        a.end();
        assert_eq!(c.ended().await.unwrap(), EndReason::EndUser);
    }
}

#[tokio::test]
async fn a_claim_for_a_guid_that_never_registers_fails_with_unknown_guid_after_the_wait() {
    let wait = Duration::from_millis(800);
    let stack = stack(wait).await;
    let issued = stack.issue(Policy::default()).unwrap();
    let started = Instant::now();
    let err = timeout(
        STEP,
        stack.console().await.unwrap().claim(issued.claim_key()),
    )
    .await
    .expect("the claim gives up")
    .expect_err("nothing registered");
    assert!(
        matches!(err.refusal(), Some(rescue::error::ErrorCode::UnknownGuid)),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= wait / 2,
        "it waited for the registration"
    );
    // It tried more than once, then stopped: a bounded number of refused claims.
    let refused = stack.gateway().stats().refused;
    assert!((2..=14).contains(&refused), "{refused} claims refused");
}

#[tokio::test]
async fn the_conveniences_answer_events_taken_once_the_queue_is_taken() {
    let stack = stack(Duration::from_secs(10)).await;
    let issued = stack.issue(Policy::default()).unwrap();
    let (a, c) = tokio::join!(
        stack.applet(&issued).unwrap().start_session(),
        stack
            .console()
            .await
            .unwrap()
            .start_session(issued.claim_key())
    );
    let (mut a, c) = (a.unwrap(), c.unwrap());
    let mut events = a.events().expect("first call");
    assert!(matches!(
        a.next_chat().await,
        Err(SessionError::EventsTaken)
    ));
    assert!(matches!(a.ended().await, Err(SessionError::EventsTaken)));
    // The full stream still has everything.
    c.chat("seen in the stream").await.unwrap();
    let text = timeout(STEP, async {
        loop {
            if let Some(SessionEvent::Chat { text }) = events.recv().await {
                return text;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(text, "seen in the stream");
}

/// A paired applet and console with a download folder on the given sides.
async fn sessions_with_downloads(
    stack: &LocalStack,
    applet_dir: Option<&std::path::Path>,
    console_dir: Option<&std::path::Path>,
) -> (Session, Session) {
    let policy = Policy {
        allowed: [Permission::FileTransfer].into_iter().collect(),
        ..Policy::default()
    };
    let issued = stack.issue(policy).unwrap();
    let (a_dir, c_dir) = (applet_dir.map(Into::into), console_dir.map(Into::into));
    let applet = async {
        let paired = stack.applet(&issued).unwrap().connect().await?;
        Ok::<_, Error>(paired.start_with(|cfg: &mut SessionConfig| cfg.download_dir = a_dir))
    };
    let console = async {
        let paired = stack.console().await?.claim(issued.claim_key()).await?;
        Ok::<_, Error>(paired.start_with(|cfg: &mut SessionConfig| cfg.download_dir = c_dir))
    };
    let (a, c) = tokio::join!(applet, console);
    (a.unwrap(), c.unwrap())
}

fn digests(data: &[u8]) -> Digests {
    let mut d = FileDigest::new();
    d.update(data);
    d.finish()
}

#[tokio::test]
async fn the_end_user_sends_a_file_without_a_grant_and_the_technician_verifies_it() {
    let stack = stack(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut applet, mut console) = sessions_with_downloads(&stack, None, Some(dir.path())).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = applet
        .share_file(
            std::io::Cursor::new(data.clone()),
            "router-log.txt",
            data.len() as u64,
        )
        .await
        .expect("no grant needed for the end user's own file");
    let received = timeout(STEP, async {
        loop {
            match console.next_event().await.unwrap() {
                Some(SessionEvent::FileReceived { file, .. }) => return file,
                Some(SessionEvent::FileFailed { reason, .. }) => panic!("{reason}"),
                Some(_) => {}
                None => panic!("the console's session ended"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(received.name, "router-log.txt");
    assert_eq!(received.digests, digests(&data), "MD5 and SHA-256 verified");
    assert_eq!(std::fs::read(&received.path).unwrap(), data);
    let sent = timeout(STEP, async {
        loop {
            match applet.next_event().await.unwrap() {
                Some(SessionEvent::FileSent {
                    id: sent, digests, ..
                }) => return (sent, digests),
                Some(SessionEvent::FileFailed { reason, .. }) => panic!("{reason}"),
                Some(_) => {}
                None => panic!("the applet's session ended"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        sent,
        (id, digests(&data)),
        "the sender learns it was verified"
    );
    // The technician may not send a file without a grant, still.
    assert!(console
        .share_file(std::io::Cursor::new(vec![1]), "x", 1)
        .await
        .is_err());
}

#[tokio::test]
async fn a_console_without_a_download_folder_refuses_the_end_users_file() {
    let stack = stack(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut applet, _console) = sessions_with_downloads(&stack, Some(dir.path()), None).await;
    let id = applet
        .share_file(std::io::Cursor::new(vec![7u8; 1000]), "photo.jpg", 1000)
        .await
        .unwrap();
    let failed = timeout(STEP, async {
        loop {
            match applet.next_event().await.unwrap() {
                Some(SessionEvent::FileFailed { id: f, .. }) => return f,
                Some(SessionEvent::FileSent { .. }) => panic!("the console took it"),
                Some(_) => {}
                None => panic!("the applet's session ended"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(failed, id);
}

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

#[test]
fn the_quickstart_example_runs_to_its_clean_end() {
    // examples/quickstart.rs, the README's and the crate docs' quick start, as it is.
    quickstart::main().expect("the quick start runs");
}

/// Registers one more applet of `stack` and returns the error it gets.
async fn register_refused(stack: &LocalStack) -> Error {
    let issued = stack.issue(Policy::default()).unwrap();
    let applet = stack.applet(&issued).unwrap();
    timeout(STEP, applet.register())
        .await
        .expect("the refusal comes in time")
        .expect_err("over the limit")
}

#[tokio::test]
async fn each_session_limit_configured_is_enforced_and_its_refusal_names_it() {
    use rescue::error::{Advice, ErrorCode};
    // (limit set to 1, the text its refusal carries)
    type Set = fn(&mut rescue::GatewayLimits);
    let cases: [(Set, &str); 3] = [
        (|l| l.max_sessions = 1, "gateway session limit"),
        (|l| l.max_sessions_per_account = 1, "account session quota"),
        (
            |l| l.max_ended_per_account = 1,
            "account remembered GUID quota",
        ),
    ];
    for (set, named) in cases {
        let stack = LocalStack::start_with(|c| set(&mut c.limits))
            .await
            .unwrap()
            .with_timeouts(timeouts(Duration::from_secs(1)));
        let issued = stack.issue(Policy::default()).unwrap();
        let _first = stack.applet(&issued).unwrap().register().await.unwrap();
        let err = register_refused(&stack).await;
        assert_eq!(
            err.refusal(),
            Some(ErrorCode::Overloaded),
            "{named}: {err:?}"
        );
        assert!(err.to_string().contains(named), "{named}: {err}");
        // The ticket's only gateway is full: nothing else to try, later may work.
        assert_eq!(err.advice(), Advice::Retry, "{named}");
    }
}
