//! Tenant isolation: every route, as an admin and as a technician of account A, against
//! the ids of account B's sessions, logs, technicians and groups; every answer is the
//! same refusal a random id gets, and B's data is unchanged afterwards.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{ip, TestPortal};
use rescue_portal::http::ROUTES;
use rescue_portal::tenant::Tenant;
use serde_json::{json, Value};

struct Caller {
    token: String,
    csrf: String,
    label: &'static str,
}

async fn caller(
    p: &TestPortal,
    t: &rescue_portal::tenant::NewTechnician,
    label: &'static str,
) -> Caller {
    let token = p.login(t).await;
    let who = p.svc.authenticate(&token).await.unwrap();
    p.svc
        .change_password(&who, &t.password, "a new long password")
        .await
        .unwrap();
    Caller {
        token,
        csrf: who.csrf,
        label,
    }
}

fn body_for(method: &str, path: &str, csrf: &str) -> (Option<&'static str>, String) {
    if path.starts_with("/api/") {
        let v: Value = if path.ends_with("/events") {
            json!([{ "kind": "chat", "from": "technician", "text": "leak?" }, { "kind": "end" }])
        } else if path.starts_with("/api/groups/") {
            json!({ "permissions": 0, "all_in_one": true, "exclude_chat": true, "shared_queue": false, "allow_list": "10.0.0.0/8" })
        } else {
            return (None, String::new());
        };
        let _ = method;
        (Some("application/json"), v.to_string())
    } else {
        (
            Some("application/x-www-form-urlencoded"),
            format!("csrf={csrf}&allow_list=&perm_0=on"),
        )
    }
}

async fn hit(p: &TestPortal, c: &Caller, method: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", c.token))
        .header("cookie", format!("rescue_session={}", c.token));
    let mut body = Body::empty();
    if method != "GET" {
        let (ct, text) = body_for(method, path, &c.csrf);
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
            body = Body::from(text);
        }
    }
    p.send(ip("127.0.0.1"), b.body(body).unwrap()).await
}

#[tokio::test]
async fn account_a_reaches_nothing_of_account_b() {
    let p = TestPortal::sqlite().await;
    let a = p.account("alpha").await;
    let b = p.account("bravo").await;
    let a_tech = p.technician(&a, "tech@alpha.test").await;
    let b_tech = p.technician(&b, "tech@bravo.test").await;

    // B's data: a session fetched by its end user and claimed, with a log; a group; a
    // technician; settings with a webhook.
    let b_admin = p.login(&b.admin).await;
    let (_, created) = p.call("POST", "/api/sessions", Some(&b_admin), None).await;
    let b_session = created["session"]["id"].as_i64().unwrap();
    let b_guid = created["session"]["guid"].as_str().unwrap().to_owned();
    let (_, _) = p
        .call(
            "GET",
            &format!("/api/applet/{}", created["code"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    let (_, created2) = p.call("POST", "/api/sessions", Some(&b_admin), None).await;
    let b_waiting = created2["session"]["id"].as_i64().unwrap();
    let (_, _) = p
        .call(
            "GET",
            &format!("/api/applet/{}", created2["code"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    assert_eq!(
        p.call(
            "POST",
            &format!("/api/sessions/{b_session}/claim"),
            Some(&b_admin),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let events = json!([{ "kind": "start" }, { "kind": "chat", "from": "end_user", "text": "bravo secret" }]);
    assert_eq!(
        p.call(
            "POST",
            &format!("/api/sessions/{b_session}/events"),
            Some(&b_admin),
            Some(events)
        )
        .await
        .0,
        StatusCode::OK
    );
    let settings = json!({ "webhook_url": "http://127.0.0.1:9/bravo", "webhook_chat": true });
    assert_eq!(
        p.call("PUT", "/api/settings", Some(&b_admin), Some(settings))
            .await
            .0,
        StatusCode::OK
    );
    let bt = Tenant::open(&p.svc, b.id).await.unwrap();
    let b_group = bt.groups().await.unwrap()[0].clone();
    let b_before = (
        bt.groups().await.unwrap().len(),
        format!("{:?}", b_group.policy),
        bt.events(b_session).await.unwrap().len(),
        bt.session(b_session).await.unwrap().claimed_by,
        bt.session(b_waiting).await.unwrap().state,
        bt.audit().await.unwrap().len(),
        bt.technician(b_tech.id).await.unwrap().locked_until,
    );

    let callers = [
        caller(&p, &a.admin, "A admin").await,
        caller(&p, &a_tech, "A technician").await,
    ];
    let b_ids = [
        ("B session", b_session),
        ("B waiting session", b_waiting),
        ("B group", b_group.id),
        ("B technician", b_tech.id),
        ("B admin", b.admin.id),
    ];
    // Strings that must never appear in an answer to A.
    let secrets = [
        b_guid.clone(),
        b_session.to_string(),
        b_waiting.to_string(),
        b_group.id.to_string(),
        b_tech.id.to_string(),
        "bravo".into(),
    ];
    let mut walked = 0;
    for c in &callers {
        for &(method, template) in ROUTES {
            if template.contains("{code}") {
                // The end user's code is the capability itself (no account context); it
                // is covered by the issuing tests.
                continue;
            }
            if template == "/api/logout"
                || template == "/logout"
                || template == "/api/login"
                || template == "/login"
            {
                continue;
            }
            if template.contains("{id}") {
                let random = template.replace("{id}", "4242424242");
                let reference = hit(&p, c, method, &random).await;
                assert_eq!(
                    reference.0,
                    StatusCode::NOT_FOUND,
                    "{} {method} {random}",
                    c.label
                );
                for (what, id) in b_ids {
                    let path = template.replace("{id}", &id.to_string());
                    let got = hit(&p, c, method, &path).await;
                    assert_eq!(
                        got,
                        reference,
                        "{} {method} {template} with {what}: {}",
                        c.label,
                        String::from_utf8_lossy(&got.1)
                    );
                    walked += 1;
                }
            } else {
                let (status, body) = hit(&p, c, method, template).await;
                let text = String::from_utf8_lossy(&body);
                for s in &secrets {
                    assert!(
                        !text.contains(s.as_str()),
                        "{} {method} {template} ({status}) leaks {s}: {text}",
                        c.label
                    );
                }
                walked += 1;
            }
        }
    }
    assert!(walked > 100, "walked {walked} requests");

    let bt = Tenant::open(&p.svc, b.id).await.unwrap();
    let b_after = (
        bt.groups().await.unwrap().len(),
        format!("{:?}", bt.group(b_group.id).await.unwrap().policy),
        bt.events(b_session).await.unwrap().len(),
        bt.session(b_session).await.unwrap().claimed_by,
        bt.session(b_waiting).await.unwrap().state,
        bt.audit().await.unwrap().len(),
        bt.technician(b_tech.id).await.unwrap().locked_until,
    );
    assert_eq!(b_before, b_after, "B unchanged");
}
