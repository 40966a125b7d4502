//! Signed CRM webhooks in the Standard Webhooks format: headers `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256(secret,
//! "<id>.<timestamp>.<body>")>`; the secret is shown once as `whsec_<base64>`. Receivers
//! check with [`verify`] (constant time, with a replay window).
//!
//! The URL is the customer's: it must be `http` or `https`, and every address its host
//! resolves to must be public (no loopback, private, link-local, shared, documentation or
//! multicast range) unless the configuration allows private targets (tests). It is
//! checked when set and again before each delivery, and the portal connects to the
//! address it checked. No redirects are followed; each delivery has a timeout and a cap
//! on the response it reads. Failed deliveries are retried with exponential backoff, then
//! dead-lettered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;
use serde::Serialize;
use sqlx::Row;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::db::{new_id, random};
use crate::error::{PortalError, Result};
use crate::logs::SessionEvent;
use crate::service::Service;
use crate::tenant::Tenant;

/// Receivers' replay window: a timestamp further than this from now is refused (the
/// Standard Webhooks recommendation, five minutes).
pub const REPLAY_WINDOW_SECS: u64 = 300;
/// Longest a delivery (resolve, connect, send, read the status) may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of the receiver's answer read at most (only the status line matters).
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;
/// Deliveries attempted per run of [`Service::deliver_due`].
pub const DELIVERIES_PER_RUN: i64 = 100;
/// Longest backoff between two attempts.
pub const MAX_BACKOFF_SECS: u64 = 6 * 3600;

/// `whsec_` + base64 of the secret: the form the account admin is shown once.
pub fn secret_text(secret: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(secret))
}

/// The secret from its `whsec_` form.
pub fn secret_from_text(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.strip_prefix("whsec_")?).ok()
}

/// The `webhook-signature` value for a message.
pub fn sign(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut msg = format!("{id}.{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac::sign(&key, &msg).as_ref()))
}

/// Why a receiver refuses a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The timestamp is outside the replay window.
    #[error("timestamp outside the replay window")]
    Stale,
    /// No `v1` signature matches.
    #[error("no valid signature")]
    BadSignature,
}

/// A receiver's check: `signatures` is the `webhook-signature` header (space-separated
/// `v1,<base64>` entries, for secret rotation); the timestamp must be within
/// [`REPLAY_WINDOW_SECS`] of `now`. Deduplicate on `id` for full replay protection.
pub fn verify(
    secret: &[u8],
    id: &str,
    timestamp: u64,
    signatures: &str,
    body: &[u8],
    now: u64,
) -> Result<(), VerifyError> {
    if timestamp.abs_diff(now) > REPLAY_WINDOW_SECS {
        return Err(VerifyError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut msg = format!("{id}.{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    for sig in signatures.split(' ') {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            continue;
        };
        if hmac::verify(&key, &msg, &tag).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

/// A checked webhook target.
#[derive(Debug, Clone)]
pub struct Target {
    tls: bool,
    host: String,
    path: String,
    addr: SocketAddr,
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Parses and checks a webhook URL: scheme, host, port, and (unless `allow_private`)
/// that every address the host resolves to is public.
pub async fn check_url(url: &str, allow_private: bool) -> Result<Target> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(PortalError::WebhookUrl("only http and https URLs"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains('@')
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(PortalError::WebhookUrl("malformed URL"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, rest) = h
            .split_once(']')
            .ok_or(PortalError::WebhookUrl("malformed URL"))?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| PortalError::WebhookUrl("malformed port"))?,
            None if rest.is_empty() => default_port,
            None => return Err(PortalError::WebhookUrl("malformed URL")),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| PortalError::WebhookUrl("malformed port"))?,
            ),
            None => (authority.to_owned(), default_port),
        }
    };
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            DELIVERY_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| PortalError::WebhookUrl("host did not resolve in time"))?
        .map_err(|_| PortalError::WebhookUrl("host does not resolve"))?
        .collect(),
    };
    let Some(&addr) = addrs.first() else {
        return Err(PortalError::WebhookUrl("host does not resolve"));
    };
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(PortalError::WebhookUrl(
            "URL points at a loopback or private address",
        ));
    }
    Ok(Target {
        tls,
        host,
        path: path.to_owned(),
        addr,
    })
}

