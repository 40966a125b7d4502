//! tokio-rustls over `XtcpStream`: TLS 1.3 with TLS13_AES_256_GCM_SHA384 only (ring
//! provider), a self-signed rcgen certificate, data both ways, clean close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rescue_xtcp::tokio::{SocketConfig, XtcpSocket};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const WAIT: Duration = Duration::from_secs(30);

fn aes256_only() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
        ..ring::default_provider()
    })
}

fn configs() -> (rustls::ServerConfig, rustls::ClientConfig) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key: PrivateKeyDer<'static> =
        PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into();
    let server = rustls::ServerConfig::builder_with_provider(aes256_only())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(aes256_only())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_runs_over_xtcp_with_aes_256_gcm() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = XtcpSocket::bind(any).unwrap();
    let client = XtcpSocket::bind_with(any, SocketConfig::listening(false)).unwrap();
    let (server_tls, client_tls) = configs();
    let acceptor = TlsAcceptor::from(Arc::new(server_tls));
    let connector = TlsConnector::from(Arc::new(client_tls));
    let len = 3 << 20;
    let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();

    let server_side = async {
        let tcp = server.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        assert_eq!(
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
        );
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        // Answer with a digest-like summary: length and a checksum, then close.
        let sum: u64 = got.iter().map(|b| u64::from(*b)).sum();
        tls.write_all(&(got.len() as u64).to_be_bytes()).await?;
        tls.write_all(&sum.to_be_bytes()).await?;
        tls.shutdown().await?;
        std::io::Result::Ok(got)
    };
    let client_side = async {
        let tcp = client.connect(server.local_addr()).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(&payload).await?;
        tls.shutdown().await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let (got, answer) =
        tokio::time::timeout(WAIT, async { tokio::try_join!(server_side, client_side) })
            .await
            .expect("TLS over XTCP timed out")
            .expect("TLS over XTCP failed");
    assert!(got == payload, "server received different bytes");
    let sum: u64 = payload.iter().map(|b| u64::from(*b)).sum();
    let mut want = (len as u64).to_be_bytes().to_vec();
    want.extend_from_slice(&sum.to_be_bytes());
    assert_eq!(answer, want);
}
