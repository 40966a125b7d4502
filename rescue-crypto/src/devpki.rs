//! A development PKI in a folder: the gateway CA and leaf, account CAs and the ticket
//! signing key, as PEM files, so the gateway, applet and console examples can share one.
//!
//! Layout (private keys are written with mode 0600 on Unix):
//!
//! ```text
//! gateway-ca.crt.pem  gateway-ca.key.pem        the gateway CA
//! gateway.chain.pem   gateway.key.pem           gateway leaf + CA, leaf key
//! account-<id>-ca.crt.pem account-<id>-ca.key.pem   one CA per account
//! ticket-signer.key.pem                         Ed25519 PKCS#8 ("PRIVATE KEY")
//! ticket-verify.key.hex                         its public key, 64 hex digits
//! ```
//!
//! This is for development and tests: a real deployment keeps the account-CA keys with
//! the account's administrators and the ticket key with the portal, never next to the
//! gateway. Reading refuses files over [`MAX_PEM_FILE_LEN`] and more than
//! [`MAX_ACCOUNTS`] accounts.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::pki::{self, AccountCa, AccountId, GatewayCa, Identity, PkiError};
use crate::ticket::{TicketError, TicketSigner, TicketVerifyKey};
use crate::tls::AccountRoots;

/// Largest file read: a PEM chain or key is a few kilobytes.
pub const MAX_PEM_FILE_LEN: u64 = 64 * 1024;
/// Most accounts read from one folder.
pub const MAX_ACCOUNTS: usize = 1024;

const GATEWAY_CA_CRT: &str = "gateway-ca.crt.pem";
const GATEWAY_CA_KEY: &str = "gateway-ca.key.pem";
const GATEWAY_CHAIN: &str = "gateway.chain.pem";
const GATEWAY_KEY: &str = "gateway.key.pem";
const TICKET_KEY: &str = "ticket-signer.key.pem";
const TICKET_PUB: &str = "ticket-verify.key.hex";

/// Why a development PKI could not be made, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevPkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_PEM_FILE_LEN`], or there are too many accounts.
    #[error("{0}: too large")]
    TooLarge(PathBuf),
    /// A certificate or key is malformed or they do not match.
    #[error("{path}: {source}")]
    Pki {
        /// The file.
        path: PathBuf,
        /// The error.
        source: PkiError,
    },
    /// Generating certificates failed.
    #[error(transparent)]
    Generate(#[from] PkiError),
    /// The ticket key is malformed.
    #[error("ticket key: {0}")]
    Ticket(#[from] TicketError),
}

/// Everything the three example roles need.
#[derive(Debug)]
pub struct DevPki {
    /// The gateway CA (applets pin it).
    pub gateway_ca: GatewayCa,
    /// The gateway's certificate chain and key.
    pub gateway: Identity,
    /// One CA per account.
    pub accounts: Vec<AccountCa>,
    /// The portal's ticket signing key.
    pub ticket_signer: TicketSigner,
}

impl DevPki {
    /// A fresh PKI: a gateway leaf for `gateway_names`, a CA for each of `accounts`.
    pub fn generate(gateway_names: &[String], accounts: &[AccountId]) -> Result<Self, DevPkiError> {
        let gateway_ca = GatewayCa::generate()?;
        let gateway = gateway_ca.issue_gateway(gateway_names, pki::GATEWAY_CERT_VALIDITY)?;
        let accounts = accounts
            .iter()
            .map(|a| AccountCa::generate(*a))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            gateway_ca,
            gateway,
            accounts,
            ticket_signer: TicketSigner::generate()?,
        })
    }

    /// The CA of `account`, if present.
    pub fn account(&self, account: AccountId) -> Option<&AccountCa> {
        self.accounts.iter().find(|a| a.account() == account)
    }

    /// The account roots for [`crate::tls::gateway_server_config`].
    pub fn account_roots(&self) -> AccountRoots {
        let mut r = AccountRoots::new();
        for a in &self.accounts {
            r.add(a.account(), a.cert().clone());
        }
        r
    }

    /// The key gateways verify tickets with.
    pub fn ticket_verify_key(&self) -> TicketVerifyKey {
        self.ticket_signer.verify_key()
    }

    /// Writes every file into `dir` (created if missing), replacing existing files.
    pub fn write_to(&self, dir: &Path) -> Result<(), DevPkiError> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        write(dir, GATEWAY_CA_CRT, &self.gateway_ca.cert_pem(), false)?;
        write(dir, GATEWAY_CA_KEY, &self.gateway_ca.key_pem(), true)?;
        let chain: String = self
            .gateway
            .chain()
            .iter()
            .map(|c| pki::pem("CERTIFICATE", c))
            .collect();
        write(dir, GATEWAY_CHAIN, &chain, false)?;
        write(
            dir,
            GATEWAY_KEY,
            &pki::pem("PRIVATE KEY", self.gateway.key_pkcs8().secret_pkcs8_der()),
            true,
        )?;
        for a in &self.accounts {
            write(dir, &account_file(a.account(), "crt"), &a.cert_pem(), false)?;
            write(dir, &account_file(a.account(), "key"), &a.key_pem(), true)?;
        }
        write(
            dir,
            TICKET_KEY,
            &pki::pem("PRIVATE KEY", self.ticket_signer.pkcs8()),
            true,
        )?;
        write(
            dir,
            TICKET_PUB,
            &format!("{}\n", self.ticket_signer.verify_key()),
            false,
        )
    }

    /// Reads a folder written by [`DevPki::write_to`].
    pub fn read_from(dir: &Path) -> Result<Self, DevPkiError> {
        let gateway_ca =
            GatewayCa::from_pem(&read(dir, GATEWAY_CA_CRT)?, &read(dir, GATEWAY_CA_KEY)?)
                .map_err(|e| pki_err(dir, GATEWAY_CA_KEY, e))?;
        let chain = CertificateDer::pem_slice_iter(read(dir, GATEWAY_CHAIN)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pki_err(dir, GATEWAY_CHAIN, PkiError::Pem(e.to_string())))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(read(dir, GATEWAY_KEY)?.as_bytes())
            .map_err(|e| pki_err(dir, GATEWAY_KEY, PkiError::Pem(e.to_string())))?;
        let mut accounts = Vec::new();
        for id in account_ids(dir)? {
            let crt = read(dir, &account_file(id, "crt"))?;
            let key = read(dir, &account_file(id, "key"))?;
            accounts.push(
                AccountCa::from_pem(id, &crt, &key)
                    .map_err(|e| pki_err(dir, &account_file(id, "key"), e))?,
            );
        }
        let signer_der = PrivatePkcs8KeyDer::from_pem_slice(read(dir, TICKET_KEY)?.as_bytes())
            .map_err(|e| pki_err(dir, TICKET_KEY, PkiError::Pem(e.to_string())))?;
        Ok(Self {
            gateway_ca,
            gateway: Identity::new(chain, key),
            accounts,
            ticket_signer: TicketSigner::from_pkcs8(signer_der.secret_pkcs8_der())?,
        })
    }

    /// Reads only the ticket verification key of a folder (what a gateway needs).
    pub fn read_ticket_verify_key(dir: &Path) -> Result<TicketVerifyKey, DevPkiError> {
        Ok(read(dir, TICKET_PUB)?.parse()?)
    }
}

