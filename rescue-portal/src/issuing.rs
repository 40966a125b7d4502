//! Issuing: a technician creates a session (GUID, signed ticket and session secret from
//! [`rescue::Portal`]); the end user fetches ticket and secret with a short code; the
//! account's shared queue lists waiting end users to the technicians whose group may see
//! them; a technician claims one and receives the session secret through this API, never
//! through a gateway. Console certificates are signed from the console's CSR by the
//! account CA.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rescue::SessionRequest;
use rescue_crypto::pki::AccountId;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::auth::Principal;
use crate::db::{new_id, random, sha256};
use crate::error::{PortalError, Result};
use crate::service::Service;
use crate::tenant::Tenant;

/// Length of an end-user code: 10 symbols of 32 = 50 bits, against guessing at the
/// per-source rate limit for the ticket lifetime.
pub const CODE_LEN: usize = 10;
/// Sessions listed in one queue or history answer.
pub const MAX_LISTED_SESSIONS: i64 = 500;

/// A session as listed to technicians.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Id.
    pub id: i64,
    /// The session GUID.
    pub guid: String,
    /// The issuing group.
    pub group_id: i64,
    /// The issuing technician.
    pub created_by: i64,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// The ticket's expiry.
    pub expires_at: i64,
    /// `issued`, `waiting` (the end user fetched the applet), `claimed` or `ended`.
    pub state: String,
    /// Since when the end user waits.
    pub waiting_since: Option<i64>,
    /// Who claimed it.
    pub claimed_by: Option<i64>,
}

/// What the technician gets on creating a session.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Created {
    /// The session.
    pub session: SessionInfo,
    /// The code the end user types on the download page.
    pub code: String,
    /// The end user's download page.
    pub download_url: String,
    /// The console's claim key (GUID and secret, `ClaimKey::to_text` form).
    pub claim_key: String,
}

/// What the end user's applet fetches with the code.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AppletConfig {
    /// The signed ticket, base64.
    pub ticket: String,
    /// The session key (GUID and secret, `ClaimKey::to_text` form).
    pub key: String,
}

fn info(r: &AnyRow) -> Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.try_get("id")?,
        guid: r.try_get("guid")?,
        group_id: r.try_get("group_id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        state: r.try_get("state")?,
        waiting_since: r.try_get("waiting_since")?,
        claimed_by: r.try_get("claimed_by")?,
    })
}

const SESSION_COLS: &str =
    "id, guid, group_id, created_by, created_at, expires_at, state, waiting_since, claimed_by";

fn new_code() -> Result<String> {
    const A: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    Ok(random::<CODE_LEN>()?
        .iter()
        .map(|b| char::from(A[usize::from(b & 31)]))
        .collect())
}

fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Tenant {
    async fn allowed_here(&self, who: &Principal, source: IpAddr) -> Result<crate::tenant::Group> {
        let group = self.group(who.group).await?;
        if !group.policy.allow_list.allows(source) {
            return Err(PortalError::AddressRefused);
        }
        Ok(group)
    }

    /// Creates a session for `who` under their group's policy (allow-list checked).
    pub async fn create_session(&self, who: &Principal, source: IpAddr) -> Result<Created> {
        let group = self.allowed_here(who, source).await?;
        let ca = self.account_ca().await?;
        let mut req = SessionRequest::new(
            AccountId(self.account as u64),
            ca.pin(),
            group.policy.session_policy(),
        );
        req.group = group.name.clone();
        let issued = self
            .svc
            .issuer()
            .issue_until(&req, self.svc.now().saturating_add(req.lifetime.as_secs()))
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        let id = new_id()?;
        let code = new_code()?;
        let key_text = issued.claim_key().to_text();
        let ticket = self.key.seal("sessions", "ticket", id, &issued.ticket)?;
        let secret = self
            .key
            .seal("sessions", "secret", id, key_text.as_bytes())?;
        let now = self.now();
        sqlx::query(
            "INSERT INTO sessions (account_id, id, guid, code_hash, group_id, created_by, created_at, expires_at, state, ticket, secret) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'issued', $9, $10)",
        )
        .bind(self.account)
        .bind(id)
        .bind(issued.guid.to_string())
        .bind(sha256(code.as_bytes()))
        .bind(group.id)
        .bind(who.technician)
        .bind(now)
        .bind(i64::try_from(issued.expires_at_unix).unwrap_or(i64::MAX))
        .bind(ticket)
        .bind(secret)
        .execute(self.pool())
        .await?;
        Ok(Created {
            session: self.session(id).await?,
            download_url: format!("{}/s/{code}", self.svc.config().base_url),
            code,
            claim_key: key_text,
        })
    }

    /// One session of the account.
    pub async fn session(&self, id: i64) -> Result<SessionInfo> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(self.account)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(PortalError::NotFound)?;
        info(&r)
    }

    /// Recent sessions of the account, newest first.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 ORDER BY created_at DESC LIMIT {MAX_LISTED_SESSIONS}"
        );
        let rows = sqlx::query(&sql)
            .bind(self.account)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(info).collect()
    }

    /// The waiting end users `who` may see: the whole account's if their group has the
    /// shared queue, else their own group's.
    pub async fn queue(&self, who: &Principal) -> Result<Vec<SessionInfo>> {
        let group = self.group(who.group).await?;
        let now = self.now();
        let rows = if group.policy.shared_queue {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 AND state = 'waiting' AND expires_at > $2 \
                 ORDER BY waiting_since LIMIT {MAX_LISTED_SESSIONS}"
            );
            sqlx::query(&sql)
                .bind(self.account)
                .bind(now)
                .fetch_all(self.pool())
                .await?
        } else {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 AND state = 'waiting' AND expires_at > $2 AND group_id = $3 \
                 ORDER BY waiting_since LIMIT {MAX_LISTED_SESSIONS}"
            );
            sqlx::query(&sql)
                .bind(self.account)
                .bind(now)
                .bind(group.id)
                .fetch_all(self.pool())
                .await?
        };
        rows.iter().map(info).collect()
    }

    /// Claims a waiting (or own issued) session: returns its claim key, so only the
    /// claimer's console can BIND. A session another technician's group may not see is
    /// not found.
    pub async fn claim(&self, who: &Principal, source: IpAddr, id: i64) -> Result<String> {
        let group = self.allowed_here(who, source).await?;
        let s = self.session(id).await?;
        let visible =
            group.policy.shared_queue || s.group_id == group.id || s.created_by == who.technician;
        let open = s.state == "waiting" || (s.state == "issued" && s.created_by == who.technician);
        if !visible || !open || s.expires_at <= self.now() {
            return Err(PortalError::NotFound);
        }
        let done = sqlx::query(
            "UPDATE sessions SET state = 'claimed', claimed_by = $1 WHERE account_id = $2 AND id = $3 AND state = $4",
        )
        .bind(who.technician)
        .bind(self.account)
        .bind(id)
        .bind(&s.state)
        .execute(self.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(PortalError::NotFound);
        }
        let r = sqlx::query("SELECT secret FROM sessions WHERE account_id = $1 AND id = $2")
            .bind(self.account)
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        self.key.open_text(
            "sessions",
            "secret",
            id,
            &r.try_get::<Vec<u8>, _>("secret")?,
        )
    }

    /// Signs the console's CSR (DER) for `who` with the account CA; returns the leaf and
    /// the CA certificate, PEM.
    pub async fn console_cert(
        &self,
        who: &Principal,
        source: IpAddr,
        csr_der: &[u8],
    ) -> Result<(String, String)> {
        self.allowed_here(who, source).await?;
        let ca = self.account_ca().await?;
        let leaf =
            ca.sign_console_csr(&who.name, csr_der, self.svc.config().console_cert_validity)?;
        let b64 = STANDARD.encode(leaf.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Ok((pem, ca.cert_pem()))
    }
}

impl Service {
    /// The end user's fetch by code: returns the applet's ticket and key and puts the
    /// session in the account's queue. Unknown, expired and claimed codes are all "not
    /// found"; each source is rate-limited.
    pub async fn fetch_applet(&self, source: IpAddr, code: &str) -> Result<AppletConfig> {
        let now = self.now();
        if !self.0.code_limit.check(source, now) {
            return Err(PortalError::RateLimited);
        }
        let code = normalize_code(code);
        if code.len() != CODE_LEN {
            return Err(PortalError::NotFound);
        }
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let r = sqlx::query(
            "SELECT account_id, id, state, expires_at, ticket, secret FROM sessions WHERE code_hash = $1",
        )
        .bind(sha256(code.as_bytes()))
        .fetch_optional(&self.0.db.pool)
        .await?
        .ok_or(PortalError::NotFound)?;
        let (account, id): (i64, i64) = (r.try_get("account_id")?, r.try_get("id")?);
        let state: String = r.try_get("state")?;
        if r.try_get::<i64, _>("expires_at")? <= now || !(state == "issued" || state == "waiting") {
            return Err(PortalError::NotFound);
        }
        let tenant = Tenant::open(self, account)
            .await
            .map_err(|_| PortalError::NotFound)?;
        let ticket = tenant.key.open(
            "sessions",
            "ticket",
            id,
            &r.try_get::<Vec<u8>, _>("ticket")?,
        )?;
        let key = tenant.key.open_text(
            "sessions",
            "secret",
            id,
            &r.try_get::<Vec<u8>, _>("secret")?,
        )?;
        sqlx::query(
            "UPDATE sessions SET state = 'waiting', waiting_since = $1 WHERE account_id = $2 AND id = $3 AND state = 'issued'",
        )
        .bind(now)
        .bind(account)
        .bind(id)
        .execute(&self.0.db.pool)
        .await?;
        Ok(AppletConfig {
            ticket: STANDARD.encode(ticket),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_fresh_and_normalize() {
        let a = new_code().unwrap();
        assert_eq!(a.len(), CODE_LEN);
        assert_ne!(a, new_code().unwrap());
        assert_eq!(normalize_code(" abcd-efgh 23 "), "ABCDEFGH23");
    }
}
