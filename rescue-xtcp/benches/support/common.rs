//! Shared pieces of the bulk benchmark: links, outcomes, CPU time, TLS configurations.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring as ring_provider;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Bytes per application write and read.
pub(crate) const CHUNK: usize = 256 << 10;
/// One-way delay of the impaired link (20 ms RTT).
pub(crate) const LOSSY_ONE_WAY: Duration = Duration::from_millis(10);
/// Seed of the impairment proxy: every case sees the same loss pattern generator.
pub(crate) const PROXY_SEED: u64 = 0x5eed;

/// The path a case runs over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Link {
    /// Plain loopback.
    Loopback,
    /// Loopback through the impairment proxy with this loss in each direction and a
    /// 20 ms round trip.
    Lossy(f64),
    /// As `Lossy`, with losses in bursts of this mean length (Gilbert-Elliott).
    Bursty(f64, f64),
}

impl Link {
    pub(crate) fn name(self) -> String {
        match self {
            Link::Loopback => "loopback".to_owned(),
            Link::Lossy(p) => format!("{}% loss, 20 ms RTT", p * 100.0),
            Link::Bursty(p, b) => format!("{}% loss in bursts of {b}, 20 ms RTT", p * 100.0),
        }
    }

    /// The proxy's impairment, `None` on plain loopback.
    pub(crate) fn impairment(self) -> Option<rescue_xtcp::tokio::impair::Impairment> {
        use rescue_xtcp::tokio::impair::Impairment;
        match self {
            Link::Loopback => None,
            Link::Lossy(p) => Some(Impairment::lossy(p, LOSSY_ONE_WAY)),
            Link::Bursty(p, b) => {
                let mut i = Impairment::lossy(p, LOSSY_ONE_WAY);
                i.burst = b;
                Some(i)
            }
        }
    }
}

/// One run: bytes moved, wall time, CPU time of the process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    pub(crate) bytes: u64,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

impl Outcome {
    /// Throughput in MB/s (10^6 bytes per second).
    pub(crate) fn mbps(&self) -> f64 {
        self.bytes as f64 / self.wall.as_secs_f64() / 1e6
    }

    /// CPU seconds per GiB moved.
    pub(crate) fn cpu_per_gib(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.bytes as f64 / (1u64 << 30) as f64)
    }
}

/// The median wall time and the median CPU time of `runs` (each taken separately).
pub(crate) fn median(runs: &[Outcome]) -> Option<Outcome> {
    let first = runs.first()?;
    let mid = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    Some(Outcome {
        bytes: first.bytes,
        wall: mid(runs.iter().map(|o| o.wall).collect()),
        cpu: mid(runs.iter().map(|o| o.cpu).collect()),
    })
}

/// Parses `1073741824`, `64M`, `1G`, `512K`.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 10),
        'M' => (&s[..s.len() - 1], 20),
        'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// User plus system CPU time of this process so far: utime and stime of
/// /proc/self/stat, the same counters `getrusage(RUSAGE_SELF)` reports, in USER_HZ
/// (100 per second on Linux) ticks.
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields after ')' are plain.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

/// The ring provider with only TLS13_AES_256_GCM_SHA384.
pub(crate) fn aes256_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384],
        ..ring_provider::default_provider()
    }
}

/// A self-signed certificate for "localhost" and its key.
pub(crate) fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    (cert.cert.der().clone(), key.into())
}

/// TLS 1.3, AES-256-GCM only, server side.
pub(crate) fn tls_server(
    cert: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(aes256_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.clone_key())
        .expect("server cert");
    // No session tickets: the sending client never reads, and unread tickets make the
    // kernel answer its close with RST.
    config.send_tls13_tickets = 0;
    config
}

/// TLS 1.3, AES-256-GCM only, client side trusting `cert`.
pub(crate) fn tls_client(cert: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    rustls::ClientConfig::builder_with_provider(Arc::new(aes256_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
