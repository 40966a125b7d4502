//! End-to-end over loopback: a full session, what the gateway sees, a peer vanishing,
//! fail-over, shutdown.

mod common;

use common::*;
use rescue::portal::Portal;
use rescue_crypto::ticket::TicketSigner;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn full_session_exchanges_bytes_and_both_sides_show_the_same_sas() {
    let setup = Setup::start().await;
    let (mut a, mut c) = setup.session().await;
    assert_eq!(a.sas(), c.sas());
    assert_eq!(a.guid(), c.guid());
    assert_eq!(a.console().account, ACCOUNT);
    assert_eq!(a.console().technician, "alice");
    exchange(
        &mut a,
        &mut c,
        b"hello from the applet",
        b"hello from the console",
    )
    .await;
    drop((a, c));
    let stats = within(setup.gateway.shutdown()).await;
    assert_eq!(stats.paired, 1);
    assert!(stats.bytes_applet_to_console > b"hello from the applet".len() as u64);
    assert!(stats.bytes_console_to_applet > b"hello from the console".len() as u64);
}

#[tokio::test]
async fn the_gateway_never_sees_end_to_end_plaintext() {
    let setup = Setup::start().await;
    let marker_a = b"MARKER-applet-7d1c0e55-never-in-the-clear";
    let marker_c = b"MARKER-console-40f2a9b1-never-in-the-clear";
    let issued = setup.issue();
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, marker_a, marker_c).await;
    // The tap works: it saw plenty, including plaintext of the outer hop (a ticket).
    let other = setup.issue();
    let _waiting = within(setup.applet(&other).register()).await.unwrap();
    assert!(
        setup.tap.saw(&other.ticket),
        "the tap must see the outer-hop plaintext"
    );
    assert!(setup.tap.total() > 1000);
    assert!(
        !setup.tap.saw(marker_a),
        "applet marker seen by the gateway"
    );
    assert!(
        !setup.tap.saw(marker_c),
        "console marker seen by the gateway"
    );
    drop(issued);
}

#[tokio::test]
async fn a_peer_vanishing_mid_relay_gives_the_other_peer_gone_and_a_clean_end() {
    let setup = Setup::start().await;
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, b"ping", b"pong").await;
    drop(a); // the applet's process dies: TCP closed, no CLOSE, no TLS close_notify
    let mut buf = [0u8; 16];
    let res = within(c.read(&mut buf)).await;
    let err = res.expect_err("the console must see an error, not data or a clean EOF");
    assert!(rescue::tunnel::is_peer_gone(&err), "got {err:?}");
    // The gateway goes on serving.
    let (mut a2, mut c2) = setup.session().await;
    exchange(&mut a2, &mut c2, b"again", b"fine").await;
}

#[tokio::test]
async fn the_applet_fails_over_to_the_next_gateway() {
    let setup = Setup::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let portal = Portal::new(
        TicketSigner::from_pkcs8(setup.pki.signer.pkcs8()).unwrap(),
        vec![dead, setup.addr.clone()],
        setup.pki.gateway_ca.pin(),
    );
    let issued = portal.issue(&setup.request()).unwrap();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    assert_eq!(registration.gateway(), setup.addr);
}

#[tokio::test]
async fn no_reachable_gateway_is_a_typed_error() {
    let setup = Setup::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let portal = Portal::new(
        TicketSigner::from_pkcs8(setup.pki.signer.pkcs8()).unwrap(),
        vec![dead],
        setup.pki.gateway_ca.pin(),
    );
    let issued = portal.issue(&setup.request()).unwrap();
    let err = within(setup.applet(&issued).register()).await.unwrap_err();
    assert!(
        matches!(err, rescue::Error::NoGateway { tried: 1, .. }),
        "got {err:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_waiting_applets_and_stops_accepting() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    let addr = setup.addr.clone();
    let waiting = tokio::spawn(registration.wait_paired());
    let stats = within(setup.gateway.shutdown()).await;
    assert_eq!(stats.registered, 1);
    let err = within(waiting).await.unwrap().unwrap_err();
    assert!(matches!(err, rescue::Error::Closed), "got {err:?}");
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}

#[tokio::test]
async fn an_orderly_end_reaches_the_other_side_as_end_of_stream() {
    use tokio::io::AsyncWriteExt;
    let setup = Setup::start().await;
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, b"bye?", b"bye").await;
    within(a.shutdown()).await.unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        within(c.read(&mut buf)).await.unwrap(),
        0,
        "expected end of stream"
    );
    drop((a, c));
    let stats = within(setup.gateway.shutdown()).await;
    assert_eq!(stats.relays_ended, 1);
}

