//! Encryption at rest: a master key (never in the database) wraps one random data key
//! per account; every sealed column is AES-256-GCM under that account's key
//! (rescue-crypto's sealing), with associated data naming the table, column, account and
//! row, so a ciphertext moved to another row or tenant does not open.
//!
//! Deleting an account deletes its wrapped key first (crypto-shredding): rows or backups
//! left behind are then unreadable, because the data key existed nowhere else.

use core::fmt;

use rescue_crypto::seal::{SealKey, MIN_MASTER_LEN};
use sqlx::Row;

use crate::db::{random, Db};
use crate::error::{PortalError, Result};

/// Length of an account's data key.
pub const DATA_KEY_LEN: usize = 32;
/// HKDF salt of every key derived here (domain separation from other uses of sealing).
const KDF_SALT: &[u8] = b"rescue-portal";

/// The master key: from a file or a KMS, at least [`MIN_MASTER_LEN`] bytes.
#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl MasterKey {
    /// A master key from `bytes` (at least [`MIN_MASTER_LEN`] bytes).
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_MASTER_LEN {
            return Err(PortalError::BadRequest("master key shorter than 32 bytes"));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A fresh random master key (examples and tests).
    pub fn generate() -> Result<Self> {
        Ok(Self(random::<32>()?.to_vec()))
    }

    /// The key bytes (to write the example's key file).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn wrapping_key(&self) -> Result<SealKey> {
        Ok(SealKey::derive(&self.0, KDF_SALT, b"account key wrap v1")?)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// One account's row key.
pub struct AccountKey {
    account: i64,
    key: SealKey,
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn wrap_aad(account: i64) -> Vec<u8> {
    format!("rescue-portal|account_keys|{account}").into_bytes()
}

fn row_aad(account: i64, table: &str, column: &str, row: i64) -> Vec<u8> {
    format!("rescue-portal|{table}|{column}|{account}|{row}").into_bytes()
}

impl AccountKey {
    fn from_data_key(account: i64, data: &[u8]) -> Result<Self> {
        Ok(Self {
            account,
            key: SealKey::derive(data, KDF_SALT, b"rows v1")?,
        })
    }

    /// Makes and stores a new data key for `account` (wrapped by `master`).
    pub(crate) async fn create(
        tx: &mut sqlx::AnyConnection,
        master: &MasterKey,
        account: i64,
    ) -> Result<Self> {
        let data = random::<DATA_KEY_LEN>()?;
        let wrapped = master.wrapping_key()?.seal(&wrap_aad(account), &data)?;
        sqlx::query("INSERT INTO account_keys (account_id, wrapped) VALUES ($1, $2)")
            .bind(account)
            .bind(wrapped)
            .execute(&mut *tx)
            .await?;
        Self::from_data_key(account, &data)
    }

    /// Loads `account`'s key; [`PortalError::KeyDestroyed`] when it was deleted.
    pub async fn load(db: &Db, master: &MasterKey, account: i64) -> Result<Self> {
        let row = sqlx::query("SELECT wrapped FROM account_keys WHERE account_id = $1")
            .bind(account)
            .fetch_optional(&db.pool)
            .await?
            .ok_or(PortalError::KeyDestroyed)?;
        let wrapped: Vec<u8> = row.try_get("wrapped")?;
        let data = master.wrapping_key()?.open(&wrap_aad(account), &wrapped)?;
        Self::from_data_key(account, &data)
    }

    /// Destroys `account`'s key: every row sealed under it becomes unreadable.
    pub async fn destroy(db: &Db, account: i64) -> Result<()> {
        sqlx::query("DELETE FROM account_keys WHERE account_id = $1")
            .bind(account)
            .execute(&db.pool)
            .await?;
        Ok(())
    }

    /// The account this key belongs to.
    pub fn account(&self) -> i64 {
        self.account
    }

    /// Seals `plain` for `table.column` of row `row`.
    pub(crate) fn seal(
        &self,
        table: &str,
        column: &str,
        row: i64,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self
            .key
            .seal(&row_aad(self.account, table, column, row), plain)?)
    }

    /// Opens what [`AccountKey::seal`] sealed for the same place.
    pub(crate) fn open(
        &self,
        table: &str,
        column: &str,
        row: i64,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self
            .key
            .open(&row_aad(self.account, table, column, row), sealed)?)
    }

    /// Opens a sealed UTF-8 text.
    pub(crate) fn open_text(
        &self,
        table: &str,
        column: &str,
        row: i64,
        sealed: &[u8],
    ) -> Result<String> {
        String::from_utf8(self.open(table, column, row, sealed)?)
            .map_err(|_| PortalError::Internal("sealed text not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_opens_only_in_its_own_place() {
        let a = AccountKey::from_data_key(1, &[7; 32]).unwrap();
        let b = AccountKey::from_data_key(2, &[7; 32]).unwrap();
        let s = a.seal("t", "c", 5, b"chat").unwrap();
        assert_eq!(a.open("t", "c", 5, &s).unwrap(), b"chat");
        assert!(a.open("t", "c", 6, &s).is_err(), "another row");
        assert!(a.open("t", "d", 5, &s).is_err(), "another column");
        assert!(b.open("t", "c", 5, &s).is_err(), "another account");
    }

    #[test]
    fn short_master_keys_are_refused() {
        assert!(MasterKey::new(&[1; 31]).is_err());
        assert!(MasterKey::new(&[1; 32]).is_ok());
    }
}
