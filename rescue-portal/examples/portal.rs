//! Starts the portal on loopback with a fresh SQLite file and prints the first admin's
//! one-time password and TOTP secret.
//!
//! ```text
//! cargo run -p rescue-portal --example portal
//! cargo run -p rescue-portal --example portal -- --listen 127.0.0.1:8080 \
//!     --data portal-data --dev-pki dev-pki --gateway 127.0.0.1:4433
//! ```
//!
//! A whole session with the examples: `cargo run --example gateway -- --init-pki dev-pki`,
//! then `cargo run --example gateway -- --pki dev-pki --listen 127.0.0.1:4433`, this
//! example with `--dev-pki dev-pki --gateway 127.0.0.1:4433`, log in at the printed URL
//! and create a session, then `portal_applet --code CODE` and `portal_console` (their
//! headers say how).
//!
//! Without `--data` everything lives in a temporary folder that is removed on exit. With
//! `--dev-pki DIR` (written by `cargo run --example gateway -- --dev-pki DIR …`) the
//! portal signs tickets with that folder's key and pins its gateway CA, so the
//! development gateway accepts the sessions it issues; otherwise it makes a signing key
//! and writes its verify key to `DATA/ticket-verify.hex`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rescue_crypto::pin::Pin;
use rescue_crypto::ticket::TicketSigner;
use rescue_portal::clock::SystemClock;
use rescue_portal::{Config, Db, MasterKey, Service};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    listen: SocketAddr,
    data: Option<PathBuf>,
    dev_pki: Option<PathBuf>,
    gateway: String,
    admin: String,
}

fn args() -> AnyResult<Args> {
    let mut a = Args {
        listen: "127.0.0.1:8080".parse()?,
        data: None,
        dev_pki: None,
        gateway: "127.0.0.1:4433".into(),
        admin: "admin@example.test".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?.parse()?,
            "--data" => a.data = Some(value()?.into()),
            "--dev-pki" => a.dev_pki = Some(value()?.into()),
            "--gateway" => a.gateway = value()?,
            "--admin" => a.admin = value()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let data = a.data.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&data)?;

    let master_file = data.join("master.key.hex");
    let master = match std::fs::read_to_string(&master_file) {
        Ok(hex_text) => MasterKey::new(&hex::decode(hex_text.trim())?)?,
        Err(_) => {
            let m = MasterKey::generate()?;
            std::fs::write(&master_file, format!("{}\n", hex::encode(m.expose())))?;
            m
        }
    };
    let (signer, gateway_pin, dev_ca) = match &a.dev_pki {
        Some(dir) => {
            let pki = rescue::devpki::DevPki::read(dir)?;
            (pki.signer, pki.gateway_ca.pin(), Some(pki.account_ca))
        }
        None => {
            let s = TicketSigner::generate()?;
            std::fs::write(
                data.join("ticket-verify.hex"),
                format!("{}\n", s.verify_key()),
            )?;
            (s, Pin([0; 32]), None)
        }
    };
    let issuer = rescue::Portal::new(signer, vec![a.gateway.clone()], gateway_pin);

    let db_path = data.join("portal.db");
    let fresh = !db_path.exists();
    let db = Db::connect(&format!("sqlite://{}?mode=rwc", db_path.display())).await?;
    let mut config = Config::default();
    config.base_url = format!("http://{}", a.listen);
    let svc = Service::new(db, master, config, Arc::new(SystemClock), issuer).await?;

    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    println!("portal listening on http://{}", listener.local_addr()?);
    println!("data folder: {}", data.display());
    if fresh {
        // With a development PKI the first account is its account (same id and CA), so
        // the example gateway, which trusts that CA, accepts the portal's consoles.
        let acct = match &dev_ca {
            Some(ca) => svc.import_account("demo account", &a.admin, ca).await?,
            None => svc.create_account("demo account", &a.admin).await?,
        };
        let adm = &acct.admin;
        println!("first admin: {}", adm.email);
        println!("one-time password: {}", adm.password);
        println!("TOTP secret (base32): {}", adm.totp_base32());
        println!(
            "otpauth://totp/rescue:{}?secret={}&issuer=rescue",
            adm.email.replace('@', "%40"),
            adm.totp_base32()
        );
    }
    let _jobs = svc.spawn_jobs(Duration::from_secs(5));
    let app = rescue_portal::http::router(svc);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
