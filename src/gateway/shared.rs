//! The state shared by the accept loop and every connection task of one gateway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rescue_proto::handoff::HopId;
use rescue_proto::wire::signal::ResumeSecret;
use tokio_util::sync::CancellationToken;

use super::admission::Pools;
use super::config::GatewayConfig;
use super::failures::Failures;
use super::stats::{Counters, GatewayStats, RendezvousCounters};
use super::table::SessionTable;
use super::udp::{RelayHook, Udp};
use crate::directory::Directory;

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) next_hop: AtomicU64,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// The limits against guessing (failed REGISTERs and CLAIMs).
    pub(crate) failures: Failures,
    /// The one per-GUID session state of this gateway.
    pub(crate) sessions: SessionTable,
    pub(crate) pools: Pools,
    pub(crate) stats: Counters,
    pub(crate) shutdown: CancellationToken,
    /// The UDP rendezvous: socket, token table.
    pub(crate) udp: Arc<Udp>,
    /// Its counters.
    pub(crate) rendezvous_stats: Arc<RendezvousCounters>,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> GatewayStats {
        let mut s = self.stats.snapshot(self.directory.len());
        s.rendezvous = self.rendezvous_stats.snapshot();
        s
    }

    /// The rendezvous hook of a relay that starts now.
    pub(crate) fn relay_hook(&self) -> RelayHook {
        self.udp.hook(self.rendezvous_stats.clone())
    }

    /// A fresh id for a new connection.
    pub(crate) fn hop_id(&self) -> HopId {
        HopId(self.next_hop.fetch_add(1, Ordering::Relaxed))
    }
}

/// A fresh resume secret from the OS CSPRNG (`None` if the generator fails).
pub(crate) fn random_secret() -> Option<ResumeSecret> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(ResumeSecret::from_bytes(bytes))
}
