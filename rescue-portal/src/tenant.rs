//! Tenant-scoped data access: a [`Tenant`] is built for one account (from an
//! authenticated principal) and every query it runs binds that account's id, so a handler
//! cannot reach another tenant's rows by passing an id. Rows of another account are
//! simply "not found".
//!
//! Groups, technicians and settings live here; sessions and their logs in
//! [`crate::issuing`] and [`crate::logs`].

use rescue_proto::{PermissionSet, Policy};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::allowlist::AllowList;
use crate::audit::{self, AuditEntry};
use crate::config::MAX_FIELD_LEN;
use crate::db::{new_id, random};
use crate::error::{PortalError, Result};
use crate::keys::AccountKey;
use crate::service::Service;
use crate::webhook;

/// One account's view of the store.
#[derive(Debug)]
pub struct Tenant {
    pub(crate) svc: Service,
    pub(crate) account: i64,
    pub(crate) key: AccountKey,
}

/// A technician group's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GroupPolicy {
    /// Permissions the group's technicians may ask for (the `PermissionSet` bits).
    pub permissions: u32,
    /// Whether the all-in-one prompt is allowed.
    pub all_in_one: bool,
    /// Whether chat is left out of session logs.
    pub exclude_chat: bool,
    /// Whether the group sees every waiting end user of the account (otherwise only
    /// sessions issued by its own group).
    pub shared_queue: bool,
    /// Addresses its technicians may log in and issue from (empty: any).
    #[serde(serialize_with = "ser_display")]
    pub allow_list: AllowList,
}

fn ser_display<S: serde::Serializer>(v: &AllowList, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

impl Default for GroupPolicy {
    fn default() -> Self {
        Self {
            permissions: PermissionSet::ALL.bits(),
            all_in_one: false,
            exclude_chat: false,
            shared_queue: true,
            allow_list: AllowList::default(),
        }
    }
}

impl GroupPolicy {
    /// A policy with every field given (checks the permission bits).
    pub fn new(
        permissions: u32,
        all_in_one: bool,
        exclude_chat: bool,
        shared_queue: bool,
        allow_list: AllowList,
    ) -> Result<Self> {
        PermissionSet::from_bits(permissions)
            .ok_or(PortalError::BadRequest("unknown permission bits"))?;
        Ok(Self {
            permissions,
            all_in_one,
            exclude_chat,
            shared_queue,
            allow_list,
        })
    }

    /// The session policy carried in tickets of this group.
    pub fn session_policy(&self) -> Policy {
        Policy {
            allowed: PermissionSet::from_bits(self.permissions).unwrap_or(PermissionSet::EMPTY),
            all_in_one_allowed: self.all_in_one,
            exclude_chat_from_audit: self.exclude_chat,
        }
    }
}

/// A technician group.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Group {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Policy.
    pub policy: GroupPolicy,
}

/// A technician or admin, as listed to admins.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Technician {
    /// Id.
    pub id: i64,
    /// Login e-mail.
    pub email: String,
    /// Display name (goes into console certificates).
    pub name: String,
    /// Group id.
    pub group_id: i64,
    /// Whether the technician administers the account.
    pub is_admin: bool,
    /// Whether the password path is locked until this time (0: not locked).
    pub locked_until: i64,
}

/// A technician just created: the credentials shown once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewTechnician {
    /// Id.
    pub id: i64,
    /// Login e-mail (normalized).
    pub email: String,
    /// One-time password (shown once; only its scrypt hash is stored).
    pub password: String,
    /// The TOTP secret (raw bytes; shown once as base32).
    pub totp_secret: Vec<u8>,
}

impl NewTechnician {
    /// The TOTP secret in base32 (what authenticator apps take).
    pub fn totp_base32(&self) -> String {
        base32(&self.totp_secret)
    }
}

