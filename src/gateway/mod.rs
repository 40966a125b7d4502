//! The gateway: a TLS listener that registers applets, lets consoles of the same account
//! list and claim them, and then relays DATA frames between the two hops with the relay
//! core ([`crate::relay`]).
//!
//! The gateway never holds end-to-end keys and never parses DATA payloads: it terminates
//! only the outer TLS of each hop. Every refusal is a typed ERROR frame, a closed
//! connection and a tracing event; other sessions are unaffected. Everything is bounded:
//! connections (a semaphore), sessions (the directory), waits (timeouts from
//! [`GatewayLimits`](crate::config::GatewayLimits)).
//!
//! Start from [`Gateway::bind`] with a [`GatewayConfig`].

mod admission;
mod applet;
mod config;
mod conn;
mod console;
mod failures;
#[cfg(feature = "metrics")]
mod metrics;
mod reattach;
mod refusal;
mod session;
mod shared;
mod stats;
mod table;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rescue_crypto::tls::gateway_server_config;
use rescue_proto::handoff::gateway::Limits;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::directory::{Directory, EndedStore, FileStore, GuidStore, MemoryDirectory, MemoryStore};
use crate::error::Error;

pub use config::GatewayConfig;
#[cfg(feature = "metrics")]
pub use metrics::GatewayMetrics;
pub use stats::{GatewayStats, ProbeRefusals, RendezvousStats};

use shared::Shared;
use stats::Counters;
use table::SessionTable;

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
        let stats = stats::Counters {
            #[cfg(feature = "metrics")]
            metrics: config.metrics.clone(),
            ..Default::default()
        };
        let shared = Arc::new(Shared {
            pools,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            config,
            directory,
            next_hop: AtomicU64::new(1),
            sessions: SessionTable::default(),
            stats,
            failures: Default::default(),
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
        maintain_store(&shared).await;
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
async fn maintain_store(shared: &Shared) {
    if let Err(e) = shared.directory.maintain(crate::portal::unix_now()).await {
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
        match shared.directory.expire(std::time::Instant::now()).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::debug!(messages = expired.len(), "directory deadlines passed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "directory sweep failed"),
        }
        maintain_store(&shared).await;
    }
}

/// Longest pause between two directory sweeps, so a deadline added after the sweeper
/// went to sleep is handled within this time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Extra time [`Gateway::shutdown`] allows beyond the grace for the accept loop to finish.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
