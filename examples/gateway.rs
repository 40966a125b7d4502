//! A rescue gateway on a TCP port, plus the development tools around it.
//!
//! ```text
//! # write a development PKI (gateway CA + cert, account CA, a console cert, the portal's
//! # ticket-signing key) into a folder:
//! cargo run --example gateway -- --init-pki dev-pki
//! # issue a session (the portal's job, done here for development): the ticket for the
//! # applet in session.ticket, the session key for applet and console in session.key
//! cargo run --example gateway -- --pki dev-pki --issue-ticket session.ticket
//! cargo run --example gateway -- --pki dev-pki --issue-ticket s.ticket --allow file_transfer
//! # serve (flags, or a TOML file: see examples/gateway.toml):
//! cargo run --example gateway -- --pki dev-pki --listen 127.0.0.1:7443
//! cargo run --example gateway -- --config examples/gateway.toml
//! # the names tickets list for this gateway (default: the address each connection
//! # arrived on), and where ended sessions' GUIDs are kept across restarts (default:
//! # the PKI folder; the file is `ended-guids`):
//! cargo run --example gateway -- --pki dev-pki --name gw1.example:443 --state-dir /var/lib/rescue
//! cargo run --example gateway -- --pki dev-pki --listen 127.0.0.1:7444 --redis redis://127.0.0.1:6379/ --cluster-name gw-b
//! cargo run --example gateway -- --pki dev-pki --metrics 127.0.0.1:9464
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use rescue::devpki::DevPki;
use rescue::portal::{Portal, SessionRequest};
use rescue::{Gateway, GatewayConfig};
use rescue_crypto::pki::AccountId;
use rescue_proto::{Permission, PermissionSet, Policy};
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(about = "rescue gateway (and development PKI / ticket tools)")]
struct Args {
    /// TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// UDP port of the rendezvous socket (direct UDP paths), on the listen address
    /// (default: the same port number as the TCP listener; 0: any free port).
    #[arg(long, value_name = "PORT")]
    udp_port: Option<u16>,
    /// Development PKI folder to serve with (see --init-pki).
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Folder for the gateway's state: the file `ended-guids` of GUIDs that may not
    /// register again (default: the PKI folder).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A `host:port` name this gateway answers to, as tickets list it (repeatable;
    /// default: the address each connection arrived on).
    #[arg(long = "name", value_name = "HOST:PORT")]
    names: Vec<String>,
    /// Share the session directory with the other gateways of a cluster through this
    /// Redis (`redis://host:port/`); without it the directory is in memory.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// With --redis: this gateway's unique name in the cluster (default: the listen
    /// address).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Write a new development PKI into this folder and exit.
    #[arg(long, value_name = "DIR")]
    init_pki: Option<PathBuf>,
    /// With --init-pki: the account number.
    #[arg(long, default_value_t = 42)]
    account: u64,
    /// With --init-pki: the technician named in the console certificate.
    #[arg(long, default_value = "alice")]
    technician: String,
    /// With --init-pki: names (DNS or IP) in the gateway certificate.
    #[arg(long = "gateway-name", default_value = "127.0.0.1")]
    gateway_names: Vec<String>,
    /// Issue a session into this ticket file (needs --pki) and exit; the session secret
    /// is written beside it with the extension `.key` (the applet and the console each
    /// take it; no gateway ever sees it).
    #[arg(long, value_name = "FILE")]
    issue_ticket: Option<PathBuf>,
    /// With --issue-ticket: gateways the applet tries, in order (host:port).
    #[arg(long = "gateway", default_value = "127.0.0.1:7443")]
    gateways: Vec<String>,
    /// With --issue-ticket: validity in minutes.
    #[arg(long, default_value_t = 30)]
    ticket_minutes: u64,
    /// With --issue-ticket: the permissions the policy allows (comma-separated, e.g.
    /// `file_transfer,desktop_view`); default: all. Anything else is refused unasked.
    #[arg(long, value_delimiter = ',', value_parser = parse_permission)]
    allow: Option<Vec<Permission>>,
}