#[derive(Serialize)]
struct Payload<'a> {
    r#type: &'static str,
    account: i64,
    session: &'a crate::issuing::SessionInfo,
    events: Vec<&'a SessionEvent>,
}

/// Queues the `session.ended` webhook of session `id` if the account has a webhook.
pub(crate) async fn enqueue_session(t: &Tenant, id: i64) -> Result<()> {
    let settings = t.settings().await?;
    let Some(url) = settings.webhook_url else {
        return Ok(());
    };
    let session = t.session(id).await?;
    let logged = t.events(id).await?;
    let events = logged
        .iter()
        .map(|l| &l.event)
        .filter(|e| settings.webhook_chat || !matches!(e, SessionEvent::Chat { .. }))
        .collect();
    let body = serde_json::to_vec(&Payload {
        r#type: "session.ended",
        account: t.account,
        session: &session,
        events,
    })
    .map_err(|e| PortalError::Internal(e.to_string()))?;
    let did = new_id()?;
    let msg_id = format!("msg_{}", hex::encode(random::<16>()?));
    sqlx::query(
        "INSERT INTO webhook_deliveries (account_id, id, msg_id, url, body, attempts, next_at, state) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, 'pending')",
    )
    .bind(t.account)
    .bind(did)
    .bind(msg_id)
    .bind(url)
    .bind(t.key.seal("webhook_deliveries", "body", did, &body)?)
    .bind(t.now())
    .execute(t.pool())
    .await?;
    Ok(())
}

/// What one run of [`Service::deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryStats {
    /// Accepted by the receiver (2xx).
    pub delivered: u32,
    /// Failed, to be retried.
    pub retrying: u32,
    /// Failed for the last time.
    pub dead: u32,
}

impl Service {
    /// Attempts every delivery that is due now.
    pub async fn deliver_due(&self) -> Result<DeliveryStats> {
        let now = i64::try_from(self.now()).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT account_id, id, msg_id, url, body, attempts FROM webhook_deliveries \
             WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT {DELIVERIES_PER_RUN}"
        ))
        .bind(now)
        .fetch_all(&self.0.db.pool)
        .await?;
        let mut stats = DeliveryStats::default();
        for r in rows {
            let (account, id): (i64, i64) = (r.try_get("account_id")?, r.try_get("id")?);
            let attempts: i64 = r.try_get::<i64, _>("attempts")? + 1;
            let outcome = self
                .attempt(
                    account,
                    id,
                    &r.try_get::<String, _>("msg_id")?,
                    &r.try_get::<String, _>("url")?,
                    &r.try_get::<Vec<u8>, _>("body")?,
                )
                .await;
            let (state, next) = match outcome {
                Ok(()) => {
                    stats.delivered += 1;
                    ("delivered", now)
                }
                Err(e) if attempts >= i64::from(self.0.config.webhook_max_attempts) => {
                    tracing::warn!(account, delivery = id, error = %e, "webhook dead-lettered");
                    stats.dead += 1;
                    ("dead", now)
                }
                Err(e) => {
                    tracing::info!(account, delivery = id, error = %e, "webhook will be retried");
                    stats.retrying += 1;
                    let shift = u32::try_from(attempts - 1).unwrap_or(31).min(31);
                    let backoff = self
                        .0
                        .config
                        .webhook_first_retry_secs
                        .saturating_mul(1u64 << shift)
                        .min(MAX_BACKOFF_SECS);
                    (
                        "pending",
                        now.saturating_add(i64::try_from(backoff).unwrap_or(i64::MAX)),
                    )
                }
            };
            sqlx::query("UPDATE webhook_deliveries SET attempts = $1, next_at = $2, state = $3 WHERE account_id = $4 AND id = $5")
                .bind(attempts)
                .bind(next)
                .bind(state)
                .bind(account)
                .bind(id)
                .execute(&self.0.db.pool)
                .await?;
        }
        Ok(stats)
    }

    async fn attempt(
        &self,
        account: i64,
        id: i64,
        msg_id: &str,
        url: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let tenant = Tenant::open(self, account).await?;
        let body = tenant.key.open("webhook_deliveries", "body", id, sealed)?;
        let secret = tenant
            .webhook_secret()
            .await?
            .ok_or(PortalError::NotFound)?;
        let target = check_url(url, self.0.config.allow_private_webhooks).await?;
        let ts = self.now();
        let sig = sign(&secret, msg_id, ts, &body);
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rescue-portal\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nwebhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\nConnection: close\r\n\r\n",
            target.path,
            target.host,
            body.len()
        );
        let status = tokio::time::timeout(DELIVERY_TIMEOUT, post(&target, head.into_bytes(), body))
            .await
            .map_err(|_| PortalError::Internal("webhook timed out".into()))??;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PortalError::Internal(format!("webhook answered {status}")))
        }
    }
}

