//! A small client of the portal's JSON API (API.md) for the console and applet examples
//! and for tests: plain HTTP/1.1 over TCP, one request per connection, every step under
//! [`CLIENT_TIMEOUT`], answers capped at [`MAX_ANSWER`]. It does not speak TLS: put the
//! portal behind a TLS proxy and use a real HTTP client in production consoles.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{PortalError, Result};

/// Longest one API call may take.
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest answer read, in bytes.
pub const MAX_ANSWER: usize = 1 << 20;

/// A client of one portal, optionally logged in.
#[derive(Debug, Clone)]
pub struct Client {
    authority: String,
    token: Option<String>,
}

impl Client {
    /// A client of the portal at `base` (`http://host:port`).
    pub fn new(base: &str) -> Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .ok_or(PortalError::BadRequest(
                "portal URL must be http://host:port",
            ))?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(PortalError::BadRequest(
                "portal URL must be http://host:port",
            ));
        }
        Ok(Self {
            authority: authority.to_owned(),
            token: None,
        })
    }

    /// Logs in (e-mail, password, TOTP code) and keeps the token for later calls.
    pub async fn login(&mut self, email: &str, password: &str, code: &str) -> Result<Value> {
        let body = serde_json::json!({ "email": email, "password": password, "totp": code });
        let v = self.call("POST", "/api/login", Some(&body)).await?;
        self.token = v["token"].as_str().map(str::to_owned);
        Ok(v)
    }

    /// One call; a non-2xx answer becomes an error carrying the portal's message.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, v) = tokio::time::timeout(CLIENT_TIMEOUT, self.raw(method, path, body))
            .await
            .map_err(|_| PortalError::Internal("portal did not answer in time".into()))??;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(PortalError::Internal(format!(
                "portal answered {status}: {}",
                v["error"].as_str().unwrap_or("")
            )))
        }
    }

    async fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let io = |e: std::io::Error| PortalError::Internal(format!("portal: {e}"));
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.authority,
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(self.authority.as_str())
            .await
            .map_err(io)?;
        s.write_all(req.as_bytes()).await.map_err(io)?;
        let mut out = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut out)
            .await
            .map_err(io)?;
        let bad = || PortalError::Internal("portal: malformed answer".into());
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(bad)?;
        let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let payload = &out[split + 4..];
        Ok((
            status,
            serde_json::from_slice(payload).unwrap_or(Value::Null),
        ))
    }
}