#[tokio::test]
async fn a_waiting_applet_keeps_its_hop_alive_with_pings() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let mut timeouts = fast_timeouts();
    timeouts.keepalive = std::time::Duration::from_millis(50);
    let applet = setup.applet(&issued).with_timeouts(timeouts);
    let registration = within(applet.register()).await.unwrap();
    let waiting = tokio::spawn(registration.wait_paired());
    // A PING frame header (type 0x09, 8-byte payload) reaches the gateway.
    within(async {
        while !setup.tap.saw(&[0x09, 0x00, 0x00, 0x08]) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let console = setup.console().await;
    let c = within(console.claim(issued.claim_key())).await.unwrap();
    let a = within(waiting).await.unwrap().unwrap();
    assert_eq!(a.sas(), c.sas());
}

#[tokio::test]
async fn a_silent_socket_takes_no_session_slot_and_the_connection_limit_is_enforced() {
    let mut limits = fast_limits();
    limits.max_connections = 2;
    let setup = Setup::start_with(limits).await;
    let issued = setup.issue();
    // A silent TCP peer holds an unauthenticated slot, not one of the two for hops.
    let _silent = tokio::net::TcpStream::connect(&setup.addr).await.unwrap();
    // Slot 1: a waiting applet; slot 2: a console.
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    let console = within(setup.console()).await;
    // A third authenticated connection is refused, naming the limit.
    let third = within(setup.console_with(setup.pki.console.clone())).await;
    match third {
        Err(rescue::Error::Refused { code, message }) => {
            assert_eq!(code, rescue_proto::wire::signal::ErrorCode::Overloaded);
            assert!(message.contains("connection limit"), "{message}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    let (a, c) = within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    assert_eq!(a.unwrap().sas(), c.unwrap().sas());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_stay_separate() {
    let setup = std::sync::Arc::new(Setup::start().await);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            let (mut a, mut c) = setup.session().await;
            let up = vec![i; 100_000];
            let down = vec![i ^ 0xff; 50_000];
            exchange(&mut a, &mut c, &up, &down).await;
            a.guid()
        }));
    }
    let mut guids = Vec::new();
    for t in tasks {
        guids.push(within(t).await.unwrap());
    }
    guids.sort();
    guids.dedup();
    assert_eq!(guids.len(), 8);
    assert_eq!(setup.gateway.stats().paired, 8);
}

#[tokio::test]
async fn shutdown_ends_running_sessions_on_both_sides() {
    let setup = Setup::start().await;
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, b"before", b"shutdown").await;
    // Each side has a reader pending, as an application would, and leaves when its
    // stream ends.
    let ra = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        a.read(&mut buf).await.map(|n| n == 0)
    });
    let rc = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        c.read(&mut buf).await.map(|n| n == 0)
    });
    let stats = within(setup.gateway.shutdown()).await;
    assert_eq!(stats.relays_ended, 1, "the relay must end within the grace");
    // The gateway's CLOSE ends each tunnel: end of stream, or the inner TLS reporting a
    // stream cut without its close_notify; never data.
    let ra = within(ra).await.unwrap();
    let rc = within(rc).await.unwrap();
    assert!(!matches!(ra, Ok(false)), "applet read data after shutdown");
    assert!(!matches!(rc, Ok(false)), "console read data after shutdown");
}
