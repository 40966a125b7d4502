//! Test harness: a portal on a temporary SQLite file (or a PostgreSQL server started by
//! the test), a manual clock, a low scrypt cost, and requests sent through the router
//! in-process (with a peer address, as the TCP server would give).

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rescue_crypto::password::Cost;
use rescue_crypto::pin::Pin;
use rescue_crypto::ticket::TicketSigner;
use rescue_crypto::totp::Totp;
use rescue_portal::clock::ManualClock;
use rescue_portal::service::NewAccount;
use rescue_portal::tenant::NewTechnician;
use rescue_portal::{Config, Db, MasterKey, Service};
use serde_json::Value;
use tower::ServiceExt;

/// The manual clock's start: a fixed, recent time.
pub const T0: u64 = 1_800_000_000;

/// The test cost: scrypt's minimum (the default stays N=2^17).
pub const TEST_COST: Cost = Cost {
    log_n: 10,
    r: 8,
    p: 1,
};

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.password_cost = TEST_COST;
    c.secure_cookies = false;
    c.allow_private_webhooks = true;
    c.webhook_first_retry_secs = 10;
    c.webhook_max_attempts = 3;
    c
}

pub struct TestPortal {
    pub svc: Service,
    pub app: Router,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub db_path: std::path::PathBuf,
    _pg: Option<Arc<PgServer>>,
}

impl TestPortal {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(test_config()).await
    }

    pub async fn sqlite_with(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("portal.db");
        let url = format!("sqlite://{}?mode=rwc", db_path.display());
        Self::with_url(&url, config, dir, db_path, None).await
    }

    pub async fn postgres(pg: Arc<PgServer>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = pg.fresh_database();
        let p = dir.path().join("none");
        Self::with_url(&url, test_config(), dir, p, Some(pg)).await
    }

    async fn with_url(
        url: &str,
        config: Config,
        dir: tempfile::TempDir,
        db_path: std::path::PathBuf,
        pg: Option<Arc<PgServer>>,
    ) -> Self {
        let db = Db::connect(url).await.unwrap();
        let clock = ManualClock::new(T0);
        let issuer = rescue::Portal::new(
            TicketSigner::generate().unwrap(),
            vec!["127.0.0.1:4433".into()],
            Pin([3; 32]),
        );
        let svc = Service::new(
            db,
            MasterKey::generate().unwrap(),
            config,
            Arc::new(clock.clone()),
            issuer,
        )
        .await
        .unwrap();
        let app = rescue_portal::http::router(svc.clone());
        Self {
            svc,
            app,
            clock,
            dir,
            db_path,
            _pg: pg,
        }
    }

    /// A request from `from` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_from(ip("127.0.0.1"), method, path, token, body)
            .await
    }

    pub async fn call_from(
        &self,
        from: IpAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, bytes) = self.send(from, b.body(body).unwrap()).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    /// Sends a raw request; returns status and body bytes.
    pub async fn send(&self, from: IpAddr, mut req: Request<Body>) -> (StatusCode, Vec<u8>) {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(from, 40000)));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, bytes)
    }

    /// Sends a raw request and returns the whole response.
    pub async fn send_full(
        &self,
        from: IpAddr,
        mut req: Request<Body>,
    ) -> axum::response::Response {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(from, 40000)));
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// The current TOTP code of `tech`.
    pub fn code(&self, tech: &NewTechnician) -> String {
        Totp::standard(&tech.totp_secret)
            .unwrap()
            .code_at(self.svc.now())
    }

    /// Logs `tech` in through the API (then moves the clock one TOTP step, so the next
    /// login has a fresh code); returns the bearer token.
    pub async fn login(&self, tech: &NewTechnician) -> String {
        self.login_from(ip("127.0.0.1"), tech).await
    }

    pub async fn login_from(&self, from: IpAddr, tech: &NewTechnician) -> String {
        let body = serde_json::json!({ "email": tech.email, "password": tech.password, "totp": self.code(tech) });
        let (s, v) = self
            .call_from(from, "POST", "/api/login", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "login: {v}");
        self.clock.advance(30);
        v["token"].as_str().unwrap().to_owned()
    }

    /// A new account with its admin.
    pub async fn account(&self, name: &str) -> NewAccount {
        self.svc
            .create_account(name, &format!("admin@{name}.test"))
            .await
            .unwrap()
    }

    /// A technician (not admin) in the account's default group.
    pub async fn technician(&self, acct: &NewAccount, email: &str) -> NewTechnician {
        let t = rescue_portal::tenant::Tenant::open(&self.svc, acct.id)
            .await
            .unwrap();
        let g = t.groups().await.unwrap()[0].id;
        t.create_technician("test", email, email, g, false)
            .await
            .unwrap()
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A PostgreSQL server in a temporary folder, run as user `postgres` (the server refuses
/// root), on a free port; stopped on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    next_db: std::sync::atomic::AtomicU32,
}

fn pg_bin() -> std::path::PathBuf {
    let base = std::path::Path::new("/usr/lib/postgresql");
    let mut versions: Vec<_> = std::fs::read_dir(base)
        .expect("PostgreSQL is not installed (.ci/deps/portal.sh installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
}

fn as_postgres(bin: &std::path::Path, args: &[&str]) -> std::process::Output {
    let root = is_root();
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().expect("run PostgreSQL tool")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgServer {
    pub fn start() -> Arc<Self> {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "rescue",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let out = as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                &opts,
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Arc::new(Self {
            dir,
            port,
            next_db: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// A fresh database on the server (one per test portal, so tests stay independent).
    pub fn fresh_database(&self) -> String {
        let n = self
            .next_db
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("portal{n}");
        let out = Command::new(pg_bin().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "rescue",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://rescue@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &pg_bin().join("pg_ctl"),
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"],
        );
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
