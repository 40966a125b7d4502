//! The gateway: a TLS listener that registers applets, lets consoles of the same account
//! list and claim them, and then relays DATA frames between the two hops with the relay
//! core ([`crate::relay`]).
//!
//! The gateway never holds end-to-end keys and never parses DATA payloads: it terminates
//! only the outer TLS of each hop. Every refusal is a typed ERROR frame, a closed
//! connection and a tracing event; other sessions are unaffected. Everything is bounded:
//! connections (a semaphore), sessions (the directory), waits (timeouts from
//! [`GatewayLimits`]).
//!
//! Start from [`Gateway::bind`] with a [`GatewayConfig`].

mod admission;
mod applet;
mod conn;
mod console;
mod pairing;
mod reattach;
mod stats;
mod udp;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rescue_crypto::pki::{AccountId, Identity};
use rescue_crypto::ticket::TicketVerifyKey;
use rescue_crypto::tls::{gateway_server_config, AccountRoots};
use rescue_proto::handoff::gateway::Limits;
use rescue_proto::handoff::HopId;
use rescue_proto::wire::signal::ResumeSecret;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::GatewayLimits;
use crate::directory::{Directory, EndedStore, FileStore, GuidStore, MemoryDirectory, MemoryStore};
use crate::error::Error;
use crate::io::Tap;

pub use stats::{GatewayStats, ProbeRefusals, RendezvousStats};

use stats::Counters;

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
    /// The session directory; `None` (the default) builds a [`MemoryDirectory`] with
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
        }
    }
}

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) directory: Arc<dyn Directory>,
    next_hop: AtomicU64,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) parking: pairing::Parking,
    pub(crate) rendezvous: reattach::Rendezvous,
    pub(crate) pools: admission::Pools,
    pub(crate) stats: stats::Counters,
    pub(crate) shutdown: CancellationToken,
    /// The UDP rendezvous: socket, token table.
    pub(crate) udp: Arc<udp::Udp>,
    /// Its counters.
    pub(crate) rendezvous_stats: Arc<stats::RendezvousCounters>,
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    udp_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Binds `addr` and starts serving in a background task.
    pub async fn bind(addr: SocketAddr, config: GatewayConfig) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, config)
    }

    /// Starts serving on an already bound listener (and binds the UDP rendezvous
    /// socket on its address, see [`GatewayConfig::udp_port`]).
    pub fn serve(listener: TcpListener, mut config: GatewayConfig) -> Result<Self, Error> {
        let local_addr = listener.local_addr()?;
        let udp_port = config.udp_port.unwrap_or(local_addr.port());
        let udp = udp::Udp::bind(
            SocketAddr::new(local_addr.ip(), udp_port),
            config.rendezvous.clone(),
        )?;
        let udp_addr = udp.local_addr()?;
        let tls = gateway_server_config(&config.identity, &config.account_roots)?;
        let directory = match config.directory.clone() {
            Some(d) => d,
            None => default_directory(&mut config)?,
        };
        let l = &config.limits;
        let pools = admission::Pools::new(
            l.max_pre_auth_connections,
            l.max_connections,
            l.max_pre_auth_per_source,
        );
        let shared = Arc::new(Shared {
            pools,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            config,
            directory,
            next_hop: AtomicU64::new(1),
            parking: pairing::Parking::default(),
            rendezvous: reattach::Rendezvous::default(),
            stats: stats::Counters::default(),
            shutdown: CancellationToken::new(),
            udp: Arc::new(udp),
            rendezvous_stats: Arc::default(),
        });
        tokio::spawn(sweep(shared.clone()));
        tokio::spawn(udp::serve(
            shared.udp.clone(),
            shared.rendezvous_stats.clone(),
            shared.shutdown.clone(),
        ));
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            shared,
            local_addr,
            udp_addr,
            task,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the UDP rendezvous socket (PROTOCOL.md 3.13).
    pub fn udp_local_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// A snapshot of the gateway's counters.
    pub fn stats(&self) -> GatewayStats {
        self.shared.snapshot()
    }

    /// Graceful shutdown: stop accepting, tell waiting peers and running relays to close
    /// (CLOSE / ERROR shutting-down), wait up to the configured grace for them, then drop
    /// what is left. Returns the final counters.
    pub async fn shutdown(self) -> GatewayStats {
        let Gateway { shared, task, .. } = self;
        shared.shutdown.cancel();
        let grace = shared.config.limits.shutdown_grace;
        // The accept loop itself waits `grace` for its connections, so allow a margin.
        let _ = tokio::time::timeout(grace + SHUTDOWN_MARGIN, task).await;
        maintain_store(&shared);
        shared.snapshot()
    }
}

