//! Retention: a purge job deletes an account's content within the configured time of its
//! deletion request or after its subscription ended (crypto-shredding its key first), and
//! moves session logs to the archive after their online period and drops them from the
//! archive after theirs. Time comes from the portal's clock, so tests drive the job.

use sqlx::Row;

use crate::error::Result;
use crate::service::Service;

/// What a purge run did (counts only, never content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Accounts deleted.
    pub accounts_deleted: u64,
    /// Session events moved to the archive.
    pub events_archived: u64,
    /// Archived session events deleted.
    pub archived_events_deleted: u64,
    /// Expired web sessions deleted.
    pub web_sessions_deleted: u64,
}

/// How often the scheduled purge runs.
pub const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Service {
    /// One purge run at the clock's current time.
    pub async fn purge(&self) -> Result<PurgeReport> {
        let now = i64::try_from(self.now()).unwrap_or(i64::MAX);
        let r = self.0.config.retention;
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let mut report = PurgeReport::default();

        let due = sqlx::query(
            "SELECT id FROM accounts WHERE (deletion_requested_at IS NOT NULL AND deletion_requested_at <= $1) \
             OR (subscription_ended_at IS NOT NULL AND subscription_ended_at <= $2)",
        )
        .bind(now.saturating_sub(secs(r.after_deletion_request)))
        .bind(now.saturating_sub(secs(r.after_subscription_end)))
        .fetch_all(&self.0.db.pool)
        .await?;
        for row in due {
            let id: i64 = row.try_get("id")?;
            self.delete_account(id).await?;
            report.accounts_deleted += 1;
        }

        let online_cut = now.saturating_sub(secs(r.logs_online));
        let mut tx = self.0.db.pool.begin().await?;
        let moved = sqlx::query(
            "INSERT INTO session_events_archive (account_id, id, session_id, seq, at, kind, body) \
             SELECT account_id, id, session_id, seq, at, kind, body FROM session_events WHERE at <= $1",
        )
        .bind(online_cut)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM session_events WHERE at <= $1")
            .bind(online_cut)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        report.events_archived = moved.rows_affected();

        let archive_cut = online_cut.saturating_sub(secs(r.logs_archive));
        report.archived_events_deleted =
            sqlx::query("DELETE FROM session_events_archive WHERE at <= $1")
                .bind(archive_cut)
                .execute(&self.0.db.pool)
                .await?
                .rows_affected();

        let c = &self.0.config;
        report.web_sessions_deleted =
            sqlx::query("DELETE FROM web_sessions WHERE last_seen < $1 OR created_at < $2")
                .bind(now.saturating_sub(secs(c.idle_timeout_secs)))
                .bind(now.saturating_sub(secs(c.reauth_secs)))
                .execute(&self.0.db.pool)
                .await?
                .rows_affected();
        if report != PurgeReport::default() {
            tracing::info!(?report, "retention purge");
        }
        Ok(report)
    }

    /// Archived events of `account` (for tests and exports).
    pub async fn archived_event_count(&self, account: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM session_events_archive WHERE account_id = $1")
                .bind(account)
                .fetch_one(&self.0.db.pool)
                .await?,
        )
    }

    /// Spawns the background jobs: the purge every [`PURGE_INTERVAL`] and webhook
    /// deliveries every `webhook_tick`.
    pub fn spawn_jobs(&self, webhook_tick: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut purge = tokio::time::interval(PURGE_INTERVAL);
            let mut hooks = tokio::time::interval(webhook_tick);
            loop {
                tokio::select! {
                    _ = purge.tick() => if let Err(e) = svc.purge().await {
                        tracing::error!(error = %e, "purge failed");
                    },
                    _ = hooks.tick() => if let Err(e) = svc.deliver_due().await {
                        tracing::error!(error = %e, "webhook delivery run failed");
                    },
                }
            }
        })
    }
}
