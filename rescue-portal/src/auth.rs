//! Authentication: scrypt under a concurrency limit, TOTP used once, lockout after
//! [`LOCKOUT_FAILURES`] failures, a per-source rate limit before any hashing, the group's
//! IP allow-list, and server-side sessions (cookie or bearer token) that end on
//! inactivity and on the re-authentication schedule.
//!
//! Every refusal of a login is the same [`PortalError::LoginFailed`], and an unknown
//! e-mail costs the same scrypt work as a known one (a dummy hash of the configured cost
//! is verified), so neither answers nor timing enumerate accounts.

use std::net::IpAddr;
use std::sync::Arc;

use rescue_crypto::password::{hash_password_with, verify_password, Cost};
use rescue_crypto::totp::Totp;
use sqlx::Row;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::config::{HASH_PERMITS, HASH_QUEUE_TIMEOUT, LOCKOUT_FAILURES, LOCKOUT_SECS};
use crate::db::{random, sha256};
use crate::error::{PortalError, Result};
use crate::service::Service;
use crate::tenant::{normalize_email, Tenant};

/// TOTP steps accepted either side of now (one: 30 s of clock drift).
pub const TOTP_SKEW_STEPS: u64 = 1;

/// scrypt on the blocking pool, at most [`HASH_PERMITS`] at once.
pub(crate) struct Hasher {
    cost: Cost,
    permits: Arc<Semaphore>,
    dummy: String,
}

impl Hasher {
    pub(crate) async fn new(cost: Cost) -> Result<Self> {
        let dummy = tokio::task::spawn_blocking(move || hash_password_with("dummy password", cost))
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))?
            .map_err(|e| PortalError::Internal(e.to_string()))?;
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(HASH_PERMITS)),
            dummy,
        })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = tokio::time::timeout(HASH_QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PortalError::Busy)?
            .map_err(|_| PortalError::Busy)?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?;
        Ok(out)
    }

    pub(crate) async fn hash(&self, password: &str) -> Result<String> {
        let (pw, cost) = (password.to_owned(), self.cost);
        self.run(move || hash_password_with(&pw, cost))
            .await?
            .map_err(|_| PortalError::BadRequest("password too long"))
    }

    /// Verifies against `stored`, or against the dummy hash when `stored` is None; a
    /// malformed stored hash counts as a mismatch.
    async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.clone());
        let pw = password.to_owned();
        let ok = self
            .run(move || verify_password(&pw, &stored).unwrap_or(false))
            .await?;
        Ok(ok && known)
    }
}

/// Who is calling, from a valid session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Principal {
    /// The account.
    pub account: i64,
    /// The technician.
    pub technician: i64,
    /// Their e-mail.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// Their group.
    pub group: i64,
    /// Whether they administer the account.
    pub is_admin: bool,
    /// The session's CSRF token (forms must echo it).
    pub csrf: String,
    /// Whether the password is still the one-time one.
    pub must_change_password: bool,
}

/// A login's result: the session token (cookie or bearer) and who it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginOk {
    /// The session token (64 hex digits); only its SHA-256 is stored.
    pub token: String,
    /// The principal.
    pub principal: Principal,
}

