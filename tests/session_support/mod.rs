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

    /// A wire around an already running middle task (e.g. [`corrupting_wire`]).
    pub fn from_task(relay: JoinHandle<()>) -> Self {
        Self {
            applet: None,
            console: None,
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
        self.start_on(a, c, wire)
    }

    /// Both sessions on the given ends.
    pub fn start_on(self, a: DuplexStream, c: DuplexStream, wire: Wire) -> Pair {
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

/// File content for tests: a byte pattern, deterministic, with `marker` at `at`.
pub fn content(len: usize, marker: Option<(&[u8], usize)>) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    if let Some((m, at)) = marker {
        v[at..at + m.len()].copy_from_slice(m);
    }
    v
}

pub fn digests(data: &[u8]) -> rescue_crypto::Digests {
    let mut d = rescue_crypto::FileDigest::new();
    d.update(data);
    d.finish()
}

/// A reader that serves `data` but stops at `gate_at` until the gate opens (or for
/// ever if the sender is kept and never used).
pub struct GatedReader {
    data: Vec<u8>,
    pos: usize,
    gate_at: usize,
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl GatedReader {
    pub fn new(data: Vec<u8>, gate_at: usize) -> (Self, tokio::sync::oneshot::Sender<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let r = Self {
            data,
            pos: 0,
            gate_at,
            gate: Some(rx),
        };
        (r, tx)
    }
}

impl tokio::io::AsyncRead for GatedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        if self.pos >= self.gate_at {
            if let Some(g) = self.gate.as_mut() {
                let _ = std::task::ready!(std::pin::Pin::new(g).poll(cx));
                self.gate = None;
            }
        }
        let limit = if self.gate.is_some() {
            self.gate_at
        } else {
            self.data.len()
        };
        let n = (limit - self.pos).min(buf.remaining()).min(16 * 1024);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// A wire whose console→applet direction flips one byte of the first occurrence of
/// `marker` (a corrupted chunk payload; the frame itself stays well-formed).
pub fn corrupting_wire(marker: Vec<u8>) -> (DuplexStream, DuplexStream, JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, a_mid) = tokio::io::duplex(PIPE);
    let (c, c_mid) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(async move {
        let (mut ar, mut aw) = tokio::io::split(a_mid);
        let (mut cr, mut cw) = tokio::io::split(c_mid);
        let up = async move {
            let _ = tokio::io::copy(&mut ar, &mut cw).await;
        };
        let down = async move {
            let keep = marker.len() - 1;
            let (mut pending, mut done) = (Vec::new(), false);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                // Hold back a possible marker prefix only while more bytes follow at once.
                let n =
                    match tokio::time::timeout(Duration::from_millis(5), cr.read(&mut buf)).await {
                        Ok(Ok(0) | Err(_)) => break,
                        Ok(Ok(n)) => n,
                        Err(_) => {
                            if aw.write_all(&pending).await.is_err() {
                                break;
                            }
                            pending.clear();
                            continue;
                        }
                    };
                pending.extend_from_slice(&buf[..n]);
                if !done {
                    if let Some(i) = pending.windows(marker.len()).position(|w| w == marker) {
                        pending[i] ^= 0x01;
                        done = true;
                    }
                }
                let cut = if done {
                    pending.len()
                } else {
                    pending.len().saturating_sub(keep)
                };
                if aw.write_all(&pending[..cut]).await.is_err() {
                    break;
                }
                pending.drain(..cut);
            }
            let _ = aw.write_all(&pending).await;
        };
        tokio::join!(up, down);
    });
    (a, c, task)
}

/// Waits until `dir` holds exactly `n` entries (the writer task removes a partial file
/// right after the driver drops it); panics after [`WAIT`].
pub async fn wait_entries(dir: &std::path::Path, n: usize) -> Vec<String> {
    let fut = async {
        loop {
            let v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            if v.len() == n {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("directory never settled")
}
