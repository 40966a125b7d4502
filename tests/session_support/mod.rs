//! Test support for the session tests: two sessions over in-memory paths that can be
//! cut, a consent that records every call, and event waits with timeouts.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rescue::audit::AuditSink;
use rescue::session::consent::{ConsentFuture, ConsentRequest};
use rescue::session::{
    Consent, ConsentAnswer, ConsentConfig, PathKind, Role, Session, SessionConfig, SessionEvent,
};
use rescue_proto::{Permission, PermissionSet, Policy};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes buffered in each direction of an in-memory path.
pub const PIPE: usize = 64 * 1024;
/// Longest any test waits for one event.
pub const WAIT: Duration = Duration::from_secs(20);

/// A consent that records its calls and answers with a fixed answer (or never).
pub struct Recorder {
    pub calls: Mutex<Vec<ConsentRequest>>,
    pub answer: Option<ConsentAnswer>,
}

impl Recorder {
    pub fn new(answer: Option<ConsentAnswer>) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            answer,
        })
    }

    pub fn calls(&self) -> Vec<ConsentRequest> {
        self.calls.lock().unwrap().clone()
    }
}

impl Consent for Recorder {
    fn ask(&self, req: ConsentRequest) -> ConsentFuture<'_> {
        self.calls.lock().unwrap().push(req);
        let a = self.answer;
        Box::pin(async move {
            match a {
                Some(a) => a,
                None => std::future::pending().await,
            }
        })
    }
}

pub fn policy(allowed: &[Permission], all_in_one: bool) -> Policy {
    Policy {
        allowed: allowed.iter().copied().collect::<PermissionSet>(),
        all_in_one_allowed: all_in_one,
        exclude_chat_from_audit: false,
    }
}

/// A path whose middle can be cut abruptly (both ends then see EOF).
pub struct Wire {
    pub applet: Option<DuplexStream>,
    pub console: Option<DuplexStream>,
    relay: JoinHandle<()>,
}

impl Wire {
    pub fn new() -> Self {
        let (a, a_mid) = tokio::io::duplex(PIPE);
        let (c, c_mid) = tokio::io::duplex(PIPE);
        let relay = tokio::spawn(async move {
            let (mut a_mid, mut c_mid) = (a_mid, c_mid);
            let _ = tokio::io::copy_bidirectional(&mut a_mid, &mut c_mid).await;
        });
        Self {
            applet: Some(a),
            console: Some(c),
            relay,
        }
    }

    /// Drops the middle: nothing more crosses, both ends read EOF.
    pub fn cut(&self) {
        self.relay.abort();
    }
}

pub struct Setup {
    pub applet_cfg: SessionConfig,
    pub console_cfg: SessionConfig,
}

impl Setup {
    pub fn new(policy: Policy) -> Self {
        Self {
            applet_cfg: SessionConfig::new(Role::Applet, policy),
            console_cfg: SessionConfig::new(Role::Console, policy),
        }
    }

    pub fn consent(mut self, c: Arc<dyn Consent>, timeout: Duration) -> Self {
        self.applet_cfg.consent = Some(ConsentConfig::new(c).with_timeout(timeout));
        self
    }

    pub fn downloads(mut self, dir: &std::path::Path) -> Self {
        self.applet_cfg.download_dir = Some(dir.to_owned());
        self
    }

    pub fn audit(mut self, applet: Arc<dyn AuditSink>, console: Arc<dyn AuditSink>) -> Self {
        self.applet_cfg.audit = Some(applet);
        self.console_cfg.audit = Some(console);
        self
    }

    /// Both sessions on one cuttable wire.
    pub fn start(self) -> Pair {
        let mut wire = Wire::new();
        let a = wire.applet.take().unwrap();
        let c = wire.console.take().unwrap();
        let mut applet = Session::start(a, PathKind::Relay, self.applet_cfg);
        let mut console = Session::start(c, PathKind::Relay, self.console_cfg);
        Pair {
            applet_events: applet.events().unwrap(),
            console_events: console.events().unwrap(),
            applet,
            console,
            wire,
        }
    }
}

pub struct Pair {
    pub applet: Session,
    pub console: Session,
    pub applet_events: mpsc::Receiver<SessionEvent>,
    pub console_events: mpsc::Receiver<SessionEvent>,
    pub wire: Wire,
}

/// Waits for the first event matching `want`, skipping others; panics after [`WAIT`].
pub async fn wait_for<T>(
    rx: &mut mpsc::Receiver<SessionEvent>,
    mut want: impl FnMut(SessionEvent) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            let ev = rx.recv().await.expect("event stream ended");
            if let Some(t) = want(ev) {
                return t;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("timed out waiting for an event")
}

/// Every event that arrives until the stream ends (after `Ended`), bounded by [`WAIT`].
pub async fn drain(rx: &mut mpsc::Receiver<SessionEvent>) -> Vec<SessionEvent> {
    let mut v = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
    })
    .await;
    v
}