fn account_file(id: AccountId, kind: &str) -> String {
    format!("account-{id}-ca.{kind}.pem")
}

/// Account ids of `account-<id>-ca.crt.pem` files, sorted.
fn account_ids(dir: &Path) -> Result<Vec<AccountId>, DevPkiError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let name = entry.map_err(|e| io(dir, e))?.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("account-"))
            .and_then(|n| n.strip_suffix("-ca.crt.pem"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if ids.len() == MAX_ACCOUNTS {
            return Err(DevPkiError::TooLarge(dir.to_path_buf()));
        }
        ids.push(AccountId(id));
    }
    ids.sort();
    Ok(ids)
}

fn read(dir: &Path, name: &str) -> Result<String, DevPkiError> {
    let path = dir.join(name);
    let len = fs::metadata(&path).map_err(|e| io(&path, e))?.len();
    if len > MAX_PEM_FILE_LEN {
        return Err(DevPkiError::TooLarge(path));
    }
    fs::read_to_string(&path).map_err(|e| io(&path, e))
}

fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<(), DevPkiError> {
    let path = dir.join(name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(&path).map_err(|e| io(&path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io(&path, e))
}

fn io(path: &Path, source: std::io::Error) -> DevPkiError {
    DevPkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pki_err(dir: &Path, name: &str, source: PkiError) -> DevPkiError {
    DevPkiError::Pki {
        path: dir.join(name),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CONSOLE_CERT_VALIDITY;

    #[test]
    fn round_trips_through_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(
            &["localhost".into(), "127.0.0.1".into()],
            &[AccountId(1), AccountId(42)],
        )
        .unwrap();
        pki.write_to(dir.path()).unwrap();
        let back = DevPki::read_from(dir.path()).unwrap();
        assert_eq!(back.gateway_ca.pin(), pki.gateway_ca.pin());
        assert_eq!(back.gateway.chain(), pki.gateway.chain());
        assert_eq!(
            back.gateway.key_pkcs8().secret_pkcs8_der(),
            pki.gateway.key_pkcs8().secret_pkcs8_der()
        );
        assert_eq!(
            back.accounts
                .iter()
                .map(|a| (a.account(), a.pin()))
                .collect::<Vec<_>>(),
            pki.accounts
                .iter()
                .map(|a| (a.account(), a.pin()))
                .collect::<Vec<_>>()
        );
        assert_eq!(back.ticket_verify_key(), pki.ticket_verify_key());
        assert_eq!(
            DevPki::read_ticket_verify_key(dir.path()).unwrap(),
            pki.ticket_verify_key()
        );
        // The reloaded account CA still issues certificates the gateway attributes to it.
        let console = back
            .account(AccountId(42))
            .unwrap()
            .issue_console_cert("t", CONSOLE_CERT_VALIDITY)
            .unwrap();
        assert_eq!(
            pki.account_roots().account_of(console.chain()),
            Some(AccountId(42))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(GATEWAY_CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others");
        }
    }

    #[test]
    fn missing_oversized_and_mismatched_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DevPki::read_from(dir.path()),
            Err(DevPkiError::Io { .. })
        ));
        let pki = DevPki::generate(&["localhost".into()], &[AccountId(5)]).unwrap();
        pki.write_to(dir.path()).unwrap();
        let other = GatewayCa::generate().unwrap();
        fs::write(dir.path().join(GATEWAY_CA_KEY), other.key_pem()).unwrap();
        assert!(matches!(
            DevPki::read_from(dir.path()),
            Err(DevPkiError::Pki { .. })
        ));
        fs::write(
            dir.path().join(GATEWAY_CA_KEY),
            vec![b'a'; MAX_PEM_FILE_LEN as usize + 1],
        )
        .unwrap();
        assert!(matches!(
            DevPki::read_from(dir.path()),
            Err(DevPkiError::TooLarge(_))
        ));
    }
}
