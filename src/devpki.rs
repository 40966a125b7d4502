//! A development PKI in one folder: gateway CA and gateway certificate, one account CA
//! and a console certificate, and the portal's ticket-signing key. The examples and
//! tests use it; production keeps these keys apart (account CA keys with the account's
//! admin side, the signing key with the portal, only public parts on the gateway).
//!
//! Files are PEM (certificates, keys) and hex (ticket keys); private keys are written
//! with mode 0600 on Unix. Nothing here is for production use.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rescue_crypto::pki::{hours, AccountCa, AccountId, GatewayCa, Identity};
use rescue_crypto::ticket::{TicketSigner, TicketVerifyKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::error::Error;

/// Validity of the development gateway certificate.
pub const DEV_GATEWAY_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Validity of the development console certificate (short-lived, as in production).
pub const DEV_CONSOLE_VALIDITY: Duration = Duration::from_secs(12 * 3600);

/// Every key and certificate of a development set-up.
pub struct DevPki {
    /// The gateway CA (applets and consoles pin it).
    pub gateway_ca: GatewayCa,
    /// The gateway's certificate chain and key.
    pub gateway: Identity,
    /// The account CA.
    pub account_ca: AccountCa,
    /// A console certificate issued by the account CA.
    pub console: Identity,
    /// The portal's ticket-signing key.
    pub signer: TicketSigner,
}

const GATEWAY_CA: &str = "gateway-ca.pem";
const GATEWAY_CA_KEY: &str = "gateway-ca.key.pem";
const GATEWAY: &str = "gateway.pem";
const GATEWAY_KEY: &str = "gateway.key.pem";
const ACCOUNT: &str = "account.txt";
const ACCOUNT_CA: &str = "account-ca.pem";
const ACCOUNT_CA_KEY: &str = "account-ca.key.pem";
const CONSOLE: &str = "console.pem";
const CONSOLE_KEY: &str = "console.key.pem";
const SIGNER: &str = "ticket-signing.pk8.hex";
const VERIFY_KEY: &str = "ticket-verify.hex";

impl DevPki {
    /// Generates everything: a gateway certificate for `gateway_names` (DNS names or IP
    /// addresses), account `account` with a console certificate for `technician`.
    ///
    /// ```
    /// let pki = rescue::devpki::DevPki::generate(["127.0.0.1"], rescue::AccountId(7), "alice")?;
    /// # Ok::<(), rescue::Error>(())
    /// ```
    pub fn generate<S: AsRef<str>>(
        gateway_names: impl IntoIterator<Item = S>,
        account: AccountId,
        technician: &str,
    ) -> Result<Self, Error> {
        let gateway_names: Vec<String> = gateway_names
            .into_iter()
            .map(|n| n.as_ref().to_owned())
            .collect();
        let gateway_names = &gateway_names[..];
        let gateway_ca = GatewayCa::generate().map_err(pki)?;
        let gateway = gateway_ca
            .issue_gateway(gateway_names, DEV_GATEWAY_VALIDITY)
            .map_err(pki)?;
        let account_ca = AccountCa::generate(account).map_err(pki)?;
        let console = account_ca
            .issue_console_cert(technician, DEV_CONSOLE_VALIDITY)
            .map_err(pki)?;
        let signer = TicketSigner::generate()?;
        Ok(Self {
            gateway_ca,
            gateway,
            account_ca,
            console,
            signer,
        })
    }

    /// Issues another console certificate of the same account (e.g. a second
    /// technician), valid for `validity_hours`.
    pub fn issue_console(&self, technician: &str, validity_hours: u64) -> Result<Identity, Error> {
        self.account_ca
            .issue_console_cert(technician, hours(validity_hours))
            .map_err(pki)
    }

    /// The key gateways verify tickets with.
    pub fn verify_key(&self) -> TicketVerifyKey {
        self.signer.verify_key()
    }

    /// Writes every file into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        fs::create_dir_all(dir)?;
        write_public(dir, GATEWAY_CA, &self.gateway_ca.cert_pem())?;
        write_secret(dir, GATEWAY_CA_KEY, &self.gateway_ca.key_pem())?;
        write_public(dir, GATEWAY, &chain_pem(self.gateway.chain()))?;
        write_secret(dir, GATEWAY_KEY, &key_pem(self.gateway.key_pkcs8()))?;
        write_public(dir, ACCOUNT, &format!("{}\n", self.account_ca.account()))?;
        write_public(dir, ACCOUNT_CA, &self.account_ca.cert_pem())?;
        write_secret(dir, ACCOUNT_CA_KEY, &self.account_ca.key_pem())?;
        write_public(dir, CONSOLE, &chain_pem(self.console.chain()))?;
        write_secret(dir, CONSOLE_KEY, &key_pem(self.console.key_pkcs8()))?;
        write_secret(
            dir,
            SIGNER,
            &format!("{}\n", hex::encode(self.signer.pkcs8())),
        )?;
        write_public(dir, VERIFY_KEY, &format!("{}\n", self.verify_key()))?;
        Ok(())
    }

    /// Reads a folder written by [`DevPki::write`].
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let text = |name: &str| fs::read_to_string(dir.join(name));
        let account: u64 = text(ACCOUNT)?
            .trim()
            .parse()
            .map_err(|_| Error::Config(format!("{ACCOUNT}: not an account number")))?;
        let gateway_ca =
            GatewayCa::from_pem(&text(GATEWAY_CA)?, &text(GATEWAY_CA_KEY)?).map_err(pki)?;
        let account_ca = AccountCa::from_pem(
            AccountId(account),
            &text(ACCOUNT_CA)?,
            &text(ACCOUNT_CA_KEY)?,
        )
        .map_err(pki)?;
        let signer_hex = text(SIGNER)?;
        let signer_der = hex::decode(signer_hex.trim())
            .map_err(|_| Error::Config(format!("{SIGNER}: not hex")))?;
        Ok(Self {
            gateway_ca,
            gateway: read_identity(dir, GATEWAY, GATEWAY_KEY)?,
            account_ca,
            console: read_identity(dir, CONSOLE, CONSOLE_KEY)?,
            signer: TicketSigner::from_pkcs8(&signer_der)?,
        })
    }
}

