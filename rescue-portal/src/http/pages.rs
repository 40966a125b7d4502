//! The admin centre's pages: login (password and TOTP), the queue and session creation,
//! a session's log, the admin page (groups, technicians, settings) and the admin audit,
//! and the end user's download page.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::html::{csrf_field, esc, page};
use super::{Source, WebUser, SESSION_COOKIE};
use crate::allowlist::AllowList;
use crate::auth::{csrf_ok, Principal};
use crate::error::{PortalError, Result};
use crate::logs::SessionEvent;
use crate::service::Service;
use crate::tenant::{GroupPolicy, Settings};
use rescue_proto::{Permission, PermissionSet};

fn check_csrf(who: &Principal, given: &str) -> Result<()> {
    if csrf_ok(who, given) {
        Ok(())
    } else {
        Err(PortalError::Csrf)
    }
}

fn error_page(e: &PortalError, who: Option<&Principal>) -> Response {
    let body = format!(r#"<p id="error">{}</p>"#, esc(e.public_message()));
    (e.status(), page("Error", who, &body)).into_response()
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
fn when(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => t.to_string(),
    }
}

pub(crate) async fn login_form() -> Response {
    login_page(None).into_response()
}

fn login_page(error: Option<&str>) -> axum::response::Html<String> {
    let err = error.map_or(String::new(), |e| {
        format!(r#"<p id="error">{}</p>"#, esc(e))
    });
    page(
        "Log in",
        None,
        &format!(
            r#"{err}<form method="post" action="/login">
<p><label>E-mail <input id="email" name="email" type="email" autocomplete="username" required></label></p>
<p><label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label></p>
<p><label>Code <input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" required></label></p>
<p><button id="login" type="submit">Log in</button></p></form>"#
        ),
    )
}

/// The login form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    email: String,
    password: String,
    totp: String,
}

pub(crate) async fn login(
    State(svc): State<Service>,
    Source(ip): Source,
    req_parts: axum::http::HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let origin_ok = match (req_parts.get("origin"), req_parts.get("host")) {
        (Some(o), Some(h)) => {
            let o = o.to_str().unwrap_or("");
            let h = h.to_str().unwrap_or("-");
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(h)
        }
        (Some(_), None) => false,
        (None, _) => true,
    };
    if !origin_ok {
        return error_page(&PortalError::Csrf, None);
    }
    match svc.login(ip, &f.email, &f.password, &f.totp).await {
        Ok(ok) => {
            let secure = if svc.config().secure_cookies {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
                ok.token
            );
            let to = if ok.principal.must_change_password {
                "/password"
            } else {
                "/queue"
            };
            ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
        }
        Err(e) => (e.status(), login_page(Some(e.public_message()))).into_response(),
    }
}

/// A form with only the CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

pub(crate) async fn logout(
    State(svc): State<Service>,
    WebUser(who, _): WebUser,
    parts: axum::http::HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(e) = check_csrf(&who, &f.csrf) {
        return error_page(&e, Some(&who));
    }
    let token = super::cookie_token_headers(&parts).unwrap_or_default();
    if let Err(e) = svc.logout(&token).await {
        return error_page(&e, Some(&who));
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

pub(crate) async fn password_form(WebUser(who, _): WebUser) -> Response {
    let body = format!(
        r#"<p>Choose a new password (at least 12 characters).</p><form method="post" action="/password">{}
<p><label>Current <input id="current" name="current" type="password" required></label></p>
<p><label>New <input id="new" name="new" type="password" minlength="12" required></label></p>
<p><button id="change" type="submit">Change password</button></p></form>"#,
        csrf_field(&who)
    );
    page("Change password", Some(&who), &body).into_response()
}

/// The password form.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub(crate) async fn password(
    State(svc): State<Service>,
    WebUser(who, _): WebUser,
    Form(f): Form<PasswordForm>,
) -> Response {
    let r = async {
        check_csrf(&who, &f.csrf)?;
        svc.change_password(&who, &f.current, &f.new).await
    }
    .await;
    match r {
        Ok(()) => Redirect::to("/queue").into_response(),
        Err(e) => error_page(&e, Some(&who)),
    }
}

fn session_rows(list: &[crate::issuing::SessionInfo], claim: Option<&Principal>) -> String {
    let mut rows = String::new();
    for s in list {
        let action = match claim {
            Some(w) => format!(
                r#"<form method="post" action="/sessions/{id}/claim">{}<button class="claim" type="submit">Take</button></form>"#,
                csrf_field(w),
                id = s.id
            ),
            None => String::new(),
        };
        rows.push_str(&format!(
            r#"<tr class="session" data-id="{id}"><td><a href="/sessions/{id}">{guid}</a></td><td>{state}</td><td>{since}</td><td>{action}</td></tr>"#,
            id = s.id,
            guid = esc(&s.guid),
            state = esc(&s.state),
            since = when(s.waiting_since.unwrap_or(s.created_at)),
        ));
    }
    rows
}

pub(crate) async fn queue(WebUser(who, t): WebUser) -> Response {
    let r = async { Ok::<_, PortalError>((t.queue(&who).await?, t.sessions().await?)) }.await;
    let (queue, recent) = match r {
        Ok(v) => v,
        Err(e) => return error_page(&e, Some(&who)),
    };
    let body = format!(
        r#"<form method="post" action="/sessions">{csrf}<button id="create-session" type="submit">New session</button></form>
<h2>Waiting end users</h2><table id="queue"><tr><th>Session</th><th>State</th><th>Since</th><th></th></tr>{q}</table>
<h2>Recent sessions</h2><table id="recent"><tr><th>Session</th><th>State</th><th>Since</th><th></th></tr>{r}</table>"#,
        csrf = csrf_field(&who),
        q = session_rows(&queue, Some(&who)),
        r = session_rows(&recent, None),
    );
    page("Queue", Some(&who), &body).into_response()
}

pub(crate) async fn create_session(
    WebUser(who, t): WebUser,
    Source(ip): Source,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let r = async {
        check_csrf(&who, &f.csrf)?;
        t.create_session(&who, ip).await
    }
    .await;
    match r {
        Ok(c) => {
            let body = format!(
                r#"<p>Give the end user this code, or the link:</p><p class="code" id="code">{code}</p>
<p><a id="download-url" href="{url}">{url}</a></p>
<p>Session <a id="session-link" href="/sessions/{id}">{guid}</a>. Your console's key (keep it to yourself):</p><pre id="claim-key">{key}</pre>"#,
                code = esc(&c.code),
                url = esc(&c.download_url),
                id = c.session.id,
                guid = esc(&c.session.guid),
                key = esc(&c.claim_key),
            );
            page("Session created", Some(&who), &body).into_response()
        }
        Err(e) => error_page(&e, Some(&who)),
    }
}

pub(crate) async fn claim(
    WebUser(who, t): WebUser,
    Source(ip): Source,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let r = async {
        check_csrf(&who, &f.csrf)?;
        t.claim(&who, ip, id).await
    }
    .await;
    match r {
        Ok(key) => {
            let body = format!(
                r#"<p>You took session <a href="/sessions/{id}">{id}</a>. Your console's key:</p><pre id="claim-key">{}</pre>"#,
                esc(&key)
            );
            page("Session taken", Some(&who), &body).into_response()
        }
        Err(e) => error_page(&e, Some(&who)),
    }
}

fn describe(e: &SessionEvent) -> String {
    match e {
        SessionEvent::Start => "session started".into(),
        SessionEvent::End => "session ended".into(),
        SessionEvent::PermissionAsked { permission } => format!("asked for {}", esc(permission)),
        SessionEvent::PermissionGranted { permission } => format!("granted {}", esc(permission)),
        SessionEvent::PermissionDenied { permission } => format!("denied {}", esc(permission)),
        SessionEvent::PermissionRevoked { permission } => format!("revoked {}", esc(permission)),
        SessionEvent::File {
            name,
            size,
            md5,
            sha256,
        } => format!(
            "file {} ({size} bytes, MD5 {}, SHA-256 {})",
            esc(name),
            esc(md5),
            esc(sha256)
        ),
        SessionEvent::PathChange { path } => format!("path now {}", esc(path)),
        SessionEvent::Chat { from, text } => format!("chat from {}: {}", esc(from), esc(text)),
    }
}

pub(crate) async fn session(WebUser(who, t): WebUser, Path(id): Path<i64>) -> Response {
    let r = async { Ok::<_, PortalError>((t.session(id).await?, t.events(id).await?)) }.await;
    let (s, events) = match r {
        Ok(v) => v,
        Err(e) => return error_page(&e, Some(&who)),
    };
    let mut rows = String::new();
    for e in &events {
        rows.push_str(&format!(
            r#"<tr class="event"><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            when(e.at),
            esc(e.event.kind()),
            describe(&e.event)
        ));
    }
    let body = format!(
        r#"<p>GUID <span id="guid">{guid}</span>, state <span id="state">{state}</span>.</p>
<table id="log"><tr><th>When</th><th>Event</th><th>Detail</th></tr>{rows}</table>"#,
        guid = esc(&s.guid),
        state = esc(&s.state)
    );
    page("Session log", Some(&who), &body).into_response()
}

fn checkbox(name: &str, id: &str, on: bool) -> String {
    format!(
        r#"<input type="checkbox" name="{name}" id="{id}" value="on"{}>"#,
        if on { " checked" } else { "" }
    )
}

pub(crate) async fn admin(WebUser(who, t): WebUser) -> Response {
    if !who.is_admin {
        return error_page(&PortalError::NotFound, Some(&who));
    }
    let r = async {
        Ok::<_, PortalError>((
            t.groups().await?,
            t.technicians().await?,
            t.settings().await?,
        ))
    }
    .await;
    let (groups, techs, settings) = match r {
        Ok(v) => v,
        Err(e) => return error_page(&e, Some(&who)),
    };
    let mut g = String::new();
    for grp in &groups {
        let set = PermissionSet::from_bits(grp.policy.permissions).unwrap_or(PermissionSet::EMPTY);
        let mut perms = String::new();
        for p in Permission::ALL {
            perms.push_str(&format!(
                r#"<label>{} {}</label> "#,
                checkbox(
                    &format!("perm_{}", p.code()),
                    &format!("g{}-perm-{}", grp.id, p.code()),
                    set.contains(p)
                ),
                esc(&format!("{p:?}"))
            ));
        }
        g.push_str(&format!(
            r#"<form class="group" method="post" action="/admin/groups/{id}" data-name="{name}">{csrf}<h3>{name}</h3><p>{perms}</p>
<p><label>{aio} all-in-one prompt</label> <label>{chat} exclude chat from logs</label> <label>{queue} sees the shared queue</label></p>
<p><label>IP allow-list <input name="allow_list" id="g{id}-allow" value="{allow}"></label></p><p><button type="submit" id="g{id}-save">Save group</button></p></form>"#,
            id = grp.id,
            name = esc(&grp.name),
            csrf = csrf_field(&who),
            aio = checkbox("all_in_one", &format!("g{}-aio", grp.id), grp.policy.all_in_one),
            chat = checkbox("exclude_chat", &format!("g{}-chat", grp.id), grp.policy.exclude_chat),
            queue = checkbox("shared_queue", &format!("g{}-queue", grp.id), grp.policy.shared_queue),
            allow = esc(&grp.policy.allow_list.to_string()),
        ));
    }
    let mut tr = String::new();
    for tech in &techs {
        tr.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&tech.email),
            esc(&tech.name),
            if tech.is_admin { "admin" } else { "technician" },
            if tech.locked_until > 0 { "locked" } else { "" }
        ));
    }
    let group_opts: String = groups
        .iter()
        .map(|g| format!(r#"<option value="{}">{}</option>"#, g.id, esc(&g.name)))
        .collect();
    let body = format!(
        r#"<h2>Groups</h2>{g}
<h2>Technicians</h2><table id="technicians"><tr><th>E-mail</th><th>Name</th><th>Role</th><th></th></tr>{tr}</table>
<form method="post" action="/admin/technicians">{csrf}<input name="email" placeholder="e-mail" required> <input name="name" placeholder="name" required>
<select name="group">{group_opts}</select> <label>{adm} admin</label> <button type="submit">Add technician</button></form>
<h2>Settings</h2><form method="post" action="/admin/settings">{csrf}<p><label>Webhook URL <input name="webhook_url" id="webhook-url" value="{url}"></label>
<label>{wchat} include chat</label> <button type="submit">Save settings</button></p></form>"#,
        csrf = csrf_field(&who),
        adm = checkbox("is_admin", "new-admin", false),
        url = esc(settings.webhook_url.as_deref().unwrap_or("")),
        wchat = checkbox("webhook_chat", "webhook-chat", settings.webhook_chat),
    );
    page("Admin", Some(&who), &body).into_response()
}

pub(crate) async fn update_group(
    WebUser(who, t): WebUser,
    Path(id): Path<i64>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        if !who.is_admin {
            return Err(PortalError::NotFound);
        }
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        check_csrf(&who, get("csrf").unwrap_or(""))?;
        let mut set = PermissionSet::EMPTY;
        for p in Permission::ALL {
            if get(&format!("perm_{}", p.code())).is_some() {
                set = set.with(p);
            }
        }
        let policy = GroupPolicy::new(
            set.bits(),
            get("all_in_one").is_some(),
            get("exclude_chat").is_some(),
            get("shared_queue").is_some(),
            AllowList::parse(get("allow_list").unwrap_or(""))?,
        )?;
        t.update_group(&who.email, id, &policy).await
    }
    .await;
    match r {
        Ok(()) => Redirect::to("/admin").into_response(),
        Err(e) => error_page(&e, Some(&who)),
    }
}

