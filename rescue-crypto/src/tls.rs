//! rustls configurations for every hop, on one crypto provider.
//!
//! The provider is ring with exactly two cipher suites, `TLS13_AES_256_GCM_SHA384` and
//! `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`: AES-256-GCM with ECDHE forward secrecy, and
//! nothing else. A peer offering only other suites (AES-128, ChaCha20) fails the handshake.
//! There is no plaintext mode and no fallback.
//!
//! * Outer hop (applet or console to gateway): TLS 1.3 or 1.2 (1.2 only with extended
//!   master secret). The gateway presents `[gateway leaf, gateway CA]`; clients pin the
//!   gateway CA ([`crate::verify::CaPinVerifier`]). Client certificates are optional:
//!   applets present none, consoles present `[console leaf, account CA]`, verified against
//!   the account CAs the gateway knows ([`AccountRoots`]).
//! * Inner end-to-end TLS (applet = client, console = server, through the relay): TLS 1.3
//!   only. The first path pins the account CA, later paths pin the exact console leaf.
//!
//! No configuration here resumes sessions, sends tickets or accepts early data, so every
//! connection has a full handshake and fresh exporter secrets. Server names are not
//! checked (the pins are); clients may pass [`server_name`].

use std::sync::{Arc, OnceLock};

use rustls::client::Resumption;
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, ServerName};

use crate::pin::Pin;
use crate::pki::{AccountId, ConsoleName, Identity};
use crate::verify::{CaPinVerifier, LeafPinVerifier};

/// ALPN protocol of the outer hop (peer ↔ gateway).
pub const ALPN_OUTER: &[u8] = b"rescue/1";
/// ALPN protocol of the inner end-to-end TLS (applet ↔ console).
pub const ALPN_INNER: &[u8] = b"rescue-e2e/1";
/// The server name clients may use: it is sent as SNI and otherwise ignored.
pub const SERVER_NAME: &str = "rescue.invalid";

const OUTER_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
const INNER_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the versions, key or certificate.
    #[error("rustls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// An identity has an empty chain.
    #[error("identity has no certificate")]
    EmptyChain,
}

/// The crypto provider of every configuration: ring, AES-256-GCM suites only.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = default_provider();
            p.cipher_suites = vec![
                cipher_suite::TLS13_AES_256_GCM_SHA384,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ];
            Arc::new(p)
        })
        .clone()
}

/// The fixed server name to connect with ([`SERVER_NAME`]).
pub fn server_name() -> ServerName<'static> {
    // SERVER_NAME is a valid DNS name (unit test `server_name_is_valid`); the loopback
    // fallback is never taken and would be ignored by the verifiers anyway.
    ServerName::try_from(SERVER_NAME)
        .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// The account CAs a gateway accepts console certificates from.
#[derive(Clone, Debug, Default)]
pub struct AccountRoots {
    roots: Vec<(AccountId, CertificateDer<'static>)>,
}

impl AccountRoots {
    /// No accounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the CA certificate of `account`.
    pub fn add(&mut self, account: AccountId, ca: CertificateDer<'static>) {
        self.roots.push((account, ca));
    }

