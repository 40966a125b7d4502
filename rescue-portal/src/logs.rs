//! Session logs: events the console reports (start, end, permissions asked, granted,
//! denied, revoked, files with name, size, MD5 and SHA-256, path changes, chat unless the
//! group's policy excludes it), stored sealed under the account key and shown per session
//! to the account's technicians and admins. The end of a session queues its webhook.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::auth::Principal;
use crate::config::{MAX_EVENTS_PER_POST, MAX_FIELD_LEN};
use crate::db::new_id;
use crate::error::{PortalError, Result};
use crate::tenant::Tenant;
use crate::webhook;

/// Events kept per session (a log longer than this is refused further events).
pub const MAX_EVENTS_PER_SESSION: i64 = 100_000;

/// One session event, as the console posts it (JSON, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session started.
    Start,
    /// The session ended.
    End,
    /// A permission was asked for.
    PermissionAsked {
        /// The permission's name.
        permission: String,
    },
    /// A permission was granted.
    PermissionGranted {
        /// The permission's name.
        permission: String,
    },
    /// A permission was denied.
    PermissionDenied {
        /// The permission's name.
        permission: String,
    },
    /// A permission was revoked.
    PermissionRevoked {
        /// The permission's name.
        permission: String,
    },
    /// A file was transferred.
    File {
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// MD5, 32 hex digits.
        md5: String,
        /// SHA-256, 64 hex digits.
        sha256: String,
    },
    /// The path changed (relay, direct).
    PathChange {
        /// The new path.
        path: String,
    },
    /// A chat line.
    Chat {
        /// Who wrote it (`technician` or `end_user`).
        from: String,
        /// The text.
        text: String,
    },
}

impl SessionEvent {
    /// The event's kind name (stored in clear for listing; the body is sealed).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::PermissionAsked { .. } => "permission_asked",
            Self::PermissionGranted { .. } => "permission_granted",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::PermissionRevoked { .. } => "permission_revoked",
            Self::File { .. } => "file",
            Self::PathChange { .. } => "path_change",
            Self::Chat { .. } => "chat",
        }
    }

    fn check(&self) -> Result<()> {
        let text =
            |s: &str| s.len() <= MAX_FIELD_LEN && !s.chars().any(|c| c.is_control() && c != '\n');
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match self {
            Self::Start | Self::End => true,
            Self::PermissionAsked { permission }
            | Self::PermissionGranted { permission }
            | Self::PermissionDenied { permission }
            | Self::PermissionRevoked { permission } => !permission.is_empty() && text(permission),
            Self::File {
                name, md5, sha256, ..
            } => !name.is_empty() && text(name) && hex(md5, 32) && hex(sha256, 64),
            Self::PathChange { path } => text(path),
            Self::Chat { from, text: t } => text(from) && text(t),
        };
        if ok {
            Ok(())
        } else {
            Err(PortalError::BadRequest("malformed session event"))
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LoggedEvent {
    /// When the portal received it, Unix seconds.
    pub at: i64,
    /// The event.
    pub event: SessionEvent,
}

impl Tenant {
    /// Appends `events` to session `id`'s log. Only the technician who claimed (or
    /// created) the session may report; chat is dropped when the group's policy excludes
    /// it. An `end` event ends the session and queues its webhook.
    pub async fn add_events(
        &self,
        who: &Principal,
        id: i64,
        events: &[SessionEvent],
    ) -> Result<usize> {
        if events.len() > MAX_EVENTS_PER_POST {
            return Err(PortalError::BadRequest("too many events in one request"));
        }
        for e in events {
            e.check()?;
        }
        let s = self.session(id).await?;
        if s.claimed_by != Some(who.technician) && s.created_by != who.technician {
            return Err(PortalError::NotFound);
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM session_events WHERE account_id = $1 AND session_id = $2",
        )
        .bind(self.account)
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        if count.saturating_add(events.len() as i64) > MAX_EVENTS_PER_SESSION {
            return Err(PortalError::BadRequest("session log full"));
        }
        let group = self.group(s.group_id).await?;
        let now = self.now();
        let mut stored = 0;
        let mut seq = count;
        let mut ended = false;
        let mut tx = self.pool().begin().await?;
        for e in events {
            if matches!(e, SessionEvent::Chat { .. }) && group.policy.exclude_chat {
                continue;
            }
            ended |= matches!(e, SessionEvent::End);
            let eid = new_id()?;
            let body = serde_json::to_vec(e).map_err(|e| PortalError::Internal(e.to_string()))?;
            let sealed = self.key.seal("session_events", "body", eid, &body)?;
            sqlx::query(
                "INSERT INTO session_events (account_id, id, session_id, seq, at, kind, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(self.account)
            .bind(eid)
            .bind(id)
            .bind(seq)
            .bind(now)
            .bind(e.kind())
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
            stored += 1;
            seq += 1;
        }
        if ended {
            sqlx::query("UPDATE sessions SET state = 'ended' WHERE account_id = $1 AND id = $2")
                .bind(self.account)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if ended {
            webhook::enqueue_session(self, id).await?;
        }
        Ok(stored)
    }

    /// Session `id`'s log, oldest first (online store).
    pub async fn events(&self, id: i64) -> Result<Vec<LoggedEvent>> {
        self.session(id).await?;
        let rows = sqlx::query(
            "SELECT id, at, body FROM session_events WHERE account_id = $1 AND session_id = $2 ORDER BY seq",
        )
        .bind(self.account)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let eid: i64 = r.try_get("id")?;
                let body = self.key.open(
                    "session_events",
                    "body",
                    eid,
                    &r.try_get::<Vec<u8>, _>("body")?,
                )?;
                let event = serde_json::from_slice(&body)
                    .map_err(|e| PortalError::Internal(format!("stored event: {e}")))?;
                Ok(LoggedEvent {
                    at: r.try_get("at")?,
                    event,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_from_tagged_json_and_are_checked() {
        let e: SessionEvent = serde_json::from_str(
            r#"{"kind":"file","name":"a.txt","size":3,"md5":"900150983cd24fb0d6963f7d28e17f72","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#,
        )
        .unwrap();
        assert!(e.check().is_ok());
        let bad = SessionEvent::File {
            name: "a".into(),
            size: 1,
            md5: "zz".into(),
            sha256: "00".into(),
        };
        assert!(bad.check().is_err());
        assert!(serde_json::from_str::<SessionEvent>(r#"{"kind":"nope"}"#).is_err());
    }
}
