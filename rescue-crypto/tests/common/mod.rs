//! Handshake helpers shared by the integration tests: two rustls connections driven
//! against each other in memory.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use rescue_crypto::tls;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, Error, ServerConfig, ServerConnection,
};

/// Which side of a handshake failed first.
#[derive(Debug)]
pub enum Failed {
    Client(Error),
    Server(Error),
}

pub fn transfer<A, B>(
    from: &mut ConnectionCommon<A>,
    to: &mut ConnectionCommon<B>,
) -> Result<bool, Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let moved = !buf.is_empty();
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(moved)
}

pub fn connect(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), Failed> {
    let mut c = ClientConnection::new(client, tls::server_name()).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..16 {
        let a = transfer(&mut c, &mut s).map_err(Failed::Server)?;
        let b = transfer(&mut s, &mut c).map_err(Failed::Client)?;
        if !a && !b && !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

pub fn client_err(r: Result<(ClientConnection, ServerConnection), Failed>) -> Error {
    match r {
        Err(Failed::Client(e)) => e,
        Err(Failed::Server(e)) => panic!("server failed first: {e}"),
        Ok(_) => panic!("handshake unexpectedly succeeded"),
    }
}
