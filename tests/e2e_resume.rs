//! Resume through a real gateway on loopback (PROTOCOL.md 3.12): a relayed session
//! whose applet hop is cut keeps the console's hop (PEER_GONE{grace}); the applet comes
//! back with REATTACH and its resume secret, gets RESUMED, the console PEER_BACK, and
//! DATA flows again. Wrong secrets, another account's console and late reattaches are
//! refused with a typed ERROR; other sessions are served meanwhile.
//!
//! Most tests speak the signalling protocol directly (raw outer TLS and the gateway
//! codec), so every frame the gateway sends is checked; the last runs real peers and
//! `Session`s, cuts the applet's TCP connection mid-file, reconnects both sides
//! (`peer::Reconnect`) and finishes the file with matching hashes.

mod session_support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rescue::devpki::DevPki;
use rescue::portal::{Portal, SessionRequest};
use rescue::{Gateway, GatewayConfig};
use rescue_crypto::pki::{AccountCa, AccountId, Identity};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{
    Claim, ErrorCode, Hello, Message, Paired, Ping, Pong, Reattach, Register, ResumeSecret, Role,
};
use rescue_proto::{Guid, Policy};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const ACCOUNT: AccountId = AccountId(42);
const OTHER_ACCOUNT: AccountId = AccountId(43);
/// Bound on every wait: a hang fails the test.
const STEP: Duration = Duration::from_secs(10);

type Raw = Framed<Box<dyn rescue::io::Duplex>, GatewayCodec>;

struct Setup {
    pki: DevPki,
    other_console: Identity,
    portal: Portal,
    gateway: Gateway,
}

async fn start(grace: Duration) -> Setup {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let other_ca = AccountCa::generate(OTHER_ACCOUNT).unwrap();
    let other_console = other_ca
        .issue_console_cert("mallory", Duration::from_secs(3600))
        .unwrap();
    let mut config = GatewayConfig::new(
        pki.gateway.clone(),
        [
            (ACCOUNT, pki.account_ca.cert().clone()),
            (OTHER_ACCOUNT, other_ca.cert().clone()),
        ],
        pki.verify_key(),
    );
    config.reattach_grace = grace;
    let gateway = Gateway::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let portal = Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap(),
        vec![gateway.local_addr().to_string()],
        pki.gateway_ca.pin(),
    );
    Setup {
        pki,
        other_console,
        portal,
        gateway,
    }
}

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut).await.expect("step in time")
}

/// Outer TLS and HELLO as an applet (`console: None`) or a console.
async fn connect(s: &Setup, console: Option<&Identity>) -> Raw {
    let pin = s.pki.gateway_ca.pin();
    let (cfg, role) = match console {
        None => (
            rescue_crypto::tls::applet_gateway_client_config(pin).unwrap(),
            Role::Applet,
        ),
        Some(id) => (
            rescue_crypto::tls::console_gateway_client_config(pin, id).unwrap(),
            Role::Console,
        ),
    };
    let tcp = TcpStream::connect(s.gateway.local_addr()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let tls = within(connector.connect(rescue_crypto::tls::server_name(), tcp))
        .await
        .unwrap();
    let mut raw = Framed::new(
        Box::new(tls) as Box<dyn rescue::io::Duplex>,
        GatewayCodec::new(),
    );
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: rescue_proto::wire::signal::Speaker::Peer(role),
    };
    send(&mut raw, Message::Hello(hello)).await;
    assert!(matches!(recv(&mut raw).await, Some(Message::Hello(_))));
    raw
}

async fn send(raw: &mut Raw, msg: Message) {
    within(raw.send(msg)).await.expect("send");
}

/// The next message; `None` when the gateway closed the connection.
async fn recv(raw: &mut Raw) -> Option<Message> {
    match within(raw.next()).await {
        Some(Ok(frame)) => Some(frame.message().expect("well-formed")),
        _ => None,
    }
}

/// The ERROR the gateway sent before closing, if any.
async fn refusal(mut raw: Raw) -> Option<ErrorCode> {
    let mut code = None;
    while let Some(msg) = recv(&mut raw).await {
        if let Message::Error(e) = msg {
            code = Some(e.code);
        }
    }
    code
}

/// A paired session: applet and console hops and both resume secrets.
struct Pair {
    guid: Guid,
    applet: Raw,
    console: Raw,
    applet_secret: ResumeSecret,
    console_secret: ResumeSecret,
}