impl Service {
    /// Logs in with e-mail, password and TOTP code from `source`.
    pub async fn login(
        &self,
        source: IpAddr,
        email: &str,
        password: &str,
        code: &str,
    ) -> Result<LoginOk> {
        let now = self.now();
        if !self.0.login_limit.check(source, now) {
            return Err(PortalError::RateLimited);
        }
        let email = normalize_email(email).map_err(|_| PortalError::LoginFailed);
        let row = match &email {
            Ok(e) => sqlx::query(
                "SELECT account_id, id, password_hash, totp_secret, totp_last_step, locked_until, group_id FROM technicians WHERE email = $1",
            )
            .bind(e)
            .fetch_optional(&self.0.db.pool)
            .await?,
            Err(_) => None,
        };
        let Some(row) = row else {
            self.0.hasher.verify(password, None).await?;
            return Err(PortalError::LoginFailed);
        };
        let account: i64 = row.try_get("account_id")?;
        let tech: i64 = row.try_get("id")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        let now_i = i64::try_from(now).unwrap_or(i64::MAX);
        if locked_until > now_i {
            self.0.hasher.verify(password, None).await?;
            return Err(PortalError::LoginFailed);
        }
        let pw_ok = self
            .0
            .hasher
            .verify(password, Some(row.try_get("password_hash")?))
            .await?;
        let tenant = Tenant::open(self, account)
            .await
            .map_err(|_| PortalError::LoginFailed)?;
        let secret: Vec<u8> = row.try_get("totp_secret")?;
        let secret = tenant
            .key
            .open("technicians", "totp_secret", tech, &secret)?;
        let last: Option<i64> = row.try_get("totp_last_step")?;
        let totp = Totp::standard(&secret).map_err(|e| PortalError::Internal(e.to_string()))?;
        let step = totp
            .verify(
                code.trim(),
                now,
                TOTP_SKEW_STEPS,
                last.map(|l| l.max(0) as u64),
            )
            .ok();
        let (Some(step), true) = (step, pw_ok) else {
            self.count_failure(account, tech, now_i).await?;
            return Err(PortalError::LoginFailed);
        };
        let group = tenant.group(row.try_get("group_id")?).await?;
        if !group.policy.allow_list.allows(source) {
            return Err(PortalError::LoginFailed);
        }
        sqlx::query(
            "UPDATE technicians SET failed_logins = 0, locked_until = 0, totp_last_step = $1 WHERE account_id = $2 AND id = $3",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(account)
        .bind(tech)
        .execute(&self.0.db.pool)
        .await?;
        let token = hex::encode(random::<32>()?);
        let csrf = hex::encode(random::<16>()?);
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, account_id, technician_id, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(sha256(token.as_bytes()))
        .bind(account)
        .bind(tech)
        .bind(&csrf)
        .bind(now_i)
        .execute(&self.0.db.pool)
        .await?;
        let principal = self.principal(account, tech, csrf).await?;
        Ok(LoginOk { token, principal })
    }

    async fn count_failure(&self, account: i64, tech: i64, now: i64) -> Result<()> {
        let r = sqlx::query(
            "UPDATE technicians SET failed_logins = failed_logins + 1 WHERE account_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(account)
        .bind(tech)
        .fetch_one(&self.0.db.pool)
        .await?;
        let n: i64 = r.try_get("failed_logins")?;
        if n >= LOCKOUT_FAILURES {
            let until = now.saturating_add(i64::try_from(LOCKOUT_SECS).unwrap_or(i64::MAX));
            sqlx::query("UPDATE technicians SET failed_logins = 0, locked_until = $1 WHERE account_id = $2 AND id = $3")
                .bind(until)
                .bind(account)
                .bind(tech)
                .execute(&self.0.db.pool)
                .await?;
            tracing::warn!(
                account,
                technician = tech,
                "password path locked after failed logins"
            );
        }
        Ok(())
    }

    async fn principal(&self, account: i64, tech: i64, csrf: String) -> Result<Principal> {
        let r = sqlx::query(
            "SELECT email, name, group_id, is_admin, password_one_time FROM technicians WHERE account_id = $1 AND id = $2",
        )
        .bind(account)
        .bind(tech)
        .fetch_optional(&self.0.db.pool)
        .await?
        .ok_or(PortalError::Unauthorized)?;
        Ok(Principal {
            account,
            technician: tech,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            group: r.try_get("group_id")?,
            is_admin: r.try_get::<i64, _>("is_admin")? != 0,
            csrf,
            must_change_password: r.try_get::<i64, _>("password_one_time")? != 0,
        })
    }

    /// The principal of a session token; refuses unknown, idle and too-old sessions (and
    /// deletes the expired ones). Refreshes the inactivity timer.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let now = i64::try_from(self.now()).unwrap_or(i64::MAX);
        let hash = sha256(token.as_bytes());
        let r = sqlx::query(
            "SELECT account_id, technician_id, csrf, created_at, last_seen FROM web_sessions WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.0.db.pool)
        .await?
        .ok_or(PortalError::Unauthorized)?;
        let created: i64 = r.try_get("created_at")?;
        let seen: i64 = r.try_get("last_seen")?;
        let cfg = &self.0.config;
        let idle = i64::try_from(cfg.idle_timeout_secs).unwrap_or(i64::MAX);
        let reauth = i64::try_from(cfg.reauth_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(seen) > idle || now.saturating_sub(created) > reauth {
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                .bind(&hash)
                .execute(&self.0.db.pool)
                .await?;
            return Err(PortalError::Unauthorized);
        }
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(&hash)
            .execute(&self.0.db.pool)
            .await?;
        self.principal(
            r.try_get("account_id")?,
            r.try_get("technician_id")?,
            r.try_get("csrf")?,
        )
        .await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(sha256(token.as_bytes()))
            .execute(&self.0.db.pool)
            .await?;
        Ok(())
    }

    /// Replaces the caller's password (the one-time one, typically) after checking the
    /// current one.
    pub async fn change_password(&self, who: &Principal, current: &str, new: &str) -> Result<()> {
        if new.len() < 12 {
            return Err(PortalError::BadRequest(
                "new password shorter than 12 characters",
            ));
        }
        let r =
            sqlx::query("SELECT password_hash FROM technicians WHERE account_id = $1 AND id = $2")
                .bind(who.account)
                .bind(who.technician)
                .fetch_one(&self.0.db.pool)
                .await?;
        if !self
            .0
            .hasher
            .verify(current, Some(r.try_get("password_hash")?))
            .await?
        {
            return Err(PortalError::LoginFailed);
        }
        let hash = self.0.hasher.hash(new).await?;
        sqlx::query("UPDATE technicians SET password_hash = $1, password_one_time = 0 WHERE account_id = $2 AND id = $3")
            .bind(hash)
            .bind(who.account)
            .bind(who.technician)
            .execute(&self.0.db.pool)
            .await?;
        Ok(())
    }
}

/// Whether `given` is the principal's CSRF token (constant time).
pub fn csrf_ok(who: &Principal, given: &str) -> bool {
    who.csrf.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_the_permitted_hashes_run_at_once() {
        let h = Arc::new(
            Hasher::new(Cost {
                log_n: 10,
                r: 8,
                p: 1,
            })
            .await
            .unwrap(),
        );
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (h, running, peak) = (h.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                h.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Stand-in for a 0.35 s hash: real work, so overlaps would show.
                    let _ = hash_password_with(
                        "x",
                        Cost {
                            log_n: 14,
                            r: 8,
                            p: 1,
                        },
                    );
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), HASH_PERMITS);
    }
}