async fn post(target: &Target, head: Vec<u8>, body: Vec<u8>) -> Result<u16> {
    let io = |e: std::io::Error| PortalError::Internal(format!("webhook: {e}"));
    let tcp = TcpStream::connect(target.addr).await.map_err(io)?;
    if !target.tls {
        return exchange(tcp, head, body).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    for path in ["/etc/ssl/certs/ca-certificates.crt"] {
        use rustls_pki_types::pem::PemObject;
        if let Ok(certs) = rustls_pki_types::CertificateDer::pem_file_iter(path) {
            for c in certs.flatten() {
                let _ = roots.add(c);
            }
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PortalError::Internal(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| PortalError::WebhookUrl("malformed host"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(io)?;
    exchange(tls, head, body).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: Vec<u8>,
    body: Vec<u8>,
) -> Result<u16> {
    let io = |e: std::io::Error| PortalError::Internal(format!("webhook: {e}"));
    s.write_all(&head).await.map_err(io)?;
    s.write_all(&body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut buf = vec![0u8; MAX_RESPONSE_HEAD];
    let mut n = 0;
    while n < buf.len() && !buf[..n].windows(2).any(|w| w == b"\r\n") {
        let got = s.read(&mut buf[n..]).await.map_err(io)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| PortalError::Internal("webhook: malformed answer".into()))?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_tampering_or_staleness_is_refused() {
        let secret = [5u8; 32];
        let sig = sign(&secret, "msg_1", 1000, b"{}");
        assert!(verify(&secret, "msg_1", 1000, &sig, b"{}", 1100).is_ok());
        let rotated = format!("v1,AAAA {sig}");
        assert!(verify(&secret, "msg_1", 1000, &rotated, b"{}", 1000).is_ok());
        assert_eq!(
            verify(&secret, "msg_1", 1000, &sig, b"{ }", 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&secret, "msg_2", 1000, &sig, b"{}", 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &secret,
                "msg_1",
                1000,
                &sig,
                b"{}",
                1000 + REPLAY_WINDOW_SECS + 1
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(secret_from_text(&secret_text(&secret)).unwrap(), secret);
    }

    #[test]
    fn the_standard_webhooks_example_signature_matches() {
        // The Standard Webhooks spec's example: secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
        // id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body {"test": 2432232314}.
        let secret = secret_from_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[tokio::test]
    async fn private_and_loopback_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/h",
            "http://10.1.2.3/h",
            "http://192.168.1.1/h",
            "http://172.16.0.1/h",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/h",
            "http://[::1]/h",
            "http://[fd00::1]/h",
            "http://[::ffff:127.0.0.1]/h",
            "http://0.0.0.0/h",
            "http://localhost/h",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
        }
        for url in [
            "ftp://x/",
            "http://",
            "http://a@b/",
            "javascript:alert(1)",
            "http://h:99999/",
        ] {
            assert!(check_url(url, true).await.is_err(), "{url}");
        }
        assert!(check_url("http://127.0.0.1:9/h", true).await.is_ok());
        let t = check_url("https://[2606:4700::1111]:8443/x?y", false)
            .await
            .unwrap();
        assert_eq!(t.addr.port(), 8443);
        assert_eq!(t.path, "/x?y");
    }
}
