//! Session logs reaching the portal, and the signed CRM webhook: Standard Webhooks
//! signatures, retries with backoff, dead letters, chat per setting, SSRF refusal.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{test_config, TestPortal};
use rescue_portal::tenant::{GroupPolicy, Tenant};
use rescue_portal::webhook::{secret_from_text, verify};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One received webhook: headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, n: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A webhook receiver on 127.0.0.1 answering the statuses in `script` in turn (the last
/// one repeats).
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/rescue", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let k = s.read(&mut chunk).await.unwrap();
                assert!(k > 0, "connection closed mid-request");
                buf.extend_from_slice(&chunk[..k]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let k = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..k]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_lowercase(), v.trim().to_owned()))
                .collect();
            g.lock().unwrap().push(Received {
                headers,
                body: buf[head_end..head_end + len].to_vec(),
            });
            let status = script[n.min(script.len() - 1)];
            n += 1;
            let resp =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (url, got)
}

async fn ended_session(p: &TestPortal, tok: &str, chat: &str) -> i64 {
    let (_, created) = p.call("POST", "/api/sessions", Some(tok), None).await;
    let id = created["session"]["id"].as_i64().unwrap();
    let events = json!([
        { "kind": "start" },
        { "kind": "permission_asked", "permission": "view" },
        { "kind": "permission_granted", "permission": "view" },
        { "kind": "chat", "from": "end_user", "text": chat },
        { "kind": "file", "name": "report.pdf", "size": 1234, "md5": "00112233445566778899aabbccddeeff",
          "sha256": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" },
        { "kind": "path_change", "path": "direct" },
        { "kind": "permission_revoked", "permission": "view" },
        { "kind": "end" }
    ]);
    let (s, v) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/events"),
            Some(tok),
            Some(events),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

#[tokio::test]
async fn an_ended_session_is_posted_signed_and_retried_with_backoff() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (url, got) = receiver(vec![500, 200]).await;
    let (s, v) = p
        .call(
            "PUT",
            "/api/settings",
            Some(&tok),
            Some(json!({ "webhook_url": url, "webhook_chat": false })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = secret_from_text(v["webhook_secret"].as_str().unwrap()).unwrap();
    let id = ended_session(&p, &tok, "private words").await;
    let (_, info) = p
        .call("GET", &format!("/api/sessions/{id}"), Some(&tok), None)
        .await;
    assert_eq!(info["state"], "ended");

    let first = p.svc.deliver_due().await.unwrap();
    assert_eq!(
        (first.delivered, first.retrying),
        (0, 1),
        "500: retried later"
    );
    let early = p.svc.deliver_due().await.unwrap();
    assert_eq!(
        (early.delivered, early.retrying),
        (0, 0),
        "not due before the backoff"
    );
    p.clock.advance(test_config().webhook_first_retry_secs);
    let second = p.svc.deliver_due().await.unwrap();
    assert_eq!(second.delivered, 1);

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for r in &got {
        let ts: u64 = r.header("webhook-timestamp").parse().unwrap();
        verify(
            &secret,
            r.header("webhook-id"),
            ts,
            r.header("webhook-signature"),
            &r.body,
            p.svc.now(),
        )
        .unwrap();
        assert!(verify(
            &[0; 32],
            r.header("webhook-id"),
            ts,
            r.header("webhook-signature"),
            &r.body,
            p.svc.now()
        )
        .is_err());
    }
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "one id across retries"
    );
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(body["type"], "session.ended");
    assert_eq!(body["session"]["id"].as_i64(), Some(id));
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "start",
            "permission_asked",
            "permission_granted",
            "file",
            "path_change",
            "permission_revoked",
            "end"
        ]
    );
    assert!(
        !String::from_utf8_lossy(&got[1].body).contains("private words"),
        "chat excluded by setting"
    );
    assert_eq!(
        body["events"][3]["sha256"],
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    );
}

#[tokio::test]
async fn chat_is_sent_when_the_account_says_so_and_failures_end_dead_lettered() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (url, got) = receiver(vec![503]).await;
    p.call(
        "PUT",
        "/api/settings",
        Some(&tok),
        Some(json!({ "webhook_url": url, "webhook_chat": true })),
    )
    .await;
    ended_session(&p, &tok, "hello from the end user").await;
    let max = test_config().webhook_max_attempts;
    let mut dead = 0;
    for _ in 0..max {
        dead += p.svc.deliver_due().await.unwrap().dead;
        p.clock.advance(3600);
    }
    assert_eq!(dead, 1);
    assert_eq!(
        p.svc.deliver_due().await.unwrap(),
        Default::default(),
        "no more attempts"
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len() as u32, max);
    assert!(String::from_utf8_lossy(&got[0].body).contains("hello from the end user"));
}

#[tokio::test]
async fn a_webhook_url_at_loopback_or_a_private_range_is_refused_and_nothing_stored() {
    let mut c = test_config();
    c.allow_private_webhooks = false;
    let p = TestPortal::sqlite_with(c).await;
    let a = p.account("acme").await;
    let tok = p.login(&a.admin).await;
    let (_, audit_before) = p.call("GET", "/api/audit", Some(&tok), None).await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://169.254.169.254/",
        "file:///etc/passwd",
    ] {
        let (s, v) = p
            .call(
                "PUT",
                "/api/settings",
                Some(&tok),
                Some(json!({ "webhook_url": url, "webhook_chat": true })),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {v}");
    }
    let (_, settings) = p.call("GET", "/api/settings", Some(&tok), None).await;
    assert_eq!(
        settings,
        json!({ "webhook_url": null, "webhook_chat": false })
    );
    let (_, audit_after) = p.call("GET", "/api/audit", Some(&tok), None).await;
    assert_eq!(audit_before, audit_after);
}

#[tokio::test]
async fn the_log_is_shown_to_the_accounts_technicians_and_respects_the_chat_policy() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    let mut pol = GroupPolicy::default();
    pol.exclude_chat = true;
    let quiet = t.create_group("test", "quiet", &pol).await.unwrap();
    let q = t
        .create_technician("test", "q@acme.test", "q", quiet, false)
        .await
        .unwrap();
    let colleague = p.technician(&a, "c@acme.test").await;
    let qt = p.login(&q).await;
    let ct = p.login(&colleague).await;
    let id = ended_session(&p, &qt, "not to be kept").await;
    let (s, log) = p
        .call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&ct),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert!(!kinds.contains(&"chat"));
    // Only the console that claimed (or created) a session reports its events.
    let (s, _) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/events"),
            Some(&ct),
            Some(json!([{ "kind": "start" }])),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Malformed events are refused whole.
    let bad = json!([{ "kind": "start" }, { "kind": "file", "name": "x", "size": 1, "md5": "nothex", "sha256": "" }]);
    let (s, _) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/events"),
            Some(&qt),
            Some(bad),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, log2) = p
        .call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&ct),
            None,
        )
        .await;
    assert_eq!(log, log2, "nothing stored");
}