/// Account settings an admin may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Settings {
    /// Where session data is posted (None: no webhook).
    pub webhook_url: Option<String>,
    /// Whether webhook payloads include chat.
    pub webhook_chat: bool,
}

/// RFC 4648 base32 without padding.
pub fn base32(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(A[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(A[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Refuses empty, oversize or control-character text.
pub(crate) fn check_text(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_FIELD_LEN || s.chars().any(char::is_control) {
        return Err(PortalError::BadRequest(
            "text field empty, too long or with control characters",
        ));
    }
    Ok(())
}

/// Normalizes and checks an e-mail address (lower case, one `@`, no spaces).
pub(crate) fn normalize_email(e: &str) -> Result<String> {
    let e = e.trim().to_lowercase();
    check_text(&e)?;
    let ok = e.matches('@').count() == 1
        && !e.starts_with('@')
        && !e.ends_with('@')
        && !e.chars().any(char::is_whitespace);
    if !ok {
        return Err(PortalError::BadRequest("malformed e-mail address"));
    }
    Ok(e)
}

fn flag(r: &AnyRow, c: &str) -> Result<bool> {
    Ok(r.try_get::<i64, _>(c)? != 0)
}

fn group_from_row(r: &AnyRow) -> Result<Group> {
    let allow: String = r.try_get("allow_list")?;
    Ok(Group {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        policy: GroupPolicy {
            permissions: u32::try_from(r.try_get::<i64, _>("permissions")?).unwrap_or(0),
            all_in_one: flag(r, "all_in_one")?,
            exclude_chat: flag(r, "exclude_chat")?,
            shared_queue: flag(r, "shared_queue")?,
            allow_list: AllowList::parse(&allow)?,
        },
    })
}

impl Tenant {
    /// The view of `account`; [`PortalError::KeyDestroyed`] if the account was deleted.
    pub async fn open(svc: &Service, account: i64) -> Result<Self> {
        let key = AccountKey::load(&svc.0.db, &svc.0.master, account).await?;
        Ok(Self {
            svc: svc.clone(),
            account,
            key,
        })
    }

    /// The account id.
    pub fn account(&self) -> i64 {
        self.account
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        &self.svc.0.db.pool
    }

    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.svc.now()).unwrap_or(i64::MAX)
    }

    /// The account's groups.
    pub async fn groups(&self) -> Result<Vec<Group>> {
        let rows = sqlx::query("SELECT * FROM tech_groups WHERE account_id = $1 ORDER BY name")
            .bind(self.account)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(group_from_row).collect()
    }

    /// One group of the account.
    pub async fn group(&self, id: i64) -> Result<Group> {
        let row = sqlx::query("SELECT * FROM tech_groups WHERE account_id = $1 AND id = $2")
            .bind(self.account)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(PortalError::NotFound)?;
        group_from_row(&row)
    }

    /// Creates a group; audited.
    pub async fn create_group(&self, actor: &str, name: &str, policy: &GroupPolicy) -> Result<i64> {
        check_text(name)?;
        let id = new_id()?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO tech_groups (account_id, id, name, permissions, all_in_one, exclude_chat, shared_queue, allow_list) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.account)
        .bind(id)
        .bind(name)
        .bind(i64::from(policy.permissions))
        .bind(i64::from(policy.all_in_one))
        .bind(i64::from(policy.exclude_chat))
        .bind(i64::from(policy.shared_queue))
        .bind(policy.allow_list.to_string())
        .execute(&mut *tx)
        .await?;
        let after = serde_json::json!({ "id": id, "name": name, "policy": policy }).to_string();
        audit::append(
            &mut tx,
            self.account,
            self.svc.now(),
            actor,
            "group.create",
            "null",
            &after,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces a group's policy; audited with the policy before and after.
    pub async fn update_group(&self, actor: &str, id: i64, policy: &GroupPolicy) -> Result<()> {
        let before = self.group(id).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE tech_groups SET permissions = $1, all_in_one = $2, exclude_chat = $3, shared_queue = $4, allow_list = $5 \
             WHERE account_id = $6 AND id = $7",
        )
        .bind(i64::from(policy.permissions))
        .bind(i64::from(policy.all_in_one))
        .bind(i64::from(policy.exclude_chat))
        .bind(i64::from(policy.shared_queue))
        .bind(policy.allow_list.to_string())
        .bind(self.account)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let b = serde_json::json!({ "id": id, "name": before.name, "policy": before.policy });
        let a = serde_json::json!({ "id": id, "name": before.name, "policy": policy });
        audit::append(
            &mut tx,
            self.account,
            self.svc.now(),
            actor,
            "group.update",
            &b.to_string(),
            &a.to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's technicians.
    pub async fn technicians(&self) -> Result<Vec<Technician>> {
        let rows = sqlx::query(
            "SELECT id, email, name, group_id, is_admin, locked_until FROM technicians WHERE account_id = $1 ORDER BY email",
        )
        .bind(self.account)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Technician {
                    id: r.try_get("id")?,
                    email: r.try_get("email")?,
                    name: r.try_get("name")?,
                    group_id: r.try_get("group_id")?,
                    is_admin: flag(r, "is_admin")?,
                    locked_until: r.try_get("locked_until")?,
                })
            })
            .collect()
    }

    /// One technician of the account.
    pub async fn technician(&self, id: i64) -> Result<Technician> {
        self.technicians()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(PortalError::NotFound)
    }

    /// Creates a technician in `group` with a one-time password and a TOTP secret;
    /// audited (without the credentials).
    pub async fn create_technician(
        &self,
        actor: &str,
        email: &str,
        name: &str,
        group: i64,
        is_admin: bool,
    ) -> Result<NewTechnician> {
        let email = normalize_email(email)?;
        check_text(name)?;
        self.group(group).await?;
        let password = one_time_password()?;
        let hash = self.svc.0.hasher.hash(&password).await?;
        let totp_secret = random::<20>()?.to_vec();
        let id = new_id()?;
        let sealed = self
            .key
            .seal("technicians", "totp_secret", id, &totp_secret)?;
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO technicians (account_id, id, email, name, group_id, is_admin, password_hash, password_one_time, totp_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
        )
        .bind(self.account)
        .bind(id)
        .bind(&email)
        .bind(name)
        .bind(group)
        .bind(i64::from(is_admin))
        .bind(hash)
        .bind(sealed)
        .bind(self.now())
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(e)) = &inserted {
            if e.is_unique_violation() {
                return Err(PortalError::BadRequest("e-mail address already in use"));
            }
        }
        inserted?;
        let after = serde_json::json!({ "id": id, "email": email, "name": name, "group": group, "admin": is_admin });
        audit::append(
            &mut tx,
            self.account,
            self.svc.now(),
            actor,
            "technician.create",
            "null",
            &after.to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(NewTechnician {
            id,
            email,
            password,
            totp_secret,
        })
    }

    /// Unlocks a technician's password path; audited.
    pub async fn unlock_technician(&self, actor: &str, id: i64) -> Result<()> {
        let t = self.technician(id).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE technicians SET failed_logins = 0, locked_until = 0 WHERE account_id = $1 AND id = $2")
            .bind(self.account)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let b = serde_json::json!({ "id": id, "locked_until": t.locked_until }).to_string();
        let a = serde_json::json!({ "id": id, "locked_until": 0 }).to_string();
        audit::append(
            &mut tx,
            self.account,
            self.svc.now(),
            actor,
            "technician.unlock",
            &b,
            &a,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's settings.
    pub async fn settings(&self) -> Result<Settings> {
        let r = sqlx::query("SELECT webhook_url, webhook_chat FROM accounts WHERE id = $1")
            .bind(self.account)
            .fetch_optional(self.pool())
            .await?
            .ok_or(PortalError::NotFound)?;
        Ok(Settings {
            webhook_url: r.try_get("webhook_url")?,
            webhook_chat: flag(&r, "webhook_chat")?,
        })
    }

    /// Changes the settings; audited. A new webhook URL is checked against SSRF rules
    /// and gets a fresh signing secret, returned here once (`whsec_…`).
    pub async fn update_settings(&self, actor: &str, new: &Settings) -> Result<Option<String>> {
        let before = self.settings().await?;
        let mut secret_text = None;
        let mut sealed_secret = None;
        if let Some(url) = &new.webhook_url {
            check_text(url)?;
            webhook::check_url(url, self.svc.config().allow_private_webhooks).await?;
            if before.webhook_url.as_deref() != Some(url.as_str()) {
                let secret = random::<32>()?;
                sealed_secret =
                    Some(
                        self.key
                            .seal("accounts", "webhook_secret", self.account, &secret)?,
                    );
                secret_text = Some(webhook::secret_text(&secret));
            }
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE accounts SET webhook_url = $1, webhook_chat = $2 WHERE id = $3")
            .bind(new.webhook_url.clone())
            .bind(i64::from(new.webhook_chat))
            .bind(self.account)
            .execute(&mut *tx)
            .await?;
        if let Some(s) = sealed_secret {
            sqlx::query("UPDATE accounts SET webhook_secret = $1 WHERE id = $2")
                .bind(s)
                .bind(self.account)
                .execute(&mut *tx)
                .await?;
        }
        let b = serde_json::to_string(&before).map_err(|e| PortalError::Internal(e.to_string()))?;
        let a = serde_json::to_string(new).map_err(|e| PortalError::Internal(e.to_string()))?;
        audit::append(
            &mut tx,
            self.account,
            self.svc.now(),
            actor,
            "settings.update",
            &b,
            &a,
        )
        .await?;
        tx.commit().await?;
        Ok(secret_text)
    }

    /// The webhook signing secret, if a webhook is set.
    pub(crate) async fn webhook_secret(&self) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT webhook_secret FROM accounts WHERE id = $1")
            .bind(self.account)
            .fetch_optional(self.pool())
            .await?
            .ok_or(PortalError::NotFound)?;
        let sealed: Option<Vec<u8>> = r.try_get("webhook_secret")?;
        sealed
            .map(|s| {
                self.key
                    .open("accounts", "webhook_secret", self.account, &s)
            })
            .transpose()
    }

    /// The admin audit trail, oldest first.
    pub async fn audit(&self) -> Result<Vec<AuditEntry>> {
        audit::entries(&self.svc.0.db, self.account).await
    }

    /// The account CA (its key opened from the sealed column).
    pub(crate) async fn account_ca(&self) -> Result<rescue_crypto::pki::AccountCa> {
        let r = sqlx::query("SELECT ca_cert_pem, ca_key FROM accounts WHERE id = $1")
            .bind(self.account)
            .fetch_optional(self.pool())
            .await?
            .ok_or(PortalError::NotFound)?;
        let cert: String = r.try_get("ca_cert_pem")?;
        let key: Vec<u8> = r.try_get("ca_key")?;
        let key = self
            .key
            .open_text("accounts", "ca_key", self.account, &key)?;
        Ok(rescue_crypto::pki::AccountCa::from_pem(
            rescue_crypto::pki::AccountId(self.account as u64),
            &cert,
            &key,
        )?)
    }
}

/// A fresh one-time password: 20 characters from a 64-symbol alphabet (120 bits).
fn one_time_password() -> Result<String> {
    const A: &[u8; 64] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_+=.:!";
    Ok(random::<20>()?
        .iter()
        .map(|b| char::from(A[usize::from(b & 63)]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Alice@Example.TEST ").unwrap(),
            "alice@example.test"
        );
        for bad in ["", "no-at", "a@b@c", "@x", "a b@c", "x@"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
