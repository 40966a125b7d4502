//! Accounts and technicians: password + TOTP login, single-use codes, lockout, the
//! per-source rate limit, no enumeration, session expiry, allow-lists, CSRF, bad input.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{ip, test_config, TestPortal};
use rescue_portal::config::{LOCKOUT_FAILURES, LOCKOUT_SECS};
use rescue_portal::tenant::Tenant;
use serde_json::json;

#[tokio::test]
async fn password_and_totp_log_in_and_the_token_authenticates() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let token = p.login(&a.admin).await;
    let (s, me) = p.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["email"], "admin@acme.test");
    assert_eq!(me["is_admin"], true);
    let (s, _) = p.call("GET", "/api/me", Some("0000"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = p.call("POST", "/api/logout", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = p.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn a_totp_code_is_accepted_once() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let code = p.code(&a.admin);
    let body = json!({ "email": a.admin.email, "password": a.admin.password, "totp": code });
    let (s, _) = p.call("POST", "/api/login", None, Some(body.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = p.call("POST", "/api/login", None, Some(body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed code: {v}");
    assert_eq!(v["error"], "login failed");
}

#[tokio::test]
async fn five_failures_lock_the_password_path_until_the_lockout_ends() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    for _ in 0..LOCKOUT_FAILURES {
        let body = json!({ "email": a.admin.email, "password": "wrong", "totp": p.code(&a.admin) });
        let (s, _) = p
            .call_from(ip("192.0.2.1"), "POST", "/api/login", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        p.clock.advance(61); // past the per-source window, so only the lockout acts
    }
    let body =
        json!({ "email": a.admin.email, "password": a.admin.password, "totp": p.code(&a.admin) });
    let (s, v) = p
        .call_from(ip("192.0.2.2"), "POST", "/api/login", None, Some(body))
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "locked: the right password fails too"
    );
    assert_eq!(v["error"], "login failed", "and says nothing more");
    let t = Tenant::open(&p.svc, a.id).await.unwrap();
    assert!(t.technician(a.admin.id).await.unwrap().locked_until > 0);
    p.clock.advance(LOCKOUT_SECS + 1);
    p.login(&a.admin).await;
}

#[tokio::test]
async fn the_per_source_limit_answers_429_and_other_sources_go_on() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let limit = test_config().login_attempts_per_source;
    for _ in 0..limit {
        let body = json!({ "email": "nobody@acme.test", "password": "x", "totp": "000000" });
        let (s, _) = p
            .call_from(ip("198.51.100.7"), "POST", "/api/login", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let body =
        json!({ "email": a.admin.email, "password": a.admin.password, "totp": p.code(&a.admin) });
    let (s, _) = p
        .call_from(ip("198.51.100.7"), "POST", "/api/login", None, Some(body))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    p.login_from(ip("198.51.100.8"), &a.admin).await;
}

#[tokio::test]
async fn unknown_email_wrong_password_and_wrong_code_answer_alike() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let cases = [
        json!({ "email": "nobody@acme.test", "password": a.admin.password, "totp": p.code(&a.admin) }),
        json!({ "email": a.admin.email, "password": "wrong", "totp": p.code(&a.admin) }),
        json!({ "email": a.admin.email, "password": a.admin.password, "totp": "000000" }),
        json!({ "email": "not an address", "password": "x", "totp": "1" }),
    ];
    let mut answers = Vec::new();
    for (i, c) in cases.into_iter().enumerate() {
        let from = ip(&format!("192.0.2.{}", 10 + i));
        answers.push(p.call_from(from, "POST", "/api/login", None, Some(c)).await);
    }
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unknown_email_costs_a_full_hash() {
    // At a cost where hashing dominates, a login for an unknown e-mail must take about as
    // long as one with a wrong password (a dummy hash is verified).
    let mut c = test_config();
    c.password_cost.log_n = 15;
    let p = TestPortal::sqlite_with(c).await;
    let a = p.account("acme").await;
    let time = |email: String, n: usize| {
        let p = &p;
        async move {
            let t = std::time::Instant::now();
            let body = json!({ "email": email, "password": "wrong", "totp": "000000" });
            let (s, _) = p
                .call_from(
                    ip(&format!("192.0.2.{n}")),
                    "POST",
                    "/api/login",
                    None,
                    Some(body),
                )
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            t.elapsed()
        }
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for n in 0..3 {
        known.push(time(a.admin.email.clone(), n).await);
        unknown.push(time("nobody@acme.test".into(), 10 + n).await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    // Without the dummy hash the unknown e-mail would answer in well under a tenth of the
    // time; the bounds leave room for a loaded CI machine.
    assert!(u > 0.3 * k && u < 3.0 * k, "known {k:.3}s, unknown {u:.3}s");
}

#[tokio::test]
async fn the_default_cost_is_n_2_17_r_8_p_1() {
    let c = rescue_portal::Config::default();
    assert_eq!(
        (c.password_cost.log_n, c.password_cost.r, c.password_cost.p),
        (17, 8, 1)
    );
    let p = TestPortal::sqlite_with(rescue_portal::Config::default()).await;
    let a = p.account("acme").await;
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM technicians WHERE id = $1")
        .bind(a.admin.id)
        .fetch_one(p.svc.db().pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$scrypt$ln=17,r=8,p=1$"), "{stored}");
    let salt = stored.split('$').nth(3).unwrap();
    assert_eq!(salt.len(), 24);
}

#[tokio::test]
async fn sessions_end_after_inactivity_and_at_the_reauth_time() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let cfg = test_config();
    let token = p.login(&a.admin).await;
    p.clock.advance(cfg.idle_timeout_secs - 60);
    assert_eq!(
        p.call("GET", "/api/me", Some(&token), None).await.0,
        StatusCode::OK
    );
    p.clock.advance(cfg.idle_timeout_secs + 1);
    assert_eq!(
        p.call("GET", "/api/me", Some(&token), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let token = p.login(&a.admin).await;
    let steps = cfg.reauth_secs / (cfg.idle_timeout_secs / 2) + 1;
    let mut last = StatusCode::OK;
    for _ in 0..steps {
        p.clock.advance(cfg.idle_timeout_secs / 2);
        last = p.call("GET", "/api/me", Some(&token), None).await.0;
    }
    assert_eq!(
        last,
        StatusCode::UNAUTHORIZED,
        "active, but past the re-authentication time"
    );
}

#[tokio::test]
async fn the_allow_list_is_checked_at_login_and_at_every_issuing_call() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let token = p.login_from(ip("192.0.2.5"), &a.admin).await;
    let (_, groups) = p.call("GET", "/api/groups", Some(&token), None).await;
    let gid = groups[0]["id"].as_i64().unwrap();
    let body = json!({ "permissions": 3, "all_in_one": false, "exclude_chat": false, "shared_queue": true, "allow_list": "192.0.2.0/24" });
    let (s, v) = p
        .call_from(
            ip("192.0.2.5"),
            "PUT",
            &format!("/api/groups/{gid}"),
            Some(&token),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Issuing from inside works, from outside is refused even with a valid token.
    let (s, _) = p
        .call_from(ip("192.0.2.5"), "POST", "/api/sessions", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = p
        .call_from(
            ip("203.0.113.9"),
            "POST",
            "/api/sessions",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Login from outside fails like any other failure.
    let body =
        json!({ "email": a.admin.email, "password": a.admin.password, "totp": p.code(&a.admin) });
    let (s, v) = p
        .call_from(ip("203.0.113.9"), "POST", "/api/login", None, Some(body))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("login failed"))
    );
}

async fn page_login(p: &TestPortal, tech: &rescue_portal::tenant::NewTechnician) -> String {
    let form = format!(
        "email={}&password={}&totp={}",
        enc(&tech.email),
        enc(&tech.password),
        p.code(tech)
    );
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let resp = p.send_full(ip("127.0.0.1"), req).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    p.clock.advance(30);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn cookies_are_secure_by_default() {
    let mut c = test_config();
    c.secure_cookies = true;
    let p = TestPortal::sqlite_with(c).await;
    let a = p.account("acme").await;
    let form = format!(
        "email={}&password={}&totp={}",
        enc(&a.admin.email),
        enc(&a.admin.password),
        p.code(&a.admin)
    );
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let resp = p.send_full(ip("127.0.0.1"), req).await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(rescue_portal::Config::default().secure_cookies);
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_a_same_site_origin() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let cookie = page_login(&p, &a.admin).await;
    // The one-time password must be changed first: every page leads to /password.
    let req = Request::get("/queue")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    let resp = p.send_full(ip("127.0.0.1"), req).await;
    assert_eq!(resp.headers()["location"], "/password");
    let (_, html) = p
        .send(
            ip("127.0.0.1"),
            Request::get("/password")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let html = String::from_utf8(html).unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let post = |body: String, origin: Option<&str>| {
        let mut b = Request::post("/password")
            .header("cookie", &cookie)
            .header("host", "portal.test")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(Body::from(body)).unwrap()
    };
    let good = format!(
        "csrf={csrf}&current={}&new=correct-horse-battery",
        enc(&a.admin.password)
    );
    let no_token = format!(
        "csrf=&current={}&new=correct-horse-battery",
        enc(&a.admin.password)
    );
    let (s, _) = p.send(ip("127.0.0.1"), post(no_token, None)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "missing token");
    let (s, _) = p
        .send(
            ip("127.0.0.1"),
            post(good.clone(), Some("https://evil.test")),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "cross-site origin");
    let resp = p
        .send_full(ip("127.0.0.1"), post(good, Some("http://portal.test")))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/queue");
}

#[tokio::test]
async fn sql_metacharacters_are_data_and_nothing_else() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let token = p.login(&a.admin).await;
    let (_, groups) = p.call("GET", "/api/groups", Some(&token), None).await;
    let gid = groups[0]["id"].as_i64().unwrap();
    let evil = "x'); DROP TABLE technicians; --";
    let body =
        json!({ "email": "o'brien\"--@acme.test", "name": evil, "group": gid, "is_admin": false });
    let (s, v) = p
        .call("POST", "/api/technicians", Some(&token), Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = p.call("GET", "/api/technicians", Some(&token), None).await;
    assert!(list.as_array().unwrap().iter().any(|t| t["name"] == evil));
    for email in ["' OR '1'='1", "admin@acme.test' --", "\"; SELECT 1; --@x"] {
        let body = json!({ "email": email, "password": "' OR 1=1 --", "totp": "' OR 1=1" });
        let (s, _) = p
            .call_from(ip("192.0.2.77"), "POST", "/api/login", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = p
        .call("GET", "/api/technicians/1%20OR%201=1", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = p.call("GET", "/api/applet/'%20OR%20''='", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = p.call("GET", "/api/technicians", Some(&token), None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "table intact");
}

#[tokio::test]
async fn malformed_and_oversize_requests_are_refused() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let token = p.login(&a.admin).await;
    let big = "x".repeat(rescue_portal::config::MAX_BODY_BYTES + 1);
    let req = Request::post("/api/login")
        .header("content-type", "application/json")
        .body(Body::from(format!(
            "{{\"email\":\"{big}\",\"password\":\"\",\"totp\":\"\"}}"
        )))
        .unwrap();
    assert_eq!(
        p.send(ip("127.0.0.1"), req).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let req = Request::post("/api/login")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(
        p.send(ip("127.0.0.1"), req).await.0,
        StatusCode::BAD_REQUEST
    );
    let body = json!({ "email": "a@b", "password": "p", "totp": "1", "admin": true });
    let (s, _) = p.call("POST", "/api/login", None, Some(body)).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let long = "n".repeat(rescue_portal::config::MAX_FIELD_LEN + 1);
    let (_, groups) = p.call("GET", "/api/groups", Some(&token), None).await;
    let body = json!({ "email": "l@acme.test", "name": long, "group": groups[0]["id"], "is_admin": false });
    let (s, _) = p
        .call("POST", "/api/technicians", Some(&token), Some(body))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list) = p.call("GET", "/api/technicians", Some(&token), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing stored");
}

#[tokio::test]
async fn technicians_are_not_admins() {
    let p = TestPortal::sqlite().await;
    let a = p.account("acme").await;
    let t = p.technician(&a, "tech@acme.test").await;
    let token = p.login(&t).await;
    for path in [
        "/api/groups",
        "/api/technicians",
        "/api/settings",
        "/api/audit",
    ] {
        let (s, v) = p.call("GET", path, Some(&token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
}
