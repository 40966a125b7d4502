//! Shared set-up of the end-to-end tests: a development PKI, a portal, a gateway on a
//! loopback port with short timeouts, and helpers to build applets and consoles.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rescue::config::{GatewayLimits, PeerTimeouts};
use rescue::devpki::DevPki;
use rescue::io::{Tap, TapDirection};
use rescue::portal::{IssuedSession, Portal, SessionRequest};
use rescue::{Applet, AppletSession, Console, ConsoleSession, Gateway, GatewayConfig};
use rescue_crypto::pki::{AccountCa, AccountId, Identity};
use rescue_proto::Policy;

/// The account the gateway serves and the PKI's console belongs to.
pub const ACCOUNT: AccountId = AccountId(42);
/// A second served account (its console must not see or claim ACCOUNT's sessions).
pub const OTHER_ACCOUNT: AccountId = AccountId(43);
/// An account the gateway does not serve.
pub const UNSERVED_ACCOUNT: AccountId = AccountId(44);

/// Upper bound on any single test step: tests fail, never hang.
pub const STEP: Duration = Duration::from_secs(10);

/// Short timeouts so refusal tests run in well under a second each.
pub fn fast_limits() -> GatewayLimits {
    let mut l = GatewayLimits::default();
    l.pre_auth_timeout = Duration::from_millis(500);
    l.console_idle_timeout = Duration::from_secs(2);
    l.pending_lifetime = Duration::from_secs(5);
    l.shutdown_grace = Duration::from_secs(1);
    l
}

pub fn fast_timeouts() -> PeerTimeouts {
    let mut t = PeerTimeouts::default();
    t.connect = Duration::from_secs(2);
    t.reply = Duration::from_secs(2);
    t.pairing = Duration::from_secs(5);
    t.inner_setup = Duration::from_secs(5);
    // A claim for an unknown GUID gives up after 2 s (the tests' applets register first).
    t.claim_wait = Duration::from_secs(2);
    t
}

/// Records every byte the gateway reads and writes.
#[derive(Default)]
pub struct Recorder {
    pub chunks: Mutex<Vec<(TapDirection, Vec<u8>)>>,
}

impl Tap for Recorder {
    fn observe(&self, direction: TapDirection, bytes: &[u8]) {
        self.chunks
            .lock()
            .unwrap()
            .push((direction, bytes.to_vec()));
    }
}

impl Recorder {
    /// Whether `needle` occurs in any chunk or across consecutive chunks.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let chunks = self.chunks.lock().unwrap();
        let all: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        contains(&all, needle) || chunks.iter().any(|(_, c)| contains(c, needle))
    }

    pub fn total(&self) -> usize {
        self.chunks
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.len())
            .sum()
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

pub struct Setup {
    pub pki: DevPki,
    pub other_ca: AccountCa,
    pub other_console: Identity,
    pub portal: Portal,
    pub gateway: Gateway,
    pub addr: String,
    pub tap: Arc<Recorder>,
}

impl Setup {
    pub async fn start() -> Self {
        Self::start_with(fast_limits()).await
    }

    pub async fn start_with(limits: GatewayLimits) -> Self {
        let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
        let other_ca = AccountCa::generate(OTHER_ACCOUNT).unwrap();
        let other_console = other_ca
            .issue_console_cert("mallory", Duration::from_secs(3600))
            .unwrap();
        let tap = Arc::new(Recorder::default());
        let mut config = GatewayConfig::new(
            pki.gateway.clone(),
            [
                (ACCOUNT, pki.account_ca.cert().clone()),
                (OTHER_ACCOUNT, other_ca.cert().clone()),
            ],
            pki.verify_key(),
        );
        config.limits = limits;
        config.tap = Some(tap.clone());
        let gateway = Gateway::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let addr = gateway.local_addr().to_string();
        let portal = Portal::new(
            rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap(),
            vec![addr.clone()],
            pki.gateway_ca.pin(),
        );
        Self {
            pki,
            other_ca,
            other_console,
            portal,
            gateway,
            addr,
            tap,
        }
    }

    pub fn request(&self) -> SessionRequest {
        SessionRequest::new(ACCOUNT, self.pki.account_ca.pin(), Policy::default())
    }

    pub fn issue(&self) -> IssuedSession {
        self.portal.issue(&self.request()).unwrap()
    }

    pub fn applet(&self, issued: &IssuedSession) -> Applet {
        Applet::from_ticket(
            issued.ticket.clone(),
            issued.secret.clone(),
            &self.pki.verify_key(),
        )
        .unwrap()
        .with_timeouts(fast_timeouts())
    }

    /// An applet that skips its own ticket check, to test what the gateway refuses.
    pub fn unverified_applet(&self, issued: &IssuedSession) -> Applet {
        Applet::from_unverified_ticket_for_tests(issued.ticket.clone(), issued.secret.clone())
            .unwrap()
            .with_timeouts(fast_timeouts())
    }

    pub async fn console(&self) -> Console {
        self.console_with(self.pki.console.clone()).await.unwrap()
    }

    pub async fn console_with(&self, id: Identity) -> Result<Console, rescue::Error> {
        Console::connect(&self.addr, self.pki.gateway_ca.pin(), id, fast_timeouts()).await
    }

    /// A complete session: issue, register, claim, end-to-end set-up on both sides.
    pub async fn session(&self) -> (AppletSession, ConsoleSession) {
        let issued = self.issue();
        let registration = within(self.applet(&issued).register()).await.unwrap();
        let console = self.console().await;
        let (a, c) = within(async {
            tokio::join!(
                registration.wait_paired(),
                console.claim(issued.claim_key())
            )
        })
        .await;
        (a.unwrap(), c.unwrap())
    }
}

/// Runs `fut` with the [`STEP`] timeout; a hang is a test failure.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("test step timed out")
}

/// Sends a line each way through a pair of sessions and checks both arrive.
pub async fn exchange(a: &mut AppletSession, c: &mut ConsoleSession, from_a: &[u8], from_c: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(async {
        a.write_all(from_a).await.unwrap();
        a.flush().await.unwrap();
        let mut got = vec![0u8; from_a.len()];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(got, from_a);
        c.write_all(from_c).await.unwrap();
        c.flush().await.unwrap();
        let mut got = vec![0u8; from_c.len()];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(got, from_c);
    })
    .await
}

/// A raw outer-TLS connection as an applet would open it, for tests that send bytes the
/// real applet never would.
pub async fn raw_applet(setup: &Setup) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = rescue_crypto::tls::applet_gateway_client_config(setup.pki.gateway_ca.pin()).unwrap();
    let tcp = tokio::net::TcpStream::connect(&setup.addr).await.unwrap();
    within(tokio_rustls::TlsConnector::from(cfg).connect(rescue_crypto::tls::server_name(), tcp))
        .await
        .unwrap()
}

/// Reads frames until the gateway closes; returns the ERROR code it sent, if any.
/// Fails the test if the connection stays open.
pub async fn refusal_of<S>(stream: S) -> Option<rescue_proto::wire::signal::ErrorCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use rescue_proto::wire::signal::Message;
    let mut framed =
        tokio_util::codec::Framed::new(stream, rescue_proto::codec::GatewayCodec::new());
    let mut code = None;
    within(async {
        while let Some(Ok(frame)) = framed.next().await {
            if let Ok(Message::Error(e)) = frame.message() {
                code = Some(e.code);
            }
        }
    })
    .await;
    code
}