/// The new-technician form.
#[derive(Deserialize)]
pub(crate) struct TechForm {
    csrf: String,
    email: String,
    name: String,
    group: i64,
    is_admin: Option<String>,
}

pub(crate) async fn create_technician(
    WebUser(who, t): WebUser,
    Form(f): Form<TechForm>,
) -> Response {
    let r = async {
        if !who.is_admin {
            return Err(PortalError::NotFound);
        }
        check_csrf(&who, &f.csrf)?;
        t.create_technician(&who.email, &f.email, &f.name, f.group, f.is_admin.is_some())
            .await
    }
    .await;
    match r {
        Ok(n) => {
            let body = format!(
                r#"<p>Give {} these, once: password <code id="new-password">{}</code>, TOTP secret <code id="new-totp">{}</code>.</p><p><a href="/admin">Back</a></p>"#,
                esc(&n.email),
                esc(&n.password),
                esc(&n.totp_base32())
            );
            page("Technician added", Some(&who), &body).into_response()
        }
        Err(e) => error_page(&e, Some(&who)),
    }
}

/// The settings form.
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    csrf: String,
    webhook_url: String,
    webhook_chat: Option<String>,
}

pub(crate) async fn update_settings(
    WebUser(who, t): WebUser,
    Form(f): Form<SettingsForm>,
) -> Response {
    let r = async {
        if !who.is_admin {
            return Err(PortalError::NotFound);
        }
        check_csrf(&who, &f.csrf)?;
        let url = f.webhook_url.trim();
        let s = Settings {
            webhook_url: (!url.is_empty()).then(|| url.to_owned()),
            webhook_chat: f.webhook_chat.is_some(),
        };
        t.update_settings(&who.email, &s).await
    }
    .await;
    match r {
        Ok(Some(secret)) => {
            let body = format!(
                r#"<p>Webhook signing secret (shown once): <code id="webhook-secret">{}</code></p><p><a href="/admin">Back</a></p>"#,
                esc(&secret)
            );
            page("Settings saved", Some(&who), &body).into_response()
        }
        Ok(None) => Redirect::to("/admin").into_response(),
        Err(e) => error_page(&e, Some(&who)),
    }
}

