//! The PKI of the stack (rcgen, ECDSA P-256): the gateway CA and its gateway leaves, one
//! CA per account and the short-lived console certificates it issues.
//!
//! Every chain a peer presents is `[leaf, issuing CA]`: the verifiers of
//! [`crate::verify`] find the CA in the chain by its [`Pin`] and check the leaf against it
//! with webpki. There are no intermediate CAs.
//!
//! A console certificate names its account and technician in a URI subject alternative
//! name, `urn:rescue:account:<decimal id>:technician:<percent-encoded UTF-8 name>`, which
//! [`ConsoleName::from_cert`] reads back. Only a certificate that a verifier has accepted
//! should be read this way; the gateway uses [`crate::tls::AccountRoots::account_of`],
//! which verifies first.
//!
//! This module never writes files and never reads the clock
//! except to date new certificates.

use core::fmt;
use core::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::pin::Pin;
use crate::rng;

#[cfg(feature = "csr")]
mod csr;
mod name;

#[cfg(feature = "csr")]
pub use csr::MAX_CSR_LEN;
pub use name::ConsoleName;

/// Lifetime of a generated CA: long enough for a development or small deployment PKI.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default lifetime of a console certificate: one working day, so a stolen one soon dies.
pub const CONSOLE_CERT_VALIDITY: Duration = Duration::from_secs(12 * 3600);
/// Longest console certificate this module issues: a console identity is short-lived.
pub const MAX_CONSOLE_CERT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default lifetime of a gateway leaf.
pub const GATEWAY_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Longest technician name in a console certificate, in bytes (it becomes a URI of at
/// most three times that).
pub const MAX_TECHNICIAN_NAME_LEN: usize = 128;
/// Backdating of `notBefore`, so a peer whose clock is slightly behind accepts a new cert.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// An account (tenant) identifier (the one `AccountId` of the workspace).
pub use rescue_proto::AccountId;

/// Why a certificate could not be created, loaded or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters or could not sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The technician name is empty or longer than [`MAX_TECHNICIAN_NAME_LEN`].
    #[error("technician name must be 1..={MAX_TECHNICIAN_NAME_LEN} bytes")]
    TechnicianName,
    /// The requested validity is zero or above the limit for this kind of certificate.
    #[error("certificate validity out of range")]
    Validity,
    /// A certificate does not carry a well-formed console name.
    #[error("certificate carries no console name")]
    NoConsoleName,
    /// A CA certificate and key loaded together do not belong to each other, or the
    /// certificate is not one this module generated for that name.
    #[error("CA certificate and key do not match")]
    Mismatch,
    /// PEM input could not be parsed.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// A certificate signing request is malformed, oversize, badly self-signed or not
    /// for a P-256 key (feature `csr`).
    #[error("certificate signing request refused")]
    Csr,
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] rng::RandomError),
}

/// A certificate chain `[leaf, issuing CA]` and the leaf's private key: what a TLS
/// endpoint presents.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// Wraps a chain (leaf first) and the leaf's PKCS#8 key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivatePkcs8KeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate, if the chain is not empty.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }

    /// The pin of the leaf (what later paths pin).
    pub fn leaf_pin(&self) -> Option<Pin> {
        self.leaf().map(Pin::of)
    }

    /// A copy of the private key, as rustls takes it.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The PKCS#8 DER of the private key.
    pub fn key_pkcs8(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.key
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("leaf", &self.leaf_pin())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The CA that issues gateway certificates; applets pin it.
pub struct GatewayCa {
    ca: Ca,
}

impl GatewayCa {
    /// Generates a new gateway CA with a fresh P-256 key.
    pub fn generate() -> Result<Self, PkiError> {
        Ok(Self {
            ca: Ca::generate(gateway_ca_params()?)?,
        })
    }

    /// Loads a gateway CA written by [`GatewayCa::cert_pem`] and [`GatewayCa::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        Ok(Self {
            ca: Ca::from_pem(gateway_ca_params()?, cert_pem, key_pem)?,
        })
    }

    /// Issues a gateway leaf for `names` (DNS names or IP addresses), valid for
    /// `validity` from now; the returned identity's chain is `[leaf, this CA]`.
    pub fn issue_gateway(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        let mut p = CertificateParams::new(names.to_vec())?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "rescue gateway");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.ca.issue(p, validity)
    }

    /// The CA certificate (DER).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.ca.cert
    }

    /// The pin applets carry in their tickets.
    pub fn pin(&self) -> Pin {
        Pin::of(&self.ca.cert)
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The CA private key as PKCS#8 PEM (secret).
    pub fn key_pem(&self) -> String {
        self.ca.issuer.key().serialize_pem()
    }
}

