//! A minimal HTTP/1.1 request reader and response writer for the session manager: one
//! request per connection, every length bounded, every read under a deadline.
//!
//! What it accepts: a request line, at most [`MAX_HEADERS`] headers in at most
//! [`MAX_HEAD_BYTES`], a `Content-Length` body of at most [`MAX_BODY_BYTES`] (no chunked
//! encoding). Anything else is a typed [`HttpError`] and a 4xx answer.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Most bytes of the request line and headers.
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most headers.
pub(crate) const MAX_HEADERS: usize = 32;
/// Largest request body: session manager bodies are tiny JSON objects.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024;
/// Longest a whole request may take to arrive.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request that could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("request too large")]
    TooLarge,
    #[error("malformed request")]
    Malformed,
    #[error("request timed out")]
    Timeout,
}

/// One request: method, path, lowercase header names, raw body (not parsed).
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request within [`REQUEST_TIMEOUT`].
pub(crate) async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, HttpError> {
    tokio::time::timeout(REQUEST_TIMEOUT, read_inner(r))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn read_inner<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HttpError::TooLarge);
        }
        let mut chunk = [0u8; 1024];
        let room = (MAX_HEAD_BYTES + 4 - buf.len()).min(chunk.len());
        let n = r.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(HttpError::Malformed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| HttpError::Malformed)?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().ok_or(HttpError::Malformed)?.split(' ');
    let (method, path, version) = match (first.next(), first.next(), first.next(), first.next()) {
        (Some(m), Some(p), Some(v), None) => (m, p, v),
        _ => return Err(HttpError::Malformed),
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return Err(HttpError::Malformed);
    }
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::TooLarge);
        }
        let (n, v) = l.split_once(':').ok_or(HttpError::Malformed)?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let req_headers = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if req_headers("transfer-encoding").is_some() {
        return Err(HttpError::Malformed);
    }
    let len: usize = match req_headers("content-length") {
        Some(v) => v.parse().map_err(|_| HttpError::Malformed)?,
        None => 0,
    };
    // The limit is checked before the body is read or allocated.
    if len > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge);
    }
    let mut body = buf[head_end + 4..].to_vec();
    if body.len() > len {
        return Err(HttpError::Malformed); // a second request or garbage after the body
    }
    let have = body.len();
    body.resize(len, 0);
    r.read_exact(&mut body[have..]).await?;
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body,
    })
}

/// Writes a response with a JSON (or empty) body and closes the write side.
pub(crate) async fn respond<W: AsyncWrite + Unpin>(w: &mut W, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = w.write_all(msg.as_bytes()).await;
        let _ = w.shutdown().await;
    })
    .await;
}
