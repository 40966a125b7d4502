//! A malicious relay: a gateway double that holds a genuine gateway certificate, accepts
//! the applet's registration, says PAIRED and then terminates the inner TLS itself. The
//! applet must refuse it (its inner TLS pins the account CA).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rescue::Error;
use rescue_crypto::pki::Identity;
use rescue_crypto::tls::{gateway_server_config, inner_server_config, AccountRoots};
use rescue_proto::codec::GatewayCodec;
use rescue_proto::wire::signal::{
    AccountId, Hello, Message, Paired, Registered, ResumeSecret, Speaker, TechnicianName,
};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Serves one applet as a malicious gateway; returns whether its inner handshake
/// (with `inner` as the server identity) succeeded.
async fn malicious_gateway(listener: TcpListener, outer: Identity, inner: Identity) -> bool {
    let (tcp, _) = listener.accept().await.unwrap();
    let cfg = gateway_server_config(&outer, &AccountRoots::new()).unwrap();
    let tls = tokio_rustls::TlsAcceptor::from(cfg)
        .accept(tcp)
        .await
        .unwrap();
    let mut hop = Framed::new(tls, GatewayCodec::new());
    let _hello = hop.next().await.unwrap().unwrap();
    let hello = Hello {
        version: 1,
        role: Speaker::Gateway,
    };
    hop.send(Message::Hello(hello)).await.unwrap();
    let register = hop.next().await.unwrap().unwrap().message().unwrap();
    let Message::Register(r) = register else {
        panic!("expected REGISTER")
    };
    let ticket = rescue_crypto::ticket::decode_body(
        &r.ticket()[..r.ticket().len() - rescue_crypto::ticket::SIGNATURE_LEN],
    )
    .unwrap();
    let registered = Registered {
        guid: ticket.guid,
        lifetime_secs: 60,
        resume_secret: ResumeSecret::from_bytes([0; 32]),
    };
    hop.send(Message::Registered(registered)).await.unwrap();
    let paired = Paired::ToApplet {
        account: AccountId(42),
        technician: TechnicianName::new("alice").unwrap(),
    };
    hop.send(Message::Paired(paired)).await.unwrap();
    let parts = hop.into_parts();
    assert!(parts.read_buf.is_empty());
    let tunnel = rescue::tunnel::DataTunnel::new(parts.io);
    let cfg = inner_server_config(&inner).unwrap();
    tokio_rustls::TlsAcceptor::from(cfg)
        .accept(tunnel)
        .await
        .is_ok()
}

async fn applet_against(setup: &Setup, inner: Identity) -> Error {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mitm = tokio::spawn(malicious_gateway(
        listener,
        setup.pki.gateway.clone(),
        inner,
    ));
    let portal = rescue::Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(setup.pki.signer.pkcs8()).unwrap(),
        vec![addr],
        setup.pki.gateway_ca.pin(),
    );
    let issued = portal.issue(&setup.request()).unwrap();
    let applet = setup.applet(&issued);
    let err = within(async { applet.register().await?.wait_paired().await })
        .await
        .unwrap_err();
    let mitm_ok = within(mitm).await.unwrap();
    assert!(
        !mitm_ok,
        "the malicious gateway completed the inner handshake"
    );
    err
}

#[tokio::test]
async fn an_applet_refuses_a_gateway_presenting_its_own_certificate_inside() {
    let setup = Setup::start().await;
    let err = applet_against(&setup, setup.pki.gateway.clone()).await;
    assert!(matches!(err, Error::Tls(_)), "got {err:?}");
}

#[tokio::test]
async fn an_applet_refuses_a_console_certificate_of_another_account() {
    let setup = Setup::start().await;
    let err = applet_against(&setup, setup.other_console.clone()).await;
    assert!(matches!(err, Error::Tls(_)), "got {err:?}");
}