/// The CA of one account; it issues that account's console certificates.
pub struct AccountCa {
    account: AccountId,
    ca: Ca,
}

impl AccountCa {
    /// Generates a new CA for `account` with a fresh P-256 key.
    pub fn generate(account: AccountId) -> Result<Self, PkiError> {
        Ok(Self {
            account,
            ca: Ca::generate(account_ca_params(account)?)?,
        })
    }

    /// Loads the CA of `account` written by [`AccountCa::cert_pem`] and
    /// [`AccountCa::key_pem`].
    pub fn from_pem(account: AccountId, cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        Ok(Self {
            account,
            ca: Ca::from_pem(account_ca_params(account)?, cert_pem, key_pem)?,
        })
    }

    /// Issues a console certificate for `technician`, valid for `validity` from now (at
    /// most [`MAX_CONSOLE_CERT_VALIDITY`]); usable as TLS server (inner hop) and client
    /// (outer hop). The returned identity's chain is `[leaf, this CA]`.
    pub fn issue_console_cert(
        &self,
        technician: &str,
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        self.ca
            .issue(self.console_params(technician, validity)?, validity)
    }

    /// The subject, name and key usages of a console certificate for `technician`, after
    /// checking the name and `validity` (one rule for issued and CSR-signed certificates).
    pub(crate) fn console_params(
        &self,
        technician: &str,
        validity: Duration,
    ) -> Result<CertificateParams, PkiError> {
        if technician.is_empty() || technician.len() > MAX_TECHNICIAN_NAME_LEN {
            return Err(PkiError::TechnicianName);
        }
        if validity > MAX_CONSOLE_CERT_VALIDITY {
            return Err(PkiError::Validity);
        }
        let name = ConsoleName {
            account: self.account,
            technician: technician.to_owned(),
        };
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, technician);
        p.distinguished_name.push(
            DnType::OrganizationName,
            format!("rescue account {}", self.account),
        );
        p.subject_alt_names = vec![SanType::URI(name.to_uri().try_into()?)];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(p)
    }

    /// The account this CA belongs to.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The CA certificate (DER).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.ca.cert
    }

    /// The pin applets of this account carry in their tickets.
    pub fn pin(&self) -> Pin {
        Pin::of(&self.ca.cert)
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The CA private key as PKCS#8 PEM (secret).
    pub fn key_pem(&self) -> String {
        self.ca.issuer.key().serialize_pem()
    }
}

impl fmt::Debug for GatewayCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayCa")
            .field("pin", &self.pin())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AccountCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCa")
            .field("account", &self.account)
            .field("pin", &self.pin())
            .finish_non_exhaustive()
    }
}

/// A CA: its certificate and an rcgen issuer (its subject name and key).
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn generate(params: CertificateParams) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = params;
        set_validity(&mut params, CA_VALIDITY)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?.der().clone();
        Ok(Self {
            cert,
            issuer: Issuer::new(params, key),
        })
    }

    /// Rebuilds the issuer from the same parameters the CA was generated with, and
    /// proves the pair coherent by issuing a throwaway leaf and verifying it with webpki.
    fn from_pem(
        params: CertificateParams,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, PkiError> {
        use rustls_pki_types::pem::PemObject;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError::Pem(e.to_string()))?;
        let key = KeyPair::from_pem(key_pem)?;
        let ca = Self {
            cert,
            issuer: Issuer::new(params, key),
        };
        let mut probe = CertificateParams::default();
        probe.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = ca.issue(probe, Duration::from_secs(600))?;
        let leaf_der = leaf.leaf().ok_or(PkiError::Mismatch)?;
        crate::verify::chain_to_anchor(leaf_der, &ca.cert, webpki::KeyUsage::client_auth())
            .map_err(|_| PkiError::Mismatch)?;
        Ok(ca)
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        set_validity(&mut params, validity)?;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let leaf = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            chain: vec![leaf.der().clone(), self.cert.clone()],
            key: key.into(),
        })
    }

    fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert)
    }
}

