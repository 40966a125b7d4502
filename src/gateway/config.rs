//! What a gateway is configured with.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rescue_crypto::pki::{AccountId, Identity};
use rescue_crypto::ticket::TicketVerifyKey;
use rescue_crypto::tls::AccountRoots;
use rustls_pki_types::CertificateDer;

use crate::config::GatewayLimits;
use crate::directory::{Directory, EndedStore};
use crate::io::Tap;

/// Everything a gateway needs. Build it with [`GatewayConfig::new`] and adjust the
/// public fields.
#[non_exhaustive]
pub struct GatewayConfig {
    /// The gateway's certificate chain (`[leaf, gateway CA]`) and key.
    pub identity: Identity,
    /// The account CAs whose console certificates the gateway accepts; a console's
    /// account and technician name come from its verified certificate only.
    pub account_roots: AccountRoots,
    /// The portal's ticket verification key (Ed25519 public key).
    pub ticket_key: TicketVerifyKey,
    /// The accounts this gateway serves; tickets for other accounts are refused.
    pub accounts: HashSet<AccountId>,
    /// Limits and timeouts.
    pub limits: GatewayLimits,
    /// Limits of the relay core for paired sessions.
    pub relay: crate::relay::RelayLimits,
    /// How long a party that lost its hop may REATTACH (PROTOCOL.md 3.12); the other
    /// party's hop is kept meanwhile.
    pub reattach_grace: Duration,
    /// The `host:port` names this gateway answers to, spelled as the portal writes them
    /// in tickets (compared without regard to ASCII case). A REGISTER whose ticket lists
    /// none of them is refused `ERROR{bad ticket}` (PROTOCOL.md 3.11, gateway binding),
    /// so a ticket cannot be replayed at a gateway it was not issued for. Empty (the
    /// default): the address each connection arrived on, as `ip:port` (for a gateway
    /// bound to one address, the listener's own address, which is what the demo and the
    /// tests list); a gateway behind a DNS name or a load balancer must set it.
    pub names: Vec<String>,
    /// Where the GUIDs that may not register again are kept across restarts. Default
    /// [`EndedStore::Memory`] (tests; a warning is logged at start); a deployed gateway
    /// uses [`EndedStore::File`] (the example gateway's `--state-dir`). Ignored when
    /// [`GatewayConfig::directory`] is set (that directory remembers by itself).
    pub ended_store: EndedStore,
    /// The session directory; `None` (the default) builds a [`MemoryDirectory`](crate::directory::MemoryDirectory) with
    /// the table limits of [`GatewayLimits`] and the [`GatewayConfig::ended_store`].
    pub directory: Option<Arc<dyn Directory>>,
    /// An optional observer of every byte the gateway reads or writes inside the outer
    /// TLS (tests use it to prove the gateway never sees end-to-end plaintext).
    pub tap: Option<Arc<dyn Tap>>,
    /// The port of the UDP rendezvous socket (PROTOCOL.md 3.13), bound on the IP address
    /// of the TLS listener. `None` (the default): the same port number as the listener;
    /// `Some(0)`: one the OS picks. Peers learn it in UDP_TOKEN.
    pub udp_port: Option<u16>,
    /// Limits of the UDP rendezvous; `Default` gives the protocol's constants
    /// (`rescue_proto::wire::limits`, PROTOCOL.md section 5).
    pub rendezvous: rescue_proto::handoff::rendezvous::Limits,
    /// Prometheus metrics to update (the `metrics` feature); `None` (the default):
    /// none.
    #[cfg(feature = "metrics")]
    pub metrics: Option<super::GatewayMetrics>,
}

impl GatewayConfig {
    /// A configuration with default limits and an in-memory directory, serving the
    /// accounts whose CA certificates are given.
    pub fn new(
        identity: Identity,
        accounts: impl IntoIterator<Item = (AccountId, CertificateDer<'static>)>,
        ticket_key: TicketVerifyKey,
    ) -> Self {
        let mut account_roots = AccountRoots::new();
        let mut served = HashSet::new();
        for (account, ca) in accounts {
            account_roots.add(account, ca);
            served.insert(account);
        }
        Self {
            identity,
            account_roots,
            ticket_key,
            accounts: served,
            limits: GatewayLimits::default(),
            relay: crate::relay::RelayLimits::default(),
            reattach_grace: rescue_proto::wire::limits::REATTACH_GRACE,
            names: Vec::new(),
            ended_store: EndedStore::Memory,
            directory: None,
            tap: None,
            udp_port: None,
            rendezvous: Default::default(),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }
}