    /// The account of a console, from the client chain rustls verified
    /// (`peer_certificates()`): the leaf is verified again against each account CA, and
    /// the account is the one whose CA issued it and which the leaf itself names.
    /// `None` for an applet (no certificate) or any chain no known account CA issued.
    pub fn account_of(&self, peer_certs: &[CertificateDer<'_>]) -> Option<AccountId> {
        self.console_of(peer_certs).map(|n| n.account)
    }

    /// Like [`AccountRoots::account_of`], with the technician name.
    pub fn console_of(&self, peer_certs: &[CertificateDer<'_>]) -> Option<ConsoleName> {
        let leaf = peer_certs.first()?;
        let name = ConsoleName::from_cert(leaf).ok()?;
        self.roots
            .iter()
            .filter(|(account, _)| *account == name.account)
            .find(|(_, ca)| {
                crate::verify::chain_to_anchor(leaf, ca, webpki::KeyUsage::client_auth()).is_ok()
            })
            .map(|_| name)
    }

    fn store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        for (_, ca) in &self.roots {
            store.add(ca.clone())?;
        }
        Ok(store)
    }
}

/// The gateway's server configuration: presents `gateway` (`[leaf, gateway CA]`),
/// accepts clients without a certificate (applets) or with one issued by an account CA
/// in `accounts` (consoles; find the account with [`AccountRoots::account_of`]).
pub fn gateway_server_config(
    gateway: &Identity,
    accounts: &AccountRoots,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_protocol_versions(OUTER_VERSIONS)?;
    let builder = if accounts.roots.is_empty() {
        builder.with_client_cert_verifier(WebPkiClientVerifier::no_client_auth())
    } else {
        let v = WebPkiClientVerifier::builder_with_provider(accounts.store()?.into(), provider())
            .allow_unauthenticated()
            // Do not list every account's CA name to every client (applets included).
            .clear_root_hint_subjects()
            .build()?;
        builder.with_client_cert_verifier(v)
    };
    let mut cfg = builder.with_single_cert(chain_of(gateway)?, gateway.key())?;
    harden_server(&mut cfg, ALPN_OUTER);
    Ok(Arc::new(cfg))
}

/// The applet's configuration for the gateway hop: pins the gateway CA, no client cert.
pub fn applet_gateway_client_config(gateway_ca_pin: Pin) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(OUTER_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(CaPinVerifier::new(gateway_ca_pin))
        .with_no_client_auth();
    Ok(harden_client(cfg, ALPN_OUTER))
}

/// The console's configuration for the gateway hop: pins the gateway CA and presents the
/// console certificate (`[leaf, account CA]`).
pub fn console_gateway_client_config(
    gateway_ca_pin: Pin,
    console: &Identity,
) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(OUTER_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(CaPinVerifier::new(gateway_ca_pin))
        .with_client_auth_cert(chain_of(console)?, console.key())?;
    Ok(harden_client(cfg, ALPN_OUTER))
}

/// Inner TLS, applet side, first path: accepts only a console leaf issued by the account
/// CA named by `account_ca_pin` (sent by the console as the second certificate).
pub fn inner_client_config_account(account_ca_pin: Pin) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(INNER_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(CaPinVerifier::new(account_ca_pin))
        .with_no_client_auth();
    Ok(harden_client(cfg, ALPN_INNER))
}

/// Inner TLS, applet side, later paths: accepts only the exact console `leaf` seen on the
/// first path (e.g. `peer_certificates()[0]` of that connection).
pub fn inner_client_config_leaf(leaf: &CertificateDer<'_>) -> Result<Arc<ClientConfig>, TlsError> {
    inner_client_config_leaf_pin(Pin::of(leaf))
}

/// [`inner_client_config_leaf`] given the leaf's pin instead of the leaf.
pub fn inner_client_config_leaf_pin(leaf_pin: Pin) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(INNER_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(LeafPinVerifier::new(leaf_pin))
        .with_no_client_auth();
    Ok(harden_client(cfg, ALPN_INNER))
}

/// Inner TLS, console side: presents the console certificate (`[leaf, account CA]`);
/// the applet is anonymous (no client certificate).
pub fn inner_server_config(console: &Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(INNER_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain_of(console)?, console.key())?;
    harden_server(&mut cfg, ALPN_INNER);
    Ok(Arc::new(cfg))
}

fn chain_of(id: &Identity) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if id.chain().is_empty() {
        return Err(TlsError::EmptyChain);
    }
    Ok(id.chain().to_vec())
}

fn harden_client(mut cfg: ClientConfig, alpn: &[u8]) -> Arc<ClientConfig> {
    cfg.resumption = Resumption::disabled();
    cfg.enable_early_data = false;
    cfg.require_ems = true;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

fn harden_server(cfg: &mut ServerConfig, alpn: &[u8]) {
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    cfg.require_ems = true;
    cfg.alpn_protocols = vec![alpn.to_vec()];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_valid() {
        assert!(rustls_pki_types::DnsName::try_from(SERVER_NAME).is_ok());
        assert_eq!(
            format!("{:?}", server_name()),
            format!("{:?}", ServerName::try_from(SERVER_NAME).unwrap())
        );
    }

    #[test]
    fn provider_has_only_aes_256_gcm() {
        let p = provider();
        assert_eq!(p.cipher_suites.len(), 2);
        for s in &p.cipher_suites {
            assert!(
                format!("{:?}", s.suite()).contains("AES_256_GCM"),
                "{:?}",
                s.suite()
            );
        }
    }
}
