//! The portal service: the store, the master key, the clock, the hashing pool and the
//! session issuer, shared by every request; and account creation (tenants).

use std::sync::Arc;

use rescue_crypto::pki::{AccountCa, AccountId};
use sqlx::Row;

use crate::auth::Hasher;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{new_id, Db};
use crate::error::{PortalError, Result};
use crate::keys::{AccountKey, MasterKey};
use crate::ratelimit::RateLimiter;
use crate::tenant::{GroupPolicy, NewTechnician, Tenant};

/// The portal: cheap to clone, one per process.
#[derive(Clone)]
pub struct Service(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) master: MasterKey,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: Hasher,
    pub(crate) login_limit: RateLimiter,
    pub(crate) code_limit: RateLimiter,
    pub(crate) issuer: rescue::Portal,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.0.db.backend())
            .finish_non_exhaustive()
    }
}

/// A new account and its first admin.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewAccount {
    /// The account id (also the [`AccountId`] in its tickets and certificates).
    pub id: i64,
    /// The first admin: e-mail, one-time password, TOTP secret.
    pub admin: NewTechnician,
}

impl Service {
    /// A portal over `db`, sealing with `master`, issuing with `issuer`, reading time
    /// from `clock`.
    pub async fn new(
        db: Db,
        master: MasterKey,
        config: Config,
        clock: Arc<dyn Clock>,
        issuer: rescue::Portal,
    ) -> Result<Self> {
        let hasher = Hasher::new(config.password_cost).await?;
        let login_limit =
            RateLimiter::new(config.login_attempts_per_source, config.login_window_secs);
        let code_limit =
            RateLimiter::new(config.login_attempts_per_source, config.login_window_secs);
        Ok(Self(Arc::new(Inner {
            db,
            master,
            config,
            clock,
            hasher,
            login_limit,
            code_limit,
            issuer,
        })))
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The current time of the portal's clock.
    pub fn now(&self) -> u64 {
        self.0.clock.now()
    }

    /// The session issuer (its verify key goes to the gateways).
    pub fn issuer(&self) -> &rescue::Portal {
        &self.0.issuer
    }

    /// Creates an account (tenant) with its data key, its CA, a default group that may
    /// ask for every permission, and a first admin `admin_email`.
    pub async fn create_account(&self, name: &str, admin_email: &str) -> Result<NewAccount> {
        let id = new_id()?;
        let ca = AccountCa::generate(AccountId(id as u64))?;
        self.insert_account(id, name, admin_email, &ca).await
    }

    /// Creates an account around an existing account CA (e.g. the development PKI's, so
    /// gateways that already trust that CA accept the portal's consoles). The account id
    /// is the CA's.
    pub async fn import_account(
        &self,
        name: &str,
        admin_email: &str,
        ca: &AccountCa,
    ) -> Result<NewAccount> {
        let id = i64::try_from(ca.account().0)
            .map_err(|_| PortalError::BadRequest("account id above 2^63"))?;
        self.insert_account(id, name, admin_email, ca).await
    }

    async fn insert_account(
        &self,
        id: i64,
        name: &str,
        admin_email: &str,
        ca: &AccountCa,
    ) -> Result<NewAccount> {
        crate::tenant::check_text(name)?;
        let now = i64::try_from(self.now()).unwrap_or(i64::MAX);
        let mut tx = self.0.db.pool.begin().await?;
        let key = AccountKey::create(&mut tx, &self.0.master, id).await?;
        let ca_key = key.seal("accounts", "ca_key", id, ca.key_pem().as_bytes())?;
        sqlx::query(
            "INSERT INTO accounts (id, name, created_at, ca_cert_pem, ca_key) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(now)
        .bind(ca.cert_pem())
        .bind(ca_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let tenant = Tenant::open(self, id).await?;
        let group = tenant
            .create_group("system", "default", &GroupPolicy::default())
            .await?;
        let admin = tenant
            .create_technician("system", admin_email, "admin", group, true)
            .await?;
        Ok(NewAccount { id, admin })
    }

    /// Records the account's request to delete its content (purged within
    /// `retention.after_deletion_request`).
    pub async fn request_deletion(&self, account: i64) -> Result<()> {
        self.set_account_time("deletion_requested_at", account)
            .await
    }

    /// Records the end of the account's subscription (purged
    /// `retention.after_subscription_end` later).
    pub async fn end_subscription(&self, account: i64) -> Result<()> {
        self.set_account_time("subscription_ended_at", account)
            .await
    }

    async fn set_account_time(&self, column: &'static str, account: i64) -> Result<()> {
        let now = i64::try_from(self.now()).unwrap_or(i64::MAX);
        let sql = format!("UPDATE accounts SET {column} = $1 WHERE id = $2");
        let done = sqlx::query(&sql)
            .bind(now)
            .bind(account)
            .execute(&self.0.db.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(PortalError::NotFound);
        }
        Ok(())
    }

    /// Deletes an account: its key first (crypto-shredding), then every row it owns.
    pub async fn delete_account(&self, account: i64) -> Result<()> {
        AccountKey::destroy(&self.0.db, account).await?;
        let mut tx = self.0.db.pool.begin().await?;
        for table in TENANT_TABLES {
            let sql = format!("DELETE FROM {table} WHERE account_id = $1");
            sqlx::query(&sql).bind(account).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether an account row exists.
    pub async fn account_exists(&self, account: i64) -> Result<bool> {
        let row = sqlx::query("SELECT id FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(&self.0.db.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("id"))
            .transpose()?
            .is_some())
    }
}

/// Tables holding an account's rows (besides `accounts` and `account_keys`), children
/// first.
pub(crate) const TENANT_TABLES: &[&str] = &[
    "webhook_deliveries",
    "admin_audit",
    "session_events_archive",
    "session_events",
    "sessions",
    "web_sessions",
    "technicians",
    "tech_groups",
];
