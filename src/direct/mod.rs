//! The path manager of a running session: finds a direct path once the relayed session
//! runs and hands it to the session, which moves the live traffic onto it (SWITCH) and
//! back to the relay if it dies (RESUME). On by default on both ends; nothing for the
//! embedding app to do ([`crate::session::SessionConfig::direct`] turns it off or limits
//! it).
//!
//! Every decision is [`rescue_proto::paths::PathManager`]'s (sans-IO, time as an
//! argument); this task only carries out its actions: the applet's listener and its
//! candidates ([`tcp`]), the console's staggered dials, and the set-up of each direct
//! connection (TLS with the applet pinning the console leaf of the first path, BIND with
//! the session's path key, NOMINATE by the console). It talks to the session driver
//! through two bounded queues ([`Note`] in, [`Request`] out) and ends with the session.

pub(crate) mod tcp;
pub(crate) mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rescue_crypto::bind::PathKey;
use rescue_crypto::pki::Identity;
use rescue_proto::audit::PathKind;
use rescue_proto::paths::{Action, DirectConfig, PathManager};
use rescue_proto::session::candidates::{Candidates, Transport};
use rescue_proto::{Guid, Role};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use crate::io::BoxStream;

/// Notes queued from the session driver to the path task.
pub(crate) const NOTE_QUEUE: usize = 8;
/// Requests queued from the path task to the session driver.
pub(crate) const REQUEST_QUEUE: usize = 4;

/// What one end needs to set up direct paths of its session.
pub(crate) struct DirectSetup {
    pub(crate) guid: Guid,
    /// Binds later paths (derived from K and the first path's exporter).
    pub(crate) path_key: PathKey,
    pub(crate) end: End,
    /// This end's and the gateway's address on the relayed hop (the applet's first
    /// candidate; the gateway's UDP rendezvous).
    pub(crate) hop: crate::peer::HopAddrs,
    /// The gateway's rendezvous messages on the relayed hop.
    pub(crate) signals: Option<crate::tunnel::TunnelSignals>,
}

/// This end's credentials for the inner TLS of a direct path.
pub(crate) enum End {
    /// The applet pins exactly this console leaf (the first path's).
    Applet { leaf: CertificateDer<'static> },
    /// The console serves with its certificate.
    Console { identity: Box<Identity> },
}

impl DirectSetup {
    fn role(&self) -> Role {
        match self.end {
            End::Applet { .. } => Role::Applet,
            End::Console { .. } => Role::Console,
        }
    }
}

impl std::fmt::Debug for DirectSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSetup")
            .field("guid", &self.guid)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}

/// From the session driver to the path task.
#[derive(Debug)]
pub(crate) enum Note {
    /// The applet's CANDIDATES (console side) or the other end's UDP_CANDIDATES arrived.
    Candidates(Candidates),
}

/// The session driver's end of the path task: CANDIDATES in (bounded; a peer sends them),
/// the loss of the current direct path (a [`Notify`]: never dropped, however full the
/// queue), and the task's requests out.
pub(crate) struct Link {
    pub(crate) notes: mpsc::Sender<Note>,
    pub(crate) direct_lost: Arc<Notify>,
    pub(crate) requests: mpsc::Receiver<Request>,
}

/// From the path task to the session driver.
pub(crate) enum Request {
    /// Send this CANDIDATES payload on the control channel.
    SendCandidates(Bytes),
    /// Add this bound direct path; the session switches to it.
    AddPath(BoxStream, PathKind),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::SendCandidates(_) => f.write_str("SendCandidates"),
            Request::AddPath(_, kind) => write!(f, "AddPath({kind:?})"),
        }
    }
}

/// Starts the path task of a session; it ends when the returned sender is dropped (the
/// session ended) or the request queue closes.
pub(crate) fn spawn(setup: Arc<DirectSetup>, cfg: DirectConfig) -> Link {
    let (note_tx, note_rx) = mpsc::channel(NOTE_QUEUE);
    let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
    let direct_lost = Arc::new(Notify::new());
    let task = Task {
        manager: PathManager::new(setup.role(), cfg, Instant::now()),
        setup,
        notes: note_rx,
        direct_lost: direct_lost.clone(),
        requests: req_tx,
        listener: None,
        accepted: 0,
        work: JoinSet::new(),
        round_addrs: Vec::new(),
        dials_left: 0,
        udp: JoinSet::new(),
        peer_lan: watch::channel((0, Vec::new())).0,
    };
    tokio::spawn(task.run());
    Link {
        notes: note_tx,
        direct_lost,
        requests: req_rx,
    }
}