/// A permission by its snake_case name (as in the audit trail).
fn parse_permission(s: &str) -> Result<Permission, String> {
    Permission::ALL
        .into_iter()
        .find(|p| serde_json::to_value(p).is_ok_and(|v| v == s))
        .ok_or_else(|| format!("unknown permission {s:?}"))
}

/// The TOML configuration file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    udp_port: Option<u16>,
    pki: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    pre_auth_timeout_secs: Option<u64>,
    max_pre_auth_connections: Option<usize>,
    max_pre_auth_per_source: Option<usize>,
    pending_lifetime_secs: Option<u64>,
    console_idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    relay_idle_timeout_secs: Option<u64>,
    relay_max_lifetime_secs: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(dir) = &args.init_pki {
        let pki = DevPki::generate(
            &args.gateway_names,
            AccountId(args.account),
            &args.technician,
        )?;
        pki.write(dir)?;
        println!("development PKI written to {}", dir.display());
        return Ok(());
    }
    let file: FileConfig = match &args.config {
        Some(path) => toml::from_str(&std::fs::read_to_string(path)?)?,
        None => FileConfig::default(),
    };
    let pki_dir = args
        .pki
        .clone()
        .or(file.pki.clone())
        .ok_or("--pki DIR is required")?;
    let pki = DevPki::read(&pki_dir)?;
    if let Some(out) = &args.issue_ticket {
        return issue_ticket(&pki, &args, out);
    }
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443)));
    let state_dir = args
        .state_dir
        .clone()
        .or(file.state_dir.clone())
        .unwrap_or(pki_dir);
    let names = if args.names.is_empty() {
        file.names.clone()
    } else {
        args.names.clone()
    };
    let state = State {
        ended: state_dir.join("ended-guids"),
        names,
        udp_port: args.udp_port.or(file.udp_port),
        redis: args.redis.clone(),
        cluster_name: args.cluster_name.clone(),
        metrics: args.metrics,
    };
    serve(pki, listen, state, &file.limits).await
}

/// Where the gateway keeps its state and which names it answers to.
struct State {
    ended: PathBuf,
    names: Vec<String>,
    udp_port: Option<u16>,
    redis: Option<String>,
    cluster_name: Option<String>,
    metrics: Option<SocketAddr>,
}

