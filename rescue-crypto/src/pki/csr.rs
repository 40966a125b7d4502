//! Console certificates from a certificate signing request (feature `csr`): the portal
//! signs a console's PKCS#10 request, so the console's private key never leaves it.
//!
//! Only the request's public key is used: subject, alternative names, key usages and
//! validity are the ones [`AccountCa::issue_console_cert`] would set, whatever the request
//! asks for. The request's self-signature is checked (proof of possession) and only
//! ECDSA P-256 keys, the stack's one key type, are accepted.

use core::time::Duration;

use rcgen::{CertificateSigningRequestParams, IsCa, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};

use super::{random_serial, set_validity, AccountCa, PkiError};

/// Longest CSR accepted, in DER bytes: a P-256 request is about 250 bytes; the cap stops
/// a hostile request before the parser sees it.
pub const MAX_CSR_LEN: usize = 4096;

impl AccountCa {
    /// Signs the console CSR `csr_der` for `technician`, valid for `validity` (at most
    /// [`MAX_CONSOLE_CERT_VALIDITY`](super::MAX_CONSOLE_CERT_VALIDITY)). Returns the leaf; the chain the console presents is
    /// `[leaf, self.cert()]`.
    pub fn sign_console_csr(
        &self,
        technician: &str,
        csr_der: &[u8],
        validity: Duration,
    ) -> Result<CertificateDer<'static>, PkiError> {
        let mut p = self.console_params(technician, validity)?;
        if csr_der.len() > MAX_CSR_LEN {
            return Err(PkiError::Csr);
        }
        let der = CertificateSigningRequestDer::from(csr_der);
        let mut csr = CertificateSigningRequestParams::from_der(&der).map_err(|_| PkiError::Csr)?;
        if csr.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::Csr);
        }
        set_validity(&mut p, validity)?;
        p.serial_number = Some(random_serial()?);
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params = p;
        Ok(csr.signed_by(&self.ca.issuer)?.der().clone())
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;
    use crate::pki::{AccountId, ConsoleName, MAX_CONSOLE_CERT_VALIDITY};

    fn csr(key: &KeyPair) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "ignored");
        p.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn a_signed_csr_names_the_technician_and_chains_to_the_account_ca() {
        let ca = AccountCa::generate(AccountId(7)).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = ca
            .sign_console_csr("alice", &csr(&key), Duration::from_secs(3600))
            .unwrap();
        let name = ConsoleName::from_cert(&leaf).unwrap();
        assert_eq!(name.account, AccountId(7));
        assert_eq!(name.technician, "alice");
        crate::verify::chain_to_anchor(&leaf, ca.cert(), webpki::KeyUsage::client_auth()).unwrap();
        // The leaf carries the requester's key, not a fresh one.
        assert!(leaf
            .windows(key.public_key_raw().len())
            .any(|w| w == key.public_key_raw()));
    }

    #[test]
    fn garbage_oversize_and_long_lived_requests_are_refused() {
        let ca = AccountCa::generate(AccountId(7)).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let good = csr(&key);
        let hour = Duration::from_secs(3600);
        assert!(matches!(
            ca.sign_console_csr("a", b"junk", hour),
            Err(PkiError::Csr)
        ));
        let big = vec![0x30; MAX_CSR_LEN + 1];
        assert!(matches!(
            ca.sign_console_csr("a", &big, hour),
            Err(PkiError::Csr)
        ));
        let mut forged = good.clone();
        let n = forged.len();
        forged[n - 3] ^= 1;
        assert!(ca.sign_console_csr("a", &forged, hour).is_err());
        let long = MAX_CONSOLE_CERT_VALIDITY + hour;
        assert!(matches!(
            ca.sign_console_csr("a", &good, long),
            Err(PkiError::Validity)
        ));
        assert!(matches!(
            ca.sign_console_csr("", &good, hour),
            Err(PkiError::TechnicianName)
        ));
    }
}