/// What a background step of the path task produced.
enum Outcome {
    /// A direct TCP path of the current round is bound (and, on the applet, nominated).
    /// Work of a round is aborted when the round's TCP phase ends, so nothing stale
    /// arrives here.
    Bound(tcp::TcpPath),
    /// One dial or accepted connection of the current round failed.
    Failed(crate::error::Error),
    /// The UDP path of the current round is bound (and nominated).
    UdpBound(udp::UdpPathStream),
    /// The UDP phase of the current round failed.
    UdpFailed(String),
}

struct Task {
    manager: PathManager,
    setup: Arc<DirectSetup>,
    notes: mpsc::Receiver<Note>,
    direct_lost: Arc<Notify>,
    requests: mpsc::Sender<Request>,
    /// The applet's listener of the current round.
    listener: Option<(u32, TcpListener)>,
    accepted: usize,
    work: JoinSet<Outcome>,
    /// The console's candidates of the current round.
    round_addrs: Vec<SocketAddr>,
    /// Dials of the current round not finished yet (console).
    dials_left: usize,
    /// The UDP phase of the current round.
    udp: JoinSet<Outcome>,
    /// The other end's UDP_CANDIDATES of the current round, for its UDP phase.
    peer_lan: watch::Sender<(u32, Vec<SocketAddr>)>,
}

impl Task {
    async fn run(mut self) {
        loop {
            if !self.act().await {
                return;
            }
            let wake = self.manager.poll_timeout();
            let accepting =
                self.listener.is_some() && self.work.len() < tcp::MAX_PENDING_HANDSHAKES;
            tokio::select! {
                () = self.direct_lost.notified() => self.manager.on_direct_lost(Instant::now()),
                note = self.notes.recv() => match note {
                    None => return,
                    Some(n) => self.on_note(n),
                },
                () = sleep_until(wake) => self.manager.handle_timeout(Instant::now()),
                Some(done) = self.work.join_next(), if !self.work.is_empty() => {
                    if let Ok(outcome) = done {
                        self.on_outcome(outcome).await;
                    }
                }
                Some(done) = self.udp.join_next(), if !self.udp.is_empty() => {
                    if let Ok(outcome) = done {
                        self.on_outcome(outcome).await;
                    }
                }
                accepted = accept(&self.listener), if accepting => self.on_accept(accepted),
            }
        }
    }

    /// Carries out the manager's actions; `false` when the session is gone.
    async fn act(&mut self) -> bool {
        while let Some(a) = self.manager.poll_action() {
            tracing::debug!(action = ?a, "path manager");
            match a {
                Action::Listen { round, .. } => match tcp::listen().await {
                    Ok(l) => {
                        self.listener = Some((round, l));
                        self.accepted = 0;
                    }
                    Err(e) => tracing::info!(error = %e, "no direct TCP listener"),
                },
                Action::SendCandidates { round } => {
                    if !self.send_candidates(round).await {
                        return false;
                    }
                }
                Action::Dial { index, .. } => {
                    if let Some(addr) = self.round_addrs.get(index).copied() {
                        let setup = self.setup.clone();
                        self.work.spawn(async move {
                            match tcp::dial(addr, &setup).await {
                                Ok(p) => Outcome::Bound(p),
                                Err(e) => Outcome::Failed(e),
                            }
                        });
                    }
                }
                Action::StopTcp { .. } => {
                    self.listener = None;
                    // Handshakes of the round in flight are dropped with it.
                    self.work.abort_all();
                    self.dials_left = 0;
                }
                Action::Rendezvous { round } => {
                    let (setup, role) = (self.setup.clone(), self.setup.role());
                    let r = udp::UdpRound {
                        round,
                        punch_timeout: self.manager.config().punch_timeout,
                        requests: self.requests.clone(),
                        peer_lan: self.peer_lan.subscribe(),
                    };
                    self.udp.spawn(async move {
                        match udp::establish(setup, role, r).await {
                            Ok(p) => Outcome::UdpBound(p),
                            Err(e) => Outcome::UdpFailed(e),
                        }
                    });
                }
                Action::StopUdp { .. } => self.udp.abort_all(),
                Action::Use(_) | Action::FallBack => {}
            }
        }
        true
    }

