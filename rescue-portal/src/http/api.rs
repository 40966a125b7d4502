//! The JSON API (API.md): console login, console certificates, sessions, the queue,
//! claims, session logs, and the admin calls; the applet's fetch by code.

use axum::extract::{Path, State};
use axum::http::header;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiAdmin, ApiUser, Source};
use crate::allowlist::AllowList;
use crate::error::{PortalError, Result};
use crate::logs::SessionEvent;
use crate::service::Service;
use crate::tenant::{GroupPolicy, Settings};

type J = Result<Json<Value>>;

fn to_json<T: serde::Serialize>(v: &T) -> J {
    Ok(Json(
        serde_json::to_value(v).map_err(|e| PortalError::Internal(e.to_string()))?,
    ))
}

/// `POST /api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    email: String,
    password: String,
    totp: String,
}

pub(crate) async fn login(
    State(svc): State<Service>,
    Source(ip): Source,
    Json(b): Json<Login>,
) -> J {
    let ok = svc.login(ip, &b.email, &b.password, &b.totp).await?;
    Ok(Json(json!({
        "token": ok.token,
        "account": ok.principal.account,
        "technician": ok.principal.technician,
        "is_admin": ok.principal.is_admin,
        "must_change_password": ok.principal.must_change_password,
    })))
}

pub(crate) async fn logout(State(svc): State<Service>, headers: axum::http::HeaderMap) -> J {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(PortalError::Unauthorized)?;
    svc.logout(token.trim()).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn me(ApiUser(who, _): ApiUser) -> J {
    Ok(Json(json!({
        "account": who.account,
        "technician": who.technician,
        "email": who.email,
        "name": who.name,
        "group": who.group,
        "is_admin": who.is_admin,
    })))
}

/// `POST /api/console-cert` body: the CSR, DER in base64.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Csr {
    csr: String,
}

pub(crate) async fn console_cert(
    ApiUser(who, t): ApiUser,
    Source(ip): Source,
    Json(b): Json<Csr>,
) -> J {
    let der = STANDARD
        .decode(b.csr.trim())
        .map_err(|_| PortalError::BadRequest("csr must be base64 DER"))?;
    let (cert, ca) = t.console_cert(&who, ip, &der).await?;
    Ok(Json(json!({ "certificate": cert, "ca": ca })))
}

pub(crate) async fn sessions(ApiUser(_, t): ApiUser) -> J {
    to_json(&t.sessions().await?)
}

pub(crate) async fn create_session(ApiUser(who, t): ApiUser, Source(ip): Source) -> J {
    to_json(&t.create_session(&who, ip).await?)
}

pub(crate) async fn session(ApiUser(_, t): ApiUser, Path(id): Path<i64>) -> J {
    to_json(&t.session(id).await?)
}

pub(crate) async fn claim(ApiUser(who, t): ApiUser, Source(ip): Source, Path(id): Path<i64>) -> J {
    Ok(Json(json!({ "claim_key": t.claim(&who, ip, id).await? })))
}

pub(crate) async fn events(ApiUser(_, t): ApiUser, Path(id): Path<i64>) -> J {
    to_json(&t.events(id).await?)
}

pub(crate) async fn add_events(
    ApiUser(who, t): ApiUser,
    Path(id): Path<i64>,
    Json(events): Json<Vec<SessionEvent>>,
) -> J {
    Ok(Json(
        json!({ "stored": t.add_events(&who, id, &events).await? }),
    ))
}

pub(crate) async fn queue(ApiUser(who, t): ApiUser) -> J {
    to_json(&t.queue(&who).await?)
}

pub(crate) async fn groups(ApiAdmin(_, t): ApiAdmin) -> J {
    to_json(&t.groups().await?)
}

pub(crate) async fn group(ApiAdmin(_, t): ApiAdmin, Path(id): Path<i64>) -> J {
    to_json(&t.group(id).await?)
}

/// A group policy as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    permissions: u32,
    all_in_one: bool,
    exclude_chat: bool,
    shared_queue: bool,
    allow_list: String,
}

impl PolicyBody {
    fn policy(&self) -> Result<GroupPolicy> {
        GroupPolicy::new(
            self.permissions,
            self.all_in_one,
            self.exclude_chat,
            self.shared_queue,
            AllowList::parse(&self.allow_list)?,
        )
    }
}

pub(crate) async fn update_group(
    ApiAdmin(who, t): ApiAdmin,
    Path(id): Path<i64>,
    Json(b): Json<PolicyBody>,
) -> J {
    t.update_group(&who.email, id, &b.policy()?).await?;
    to_json(&t.group(id).await?)
}

pub(crate) async fn technicians(ApiAdmin(_, t): ApiAdmin) -> J {
    to_json(&t.technicians().await?)
}

pub(crate) async fn technician(ApiAdmin(_, t): ApiAdmin, Path(id): Path<i64>) -> J {
    to_json(&t.technician(id).await?)
}

/// `POST /api/technicians` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTech {
    email: String,
    name: String,
    group: i64,
    is_admin: bool,
}

pub(crate) async fn create_technician(ApiAdmin(who, t): ApiAdmin, Json(b): Json<NewTech>) -> J {
    let n = t
        .create_technician(&who.email, &b.email, &b.name, b.group, b.is_admin)
        .await?;
    Ok(Json(json!({
        "id": n.id,
        "email": n.email,
        "password": n.password,
        "totp_secret": n.totp_base32(),
    })))
}

pub(crate) async fn unlock(ApiAdmin(who, t): ApiAdmin, Path(id): Path<i64>) -> J {
    t.unlock_technician(&who.email, id).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn settings(ApiAdmin(_, t): ApiAdmin) -> J {
    to_json(&t.settings().await?)
}

/// `PUT /api/settings` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    webhook_url: Option<String>,
    webhook_chat: bool,
}

pub(crate) async fn update_settings(ApiAdmin(who, t): ApiAdmin, Json(b): Json<SettingsBody>) -> J {
    let s = Settings {
        webhook_url: b.webhook_url.filter(|u| !u.is_empty()),
        webhook_chat: b.webhook_chat,
    };
    let secret = t.update_settings(&who.email, &s).await?;
    Ok(Json(json!({ "webhook_secret": secret })))
}

pub(crate) async fn audit(ApiAdmin(_, t): ApiAdmin) -> J {
    to_json(&t.audit().await?)
}

pub(crate) async fn applet(
    State(svc): State<Service>,
    Source(ip): Source,
    Path(code): Path<String>,
) -> J {
    to_json(&svc.fetch_applet(ip, &code).await?)
}
