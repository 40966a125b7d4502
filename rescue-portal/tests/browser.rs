//! The admin centre in a real browser: headless Chromium (Debian's `chromium`, driven
//! through `chromedriver`'s WebDriver API) logs in with password and TOTP, changes the
//! one-time password, creates a session, sees the end user waiting in the queue (a real
//! applet registered at a real gateway with the ticket fetched by code), takes it (a real
//! console claims it with the key the page shows and pairs with the applet), opens the
//! session's log, changes a group's policy and sees the change in the admin audit.
//!
//! A screenshot of each page is kept in `$PORTAL_SCREENSHOTS` (default
//! `target/tmp/portal-screenshots`). Fails, never skips, when chromium or chromedriver is
//! missing (`.ci/deps/portal.sh` installs them).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rescue::devpki::DevPki;
use rescue::{Applet, ClaimKey, Console, GatewayConfig, PeerTimeouts};
use rescue_crypto::pki::{AccountId, Identity};
use rescue_portal::clock::{Clock, ManualClock, SystemClock};
use rescue_portal::tenant::Tenant;
use rescue_portal::{Db, MasterKey, Service};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound of every step: the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(30);

/// A minimal HTTP/1.1 client for loopback (WebDriver and the portal's JSON API).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(req.as_bytes()).await?;
        // Read the head, then exactly the body (a server may keep the connection open).
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).await?;
            out.extend_from_slice(&buf[..n]);
            if let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
                let done = match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                    Some(len) => out.len() >= split + 4 + len.trim().parse::<usize>().unwrap_or(0),
                    None if head.contains("transfer-encoding: chunked") => {
                        out.ends_with(b"0\r\n\r\n")
                    }
                    None => n == 0,
                };
                if done {
                    return Ok::<_, std::io::Error>(out);
                }
            }
            if n == 0 {
                return Ok(out);
            }
        }
    };
    let out = tokio::time::timeout(STEP, io)
        .await
        .expect("HTTP timed out")
        .expect("HTTP");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut payload = out[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &payload[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            plain.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 4 + n..];
        }
        payload = plain;
    }
    (
        status,
        serde_json::from_slice(&payload).unwrap_or(Value::Null),
    )
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
    shots: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = common::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed (.ci/deps/portal.sh installs chromium-driver)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut d = Self {
            child,
            addr,
            session: String::new(),
            shots: std::env::var_os("PORTAL_SCREENSHOTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots")
                }),
        };
        std::fs::create_dir_all(&d.shots).unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok();
            if up && http(addr, "GET", "/status", None, None).await.1["value"]["ready"] == true {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--window-size=1100,900"] } } } });
        let (s, v) = http(addr, "POST", "/session", None, Some(&caps)).await;
        assert_eq!(s, 200, "new WebDriver session: {v}");
        d.session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        d
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let (s, v) = http(
            self.addr,
            method,
            &p,
            None,
            Some(&body.unwrap_or(json!({}))),
        )
        .await;
        assert_eq!(s, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), None).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn text(&self, css: &str) -> String {
        let s =
            format!("const e = document.querySelector({css:?}); return e ? e.innerText : null;");
        self.js(&s).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (bounded by [`STEP`]) until the page at `path` has loaded and shows `css`.
    async fn wait_page(&self, path: &str, css: &str) {
        let cond = format!(
            "return document.readyState === 'complete' && location.pathname === {path:?} && !!document.querySelector({css:?});"
        );
        let deadline = Instant::now() + STEP;
        while self.js(&cond).await != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "page {path} with {css} never came; at {} : {}",
                self.path().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn path(&self) -> String {
        self.js("return location.pathname")
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn shot(&self, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None).await;
        let png = STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_centre_works_in_chromium_with_a_real_applet_and_gateway() {
    // Gateway listener first: the portal's tickets name its address.
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_addr = gw_listener.local_addr().unwrap().to_string();
    let pki = DevPki::generate(["127.0.0.1"], AccountId(1), "unused").unwrap();
    let verify_key = pki.verify_key();
    let signer = rescue_crypto::ticket::TicketSigner::from_pkcs8(pki.signer.pkcs8()).unwrap();
    let issuer = rescue::Portal::new(signer, vec![gw_addr.clone()], pki.gateway_ca.pin());

    // The portal, served over TCP on loopback, with the real time on a settable clock.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("p.db").display()
    ))
    .await
    .unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let mut config = common::test_config();
    config.secure_cookies = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal_addr = listener.local_addr().unwrap();
    config.base_url = format!("http://{portal_addr}");
    let svc = Service::new(
        db,
        MasterKey::generate().unwrap(),
        config,
        Arc::new(clock.clone()),
        issuer,
    )
    .await
    .unwrap();
    let acct = svc.create_account("acme", "admin@acme.test").await.unwrap();
    let admin = acct.admin.clone();
    let app = rescue_portal::http::router(svc.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let base = format!("http://{portal_addr}");

    // The console's identity: its own key, a certificate from the portal (CSR, API login).
    let code_now = |c: &ManualClock| {
        rescue_crypto::totp::Totp::standard(&admin.totp_secret)
            .unwrap()
            .code_at(c.now())
    };
    let login =
        json!({ "email": admin.email, "password": admin.password, "totp": code_now(&clock) });
    let (s, v) = http(portal_addr, "POST", "/api/login", None, Some(&login)).await;
    assert_eq!(s, 200, "{v}");
    let api_token = v["token"].as_str().unwrap().to_owned();
    clock.advance(30);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let (s, cert) = http(
        portal_addr,
        "POST",
        "/api/console-cert",
        Some(&api_token),
        Some(&json!({ "csr": STANDARD.encode(csr.der()) })),
    )
    .await;
    assert_eq!(s, 200, "{cert}");
    use rustls_pki_types::pem::PemObject;
    let leaf = rustls_pki_types::CertificateDer::from_pem_slice(
        cert["certificate"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let ca =
        rustls_pki_types::CertificateDer::from_pem_slice(cert["ca"].as_str().unwrap().as_bytes())
            .unwrap();
    let identity = Identity::new(
        vec![leaf, ca.clone()],
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );

    // The gateway serves the portal's account.
    let gw_config = GatewayConfig::new(
        pki.gateway.clone(),
        [(AccountId(acct.id as u64), ca)],
        verify_key,
    );
    let gateway = rescue::Gateway::serve(gw_listener, gw_config).unwrap();

    // 1. Log in with password and TOTP.
    let d = Driver::start().await;
    d.goto(&format!("{base}/login")).await;
    d.wait_page("/login", "#login").await;
    d.shot("01-login").await;
    d.fill("#email", &admin.email).await;
    d.fill("#password", &admin.password).await;
    d.fill("#totp", &code_now(&clock)).await;
    d.click("#login").await;
    // The one-time password must be changed first.
    d.wait_page("/password", "#change").await;
    clock.advance(30);
    d.shot("02-password").await;
    d.fill("#current", &admin.password).await;
    d.fill("#new", "a long new password").await;
    d.click("#change").await;
    d.wait_page("/queue", "#create-session").await;
    d.shot("03-queue-empty").await;

    // 2. Create a session; the page shows the code.
    d.click("#create-session").await;
    d.wait_page("/sessions", "#code").await;
    let code = d.text("#code").await;
    assert_eq!(code.len(), 10, "code {code:?}");
    d.shot("04-session-created").await;

    // 3. The end user's applet fetches its ticket with the code and registers.
    let (s, conf) = http(
        portal_addr,
        "GET",
        &format!("/api/applet/{code}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{conf}");
    let applet_key = ClaimKey::from_text(conf["key"].as_str().unwrap()).unwrap();
    let ticket = STANDARD.decode(conf["ticket"].as_str().unwrap()).unwrap();
    let applet = Applet::from_ticket(ticket, applet_key.secret.clone(), &verify_key).unwrap();
    let registration = tokio::time::timeout(STEP, applet.register())
        .await
        .unwrap()
        .unwrap();

    // 4. The queue shows the waiting end user; take the session.
    d.goto(&format!("{base}/queue")).await;
    d.wait_page("/queue", "#queue").await;
    let queue = d.text("#queue").await;
    assert!(
        queue.contains(&applet_key.guid.to_string()),
        "queue: {queue}"
    );
    assert!(queue.contains("waiting"));
    d.shot("05-queue-waiting").await;
    d.click("#queue .claim").await;
    d.wait_page(
        &format!("/sessions/{}/claim", t_first_id(&svc, acct.id).await),
        "#claim-key",
    )
    .await;
    let shown = d.text("#claim-key").await;
    d.shot("06-session-taken").await;
    let claim = ClaimKey::from_text(&shown).unwrap();
    assert_eq!(claim.guid, applet_key.guid);

    // 5. The console claims through the gateway and pairs with the applet.
    let console = Console::connect(
        &gw_addr,
        pki.gateway_ca.pin(),
        identity,
        PeerTimeouts::default(),
    )
    .await
    .unwrap();
    let (a, c) = tokio::time::timeout(STEP, async {
        tokio::join!(registration.wait_paired(), console.claim(claim))
    })
    .await
    .unwrap();
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(a.sas(), c.sas());
    assert_eq!(a.console().technician, "admin");

    // 6. The console reports the session's events; the log page shows them.
    let t = Tenant::open(&svc, acct.id).await.unwrap();
    let session_id = t_first_id(&svc, acct.id).await;
    let events = json!([{ "kind": "start" }, { "kind": "permission_granted", "permission": "view" },
        { "kind": "chat", "from": "end_user", "text": "thanks <b>a lot</b>" }, { "kind": "end" }]);
    let (s, v) = http(
        portal_addr,
        "POST",
        &format!("/api/sessions/{session_id}/events"),
        Some(&api_token),
        Some(&events),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    d.goto(&format!("{base}/sessions/{session_id}")).await;
    d.wait_page(&format!("/sessions/{session_id}"), "#log")
        .await;
    let log = d.text("#log").await;
    assert!(
        log.contains("granted view") && log.contains("thanks <b>a lot</b>"),
        "log: {log}"
    );
    assert_eq!(d.text("#state").await, "ended");
    d.shot("07-session-log").await;
    drop((a, c));

    // 7. Change the group's policy in the admin page; the audit shows before and after.
    let g = t.groups().await.unwrap()[0].clone();
    assert!(!g.policy.all_in_one);
    d.goto(&format!("{base}/admin")).await;
    d.wait_page("/admin", "#technicians").await;
    d.shot("08-admin").await;
    d.click(&format!("#g{}-aio", g.id)).await;
    d.click(&format!("#g{}-save", g.id)).await;
    // Saving redirects back to the admin page.
    let deadline = Instant::now() + STEP;
    while !t.group(g.id).await.unwrap().policy.all_in_one {
        assert!(Instant::now() < deadline, "the policy change never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.wait_page("/admin", "#technicians").await;
    assert!(t.group(g.id).await.unwrap().policy.all_in_one, "saved");
    d.goto(&format!("{base}/admin/audit")).await;
    d.wait_page("/admin/audit", "#audit").await;
    let audit = d.text("#audit").await;
    assert!(audit.contains("group.update"), "audit: {audit}");
    assert!(
        audit.contains("\"all_in_one\":false") && audit.contains("\"all_in_one\":true"),
        "audit: {audit}"
    );
    d.shot("09-admin-audit").await;
    d.cmd("DELETE", "", None).await;
    gateway.shutdown().await;
}

/// The id of the account's newest session.
async fn t_first_id(svc: &Service, account: i64) -> i64 {
    Tenant::open(svc, account)
        .await
        .unwrap()
        .sessions()
        .await
        .unwrap()[0]
        .id
}
