//! A malicious gateway operator (issue 7 point 1): a gateway double that holds the
//! genuine gateway key and account roots, so real applets and consoles connect to it and
//! it sees every ticket in REGISTER. It tries to pose as an end: it plays the applet with
//! a captured ticket, swaps two sessions, or plays the console (even with a genuine
//! console certificate of the account, as a colluding technician would lend it). Each
//! time the honest end refuses with `Error::BindMismatch`: BIND is keyed by the session
//! secret K, which travels with the ticket to the applet and through the portal to the
//! console, never through a gateway.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rescue::Error;
use rescue_crypto::bind::{bind_tag, Exporter, SessionSecret};
use rescue_crypto::msg::InnerMsg;
use rescue_crypto::pki::Identity;
use rescue_crypto::ticket::{decode_body, Ticket, SIGNATURE_LEN};
use rescue_crypto::tls::{gateway_server_config, AccountRoots};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::wire::signal::{
    Hello, Message, Paired, Registered, ResumeSecret, Role, Speaker, TechnicianName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Framed;

type Hop = Framed<TlsStream<tokio::net::TcpStream>, GatewayCodec>;

/// The rogue gateway's listener, serving with the genuine gateway identity.
struct Rogue {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    addr: String,
}

impl Rogue {
    async fn start(setup: &Setup) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut roots = AccountRoots::new();
        roots.add(ACCOUNT, setup.pki.account_ca.cert().clone());
        let cfg = gateway_server_config(&setup.pki.gateway, &roots).unwrap();
        Self {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(cfg),
            addr,
        }
    }

    /// Accepts one hop, exchanges HELLO; returns the hop and who it is.
    async fn accept(&self) -> (Hop, Speaker) {
        let (tcp, _) = self.listener.accept().await.unwrap();
        let tls = self.acceptor.accept(tcp).await.unwrap();
        let mut hop = Framed::new(tls, GatewayCodec::new());
        let Message::Hello(h) = next(&mut hop).await else {
            panic!("expected HELLO")
        };
        let ours = Hello {
            version: 1,
            role: Speaker::Gateway,
        };
        hop.send(Message::Hello(ours)).await.unwrap();
        (hop, h.role)
    }

    /// Accepts an applet and answers its REGISTER; returns the hop and the captured
    /// ticket, exactly what an honest gateway learns.
    async fn accept_applet(&self) -> (Hop, Ticket) {
        let (mut hop, role) = self.accept().await;
        assert_eq!(role, Speaker::Peer(Role::Applet));
        let Message::Register(r) = next(&mut hop).await else {
            panic!("expected REGISTER")
        };
        let bytes = r.ticket();
        let ticket = decode_body(&bytes[..bytes.len() - SIGNATURE_LEN]).unwrap();
        let registered = Registered {
            guid: ticket.guid,
            lifetime_secs: 60,
            resume_secret: ResumeSecret::from_bytes([1; 32]),
        };
        hop.send(Message::Registered(registered)).await.unwrap();
        (hop, ticket)
    }

    /// Accepts a console and reads its CLAIM; answers PAIRED for the claimed GUID.
    async fn accept_console_claim(&self) -> (Hop, rescue_proto::Guid) {
        let (mut hop, role) = self.accept().await;
        assert_eq!(role, Speaker::Peer(Role::Console));
        let Message::Claim(c) = next(&mut hop).await else {
            panic!("expected CLAIM")
        };
        let paired = Paired::ToConsole {
            guid: c.guid,
            resume_secret: ResumeSecret::from_bytes([2; 32]),
        };
        hop.send(Message::Paired(paired)).await.unwrap();
        (hop, c.guid)
    }
}

async fn next(hop: &mut Hop) -> Message {
    hop.next().await.unwrap().unwrap().message().unwrap()
}

fn paired_to_applet() -> Message {
    Message::Paired(Paired::ToApplet {
        account: ACCOUNT,
        technician: TechnicianName::new("alice").unwrap(),
    })
}

/// The DATA tunnel over a rogue hop (nothing may be buffered beyond PAIRED).
fn tunnel(hop: Hop) -> rescue::tunnel::DataTunnel<TlsStream<tokio::net::TcpStream>> {
    let parts = hop.into_parts();
    assert!(parts.read_buf.is_empty());
    rescue::tunnel::DataTunnel::new(parts.io)
}

