//! Runs the demo's body (`examples/demo.rs`, included as a module) and checks what it
//! observed: equal SAS, chat both ways, one consent prompt for the asked permission and
//! none for the forbidden one, a file verified with equal digests, every grant revoked at
//! the end, and a verified audit trail that records all of it.

#[allow(dead_code)] // `main` of the example is not called here
#[path = "../examples/demo.rs"]
mod demo;

use rescue::session::{PathKind, SessionError};
use rescue_proto::audit::{AuditEvent, Record};
use rescue_proto::session::control::DenyReason;
use rescue_proto::Permission;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_what_it_claims() {
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), demo::run())
        .await
        .expect("the demo timed out")
        .expect("the demo failed");

    assert_eq!(out.sas.0, out.sas.1);
    assert!(!out.sas.0.is_empty());
    assert!(out.chat.0.contains("Alice from support"), "{:?}", out.chat);
    assert!(
        out.chat.1.contains("the report is broken"),
        "{:?}",
        out.chat
    );

    // One prompt, for file transfer, naming the technician; none for the forbidden one.
    assert_eq!(out.prompts.len(), 1, "{:?}", out.prompts);
    let p = &out.prompts[0];
    assert!(p.permissions.contains(Permission::FileTransfer));
    assert!(!p.permissions.contains(Permission::Reboot));
    assert_eq!(p.technician, "alice");
    assert_eq!(p.account, "42");
    assert!(
        matches!(out.forbidden, Err(SessionError::Denied(DenyReason::Policy))),
        "{:?}",
        out.forbidden
    );

    // The same digests at the source, from the sender and from the receiver.
    let (source, sent, received) = out.digests;
    assert_eq!(source, sent);
    assert_eq!(sent, received);
    assert!(out.file_equal);

    // The end revoked the grant on both sides.
    assert_eq!(out.revoked.len(), 1);
    assert!(out.grant_dead_after_end);

    // The audit trail holds the session from start to end, with the file's hashes.
    let log = out.audit.join("\n");
    for needle in [
        "session_started",
        "permission_asked",
        "permission_granted",
        "permission_denied",
        "permission_revoked",
        "session_ended",
        &received.sha256_hex(),
        &received.md5_hex(),
    ] {
        assert!(log.contains(needle), "audit lacks {needle}:\n{log}");
    }
    assert!(out
        .audit
        .first()
        .is_some_and(|l| l.contains("session_started")));
    assert!(out
        .audit
        .last()
        .is_some_and(|l| l.contains("session_ended")));

    // The file started on the relay and finished on the direct path: the gateway relayed
    // its first MiB towards the applet, not the whole file.
    assert_eq!(
        out.file_paths,
        (Some(PathKind::DirectTcp), Some(PathKind::DirectTcp))
    );
    let relayed = out.gateway.bytes_console_to_applet;
    assert!(relayed > 1 << 20, "relayed {relayed}");
    assert!(relayed < received_size(&out.audit), "relayed {relayed}");
    assert!(
        log.contains("direct_tcp"),
        "audit lacks the path change:\n{log}"
    );
}

/// The file size recorded in the audit trail (`u64::MAX` if absent: the caller fails).
fn received_size(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .find_map(|r| match r.event {
            AuditEvent::File { size, .. } => Some(size),
            _ => None,
        })
        .unwrap_or(u64::MAX)
}
