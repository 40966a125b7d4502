//! Session set-up time through a gateway on loopback: the time from an issued ticket to
//! both end-to-end streams (REGISTER, console HELLO and CLAIM, PAIRED, inner TLS, BIND
//! and SAS), beside one raw TLS 1.3 handshake (rustls, the same certificate and
//! provider, loopback TCP) measured in the same run as the baseline.
//!
//! `cargo bench --bench setup`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rescue::devpki::DevPki;
use rescue::portal::{Portal, SessionRequest};
use rescue::{Applet, Console, Gateway, GatewayConfig, PeerTimeouts};
use rescue_crypto::pki::AccountId;
use rescue_proto::Policy;
use tokio::runtime::Runtime;

const ACCOUNT: AccountId = AccountId(42);

struct Bed {
    pki: DevPki,
    portal: Portal,
    gateway: Gateway,
    addr: String,
}

fn bed(rt: &Runtime) -> Bed {
    rt.block_on(async {
        let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
        let config = GatewayConfig::new(
            pki.gateway.clone(),
            [(ACCOUNT, pki.account_ca.cert().clone())],
            pki.verify_key(),
        );
        let gateway = Gateway::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let addr = gateway.local_addr().to_string();
        let signer = rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap();
        let portal = Portal::new(signer, vec![addr.clone()], pki.gateway_ca.pin());
        Bed {
            pki,
            portal,
            gateway,
            addr,
        }
    })
}

/// One whole pairing: register, connect the console, claim, both sides set up.
async fn pairing(bed: &Bed) {
    let req = SessionRequest::new(ACCOUNT, bed.pki.account_ca.pin(), Policy::default());
    let issued = bed.portal.issue(&req).unwrap();
    let key = bed.pki.verify_key();
    let applet = Applet::from_ticket(issued.ticket.clone(), issued.secret.clone(), &key).unwrap();
    let registration = applet.register().await.unwrap();
    let console = Console::connect(
        &bed.addr,
        bed.pki.gateway_ca.pin(),
        bed.pki.console.clone(),
        PeerTimeouts::default(),
    )
    .await
    .unwrap();
    let (a, c) = tokio::join!(
        registration.wait_paired(),
        console.claim(issued.claim_key())
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(a.sas(), c.sas());
}

/// A TLS 1.3 server on loopback that completes handshakes and drops them.
fn tls_server(rt: &Runtime, bed: &Bed) -> std::net::SocketAddr {
    rt.block_on(async {
        let roots = rescue_crypto::tls::AccountRoots::new();
        let cfg = rescue_crypto::tls::gateway_server_config(&bed.pki.gateway, &roots).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        // Wait for the client's close so its handshake ends first.
                        let mut b = [0u8; 1];
                        let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut b).await;
                    }
                });
            }
        });
        addr
    })
}

async fn tls_handshake(addr: std::net::SocketAddr, cfg: Arc<rustls::ClientConfig>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(rescue_crypto::tls::server_name(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

fn setup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bed = bed(&rt);
    let server = tls_server(&rt, &bed);
    let client =
        rescue_crypto::tls::applet_gateway_client_config(bed.pki.gateway_ca.pin()).unwrap();
    let mut g = c.benchmark_group("setup");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("raw_tls13_handshake", |b| {
        b.iter(|| rt.block_on(tls_handshake(server, client.clone())));
    });
    g.bench_function("pairing_through_gateway", |b| {
        b.iter(|| rt.block_on(pairing(&bed)));
    });
    g.finish();
    let stats = bed.gateway.stats();
    println!("gateway paired {} sessions", stats.paired);
}

criterion_group!(benches, setup);
criterion_main!(benches);