/// The rogue's best BIND: it knows the exporter of its own inner TLS and the GUID, not
/// K. It sends the tag that BIND keyed by the exporter alone (before K) accepted, and
/// the tests also try a tag keyed by a guessed K.
fn forged_bind<D>(
    conn: &rustls::ConnectionCommon<D>,
    guid: &rescue_proto::Guid,
    as_role: Role,
    guess_k: bool,
) -> Vec<u8> {
    let tag = if guess_k {
        let exporter = Exporter::from_connection(conn, guid).unwrap();
        bind_tag(
            &SessionSecret::generate().unwrap(),
            &exporter,
            guid,
            as_role,
        )
    } else {
        let e = conn
            .export_keying_material([0u8; 32], b"EXPORTER-rescue-bind", Some(guid.as_bytes()))
            .unwrap();
        let mut msg = b"rescue-bind-v1".to_vec();
        msg.extend_from_slice(guid.as_bytes());
        msg.push(as_role.code());
        let t = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &e), &msg);
        t.as_ref().try_into().unwrap()
    };
    InnerMsg::Bind { role: as_role, tag }.encode()
}

/// Issues a session whose ticket lists only the rogue gateway.
fn issue_at(setup: &Setup, rogue: &Rogue) -> rescue::portal::IssuedSession {
    let portal = rescue::Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(setup.pki.signer.pkcs8()).unwrap(),
        vec![rogue.addr.clone()],
        setup.pki.gateway_ca.pin(),
    );
    portal.issue(&setup.request()).unwrap()
}

/// A real console that connects to the rogue and claims `key`'s session (in a task:
/// the rogue serves one connection at a time).
fn claim_at(
    setup: &Setup,
    rogue: &Rogue,
    key: rescue::ClaimKey,
) -> tokio::task::JoinHandle<Result<rescue::ConsoleSession, Error>> {
    let (addr, pin, id) = (
        rogue.addr.clone(),
        setup.pki.gateway_ca.pin(),
        setup.pki.console.clone(),
    );
    tokio::spawn(async move {
        let console = rescue::Console::connect(&addr, pin, id, fast_timeouts()).await?;
        console.claim(key).await
    })
}

#[tokio::test]
async fn a_gateway_that_registers_a_captured_ticket_and_plays_the_applet_is_refused() {
    for guess_k in [false, true] {
        plays_the_applet(guess_k).await;
    }
}

async fn plays_the_applet(guess_k: bool) {
    let setup = Setup::start().await;
    let rogue = Rogue::start(&setup).await;
    let issued = issue_at(&setup, &rogue);
    // The real applet registers; the rogue keeps it waiting and keeps its ticket.
    let applet = setup.applet(&issued);
    let waiting = tokio::spawn(async move { applet.register().await?.wait_paired().await });
    let (_applet_hop, ticket) = within(rogue.accept_applet()).await;

    // The technician claims the session (the portal gave the console the GUID and K).
    let claim = claim_at(&setup, &rogue, issued.claim_key());
    let (hop, guid) = within(rogue.accept_console_claim()).await;
    assert_eq!(guid, ticket.guid);

    // The rogue plays the applet: inner TLS as client, pinning the account CA it read
    // from the ticket (this succeeds: the console's certificate is genuine) ...
    let cfg = rescue_crypto::tls::inner_client_config_account(ticket.account_ca_pin).unwrap();
    let mut tls = within(
        tokio_rustls::TlsConnector::from(cfg)
            .connect(rescue_crypto::tls::server_name(), tunnel(hop)),
    )
    .await
    .expect("the rogue completes the inner handshake as the applet");
    // ... but its BIND, made without K, is refused.
    let bind = forged_bind(tls.get_ref().1, &guid, Role::Applet, guess_k);
    tls.write_all(&bind).await.unwrap();
    tls.flush().await.unwrap();
    let err = within(claim).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::BindMismatch), "got {err:?}");
    // The console sent its own BIND first; the rogue cannot use it elsewhere (it is
    // keyed to this TLS connection's exporter), and the console sent nothing after it.
    let mut rest = Vec::new();
    let _ = within(tls.read_to_end(&mut rest)).await;
    assert!(
        rest.len() <= 34,
        "the console sent more than its BIND: {} bytes",
        rest.len()
    );
    waiting.abort();
}