async fn pair(s: &Setup) -> Pair {
    let issued = s
        .portal
        .issue(&SessionRequest::new(
            ACCOUNT,
            s.pki.account_ca.pin(),
            Policy::default(),
        ))
        .unwrap();
    let mut applet = connect(s, None).await;
    let register = Register::new(issued.ticket.clone()).unwrap();
    send(&mut applet, Message::Register(register)).await;
    let Some(Message::Registered(reg)) = recv(&mut applet).await else {
        panic!("REGISTERED");
    };
    let mut console = connect(s, Some(&s.pki.console)).await;
    let claim = Claim { guid: issued.guid };
    send(&mut console, Message::Claim(claim)).await;
    let Some(Message::Paired(Paired::ToConsole { resume_secret, .. })) = recv(&mut console).await
    else {
        panic!("PAIRED to the console");
    };
    assert!(matches!(
        recv(&mut applet).await,
        Some(Message::Paired(Paired::ToApplet { .. }))
    ));
    Pair {
        guid: issued.guid,
        applet,
        console,
        applet_secret: reg.resume_secret,
        console_secret: resume_secret,
    }
}

async fn data_flows(a: &mut Raw, c: &mut Raw, tag: &'static [u8]) {
    send(a, Message::Data(Bytes::from_static(tag))).await;
    assert_eq!(recv(c).await, Some(Message::Data(Bytes::from_static(tag))));
    send(c, Message::Data(Bytes::from_static(tag))).await;
    assert_eq!(recv(a).await, Some(Message::Data(Bytes::from_static(tag))));
}

async fn reattach(s: &Setup, console: Option<&Identity>, guid: Guid, secret: ResumeSecret) -> Raw {
    let mut raw = connect(s, console).await;
    let resume_secret = secret;
    send(
        &mut raw,
        Message::Reattach(Reattach {
            guid,
            resume_secret,
        }),
    )
    .await;
    raw
}

#[tokio::test]
async fn a_cut_applet_hop_reattaches_and_the_relay_runs_again() {
    let s = start(Duration::from_secs(30)).await;
    let mut p = pair(&s).await;
    data_flows(&mut p.applet, &mut p.console, b"before").await;
    // Abrupt loss: the TCP connection under the applet's TLS goes, no CLOSE.
    drop(p.applet);
    let gone = recv(&mut p.console).await;
    assert!(
        matches!(gone, Some(Message::PeerGone(g)) if g.grace_secs == 30),
        "{gone:?}"
    );
    // Parked, the survivor's PINGs are answered and its DATA (of the dead end-to-end
    // path) is dropped: the returning applet never sees it.
    send(&mut p.console, Message::Ping(Ping { nonce: 77 })).await;
    assert_eq!(
        recv(&mut p.console).await,
        Some(Message::Pong(Pong { nonce: 77 }))
    );
    send(&mut p.console, Message::Data(Bytes::from_static(b"stale"))).await;
    // A PONG after it shows the gateway has read (and dropped) the DATA.
    send(&mut p.console, Message::Ping(Ping { nonce: 78 })).await;
    assert_eq!(
        recv(&mut p.console).await,
        Some(Message::Pong(Pong { nonce: 78 }))
    );
    let mut back = reattach(&s, None, p.guid, p.applet_secret.clone()).await;
    let Some(Message::Resumed(r)) = recv(&mut back).await else {
        panic!("RESUMED");
    };
    assert!(r.paired && r.guid == p.guid);
    assert_ne!(r.resume_secret, p.applet_secret, "a fresh secret");
    assert_eq!(
        recv(&mut p.console).await,
        Some(Message::PeerBack(Default::default()))
    );
    data_flows(&mut back, &mut p.console, b"after").await;
    // The used secret is spent.
    let replay = reattach(&s, None, p.guid, p.applet_secret).await;
    assert_eq!(refusal(replay).await, Some(ErrorCode::BadResume));
    data_flows(&mut back, &mut p.console, b"still").await;
}