/// Reads a certificate chain (PEM, leaf first) and its PKCS#8 key (PEM).
pub fn read_identity(dir: &Path, chain_file: &str, key_file: &str) -> Result<Identity, Error> {
    let chain = CertificateDer::pem_file_iter(dir.join(chain_file))
        .map_err(|e| Error::Config(format!("{chain_file}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{chain_file}: {e}")))?;
    let key = PrivatePkcs8KeyDer::from_pem_file(dir.join(key_file))
        .map_err(|e| Error::Config(format!("{key_file}: {e}")))?;
    Ok(Identity::new(chain, key))
}

fn pki(e: rescue_crypto::pki::PkiError) -> Error {
    Error::Config(format!("PKI: {e}"))
}

fn chain_pem(chain: &[CertificateDer<'static>]) -> String {
    chain
        .iter()
        .map(|c| pem("CERTIFICATE", c.as_ref()))
        .collect()
}

fn key_pem(key: &PrivatePkcs8KeyDer<'static>) -> String {
    pem("PRIVATE KEY", key.secret_pkcs8_der())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_public(dir: &Path, name: &str, contents: &str) -> Result<(), Error> {
    fs::write(dir.join(name), contents)?;
    Ok(())
}

fn write_secret(dir: &Path, name: &str, contents: &str) -> Result<(), Error> {
    let path = dir.join(name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    std::io::Write::write_all(&mut opts.open(path)?, contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pki_reads_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(["127.0.0.1"], AccountId(7), "alice").unwrap();
        pki.write(dir.path()).unwrap();
        let back = DevPki::read(dir.path()).unwrap();
        assert_eq!(back.gateway_ca.pin(), pki.gateway_ca.pin());
        assert_eq!(back.account_ca.pin(), pki.account_ca.pin());
        assert_eq!(back.account_ca.account(), AccountId(7));
        assert_eq!(back.gateway.chain(), pki.gateway.chain());
        assert_eq!(back.console.chain(), pki.console.chain());
        assert_eq!(
            back.console.key_pkcs8().secret_pkcs8_der(),
            pki.console.key_pkcs8().secret_pkcs8_der()
        );
        assert_eq!(back.verify_key(), pki.verify_key());
    }
}
