//! The audit trail a session writes: start, permissions asked/granted/revoked, chat
//! (text only when the policy allows it), files with name, size and both digests, path
//! changes, end; hash-chained and sealed at rest, verified by `verify_audit_file`.

mod session_support;

use std::sync::Arc;
use std::time::Duration;

use rescue::audit::{audit_seal_key, verify_audit_file, JsonlAuditSink};
use rescue::session::{ConsentAnswer, SessionEvent};
use rescue_proto::Permission;
use session_support::*;

const MASTER: [u8; 32] = [0x42; 32];

async fn run_session(dir: &std::path::Path, exclude_chat: bool) -> (String, String) {
    let key = |id: &str| audit_seal_key(&MASTER, id).unwrap();
    let (a_log, c_log) = (dir.join("applet.jsonl"), dir.join("console.jsonl"));
    let a_sink = JsonlAuditSink::create_sealed(&a_log, key("applet")).unwrap();
    let c_sink = JsonlAuditSink::create(&c_log).unwrap();
    let downloads = dir.join("in");
    std::fs::create_dir(&downloads).unwrap();
    let mut pol = policy(&[Permission::FileTransfer], false);
    pol.exclude_chat_from_audit = exclude_chat;
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(pol)
        .consent(rec, Duration::from_secs(5))
        .downloads(&downloads)
        .audit(Arc::new(a_sink), Arc::new(c_sink))
        .start();
    p.console.chat("the password is hunter2").await.unwrap();
    let g = p.console.request(Permission::FileTransfer).await.unwrap();
    let data = content(100_000, None);
    p.console
        .send_file(std::io::Cursor::new(data), "log.txt", 100_000, &g)
        .await
        .unwrap();
    wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::FileReceived { .. } => Some(()),
        _ => None,
    })
    .await;
    p.applet.end();
    drain(&mut p.applet_events).await;
    drain(&mut p.console_events).await;
    let a = verify_audit_file(&a_log, Some(&key("applet"))).unwrap();
    let c = verify_audit_file(&c_log, None).unwrap();
    assert!(
        verify_audit_file(&a_log, None).is_err(),
        "sealed log read without key"
    );
    (a.lines.join("\n"), c.lines.join("\n"))
}

#[tokio::test]
async fn both_sides_audit_the_whole_session() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = run_session(dir.path(), false).await;
    let d = digests(&content(100_000, None));
    for (side, log) in [("applet", &a), ("console", &c)] {
        for needle in [
            r#""type":"session_started""#,
            r#""type":"path_changed","kind":"relay""#,
            r#""type":"permission_asked","permissions":["file_transfer"]"#,
            r#""type":"permission_granted""#,
            r#""text":"the password is hunter2""#,
            r#""type":"file""#,
            r#""name":"log.txt","size":100000"#,
            &format!(r#""md5":"{}""#, d.md5_hex()),
            &format!(r#""sha256":"{}""#, d.sha256_hex()),
            r#""type":"permission_revoked""#,
            r#""type":"session_ended","reason":"end_user""#,
        ] {
            assert!(log.contains(needle), "{side} lacks {needle}:\n{log}");
        }
    }
    assert!(a.contains(r#""from":"technician""#));
}

#[tokio::test]
async fn chat_text_is_left_out_when_the_policy_excludes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = run_session(dir.path(), true).await;
    for log in [&a, &c] {
        assert!(log.contains(r#""type":"chat""#));
        assert!(!log.contains("hunter2"), "{log}");
    }
}
