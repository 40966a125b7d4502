//! The same store on PostgreSQL: a server started by the test (as user `postgres` when
//! run as root), a fresh database per portal, and the main paths run against it. Fails
//! when PostgreSQL is not installed (`.ci/deps/portal.sh` installs it).

mod common;

use axum::http::StatusCode;
use common::{ip, PgServer, TestPortal};
use rescue_portal::audit::verify_chain;
use rescue_portal::clock::DAY;
use rescue_portal::db::Backend;
use rescue_portal::tenant::Tenant;
use rescue_portal::PortalError;
use serde_json::json;

#[tokio::test]
async fn the_portal_runs_on_postgresql() {
    let pg = PgServer::start();
    let p = TestPortal::postgres(pg.clone()).await;
    assert_eq!(p.svc.db().backend(), Backend::Postgres);
    let a = p.account("acme").await;
    let b = p.account("bravo").await;
    let tech = p.technician(&a, "tech@acme.test").await;

    // Login: TOTP once, generic failures.
    let code = p.code(&a.admin);
    let body = json!({ "email": a.admin.email, "password": a.admin.password, "totp": code });
    let (s, v) = p.call("POST", "/api/login", None, Some(body.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let admin = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        p.call("POST", "/api/login", None, Some(body)).await.0,
        StatusCode::UNAUTHORIZED
    );
    p.clock.advance(30);
    let tt = p.login(&tech).await;

    // Issue, fetch, queue, claim, log, end.
    let (_, created) = p.call("POST", "/api/sessions", Some(&admin), None).await;
    let id = created["session"]["id"].as_i64().unwrap();
    let (s, _) = p
        .call(
            "GET",
            &format!("/api/applet/{}", created["code"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, q) = p.call("GET", "/api/queue", Some(&tt), None).await;
    assert_eq!(q.as_array().unwrap().len(), 1);
    let (s, _) = p
        .call(
            "POST",
            &format!("/api/sessions/{id}/claim"),
            Some(&tt),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let events = json!([{ "kind": "start" }, { "kind": "chat", "from": "end_user", "text": "x'; DROP TABLE sessions; --" }, { "kind": "end" }]);
    assert_eq!(
        p.call(
            "POST",
            &format!("/api/sessions/{id}/events"),
            Some(&tt),
            Some(events)
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, log) = p
        .call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[1]["event"]["text"], "x'; DROP TABLE sessions; --");

    // Isolation: B's admin sees none of it.
    let bt = p.login(&b.admin).await;
    assert_eq!(
        p.call(
            "GET",
            &format!("/api/sessions/{id}/events"),
            Some(&bt),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = p.call("GET", "/api/sessions", Some(&bt), None).await;
    assert!(list.as_array().unwrap().is_empty());

    // Audit chain, lockout counter, allow-list.
    let (_, groups) = p.call("GET", "/api/groups", Some(&admin), None).await;
    let gid = groups[0]["id"].as_i64().unwrap();
    let pol = json!({ "permissions": 7, "all_in_one": true, "exclude_chat": false, "shared_queue": true, "allow_list": "127.0.0.0/8" });
    assert_eq!(
        p.call(
            "PUT",
            &format!("/api/groups/{gid}"),
            Some(&admin),
            Some(pol)
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(verify_chain(p.svc.db(), a.id).await.unwrap(), Ok(()));
    assert_eq!(
        p.call_from(
            ip("203.0.113.1"),
            "POST",
            "/api/sessions",
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    for _ in 0..rescue_portal::config::LOCKOUT_FAILURES {
        let body = json!({ "email": tech.email, "password": "bad", "totp": "000000" });
        p.call_from(ip("127.0.0.9"), "POST", "/api/login", None, Some(body))
            .await;
        p.clock.advance(61);
    }
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    assert!(t.technician(tech.id).await.unwrap().locked_until > 0);

    // Retention and crypto-shredding.
    p.svc.request_deletion(b.id).await.unwrap();
    p.clock.advance(30 * DAY);
    assert_eq!(p.svc.purge().await.unwrap().accounts_deleted, 1);
    assert!(matches!(
        Tenant::open(&p.svc, b.id).await,
        Err(PortalError::KeyDestroyed)
    ));
    p.clock.advance(2 * 365 * DAY);
    assert_eq!(p.svc.purge().await.unwrap().events_archived, 3);
    assert_eq!(p.svc.archived_event_count(a.id).await.unwrap(), 3);
}
