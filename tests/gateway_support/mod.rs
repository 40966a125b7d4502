//! Raw gateway connections for the gateway tests: what a malicious peer (or a malicious
//! gateway that captured a ticket and replays it) sends, byte for byte.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rescue_crypto::pki::Identity;
use rescue_crypto::tls::{
    applet_gateway_client_config, console_gateway_client_config, server_name,
};
use rescue_crypto::Pin;
use rescue_proto::codec::GatewayCodec;
use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::{ErrorCode, Hello, Message, Register, Role, Speaker};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

pub type RawHop = Framed<TlsStream<TcpStream>, GatewayCodec>;

/// Upper bound on a test step.
pub const STEP: Duration = Duration::from_secs(10);

/// An outer TLS connection to `addr`, with the console certificate `cert` if given.
pub async fn raw_hop(addr: &str, pin: Pin, cert: Option<&Identity>) -> RawHop {
    let cfg = match cert {
        Some(id) => console_gateway_client_config(pin, id).unwrap(),
        None => applet_gateway_client_config(pin).unwrap(),
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(cfg).connect(server_name(), tcp),
    )
    .await
    .expect("TLS in time")
    .unwrap();
    Framed::new(tls, GatewayCodec::new())
}

pub async fn send(hop: &mut RawHop, msg: Message) {
    hop.send(&msg).await.unwrap();
}

pub async fn hello(hop: &mut RawHop, role: Speaker) {
    send(
        hop,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            role,
        }),
    )
    .await;
}

/// HELLO as an applet, then REGISTER with these ticket bytes.
pub async fn register_raw(addr: &str, pin: Pin, ticket: &[u8]) -> RawHop {
    let mut hop = raw_hop(addr, pin, None).await;
    hello(&mut hop, Speaker::Peer(Role::Applet)).await;
    send(
        &mut hop,
        Message::Register(Register::new(ticket.to_vec()).unwrap()),
    )
    .await;
    hop
}

/// Reads until the gateway closes; the ERROR it sent (code and text), if any. Fails the
/// test if the connection stays open.
pub async fn error_of(mut hop: RawHop) -> Option<(ErrorCode, String)> {
    let mut got = None;
    tokio::time::timeout(STEP, async {
        while let Some(Ok(frame)) = hop.next().await {
            if let Ok(Message::Error(e)) = frame.message() {
                got = Some((e.code, e.message.as_str().to_owned()));
            }
        }
    })
    .await
    .expect("the gateway closes the connection");
    got
}
