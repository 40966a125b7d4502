//! The admin audit trail: every settings change (who, when, before, after) of an
//! account, hash-chained like the session audit so an edit or a deletion in the middle
//! is detected by [`verify_chain`].
//!
//! Entry `n` stores `hash_n = SHA-256(hash_{n-1} || account || n || at || actor ||
//! action || before || after)` (each text field length-prefixed, integers big-endian);
//! `hash_0`'s predecessor is 32 zero bytes.

use serde::Serialize;
use sqlx::Row;

use crate::db::{sha256, Db};
use crate::error::Result;

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Position in the account's chain, from 0.
    pub seq: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// Who (the admin's e-mail, or `system`).
    pub actor: String,
    /// What (e.g. `group.update`).
    pub action: String,
    /// The value before (JSON text, `null` for a creation).
    pub before: String,
    /// The value after.
    pub after: String,
}

/// Where the chain of an account first fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("admin audit chain broken at entry {seq}")]
pub struct ChainBroken {
    /// The first entry whose hash or position does not follow.
    pub seq: i64,
}

fn entry_hash(prev: &[u8], account: i64, e: &AuditEntry) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(prev);
    m.extend_from_slice(&account.to_be_bytes());
    m.extend_from_slice(&e.seq.to_be_bytes());
    m.extend_from_slice(&e.at.to_be_bytes());
    for f in [&e.actor, &e.action, &e.before, &e.after] {
        m.extend_from_slice(&(f.len() as u64).to_be_bytes());
        m.extend_from_slice(f.as_bytes());
    }
    sha256(&m)
}

/// Appends an entry to `account`'s chain inside the caller's transaction.
pub(crate) async fn append(
    conn: &mut sqlx::AnyConnection,
    account: i64,
    at: u64,
    actor: &str,
    action: &str,
    before: &str,
    after: &str,
) -> Result<()> {
    let last = sqlx::query(
        "SELECT seq, hash FROM admin_audit WHERE account_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev) = match last {
        Some(r) => (
            r.try_get::<i64, _>("seq")? + 1,
            r.try_get::<Vec<u8>, _>("hash")?,
        ),
        None => (0, vec![0u8; 32]),
    };
    let e = AuditEntry {
        seq,
        at: i64::try_from(at).unwrap_or(i64::MAX),
        actor: actor.to_owned(),
        action: action.to_owned(),
        before: before.to_owned(),
        after: after.to_owned(),
    };
    let hash = entry_hash(&prev, account, &e);
    sqlx::query(
        "INSERT INTO admin_audit (account_id, seq, at, actor, action, before_value, after_value, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(account)
    .bind(e.seq)
    .bind(e.at)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.before)
    .bind(e.after)
    .bind(prev)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The entries of `account`, oldest first.
pub(crate) async fn entries(db: &Db, account: i64) -> Result<Vec<AuditEntry>> {
    Ok(rows(db, account)
        .await?
        .into_iter()
        .map(|(e, _, _)| e)
        .collect())
}

async fn rows(db: &Db, account: i64) -> Result<Vec<(AuditEntry, Vec<u8>, Vec<u8>)>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, before_value, after_value, prev_hash, hash FROM admin_audit \
         WHERE account_id = $1 ORDER BY seq",
    )
    .bind(account)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    before: r.try_get("before_value")?,
                    after: r.try_get("after_value")?,
                },
                r.try_get("prev_hash")?,
                r.try_get("hash")?,
            ))
        })
        .collect()
}

/// Checks `account`'s whole chain: positions 0, 1, 2, … and every hash.
pub async fn verify_chain(db: &Db, account: i64) -> Result<Result<(), ChainBroken>> {
    let mut prev = vec![0u8; 32];
    for (i, (e, stored_prev, stored)) in rows(db, account).await?.into_iter().enumerate() {
        let expect_seq = i64::try_from(i).unwrap_or(i64::MAX);
        if e.seq != expect_seq || stored_prev != prev || entry_hash(&prev, account, &e) != stored {
            return Ok(Err(ChainBroken { seq: expect_seq }));
        }
        prev = stored;
    }
    Ok(Ok(()))
}