/// The built-in directory: the table limits of the configuration and its GUID store
/// (taken out of the configuration; what is left there is [`EndedStore::Memory`]).
fn default_directory(config: &mut GatewayConfig) -> Result<Arc<dyn Directory>, Error> {
    let l = &config.limits;
    let limits = Limits {
        pending_lifetime: l.pending_lifetime,
        reattach_grace: config.reattach_grace,
        max_sessions: l.max_sessions,
        max_per_account: l.max_sessions_per_account,
        max_ended: l.max_ended,
        max_ended_per_account: l.max_ended_per_account,
    };
    let now_unix = crate::portal::unix_now();
    let store: Box<dyn GuidStore> = match std::mem::replace(
        &mut config.ended_store,
        EndedStore::Memory,
    ) {
        EndedStore::Memory => {
            tracing::warn!("remembered GUIDs are kept in memory only: after a restart, tickets of sessions that ended may register again");
            Box::new(MemoryStore)
        }
        EndedStore::File(path) => Box::new(FileStore::open(path, now_unix)?),
        EndedStore::Custom(store) => store,
    };
    let directory =
        MemoryDirectory::with_store(limits, store, std::time::Instant::now(), now_unix)?;
    Ok(Arc::new(directory))
}

/// Syncs and compacts the GUID store; a failure is logged (the next call retries).
fn maintain_store(shared: &Shared) {
    if let Err(e) = shared.directory.maintain(crate::portal::unix_now()) {
        tracing::error!(error = %e, "GUID store maintenance failed");
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Unauthenticated slots: the accept loop waits for one (beyond it, sockets wait in
    // the kernel backlog); `admission` trades it for an authenticated one later.
    let slots = shared.pools.pre_auth.clone();
    let mut tasks = JoinSet::new();
    let shutdown = shared.shutdown.clone();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        match accepted {
            Ok((tcp, peer)) => {
                Counters::bump(&shared.stats.connections);
                let Some(slot) = shared.pools.admit(peer.ip(), permit) else {
                    // Over the per-source cap: closed before any TLS work.
                    Counters::bump(&shared.stats.refused);
                    tracing::debug!(%peer, "too many unauthenticated connections from this source");
                    continue;
                };
                // Set-up is a handful of small messages each way: without this, each
                // waits on Nagle and the peer's delayed ACK (PERFORMANCE.md, set-up).
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
                let shared = shared.clone();
                let span = tracing::info_span!("conn", %peer);
                tasks.spawn(conn::handle(shared, tcp, Arc::new(slot)).instrument(span));
            }
            Err(e) => {
                // Accept errors (EMFILE, ECONNABORTED) are transient: log and go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = shared.config.limits.shutdown_grace;
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "shutdown grace over, dropping connections"
        );
        tasks.abort_all();
    }
}

/// Runs the directory's deadlines (pending lifetimes, remembered GUIDs) until shutdown.
/// Messages for hops are not sent from here: each hop's task runs its own timers and
/// learns its fate from them, so the outgoing list is only logged.
async fn sweep(shared: Arc<Shared>) {
    loop {
        let now = tokio::time::Instant::now();
        let next = shared
            .directory
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(now + SWEEP_INTERVAL)
            .min(now + SWEEP_INTERVAL);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let expired = shared.directory.expire(std::time::Instant::now());
        if !expired.is_empty() {
            tracing::debug!(messages = expired.len(), "directory deadlines passed");
        }
        maintain_store(&shared);
    }
}

/// Longest pause between two directory sweeps, so a deadline added after the sweeper
/// went to sleep is handled within this time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Shared {
    fn snapshot(&self) -> GatewayStats {
        let mut s = self.stats.snapshot(self.directory.len());
        s.rendezvous = self.rendezvous_stats.snapshot();
        s
    }

    /// The rendezvous hook of a relay that starts now.
    pub(crate) fn relay_hook(&self) -> udp::RelayHook {
        self.udp.hook(self.rendezvous_stats.clone())
    }

    /// A fresh id for a new connection.
    pub(crate) fn hop_id(&self) -> HopId {
        HopId(self.next_hop.fetch_add(1, Ordering::Relaxed))
    }
}

/// Extra time [`Gateway::shutdown`] allows beyond the grace for the accept loop to finish.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A fresh resume secret from the OS CSPRNG (`None` if the generator fails).
pub(crate) fn random_secret() -> Option<ResumeSecret> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(ResumeSecret::from_bytes(bytes))
}