/// PEM text of `der` under `label` (64-character lines).
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
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

fn gateway_ca_params() -> Result<CertificateParams, PkiError> {
    ca_params("rescue gateway CA".to_owned())
}

fn account_ca_params(account: AccountId) -> Result<CertificateParams, PkiError> {
    ca_params(format!("rescue account {account} CA"))
}

fn ca_params(common_name: String) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

fn set_validity(p: &mut CertificateParams, validity: Duration) -> Result<(), PkiError> {
    if validity.is_zero() {
        return Err(PkiError::Validity);
    }
    let now = OffsetDateTime::now_utc();
    p.not_before = now - CLOCK_SKEW;
    p.not_after = now
        .checked_add(validity.try_into().map_err(|_| PkiError::Validity)?)
        .ok_or(PkiError::Validity)?;
    Ok(())
}

/// A positive 16-byte serial number from the OS CSPRNG.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut s = rng::array::<16>()?;
    s[0] &= 0x7f;
    s[0] |= 0x01;
    Ok(SerialNumber::from_slice(&s))
}

/// Converts a validity of whole hours for callers holding a number from configuration.
pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h.saturating_mul(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_cert_names_account_and_technician() {
        let ca = AccountCa::generate(AccountId(42)).unwrap();
        let id = ca
            .issue_console_cert("Jo Smith/ü@x", CONSOLE_CERT_VALIDITY)
            .unwrap();
        assert_eq!(id.chain().len(), 2);
        assert_eq!(id.chain()[1], *ca.cert());
        let name = ConsoleName::from_cert(id.leaf().unwrap()).unwrap();
        assert_eq!(name.account, AccountId(42));
        assert_eq!(name.technician, "Jo Smith/ü@x");
    }

    #[test]
    fn console_cert_limits() {
        let ca = AccountCa::generate(AccountId(1)).unwrap();
        assert!(matches!(
            ca.issue_console_cert("", CONSOLE_CERT_VALIDITY),
            Err(PkiError::TechnicianName)
        ));
        let long = "x".repeat(MAX_TECHNICIAN_NAME_LEN + 1);
        assert!(matches!(
            ca.issue_console_cert(&long, CONSOLE_CERT_VALIDITY),
            Err(PkiError::TechnicianName)
        ));
        let week_and_a_bit = MAX_CONSOLE_CERT_VALIDITY + Duration::from_secs(1);
        assert!(matches!(
            ca.issue_console_cert("a", week_and_a_bit),
            Err(PkiError::Validity)
        ));
        assert!(matches!(
            ca.issue_console_cert("a", Duration::ZERO),
            Err(PkiError::Validity)
        ));
    }

    #[test]
    fn gateway_leaf_is_not_a_console() {
        let ca = GatewayCa::generate().unwrap();
        let id = ca
            .issue_gateway(
                &["gw.example".into(), "127.0.0.1".into()],
                GATEWAY_CERT_VALIDITY,
            )
            .unwrap();
        assert!(matches!(
            ConsoleName::from_cert(id.leaf().unwrap()),
            Err(PkiError::NoConsoleName)
        ));
    }

    #[test]
    fn ca_round_trips_through_pem_and_refuses_a_foreign_key() {
        let ca = AccountCa::generate(AccountId(7)).unwrap();
        let back = AccountCa::from_pem(AccountId(7), &ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(back.pin(), ca.pin());
        let other = AccountCa::generate(AccountId(7)).unwrap();
        assert!(matches!(
            AccountCa::from_pem(AccountId(7), &ca.cert_pem(), &other.key_pem()),
            Err(PkiError::Mismatch)
        ));
        // Right key, but loaded under another account: the subject names differ.
        assert!(matches!(
            AccountCa::from_pem(AccountId(8), &ca.cert_pem(), &ca.key_pem()),
            Err(PkiError::Mismatch)
        ));
        let g = GatewayCa::generate().unwrap();
        assert_eq!(
            GatewayCa::from_pem(&g.cert_pem(), &g.key_pem())
                .unwrap()
                .pin(),
            g.pin()
        );
    }
}
