//! The store: one sqlx `Any` pool over SQLite (embedded default: one file, created on
//! first start) or PostgreSQL (production), the schema migrations of each, and the
//! random ids every row gets.
//!
//! The same SQL text runs on both backends (`$1` placeholders, `BIGINT`/`INTEGER` and
//! `BYTEA`/`BLOB` only differ in the DDL of `migrations/`). No query here takes an
//! account id from a handler: tenant data is reached through [`crate::tenant::Tenant`].

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::error::{PortalError, Result};

/// Longest wait for a pooled connection; a store that cannot answer in this time is
/// treated as failed rather than waited on forever.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections to PostgreSQL per portal process.
pub const MAX_PG_CONNECTIONS: u32 = 8;
/// How long SQLite waits on a locked file before failing a statement (milliseconds).
pub const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (one file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Migrations, in order: (version, SQLite script, PostgreSQL script).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    include_str!("../migrations/sqlite.sql"),
    include_str!("../migrations/postgres.sql"),
)];

/// The portal's database.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` creates the file; `postgres://…`) and
    /// applies the migrations not yet applied.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(PortalError::BadRequest(
                "database URL must be sqlite: or postgres:",
            ));
        };
        let opts = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = match backend {
            // One connection: SQLite serializes writers anyway, and one connection never
            // meets SQLITE_BUSY from itself.
            Backend::Sqlite => {
                opts.max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str(),
                            )
                            .await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                opts.max_connections(MAX_PG_CONNECTIONS)
                    .connect(url)
                    .await?
            }
        };
        let db = Self { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    /// The backend behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        self.pool
            .execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&self.pool)
            .await?;
        let current = current.unwrap_or(0);
        for &(version, sqlite, postgres) in MIGRATIONS {
            if version <= current {
                continue;
            }
            let script = match self.backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            let mut tx = self.pool.begin().await?;
            for stmt in statements(script) {
                (&mut *tx).execute(stmt.as_str()).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The raw pool, for tests that inspect or tamper with rows.
    #[doc(hidden)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The statements of a migration script: comment lines dropped, split on `;`.
fn statements(script: &str) -> Vec<String> {
    let text: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `N` bytes from the OS CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PortalError::Internal("OS random generator failed".into()))?;
    Ok(b)
}

/// A fresh row id: a random positive 63-bit integer (ids are not guessable, so a probe
/// of another tenant's ids finds nothing to learn from).
pub(crate) fn new_id() -> Result<i64> {
    let b = random::<8>()?;
    let v = i64::from_be_bytes(b) & i64::MAX;
    Ok(v.max(1))
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_scripts_split_into_statements() {
        let s = statements(MIGRATIONS[0].1);
        assert!(s.len() >= 10);
        assert!(s.iter().all(|s| s.starts_with("CREATE")));
        assert_eq!(statements(MIGRATIONS[0].2).len(), s.len());
    }

    #[test]
    fn ids_are_positive_and_distinct() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert!(a > 0 && b > 0);
        assert_ne!(a, b);
    }
}
