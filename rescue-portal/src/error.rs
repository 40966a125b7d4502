//! The portal's error type and how each error answers over HTTP.
//!
//! Answers never carry internal detail: a missing row, another tenant's row and a route
//! the caller may not use all answer the same 404; store and crypto failures answer a bare
//! 500 and are logged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a portal operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// No such object for this caller (also: another tenant's object, or a route the
    /// caller's role may not use).
    #[error("not found")]
    NotFound,
    /// The request is malformed or a field is out of range.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No valid session cookie or bearer token (missing, expired, idle too long).
    #[error("authentication required")]
    Unauthorized,
    /// Login refused: wrong e-mail, password or code, locked, or outside the allow-list
    /// (one answer for all, so nothing is enumerated).
    #[error("login failed")]
    LoginFailed,
    /// Too many attempts from this source.
    #[error("too many attempts")]
    RateLimited,
    /// The password hasher stayed busy past its queue timeout.
    #[error("busy")]
    Busy,
    /// Missing or wrong CSRF token, or a cross-site origin.
    #[error("CSRF check failed")]
    Csrf,
    /// The caller's address is outside its group's allow-list.
    #[error("address not allowed")]
    AddressRefused,
    /// An at-rest record could not be sealed or opened.
    #[error("sealing: {0}")]
    Seal(#[from] rescue_crypto::seal::SealError),
    /// The account's data key is gone (the account was deleted): its rows are unreadable.
    #[error("account key destroyed")]
    KeyDestroyed,
    /// A certificate could not be made (a CSR was refused, or the CA is broken).
    #[error("certificate: {0}")]
    Pki(#[from] rescue_crypto::pki::PkiError),
    /// A webhook URL was refused (not http(s), unresolvable, or a private target).
    #[error("webhook URL refused: {0}")]
    WebhookUrl(&'static str),
    /// Something the portal relies on failed (random generator, hashing task).
    #[error("internal: {0}")]
    Internal(String),
}

impl PortalError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::KeyDestroyed => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::WebhookUrl(_) => StatusCode::BAD_REQUEST,
            Self::Pki(rescue_crypto::pki::PkiError::Csr)
            | Self::Pki(rescue_crypto::pki::PkiError::Validity) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::LoginFailed => StatusCode::UNAUTHORIZED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Csrf | Self::AddressRefused => StatusCode::FORBIDDEN,
            Self::Db(_) | Self::Seal(_) | Self::Pki(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The text shown to the caller: fixed per kind, no internal detail.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::NotFound | Self::KeyDestroyed => "not found",
            Self::BadRequest(m) | Self::WebhookUrl(m) => m,
            Self::Pki(_) if self.status() == StatusCode::BAD_REQUEST => {
                "certificate request refused"
            }
            Self::Unauthorized => "authentication required",
            Self::LoginFailed => "login failed",
            Self::RateLimited => "too many attempts, try again later",
            Self::Busy => "busy, try again",
            Self::Csrf => "request refused (CSRF)",
            Self::AddressRefused => "address not allowed",
            _ => "internal error",
        }
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "portal request failed");
        }
        let body = serde_json::json!({ "error": self.public_message() });
        (status, axum::Json(body)).into_response()
    }
}

/// Result with [`PortalError`].
pub type Result<T, E = PortalError> = std::result::Result<T, E>;
