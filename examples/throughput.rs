//! Measures one session's end-to-end throughput through a gateway on loopback (inner
//! TLS over DATA frames over two outer TLS hops), against the same inner TLS over a
//! direct TCP connection.
//!
//! ```text
//! cargo run --release --example throughput -- --mib 256 --rounds 3
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use rescue::devpki::DevPki;
use rescue::portal::{Portal, SessionRequest};
use rescue::{Applet, Console, Gateway, GatewayConfig, PeerTimeouts};
use rescue_crypto::pki::AccountId;
use rescue_crypto::ticket::TicketSigner;
use rescue_proto::Policy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Application write size: large writes, as kernel TCP and TLS favour.
const CHUNK: usize = 256 * 1024;

#[derive(Parser, Debug)]
struct Args {
    /// MiB sent per round.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Rounds of each case (the median is printed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bytes = args.mib * 1024 * 1024;
    let pki = DevPki::generate(["127.0.0.1"], AccountId(1), "bench")?;
    let mut relayed = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..args.rounds {
        relayed.push(through_gateway(&pki, bytes).await?);
        direct.push(direct_tls(&pki, bytes).await?);
    }
    let (r, d) = (median(&mut relayed), median(&mut direct));
    let rate = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9 * 8.0;
    println!(
        "end-to-end TLS via gateway: {:.2} Gbit/s (median of {})",
        rate(r),
        args.rounds
    );
    println!("end-to-end TLS direct TCP:  {:.2} Gbit/s", rate(d));
    println!(
        "ratio gateway/direct:       {:.2}",
        d.as_secs_f64() / r.as_secs_f64()
    );
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn pump<W: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    mut w: W,
    mut r: R,
    bytes: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let writer = async move {
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            w.write_all(&chunk[..n]).await?;
            left -= n;
        }
        w.flush().await?;
        Ok::<_, std::io::Error>(w)
    };
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        while got < bytes {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            got += n;
        }
        Ok(())
    };
    let (w, r) = tokio::join!(writer, reader);
    r?;
    drop(w?);
    Ok(start.elapsed())
}

async fn through_gateway(
    pki: &DevPki,
    bytes: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let account = pki.account_ca.account();
    let config = GatewayConfig::new(
        pki.gateway.clone(),
        [(account, pki.account_ca.cert().clone())],
        pki.verify_key(),
    );
    let gateway = Gateway::bind("127.0.0.1:0".parse()?, config).await?;
    let addr = gateway.local_addr().to_string();
    let portal = Portal::new(
        TicketSigner::from_pkcs8(pki.signer.pkcs8())?,
        vec![addr.clone()],
        pki.gateway_ca.pin(),
    );
    let issued = portal.issue(&SessionRequest::new(
        account,
        pki.account_ca.pin(),
        Policy::default(),
    ))?;
    let applet = Applet::from_ticket(
        issued.ticket.clone(),
        issued.secret.clone(),
        &pki.verify_key(),
    )?;
    let registration = applet.register().await?;
    let console = Console::connect(
        &addr,
        pki.gateway_ca.pin(),
        pki.console.clone(),
        PeerTimeouts::default(),
    )
    .await?;
    let (a, c) = tokio::join!(
        registration.wait_paired(),
        console.claim(issued.claim_key())
    );
    let t = pump(a?, c?, bytes).await?;
    gateway.shutdown().await;
    Ok(t)
}

async fn direct_tls(pki: &DevPki, bytes: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_cfg = rescue_crypto::tls::inner_server_config(&pki.console)?;
    let client_cfg = rescue_crypto::tls::inner_client_config_account(pki.account_ca.pin())?;
    let server = async {
        let (tcp, _) = listener.accept().await?;
        tokio_rustls::TlsAcceptor::from(server_cfg)
            .accept(tcp)
            .await
    };
    let client = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(client_cfg)
            .connect(rescue_crypto::tls::server_name(), tcp)
            .await
    };
    let (s, c) = tokio::join!(server, client);
    pump(c?, s?, bytes).await
}
