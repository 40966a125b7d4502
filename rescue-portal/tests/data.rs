//! Data at rest: sealing per account and key destruction, the hash-chained admin audit,
//! and retention driven by a controllable clock.

mod common;

use axum::http::StatusCode;
use common::TestPortal;
use rescue_portal::audit::{verify_chain, ChainBroken};
use rescue_portal::clock::DAY;
use rescue_portal::tenant::Tenant;
use rescue_portal::PortalError;
use serde_json::json;

/// A raw `session_events` row: account, id, session, seq, at, kind, sealed body.
type EventRow = (i64, i64, i64, i64, i64, String, Vec<u8>);

/// A session of `acct` with a claimed console and a logged chat line; returns its id.
async fn session_with_chat(p: &TestPortal, token: &str, text: &str) -> i64 {
    let (_, created) = p.call("POST", "/api/sessions", Some(token), None).await;
    let id = created["session"]["id"].as_i64().unwrap();
    let events = json!([{ "kind": "start" }, { "kind": "chat", "from": "end_user", "text": text },
        { "kind": "file", "name": "notes.txt", "size": 3, "md5": "900150983cd24fb0d6963f7d28e17f72",
          "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" }]);
    let (s, v) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/events"),
            Some(token),
            Some(events),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

fn file_contains(path: &std::path::Path, needle: &str) -> bool {
    let mut bytes = std::fs::read(path).unwrap();
    for ext in ["-wal", "-journal"] {
        if let Ok(more) = std::fs::read(format!("{}{ext}", path.display())) {
            bytes.extend(more);
        }
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn logs_are_sealed_and_unreadable_once_the_account_key_is_destroyed() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let secret_text = "the password is hunter2";
    let id = session_with_chat(&p, &tok, secret_text).await;
    let (_, log) = p
        .call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&tok),
            None,
        )
        .await;
    assert!(
        log.to_string().contains(secret_text),
        "readable while the account lives"
    );
    assert!(log.to_string().contains("notes.txt"));
    assert!(
        !file_contains(&p.db_path, secret_text),
        "chat is not in clear on disk"
    );
    assert!(
        !file_contains(&p.db_path, "notes.txt"),
        "file names are not in clear on disk"
    );

    // Keep a copy of the sealed rows, as if the deletion had left them on disk.
    let left: Vec<EventRow> = sqlx::query_as(
        "SELECT account_id, id, session_id, seq, at, kind, body FROM session_events WHERE account_id = $1",
    )
    .bind(a.id)
    .fetch_all(p.svc.db().pool())
    .await
    .unwrap();
    assert_eq!(left.len(), 3);
    p.svc.delete_account(a.id).await.unwrap();
    for r in &left {
        sqlx::query("INSERT INTO session_events (account_id, id, session_id, seq, at, kind, body) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(r.0).bind(r.1).bind(r.2).bind(r.3).bind(r.4).bind(r.5.clone()).bind(r.6.clone())
            .execute(p.svc.db().pool())
            .await
            .unwrap();
    }
    let key_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM account_keys WHERE account_id = $1")
            .bind(a.id)
            .fetch_one(p.svc.db().pool())
            .await
            .unwrap();
    assert_eq!(key_rows, 0, "the data key is gone");
    assert!(matches!(
        Tenant::open(&p.svc, a.id).await,
        Err(PortalError::KeyDestroyed)
    ));
    let (s, _) = p.call("GET", "/api/me", Some(&tok), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the deleted account's sessions are gone"
    );
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let id = session_with_chat(&p, &tok, "one").await;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, body FROM session_events WHERE account_id = $1 ORDER BY id")
            .bind(a.id)
            .fetch_all(p.svc.db().pool())
            .await
            .unwrap();
    sqlx::query("UPDATE session_events SET body = $1 WHERE id = $2")
        .bind(rows[0].1.clone())
        .bind(rows[1].0)
        .execute(p.svc.db().pool())
        .await
        .unwrap();
    let (s, _) = p
        .call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a swapped ciphertext fails authentication"
    );
}