fn issue_ticket(
    pki: &DevPki,
    args: &Args,
    out: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let signer = rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8())?;
    let portal = Portal::new(signer, args.gateways.clone(), pki.gateway_ca.pin());
    let allowed = match &args.allow {
        Some(list) => list.iter().copied().collect(),
        None => PermissionSet::ALL,
    };
    let policy = Policy {
        allowed,
        ..Policy::default()
    };
    let mut request = SessionRequest::new(pki.account_ca.account(), pki.account_ca.pin(), policy);
    request.lifetime = Duration::from_secs(args.ticket_minutes.saturating_mul(60));
    let issued = portal.issue(&request)?;
    std::fs::write(out, &issued.ticket)?;
    // The portal would put the key in the applet download and hand it to the console over
    // its authenticated API; here both read one file, written owner-only.
    let key_file = out.with_extension("key");
    write_owner_only(&key_file, issued.claim_key().to_text().as_bytes())?;
    println!(
        "ticket for session {} written to {}, its session key to {}; policy allows {:?}",
        issued.guid,
        out.display(),
        key_file.display(),
        policy.allowed
    );
    Ok(())
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix).
fn write_owner_only(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

async fn serve(
    pki: DevPki,
    listen: SocketAddr,
    state: State,
    limits: &FileLimits,
) -> Result<(), Box<dyn std::error::Error>> {
    let account = pki.account_ca.account();
    let mut config = GatewayConfig::new(
        pki.gateway.clone(),
        [(account, pki.account_ca.cert().clone())],
        pki.verify_key(),
    );
    apply(&mut config, limits);
    config.ended_store = rescue::directory::EndedStore::File(state.ended.clone());
    config.names = state.names;
    config.udp_port = state.udp_port;
    if let Some(url) = &state.redis {
        let name = state.cluster_name.clone().unwrap_or(listen.to_string());
        let mut rc = rescue::directory::RedisConfig::new(url.clone(), name);
        rc.accounts = vec![account];
        let l = &config.limits;
        let table = rescue_proto::handoff::gateway::Limits {
            pending_lifetime: l.pending_lifetime,
            reattach_grace: config.reattach_grace,
            max_sessions: l.max_sessions,
            max_per_account: l.max_sessions_per_account,
            max_ended: l.max_ended,
            max_ended_per_account: l.max_ended_per_account,
        };
        let dir = rescue::directory::RedisDirectory::connect(rc, table).await?;
        println!("session directory shared through {url}");
        config.directory = Some(std::sync::Arc::new(dir));
    }
    if let Some(addr) = state.metrics {
        let mut registry = prometheus_client::registry::Registry::default();
        config.metrics = Some(rescue::gateway::GatewayMetrics::register(&mut registry));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("metrics at http://{}/metrics", listener.local_addr()?);
        tokio::spawn(serve_metrics(listener, std::sync::Arc::new(registry)));
    }
    let gateway = Gateway::bind(listen, config).await?;
    println!(
        "gateway listening on {} (UDP rendezvous on port {}; account {account}; ended GUIDs in {}); Ctrl-C to stop",
        gateway.local_addr(),
        gateway.udp_local_addr().port(),
        state.ended.display()
    );
    tokio::signal::ctrl_c().await?;
    let stats = gateway.shutdown().await;
    println!(
        "stopped: {} connections, {} sessions paired, {} bytes forwarded, {} UDP rendezvous completed",
        stats.connections,
        stats.paired,
        stats.bytes_forwarded(),
        stats.rendezvous.pairs_completed
    );
    Ok(())
}

/// Longest HTTP request head the metrics endpoint reads.
const MAX_METRICS_REQUEST: usize = 4096;
/// Time a metrics client has to send its request.
const METRICS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A minimal HTTP/1.1 endpoint: `GET /metrics` answers the registry's text encoding,
/// anything else 404; one request per connection.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    registry: std::sync::Arc<prometheus_client::registry::Registry>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(METRICS_REQUEST_TIMEOUT, async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_METRICS_REQUEST
                {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let reply = if head.starts_with(b"GET /metrics ") {
                let mut body = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = tcp.write_all(reply.as_bytes()).await;
            let _ = tcp.shutdown().await;
        });
    }
}

fn apply(config: &mut GatewayConfig, f: &FileLimits) {
    let secs = Duration::from_secs;
    let l = &mut config.limits;
    if let Some(v) = f.pre_auth_timeout_secs {
        l.pre_auth_timeout = secs(v);
    }
    if let Some(v) = f.max_pre_auth_connections {
        l.max_pre_auth_connections = v;
    }
    if let Some(v) = f.max_pre_auth_per_source {
        l.max_pre_auth_per_source = v;
    }
    if let Some(v) = f.pending_lifetime_secs {
        l.pending_lifetime = secs(v);
    }
    if let Some(v) = f.console_idle_timeout_secs {
        l.console_idle_timeout = secs(v);
    }
    if let Some(v) = f.max_connections {
        l.max_connections = v;
    }
    if let Some(v) = f.shutdown_grace_secs {
        l.shutdown_grace = secs(v);
    }
    if let Some(v) = f.relay_idle_timeout_secs {
        config.relay = config.relay.clone().with_idle_timeout(secs(v));
    }
    if let Some(v) = f.relay_max_lifetime_secs {
        config.relay = config.relay.clone().with_max_lifetime(secs(v));
    }
}
