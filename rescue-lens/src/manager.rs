//! The session manager's REST API (PROTOCOL.md 9.4): create, delete, join and leave
//! meetings, each request signed by the portal ([`crate::signed`]) and refused otherwise
//! before its body is parsed.
//!
//! ```text
//!  POST   /lens                      {"session": "<guid>"}      201 {"meeting": "<hex>"}
//!  DELETE /lens/<meeting>                                       204
//!  POST   /lens/<meeting>/join       {"role": "app"|"console"}  200 {"participant": n, "token": "<base64>", "expires_at": unix}
//!  POST   /lens/<meeting>/leave      {"participant": n}         204
//! ```
//!
//! Answers: 401 unsigned or badly signed, 409 replayed or stale, 429 nonce memory
//! full or a table full, 413 too large, 400 malformed body, 404 no such meeting or
//! participant. The state is the [`Lens`] table in this process (the relay's).

use base64::Engine as _;
use rescue_crypto::ticket::TicketSigner;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{read_request, respond, HttpError, Request};
use crate::signed::{sign_request, AuthError, RequestVerifier};
use crate::{Lens, LensError, LensRole, MeetingId};

/// The session manager: a [`Lens`] table behind the portal-signed REST API.
#[derive(Debug, Clone)]
pub struct Manager {
    lens: Lens,
    verifier: std::sync::Arc<RequestVerifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    session: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    role: LensRole,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveBody {
    participant: u32,
}

/// Longest session GUID text accepted in a create body.
pub const MAX_SESSION_LEN: usize = 64;

impl Manager {
    /// A manager over `lens` that accepts requests signed by `verifier`'s keys.
    pub fn new(lens: Lens, verifier: RequestVerifier) -> Self {
        Self {
            lens,
            verifier: std::sync::Arc::new(verifier),
        }
    }

    /// Serves the REST API on `listener` until it fails.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (s, _) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move { me.serve_conn(s).await });
        }
    }

    /// Serves one request on `s`.
    pub async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(&self, mut s: S) {
        let (status, body) = match read_request(&mut s).await {
            Ok(req) => self.handle(&req, crate::unix_now()),
            Err(HttpError::TooLarge) => (413, String::new()),
            Err(e) => {
                tracing::debug!(error = %e, "manager: bad request");
                (400, String::new())
            }
        };
        respond(&mut s, status, &body).await;
    }

    fn handle(&self, req: &Request, now: u64) -> (u16, String) {
        // PROTOCOL.md 9.4: "refused before the body is parsed".
        if let Err(e) =
            self.verifier
                .check(&req.method, &req.path, |n| req.header(n), &req.body, now)
        {
            tracing::info!(error = %e, path = %req.path, "manager: request refused");
            let status = match e {
                AuthError::Unsigned | AuthError::BadSignature => 401,
                AuthError::Stale | AuthError::Replay => 409,
                _ => 429,
            };
            return (status, String::new());
        }
        let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let r = match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["lens"]) => parse::<CreateBody>(&req.body).and_then(|b| {
                if b.session.is_empty() || b.session.len() > MAX_SESSION_LEN {
                    return Err((400, String::new()));
                }
                let id = self.lens.create(&b.session).map_err(err)?;
                Ok((
                    201,
                    serde_json::json!({ "meeting": id.to_string() }).to_string(),
                ))
            }),
            ("DELETE", ["lens", id]) => meeting(id)
                .and_then(|id| self.lens.delete(&id).map_err(err))
                .map(|()| (204, String::new())),
            ("POST", ["lens", id, "join"]) => meeting(id).and_then(|id| {
                let b = parse::<JoinBody>(&req.body)?;
                let (pid, token) = self.lens.join(&id, b.role).map_err(err)?;
                let lifetime = self.lens.inner.cfg.token_lifetime.as_secs();
                Ok((
                    200,
                    serde_json::json!({
                        "participant": pid,
                        "token": base64::engine::general_purpose::STANDARD.encode(token),
                        "expires_at": now + lifetime,
                    })
                    .to_string(),
                ))
            }),
            ("POST", ["lens", id, "leave"]) => meeting(id).and_then(|id| {
                let b = parse::<LeaveBody>(&req.body)?;
                self.lens.leave(&id, b.participant).map_err(err)?;
                Ok((204, String::new()))
            }),
            _ => Err((404, String::new())),
        };
        r.unwrap_or_else(|e| e)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, (u16, String)> {
    serde_json::from_slice(body).map_err(|_| (400, String::new()))
}