#[tokio::test]
async fn every_settings_change_is_audited_in_a_verifiable_chain() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (_, groups) = p.call("GET", "/api/groups", Some(&tok), None).await;
    let gid = groups[0]["id"].as_i64().unwrap();
    let body = json!({ "permissions": 1, "all_in_one": true, "exclude_chat": true, "shared_queue": false, "allow_list": "192.0.2.0/24" });
    assert_eq!(
        p.call("PUT", &format!("/api/groups/{gid}"), Some(&tok), Some(body))
            .await
            .0,
        StatusCode::OK
    );
    let s = json!({ "webhook_url": "http://127.0.0.1:9/x", "webhook_chat": false });
    assert_eq!(
        p.call("PUT", "/api/settings", Some(&tok), Some(s)).await.0,
        StatusCode::OK
    );

    let (_, audit) = p.call("GET", "/api/audit", Some(&tok), None).await;
    let entries = audit.as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "group.create",
            "technician.create",
            "group.update",
            "settings.update"
        ]
    );
    let upd = &entries[2];
    assert_eq!(upd["actor"], "admin@acme.test");
    assert_eq!(upd["at"].as_i64().unwrap() as u64, p.svc.now());
    assert!(upd["before"]
        .as_str()
        .unwrap()
        .contains("\"all_in_one\":false"));
    assert!(upd["after"]
        .as_str()
        .unwrap()
        .contains("\"all_in_one\":true"));
    assert!(upd["after"].as_str().unwrap().contains("192.0.2.0/24"));
    assert_eq!(verify_chain(p.svc.db(), a.id).await.unwrap(), Ok(()));

    // Rewriting history is detected at the entry rewritten.
    sqlx::query("UPDATE admin_audit SET after_value = $1 WHERE account_id = $2 AND seq = 2")
        .bind("{}")
        .bind(a.id)
        .execute(p.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(
        verify_chain(p.svc.db(), a.id).await.unwrap(),
        Err(ChainBroken { seq: 2 })
    );
}

#[tokio::test]
async fn deleting_an_audit_entry_breaks_the_chain() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    let g = t.groups().await.unwrap()[0].clone();
    t.update_group("x", g.id, &g.policy).await.unwrap();
    assert_eq!(verify_chain(p.svc.db(), a.id).await.unwrap(), Ok(()));
    sqlx::query("DELETE FROM admin_audit WHERE account_id = $1 AND seq = 1")
        .bind(a.id)
        .execute(p.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(
        verify_chain(p.svc.db(), a.id).await.unwrap(),
        Err(ChainBroken { seq: 1 })
    );
}

#[tokio::test]
async fn a_deletion_request_is_honoured_within_30_days() {
    let p = TestPortal::sqlite().await;
    let a = p.account("gone").await;
    let keep = p.account("kept").await;
    p.svc.request_deletion(a.id).await.unwrap();
    p.clock.advance(29 * DAY);
    assert_eq!(p.svc.purge().await.unwrap().accounts_deleted, 0);
    assert!(p.svc.account_exists(a.id).await.unwrap());
    p.clock.advance(DAY);
    assert_eq!(p.svc.purge().await.unwrap().accounts_deleted, 1);
    assert!(!p.svc.account_exists(a.id).await.unwrap());
    assert!(p.svc.account_exists(keep.id).await.unwrap());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM technicians WHERE account_id = $1")
        .bind(a.id)
        .fetch_one(p.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn content_goes_140_days_after_the_subscription_ends() {
    let p = TestPortal::sqlite().await;
    let a = p.account("lapsed").await;
    p.svc.end_subscription(a.id).await.unwrap();
    p.clock.advance(139 * DAY);
    p.svc.purge().await.unwrap();
    assert!(p.svc.account_exists(a.id).await.unwrap());
    p.clock.advance(DAY);
    p.svc.purge().await.unwrap();
    assert!(!p.svc.account_exists(a.id).await.unwrap());
}

#[tokio::test]
async fn logs_stay_two_years_online_then_two_in_the_archive_then_go() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let id = session_with_chat(&p, &tok, "old chat").await;
    let year = 365 * DAY;
    p.clock.advance(2 * year - DAY);
    assert_eq!(p.svc.purge().await.unwrap().events_archived, 0);
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    assert_eq!(t.events(id).await.unwrap().len(), 3);
    p.clock.advance(DAY);
    assert_eq!(p.svc.purge().await.unwrap().events_archived, 3);
    assert!(t.events(id).await.unwrap().is_empty(), "no longer online");
    assert_eq!(p.svc.archived_event_count(a.id).await.unwrap(), 3);
    p.clock.advance(2 * year - DAY);
    assert_eq!(p.svc.purge().await.unwrap().archived_events_deleted, 0);
    p.clock.advance(DAY);
    assert_eq!(p.svc.purge().await.unwrap().archived_events_deleted, 3);
    assert_eq!(p.svc.archived_event_count(a.id).await.unwrap(), 0);
}
