//! The HTTP front: the JSON API the console and applet speak (`/api/…`, bearer tokens;
//! API.md) and the server-rendered pages of the admin centre (cookies and CSRF tokens).
//!
//! Every request body is capped at [`MAX_BODY_BYTES`], at most
//! [`MAX_CONCURRENT_REQUESTS`] are served at once and each gets [`REQUEST_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Principal;
use crate::config::{MAX_BODY_BYTES, MAX_CONCURRENT_REQUESTS, REQUEST_TIMEOUT};
use crate::error::PortalError;
use crate::service::Service;
use crate::tenant::Tenant;

mod api;
mod html;
mod pages;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "rescue_session";

/// Every route of the portal: (method, path template). The tenant-isolation test walks
/// this list; API.md documents it.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/console-cert"),
    ("GET", "/api/sessions"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions/{id}"),
    ("POST", "/api/sessions/{id}/claim"),
    ("GET", "/api/sessions/{id}/events"),
    ("POST", "/api/sessions/{id}/events"),
    ("GET", "/api/queue"),
    ("GET", "/api/groups"),
    ("GET", "/api/groups/{id}"),
    ("PUT", "/api/groups/{id}"),
    ("GET", "/api/technicians"),
    ("POST", "/api/technicians"),
    ("GET", "/api/technicians/{id}"),
    ("POST", "/api/technicians/{id}/unlock"),
    ("GET", "/api/settings"),
    ("PUT", "/api/settings"),
    ("GET", "/api/audit"),
    ("GET", "/api/applet/{code}"),
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/password"),
    ("POST", "/password"),
    ("GET", "/queue"),
    ("POST", "/sessions"),
    ("GET", "/sessions/{id}"),
    ("POST", "/sessions/{id}/claim"),
    ("GET", "/admin"),
    ("POST", "/admin/groups/{id}"),
    ("POST", "/admin/technicians"),
    ("POST", "/admin/settings"),
    ("GET", "/admin/audit"),
    ("GET", "/s/{code}"),
    ("GET", "/healthz"),
];

/// The portal's router (state included), with body, concurrency and time limits.
pub fn router(svc: Service) -> Router {
    let api = Router::new()
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/console-cert", post(api::console_cert))
        .route(
            "/api/sessions",
            get(api::sessions).post(api::create_session),
        )
        .route("/api/sessions/{id}", get(api::session))
        .route("/api/sessions/{id}/claim", post(api::claim))
        .route(
            "/api/sessions/{id}/events",
            get(api::events).post(api::add_events),
        )
        .route("/api/queue", get(api::queue))
        .route("/api/groups", get(api::groups))
        .route("/api/groups/{id}", get(api::group).put(api::update_group))
        .route(
            "/api/technicians",
            get(api::technicians).post(api::create_technician),
        )
        .route("/api/technicians/{id}", get(api::technician))
        .route("/api/technicians/{id}/unlock", post(api::unlock))
        .route(
            "/api/settings",
            get(api::settings).put(api::update_settings),
        )
        .route("/api/audit", get(api::audit))
        .route("/api/applet/{code}", get(api::applet));
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/password", get(pages::password_form).post(pages::password))
        .route("/queue", get(pages::queue))
        .route("/sessions", post(pages::create_session))
        .route("/sessions/{id}", get(pages::session))
        .route("/sessions/{id}/claim", post(pages::claim))
        .route("/admin", get(pages::admin))
        .route("/admin/groups/{id}", post(pages::update_group))
        .route("/admin/technicians", post(pages::create_technician))
        .route("/admin/settings", post(pages::update_settings))
        .route("/admin/audit", get(pages::audit))
        .route("/s/{code}", get(pages::download))
        .route("/healthz", get(|| async { "ok" }));
    api.merge(pages)
        .fallback(|| async { PortalError::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            MAX_CONCURRENT_REQUESTS,
        ))
        .layer(axum::middleware::from_fn(timeout))
        .with_state(svc)
}

async fn timeout(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

/// The caller's address: the TCP peer, or the first `X-Forwarded-For` hop when the peer
/// is a configured proxy.
pub struct Source(pub IpAddr);

impl FromRequestParts<Service> for Source {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, svc: &Service) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| PortalError::Internal("no peer address".into()))?;
        if svc.config().trusted_proxies.contains(&peer) {
            if let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
            {
                return Ok(Self(ip));
            }
        }
        Ok(Self(peer))
    }
}

/// An API caller (bearer token).
pub struct ApiUser(pub Principal, pub Tenant);

impl FromRequestParts<Service> for ApiUser {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, svc: &Service) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(PortalError::Unauthorized)?;
        let who = svc.authenticate(token.trim()).await?;
        let tenant = Tenant::open(svc, who.account).await?;
        Ok(Self(who, tenant))
    }
}

/// An API caller who administers their account; anyone else gets "not found".
pub struct ApiAdmin(pub Principal, pub Tenant);

impl FromRequestParts<Service> for ApiAdmin {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, svc: &Service) -> Result<Self, Self::Rejection> {
        let ApiUser(who, t) = ApiUser::from_request_parts(parts, svc).await?;
        if !who.is_admin {
            return Err(PortalError::NotFound);
        }
        Ok(Self(who, t))
    }
}

/// The session token from the cookie header.
pub(crate) fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A page visitor with a valid session cookie; others are sent to the login page.
pub struct WebUser(pub Principal, pub Tenant);

/// Why a page needs a login.
pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<Service> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, svc: &Service) -> Result<Self, Self::Rejection> {
        let token = cookie_token(parts).ok_or_else(|| ToLogin.into_response())?;
        let who = match svc.authenticate(&token).await {
            Ok(w) => w,
            Err(PortalError::Unauthorized) => return Err(ToLogin.into_response()),
            Err(e) => return Err(e.into_response()),
        };
        let path = parts.uri.path();
        if who.must_change_password && path != "/password" && path != "/logout" {
            return Err(Redirect::to("/password").into_response());
        }
        // A cross-site form post is refused before any handler runs.
        if parts.method != axum::http::Method::GET && !same_origin(parts) {
            return Err(PortalError::Csrf.into_response());
        }
        let tenant = Tenant::open(svc, who.account)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(who, tenant))
    }
}

/// `Origin` (when sent) must name this host, and `Sec-Fetch-Site` (when sent) must not
/// be `cross-site`.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    if h("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match (h("origin"), h("host")) {
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The session token from a header map's cookies.
pub(crate) fn cookie_token_headers(h: &axum::http::HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}
