//! Wiring a session onto the roles' end-to-end streams: the applet's and the console's
//! paired sessions carry the SAS, the GUID, (on the applet) the verified technician, and
//! what the path manager needs to bind direct paths (path key, pinned leaf or identity).
//!
//! ```no_run
//! # async fn f(a: rescue::AppletSession, policy: rescue_proto::Policy) {
//! use rescue::session::{PathKind, Session, SessionConfig};
//! let cfg = SessionConfig::applet(&a, policy);
//! let session = Session::start(a, PathKind::Relay, cfg);
//! # }
//! ```
//! A reconnected stream (a new BIND after a lost path) is handed over with one call:
//! `session.add_path(stream, PathKind::Relay)`; the session resumes with nothing lost.

use std::sync::Arc;

use rescue_proto::Policy;

use super::{PathKind, PeerInfo, Role, Session, SessionConfig};
use crate::direct::{DirectSetup, End};
use crate::peer::{AppletSession, ConsoleSession};

impl SessionConfig {
    /// The end user's session on a paired applet: the policy of the applet's ticket
    /// (enforced here), the SAS, the GUID and the technician from the verified console
    /// certificate.
    pub fn applet(s: &AppletSession, policy: Policy) -> Self {
        let mut cfg = Self::new(Role::Applet, policy);
        cfg.sas = Some(s.sas());
        cfg.guid = Some(s.guid());
        let who = s.console();
        cfg.peer = PeerInfo::new(&who.technician, &who.account.to_string());
        let (path_key, hop, signals) = s.direct_parts();
        cfg.direct_setup = Some(Arc::new(DirectSetup {
            guid: s.guid(),
            path_key: path_key.clone(),
            end: End::Applet {
                leaf: who.leaf.clone(),
            },
            hop,
            signals: Some(signals.clone()),
        }));
        cfg
    }

    /// The technician's session on a paired console (the end user is anonymous).
    pub fn console(s: &ConsoleSession, policy: Policy) -> Self {
        let mut cfg = Self::new(Role::Console, policy);
        cfg.sas = Some(s.sas());
        cfg.guid = Some(s.guid());
        let (path_key, identity, hop, signals) = s.direct_parts();
        cfg.direct_setup = Some(Arc::new(DirectSetup {
            guid: s.guid(),
            path_key: path_key.clone(),
            end: End::Console {
                identity: Box::new(identity.clone()),
            },
            hop,
            signals: Some(signals.clone()),
        }));
        cfg
    }
}

impl AppletSession {
    /// Starts the end user's [`Session`] on this paired stream, under the policy of the
    /// applet's ticket, with [`SessionConfig::applet`]'s defaults: no consent answerer
    /// (every permission request is refused), no download folder (every offered file is
    /// refused), direct paths on. See [`AppletSession::start_with`] to change them.
    pub fn start(self) -> Session {
        self.start_with(|_| {})
    }

    /// As [`AppletSession::start`], letting `configure` change the configuration first
    /// (a consent answerer, a download folder, an audit sink, direct-path settings).
    pub fn start_with(self, configure: impl FnOnce(&mut SessionConfig)) -> Session {
        let mut cfg = SessionConfig::applet(&self, self.policy());
        configure(&mut cfg);
        Session::start(self, PathKind::Relay, cfg)
    }
}

impl ConsoleSession {
    /// Starts the technician's [`Session`] on this paired stream with
    /// [`SessionConfig::console`]'s defaults (no download folder: files the end user
    /// offers are refused; direct paths on). See [`ConsoleSession::start_with`].
    pub fn start(self) -> Session {
        self.start_with(|_| {})
    }

    /// As [`ConsoleSession::start`], letting `configure` change the configuration first.
    pub fn start_with(self, configure: impl FnOnce(&mut SessionConfig)) -> Session {
        // The policy is the applet's to enforce; the console side keeps none of its own.
        let mut cfg = SessionConfig::console(&self, Policy::default());
        configure(&mut cfg);
        Session::start(self, PathKind::Relay, cfg)
    }
}