fn meeting(s: &str) -> Result<MeetingId, (u16, String)> {
    s.parse().map_err(|_| (404, String::new()))
}

fn err(e: LensError) -> (u16, String) {
    let status = match e {
        LensError::NoMeeting | LensError::NoParticipant => 404,
        LensError::Full => 429,
        _ => 409,
    };
    (status, String::new())
}

/// The portal's side: signed requests to a session manager over HTTP/1.1.
#[derive(Debug)]
pub struct ManagerClient {
    addr: String,
    key: TicketSigner,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The manager answered with this status.
    #[error("status {0}")]
    Status(u16),
    /// The answer could not be read.
    #[error("malformed answer")]
    Malformed,
}

/// What a join returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The participant id.
    pub participant: u32,
    /// The signed join token for the relay.
    pub token: Vec<u8>,
}

impl ManagerClient {
    /// A client for the manager at `addr` signing with the portal's `key`.
    pub fn new(addr: &str, key: TicketSigner) -> Self {
        Self {
            addr: addr.to_owned(),
            key,
        }
    }

    /// Creates a meeting for `session`.
    pub async fn create(&self, session: &str) -> Result<MeetingId, CallError> {
        let body = serde_json::json!({ "session": session }).to_string();
        let v = self.call("POST", "/lens", body.as_bytes()).await?;
        v["meeting"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(CallError::Malformed)
    }

    /// Deletes a meeting.
    pub async fn delete(&self, m: &MeetingId) -> Result<(), CallError> {
        self.call("DELETE", &format!("/lens/{m}"), b"")
            .await
            .map(drop)
    }

    /// Joins `role` to a meeting.
    pub async fn join(&self, m: &MeetingId, role: LensRole) -> Result<Joined, CallError> {
        let body = serde_json::json!({ "role": role }).to_string();
        let v = self
            .call("POST", &format!("/lens/{m}/join"), body.as_bytes())
            .await?;
        let participant = v["participant"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        let token = v["token"]
            .as_str()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
        match (participant, token) {
            (Some(participant), Some(token)) => Ok(Joined { participant, token }),
            _ => Err(CallError::Malformed),
        }
    }

    /// Removes a participant.
    pub async fn leave(&self, m: &MeetingId, participant: u32) -> Result<(), CallError> {
        let body = serde_json::json!({ "participant": participant }).to_string();
        self.call("POST", &format!("/lens/{m}/leave"), body.as_bytes())
            .await
            .map(drop)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, CallError> {
        let headers = sign_request(&self.key, method, path, body, crate::unix_now());
        let (status, answer) = raw_call(&self.addr, method, path, &headers, body).await?;
        if !(200..300).contains(&status) {
            return Err(CallError::Status(status));
        }
        if answer.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&answer).map_err(|_| CallError::Malformed)
    }
}

/// One HTTP/1.1 request with the given headers; the status and the body of the answer
/// (bounded by the answer size limit; for clients and tests).
pub async fn raw_call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), CallError> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: lens\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        s.write_all(body).await?;
        let mut answer = Vec::new();
        (&mut s).take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, CallError>(answer)
    };
    let answer = tokio::time::timeout(crate::http::REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| CallError::Io(std::io::ErrorKind::TimedOut.into()))??;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(CallError::Malformed)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    Ok((status, body))
}