#[tokio::test]
async fn a_cut_console_hop_reattaches_with_its_certificate() {
    let s = start(Duration::from_secs(30)).await;
    let mut p = pair(&s).await;
    drop(p.console);
    assert!(matches!(
        recv(&mut p.applet).await,
        Some(Message::PeerGone(_))
    ));
    // Another account's console with the right secret is refused.
    let other = Some(&s.other_console);
    let wrong = reattach(&s, other, p.guid, p.console_secret.clone()).await;
    assert_eq!(refusal(wrong).await, Some(ErrorCode::BadResume));
    let mut back = reattach(&s, Some(&s.pki.console), p.guid, p.console_secret).await;
    assert!(matches!(recv(&mut back).await, Some(Message::Resumed(_))));
    assert_eq!(
        recv(&mut p.applet).await,
        Some(Message::PeerBack(Default::default()))
    );
    data_flows(&mut p.applet, &mut back, b"again").await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_other_sessions_go_on() {
    let s = start(Duration::from_secs(30)).await;
    let mut p = pair(&s).await;
    drop(p.applet);
    assert!(matches!(
        recv(&mut p.console).await,
        Some(Message::PeerGone(_))
    ));
    let wrong = reattach(&s, None, p.guid, ResumeSecret::from_bytes([7; 32])).await;
    assert_eq!(refusal(wrong).await, Some(ErrorCode::BadResume));
    // A console cannot take the applet's place with the applet's secret.
    let console = Some(&s.pki.console);
    let swapped = reattach(&s, console, p.guid, p.applet_secret.clone()).await;
    assert_eq!(refusal(swapped).await, Some(ErrorCode::BadResume));
    // Meanwhile the gateway serves another session.
    let mut q = pair(&s).await;
    data_flows(&mut q.applet, &mut q.console, b"other").await;
    // And the right secret still works.
    let mut back = reattach(&s, None, p.guid, p.applet_secret).await;
    assert!(matches!(recv(&mut back).await, Some(Message::Resumed(_))));
    assert_eq!(
        recv(&mut p.console).await,
        Some(Message::PeerBack(Default::default()))
    );
    data_flows(&mut back, &mut p.console, b"resumed").await;
}

#[tokio::test]
async fn past_the_grace_the_survivor_is_told_and_a_reattach_is_refused() {
    let s = start(Duration::from_millis(300)).await;
    let mut p = pair(&s).await;
    drop(p.applet);
    assert!(matches!(
        recv(&mut p.console).await,
        Some(Message::PeerGone(_))
    ));
    // The grace ends: PEER_GONE{0}, and the console's hop is closed.
    let end = recv(&mut p.console).await;
    assert!(
        matches!(end, Some(Message::PeerGone(g)) if g.grace_secs == 0),
        "{end:?}"
    );
    assert_eq!(recv(&mut p.console).await, None);
    let late = reattach(&s, None, p.guid, p.applet_secret).await;
    assert_eq!(refusal(late).await, Some(ErrorCode::BadResume));
}

/// A TCP proxy in front of the gateway for the applet, so the test can cut the
/// applet's connection abruptly (both sockets dropped, no TLS close).
struct Proxy {
    addr: String,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let list = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Proxy { addr, conns }
    }

    /// Drops every connection made so far.
    fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn a_file_survives_a_cut_of_the_applet_hop_with_both_hashes_and_chat_exactly_once() {
    use rescue::peer::Reconnect;
    use rescue::session::SessionEvent;
    use rescue::session::{ConsentAnswer, ConsentConfig, PathKind, Session, SessionConfig};
    use rescue::Applet;
    use rescue_proto::Permission;
    use session_support::{content, digests, policy, wait_for, GatedReader, Recorder};

    let s = start(Duration::from_secs(30)).await;
    let proxy = Proxy::start(s.gateway.local_addr()).await;
    // The applet goes through the proxy (listed first); the gateway answers to its own
    // address, which the ticket lists too (the gateway binding, PROTOCOL.md 3.11).
    let portal = Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(s.pki.signer.pkcs8()).unwrap(),
        vec![proxy.addr.clone(), s.gateway.local_addr().to_string()],
        s.pki.gateway_ca.pin(),
    );
    let pol = policy(&[Permission::FileTransfer], false);
    let issued = portal
        .issue(&SessionRequest::new(ACCOUNT, s.pki.account_ca.pin(), pol))
        .unwrap();
    let mut timeouts = rescue::PeerTimeouts::default();
    timeouts.connect = Duration::from_secs(2);
    timeouts.reply = Duration::from_secs(2);
    timeouts.inner_setup = Duration::from_secs(5);
    let applet = Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &s.pki.verify_key(),
    )
    .unwrap()
    .with_timeouts(timeouts.clone());
    let gw = s.gateway.local_addr().to_string();
    let pin = s.pki.gateway_ca.pin();
    let registration = within(applet.register()).await.unwrap();
    let console = rescue::Console::connect(&gw, pin, s.pki.console.clone(), timeouts.clone());
    let console = within(console).await.unwrap();
    let (a, c) = within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    let (a, c) = (a.unwrap(), c.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut a_cfg = SessionConfig::applet(&a, pol);
    a_cfg.consent = Some(ConsentConfig::new(rec).with_timeout(Duration::from_secs(5)));
    a_cfg.download_dir = Some(dir.path().to_owned());
    // This test is about resuming through the gateway: no direct path.
    a_cfg.direct.policy = rescue::session::DirectPolicy::Off;
    let mut c_cfg = SessionConfig::console(&c, pol);
    c_cfg.direct.policy = rescue::session::DirectPolicy::Off;
    let (mut a_rc, a_path) = Reconnect::applet(&applet, a, timeouts.clone()).unwrap();
    let (mut c_rc, c_path) =
        Reconnect::console(c, &gw, pin, s.pki.console.clone(), timeouts.clone()).unwrap();
    let mut applet_s = Session::start(a_path, PathKind::Relay, a_cfg);
    let console_s = Session::start(c_path, PathKind::Relay, c_cfg);
    let mut a_ev = applet_s.events().unwrap();

    console_s.chat("before the cut").await.unwrap();
    let g = console_s.request(Permission::FileTransfer).await.unwrap();
    let data = content(3_000_000, None);
    let (reader, gate) = GatedReader::new(data.clone(), 1_200_000);
    console_s
        .send_file(reader, "resumed.bin", data.len() as u64, &g)
        .await
        .unwrap();
    let mut chats = Vec::new();
    // The first MiB has arrived (progress comes per MiB), then the applet's TCP goes
    // while the rest up to the gate may still be in flight.
    wait_for(&mut a_ev, |e| match e {
        SessionEvent::Chat { text } => {
            chats.push(text);
            None
        }
        SessionEvent::FileProgress { done, .. } if done >= 1 << 20 => Some(()),
        _ => None,
    })
    .await;
    proxy.cut();
    console_s.chat("around the cut").await.unwrap();
    let (a_new, c_new) = within(async { tokio::join!(a_rc.reconnect(), c_rc.reconnect()) }).await;
    // The applet's own hop was cut: it came back with REATTACH; the console's hop
    // survived and got PEER_BACK.
    assert_eq!(a_rc.via(), Some(rescue::peer::Via::Reattach));
    assert_eq!(c_rc.via(), Some(rescue::peer::Via::PeerBack));
    applet_s
        .add_path(a_new.unwrap(), PathKind::Relay)
        .await
        .unwrap();
    console_s
        .add_path(c_new.unwrap(), PathKind::Relay)
        .await
        .unwrap();
    gate.send(()).unwrap();
    console_s.chat("after the cut").await.unwrap();
    let file = wait_for(&mut a_ev, |e| match e {
        SessionEvent::Chat { text } => {
            chats.push(text);
            None
        }
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data), "MD5 and SHA-256 match");
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    while chats.len() < 3 {
        let t = wait_for(&mut a_ev, |e| match e {
            SessionEvent::Chat { text } => Some(text),
            _ => None,
        })
        .await;
        chats.push(t);
    }
    assert_eq!(chats, ["before the cut", "around the cut", "after the cut"]);

    // A second cut: the resumed path is resumable again (fresh secret, same path key).
    proxy.cut();
    let (a_new, c_new) = within(async { tokio::join!(a_rc.reconnect(), c_rc.reconnect()) }).await;
    applet_s
        .add_path(a_new.unwrap(), PathKind::Relay)
        .await
        .unwrap();
    console_s
        .add_path(c_new.unwrap(), PathKind::Relay)
        .await
        .unwrap();
    console_s.chat("after the second cut").await.unwrap();
    let t = wait_for(&mut a_ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "after the second cut");
}

#[tokio::test]
async fn a_reattach_displaces_an_old_hop_the_gateway_still_relays() {
    let s = start(Duration::from_secs(30)).await;
    let mut p = pair(&s).await;
    // The applet comes back while its old connection still looks alive to the gateway.
    let mut back = reattach(&s, None, p.guid, p.applet_secret.clone()).await;
    assert!(matches!(recv(&mut back).await, Some(Message::Resumed(_))));
    // The console learns of the change (PEER_GONE from the relay, then PEER_BACK).
    loop {
        match recv(&mut p.console).await {
            Some(Message::PeerBack(_)) => break,
            Some(Message::PeerGone(g)) if g.grace_secs > 0 => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The old hop is closed by the gateway; the new one relays.
    assert_eq!(recv(&mut p.applet).await, None);
    data_flows(&mut back, &mut p.console, b"displaced").await;
}
