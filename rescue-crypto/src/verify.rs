//! Pinning server-certificate verifiers for rustls.
//!
//! Two verifiers, both delegating every signature check to webpki and rustls (nothing
//! here implements signature verification):
//!
//! * [`CaPinVerifier`]: the peer sends `[leaf, CA]`; the verifier takes the CA whose
//!   SHA-256 equals the pin from the chain the peer sent, makes it the only trust anchor,
//!   and verifies the leaf against it with webpki (validity period, signature, key usage
//!   `serverAuth`). A chain without the pinned CA fails with `UnknownIssuer`. Used for
//!   the gateway CA (outer hop) and the account CA (inner TLS, first path).
//! * [`LeafPinVerifier`]: the leaf's SHA-256 must equal the pin (the exact console leaf
//!   seen on the first path); nothing else is trusted. Used for later paths.
//!
//! The server name is never checked: no hostname means anything here, the pin does. The
//! verifiers never accept an empty chain, a certificate that does not parse, or a pin
//! mismatch.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pin::Pin;

/// Verifies a server chain `[leaf, CA]` against the CA named by a pin.
#[derive(Debug)]
pub struct CaPinVerifier {
    ca_pin: Pin,
    algs: WebPkiSupportedAlgorithms,
}

impl CaPinVerifier {
    /// A verifier trusting only the CA whose certificate hashes to `ca_pin`.
    pub fn new(ca_pin: Pin) -> Arc<Self> {
        Arc::new(Self {
            ca_pin,
            algs: crate::tls::provider().signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for CaPinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ca = intermediates
            .iter()
            .find(|c| self.ca_pin.matches(c))
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        verify_leaf(
            end_entity,
            ca,
            now,
            webpki::KeyUsage::server_auth(),
            &self.algs,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Accepts exactly one server leaf, named by its pin.
#[derive(Debug)]
pub struct LeafPinVerifier {
    leaf_pin: Pin,
    algs: WebPkiSupportedAlgorithms,
}

impl LeafPinVerifier {
    /// A verifier accepting only the leaf whose DER hashes to `leaf_pin`.
    pub fn new(leaf_pin: Pin) -> Arc<Self> {
        Arc::new(Self {
            leaf_pin,
            algs: crate::tls::provider().signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for LeafPinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The pinned leaf was verified against the account CA on the first path; an
        // exact match of its bytes is the whole check here.
        if self.leaf_pin.matches(end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Verifies `leaf` as issued directly by `ca` (the only trust anchor) for `usage`.
pub(crate) fn verify_leaf(
    leaf: &CertificateDer<'_>,
    ca: &CertificateDer<'_>,
    now: UnixTime,
    usage: webpki::KeyUsage,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), Error> {
    let anchor = webpki::anchor_from_trusted_cert(ca).map_err(pki_error)?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(pki_error)?;
    ee.verify_for_usage(algs.all, &[anchor], &[], now, usage, None, None)
        .map(|_| ())
        .map_err(pki_error)
}

/// [`verify_leaf`] at the current time with the crate's provider.
pub(crate) fn chain_to_anchor(
    leaf: &CertificateDer<'_>,
    ca: &CertificateDer<'_>,
    usage: webpki::KeyUsage,
) -> Result<(), Error> {
    let algs = crate::tls::provider().signature_verification_algorithms;
    verify_leaf(leaf, ca, UnixTime::now(), usage, &algs)
}

fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as E;
    let ce = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::CertRevoked => CertificateError::Revoked,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(ce)
}