#[tokio::test]
async fn a_gateway_that_swaps_two_sessions_is_refused_by_both_ends() {
    let setup = Setup::start().await;
    let rogue = Rogue::start(&setup).await;
    let (x, y) = (issue_at(&setup, &rogue), issue_at(&setup, &rogue));
    let applet_y = setup.applet(&y);
    let waiting_y = tokio::spawn(async move { applet_y.register().await?.wait_paired().await });
    let (mut hop_y, ticket_y) = within(rogue.accept_applet()).await;
    assert_eq!(ticket_y.guid, y.guid);

    // The console claims X; the rogue pairs it with applet Y and relays between them.
    let claim_x = claim_at(&setup, &rogue, x.claim_key());
    let (hop_c, guid) = within(rogue.accept_console_claim()).await;
    assert_eq!(guid, x.guid);
    hop_y.send(paired_to_applet()).await.unwrap();
    let (mut a, mut c) = (hop_y.into_parts().io, hop_c.into_parts().io);
    let relay = tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut a, &mut c).await;
    });

    let console_err = within(claim_x).await.unwrap().unwrap_err();
    assert!(
        matches!(console_err, Error::BindMismatch),
        "console got {console_err:?}"
    );
    let applet_err = within(waiting_y).await.unwrap().unwrap_err();
    assert!(
        matches!(
            applet_err,
            Error::BindMismatch | Error::Closed | Error::PeerGone
        ),
        "applet got {applet_err:?}"
    );
    relay.abort();
}

/// The rogue answers the applet's registration with PAIRED and plays the console with
/// `identity` in the inner TLS; returns the applet's error.
async fn rogue_plays_the_console(
    setup: &Setup,
    identity: Identity,
    guess_k: bool,
) -> (Error, bool) {
    let rogue = Rogue::start(setup).await;
    let issued = issue_at(setup, &rogue);
    let applet = setup.applet(&issued);
    let waiting = tokio::spawn(async move { applet.register().await?.wait_paired().await });
    let (mut hop, ticket) = within(rogue.accept_applet()).await;
    hop.send(paired_to_applet()).await.unwrap();
    let cfg = rescue_crypto::tls::inner_server_config(&identity).unwrap();
    let handshake = within(tokio_rustls::TlsAcceptor::from(cfg).accept(tunnel(hop))).await;
    let tls_ok = handshake.is_ok();
    if let Ok(mut tls) = handshake {
        let bind = forged_bind(tls.get_ref().1, &ticket.guid, Role::Console, guess_k);
        let _ = tls.write_all(&bind).await;
        let _ = tls.flush().await;
        let err = within(waiting).await.unwrap().unwrap_err();
        return (err, tls_ok);
    }
    (within(waiting).await.unwrap().unwrap_err(), tls_ok)
}

#[tokio::test]
async fn a_gateway_that_plays_the_console_with_a_genuine_console_certificate_is_refused() {
    let setup = Setup::start().await;
    // The strongest rogue: a valid console certificate of the account (lent by a
    // colluding technician). The inner TLS succeeds; BIND without K does not.
    for guess_k in [false, true] {
        let (err, tls_ok) =
            rogue_plays_the_console(&setup, setup.pki.console.clone(), guess_k).await;
        assert!(tls_ok, "the rogue's inner handshake should succeed");
        assert!(matches!(err, Error::BindMismatch), "got {err:?}");
    }
}

#[tokio::test]
async fn a_gateway_that_plays_the_console_with_its_own_certificate_is_refused() {
    let setup = Setup::start().await;
    let (err, tls_ok) = rogue_plays_the_console(&setup, setup.pki.gateway.clone(), false).await;
    assert!(!tls_ok);
    assert!(matches!(err, Error::Tls(_)), "got {err:?}");
}

#[tokio::test]
async fn the_honest_path_through_the_real_gateway_still_binds() {
    let setup = Setup::start().await;
    let (a, c) = setup.session().await;
    assert_eq!(a.sas(), c.sas());
}