    /// Applet: announces this round's listener (or a failed round if there is none).
    async fn send_candidates(&mut self, round: u32) -> bool {
        let addrs = match &self.listener {
            Some((r, l)) if *r == round => match l.local_addr() {
                Ok(local) => tcp::candidates(local.port(), local.is_ipv6(), self.setup.hop.local),
                Err(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        if addrs.is_empty() {
            // No TCP this round: both ends go to the UDP phase now.
            self.manager.on_no_candidates(Instant::now());
        }
        let Ok(msg) = Candidates::new(round, addrs) else {
            return true;
        };
        self.requests
            .send(Request::SendCandidates(msg.encode()))
            .await
            .is_ok()
    }

    fn on_note(&mut self, n: Note) {
        let now = Instant::now();
        match n {
            Note::Candidates(c) if c.transport == Transport::Udp => {
                if self.manager.on_udp_candidates(c.round) {
                    self.peer_lan.send_replace((c.round, c.addrs().to_vec()));
                }
            }
            Note::Candidates(c) => {
                // The addresses are the round's only if the manager takes the round (a
                // stale or early CANDIDATES must not change what the current one dials).
                // Its first Dial is queued, not yet carried out, so setting them after
                // is in time.
                if self.manager.on_candidates(now, c.round, c.addrs().len()) {
                    self.round_addrs = c.addrs().to_vec();
                    self.dials_left = self.round_addrs.len();
                }
            }
        }
    }

    fn on_accept(&mut self, accepted: std::io::Result<tokio::net::TcpStream>) {
        let (Some(_), Ok(tcp)) = (&self.listener, accepted) else {
            return;
        };
        self.accepted += 1;
        if self.accepted > tcp::MAX_ACCEPTS_PER_ROUND {
            // Closed at once: a stranger hammering the port gets nothing more.
            return;
        }
        let setup = self.setup.clone();
        self.work.spawn(async move {
            match tcp::accepted(tcp, &setup).await {
                Ok(p) => Outcome::Bound(p),
                Err(e) => Outcome::Failed(e),
            }
        });
    }

    async fn on_outcome(&mut self, outcome: Outcome) {
        let now = Instant::now();
        match outcome {
            Outcome::Bound(mut path) => {
                if !self.manager.on_direct_up(now, PathKind::DirectTcp) {
                    return;
                }
                if self.setup.role() == Role::Console {
                    if let Err(e) = tcp::nominate(&mut path).await {
                        tracing::info!(error = %e, "direct path lost before NOMINATE");
                        self.manager.on_direct_lost(Instant::now());
                        return;
                    }
                }
                let _ = self
                    .requests
                    .send(Request::AddPath(Box::new(path), PathKind::DirectTcp))
                    .await;
            }
            Outcome::UdpBound(path) => {
                if self.manager.on_direct_up(now, PathKind::DirectUdp) {
                    let _ = self
                        .requests
                        .send(Request::AddPath(Box::new(path), PathKind::DirectUdp))
                        .await;
                }
            }
            Outcome::UdpFailed(e) => {
                tracing::info!(error = %e, "no UDP path this round");
                self.manager.on_udp_failed(now);
            }
            Outcome::Failed(e) => {
                tracing::debug!(error = %e, "direct connection failed");
                if self.setup.role() == Role::Console {
                    self.dials_left = self.dials_left.saturating_sub(1);
                    if self.dials_left == 0 {
                        self.manager.on_tcp_failed(now);
                    }
                }
            }
        }
    }
}

async fn accept(listener: &Option<(u32, TcpListener)>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some((_, l)) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
