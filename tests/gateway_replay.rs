//! Ticket replay (issue 7, point 3), with a malicious-but-honest set-up: a party that
//! captured a ticket (as a gateway does from REGISTER) replays it
//! - at the same gateway after its session ended and the gateway restarted (same store
//!   file): refused `GUID taken`;
//! - at the same gateway after a restart while the session was still live: refused too
//!   (the GUID is recorded at REGISTER);
//! - at a gateway the ticket does not list: refused `bad ticket`, naming why.

mod common;
mod gateway_support;

use std::path::Path;
use std::time::Duration;

use common::{fast_limits, fast_timeouts, within, ACCOUNT};
use gateway_support::{error_of, register_raw};
use rescue::devpki::DevPki;
use rescue::directory::EndedStore;
use rescue::portal::{IssuedSession, Portal, SessionRequest};
use rescue::{Applet, Console, Gateway, GatewayConfig};
use rescue_proto::wire::signal::ErrorCode;
use rescue_proto::Policy;

fn config(pki: &DevPki, store: EndedStore) -> GatewayConfig {
    let mut config = GatewayConfig::new(
        pki.gateway.clone(),
        [(ACCOUNT, pki.account_ca.cert().clone())],
        pki.verify_key(),
    );
    config.limits = fast_limits();
    config.ended_store = store;
    config
}

async fn start(pki: &DevPki, addr: &str, file: &Path) -> Gateway {
    let store = EndedStore::File(file.to_owned());
    Gateway::bind(addr.parse().unwrap(), config(pki, store))
        .await
        .unwrap()
}

fn portal(pki: &DevPki, gateways: Vec<String>) -> Portal {
    let signer = rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap();
    Portal::new(signer, gateways, pki.gateway_ca.pin())
}

fn request(pki: &DevPki) -> SessionRequest {
    SessionRequest::new(ACCOUNT, pki.account_ca.pin(), Policy::default())
}

fn applet(pki: &DevPki, issued: &IssuedSession) -> Applet {
    Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &pki.verify_key(),
    )
    .unwrap()
    .with_timeouts(fast_timeouts())
}

async fn wait_no_live_session(gateway: &Gateway) {
    within(async {
        while gateway.stats().live_sessions > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_ticket_of_an_ended_session_is_refused_after_a_restart() {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ended-guids");
    let first = start(&pki, "127.0.0.1:0", &file).await;
    let addr = first.local_addr().to_string();
    let portal = portal(&pki, vec![addr.clone()]);
    let issued = portal.issue(&request(&pki)).unwrap();
    // A whole session, then its end.
    let registration = within(applet(&pki, &issued).register()).await.unwrap();
    let console = Console::connect(
        &addr,
        pki.gateway_ca.pin(),
        pki.console.clone(),
        fast_timeouts(),
    );
    let console = within(console).await.unwrap();
    let (a, c) = within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    drop((a.unwrap(), c.unwrap()));
    wait_no_live_session(&first).await;
    within(first.shutdown()).await;

    // The same gateway again (same address, same store file): the captured ticket is
    // refused, on the wire as the applet library sees it.
    let second = start(&pki, &addr, &file).await;
    let replay = register_raw(&addr, pki.gateway_ca.pin(), &issued.ticket).await;
    let (code, _) = error_of(replay).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::GuidTaken);
    let err = within(applet(&pki, &issued).register()).await.unwrap_err();
    assert_eq!(err.refusal(), Some(ErrorCode::GuidTaken), "{err:?}");
    // Other tickets still register.
    let fresh = portal.issue(&request(&pki)).unwrap();
    within(applet(&pki, &fresh).register()).await.unwrap();
    within(second.shutdown()).await;
}

#[tokio::test]
async fn a_ticket_of_a_session_live_when_the_gateway_stopped_is_refused_after_the_restart() {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ended-guids");
    let first = start(&pki, "127.0.0.1:0", &file).await;
    let addr = first.local_addr().to_string();
    let issued = portal(&pki, vec![addr.clone()])
        .issue(&request(&pki))
        .unwrap();
    let _waiting = within(applet(&pki, &issued).register()).await.unwrap();
    // The gateway goes away without its session ending first (no sync at the end, as
    // a killed process: the record was written at REGISTER).
    drop(first);
    let second = start(&pki, "127.0.0.1:0", &file).await;
    let replay = register_raw(
        &second.local_addr().to_string(),
        pki.gateway_ca.pin(),
        &issued.ticket,
    )
    .await;
    // The ticket lists the first address only, so binding refuses it first; list both
    // names to reach the GUID check.
    let (code, _) = error_of(replay).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::BadTicket);
    within(second.shutdown()).await;
    let mut cfg = config(&pki, EndedStore::File(file.clone()));
    cfg.names = vec![addr.clone()];
    let third = Gateway::bind("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let replay = register_raw(
        &third.local_addr().to_string(),
        pki.gateway_ca.pin(),
        &issued.ticket,
    )
    .await;
    let (code, _) = error_of(replay).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::GuidTaken);
    within(third.shutdown()).await;
}

#[tokio::test]
async fn a_ticket_that_does_not_list_the_gateway_is_refused_naming_why() {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let gateway = Gateway::bind(
        "127.0.0.1:0".parse().unwrap(),
        config(&pki, EndedStore::Memory),
    )
    .await
    .unwrap();
    let addr = gateway.local_addr().to_string();
    // A ticket for another gateway, captured there and replayed here.
    let elsewhere = portal(&pki, vec!["gw-other.example:443".into()])
        .issue(&request(&pki))
        .unwrap();
    let replay = register_raw(&addr, pki.gateway_ca.pin(), &elsewhere.ticket).await;
    let (code, message) = error_of(replay).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::BadTicket);
    assert!(message.contains("does not list this gateway"), "{message}");
    // Names are compared without ASCII case; configured names replace the default.
    let mut cfg = config(&pki, EndedStore::Memory);
    cfg.names = vec!["GW-Other.Example:443".into()];
    let named = Gateway::bind("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let named_addr = named.local_addr().to_string();
    let ok = register_raw(&named_addr, pki.gateway_ca.pin(), &elsewhere.ticket).await;
    let mut ok = ok;
    let reply = within(futures_util::StreamExt::next(&mut ok)).await;
    let first = reply.expect("a frame").expect("a frame").message().unwrap();
    assert!(matches!(
        first,
        rescue_proto::wire::signal::Message::Hello(_)
    ));
    let reply = within(futures_util::StreamExt::next(&mut ok)).await;
    let second = reply.expect("a frame").expect("a frame").message().unwrap();
    assert!(
        matches!(second, rescue_proto::wire::signal::Message::Registered(_)),
        "{second:?}"
    );
    // A ticket listing this gateway's own address registers (the default name).
    let here = portal(&pki, vec![addr.clone()])
        .issue(&request(&pki))
        .unwrap();
    within(applet(&pki, &here).register()).await.unwrap();
    within(gateway.shutdown()).await;
    within(named.shutdown()).await;
}

#[tokio::test]
async fn a_damaged_store_stops_the_gateway_from_starting_with_a_typed_error() {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ended-guids");
    std::fs::write(&file, b"this is not a GUID store").unwrap();
    let res = Gateway::bind(
        "127.0.0.1:0".parse().unwrap(),
        config(&pki, EndedStore::File(file)),
    )
    .await;
    assert!(
        matches!(
            res,
            Err(rescue::Error::GuidStore(
                rescue::directory::StoreError::BadHeader { .. }
            ))
        ),
        "{:?}",
        res.err()
    );
}