pub(crate) async fn audit(WebUser(who, t): WebUser) -> Response {
    if !who.is_admin {
        return error_page(&PortalError::NotFound, Some(&who));
    }
    let entries = match t.audit().await {
        Ok(e) => e,
        Err(e) => return error_page(&e, Some(&who)),
    };
    let mut rows = String::new();
    for e in entries.iter().rev() {
        rows.push_str(&format!(
            r#"<tr class="audit"><td>{}</td><td>{}</td><td>{}</td><td class="action">{}</td><td><code>{}</code></td><td><code class="after">{}</code></td></tr>"#,
            e.seq,
            when(e.at),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.before),
            esc(&e.after)
        ));
    }
    let body = format!(
        r#"<table id="audit"><tr><th>#</th><th>When</th><th>Who</th><th>What</th><th>Before</th><th>After</th></tr>{rows}</table>"#
    );
    page("Admin audit", Some(&who), &body).into_response()
}

pub(crate) async fn download(Path(code): Path<String>) -> Response {
    let body = format!(
        r#"<p>Your technician gave you the code <span class="code" id="code">{c}</span>.</p>
<p>Start the rescue applet with <code>--portal URL --code {c}</code>; it fetches its session from <a href="/api/applet/{c}">/api/applet/{c}</a>.</p>"#,
        c = esc(&code)
    );
    page("Remote support", None, &body).into_response()
}
