//! The Redis backend of the session directory (issue 9, points 2 and 5), against a real
//! redis-server started by each test: REGISTER and CLAIM atomic across gateways, QUEUE
//! across the cluster, keys grouped by account with TTLs, a dead store failing fast
//! with a typed error and recovering, and a store restarted empty refusing tickets that
//! predate it.

mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_support::RedisServer;
use rescue::directory::{Directory, DirectoryError, RedisConfig, RedisDirectory, RememberedGuid};
use rescue_proto::handoff::gateway::{Limits, RegisterRequest};
use rescue_proto::handoff::{ConsoleIdentity, HopId, TableError};
use rescue_proto::wire::signal::{AccountId, ResumeSecret, TechnicianName};
use rescue_proto::Guid;

const ACCOUNT: AccountId = AccountId(42);
const OTHER: AccountId = AccountId(43);
/// A ticket lifetime the tests use (the hold-off after an empty restart is shorter).
const TICKET: Duration = Duration::from_secs(1200);
const HOLD: Duration = Duration::from_secs(300);

fn guid(b: u8) -> Guid {
    Guid::from_bytes([b; 16])
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn gateway(server: &RedisServer, name: &str) -> Arc<RedisDirectory> {
    let mut config = RedisConfig::new(server.url(), name);
    config.accounts = vec![ACCOUNT, OTHER];
    config.max_ticket_lifetime = HOLD;
    let dir = RedisDirectory::connect(config, Limits::default())
        .await
        .expect("connect");
    Arc::new(dir)
}

/// REGISTER of `g` for `account` on hop `hop`, with a ticket valid for `valid`.
async fn register(
    dir: &RedisDirectory,
    g: Guid,
    account: AccountId,
    hop: u64,
    valid: Duration,
) -> Result<(), DirectoryError> {
    register_until(dir, g, account, hop, unix_now() + valid.as_secs()).await
}

/// REGISTER with a ticket that expires at `expires_unix`.
async fn register_until(
    dir: &RedisDirectory,
    g: Guid,
    account: AccountId,
    hop: u64,
    expires_unix: u64,
) -> Result<(), DirectoryError> {
    let now = Instant::now();
    let valid = Duration::from_secs(expires_unix.saturating_sub(unix_now()));
    let req = RegisterRequest {
        guid: g,
        account,
        ticket_expires: now + valid,
        hop: HopId(hop),
        resume_secret: ResumeSecret::from_bytes([hop as u8; 32]),
    };
    let record = RememberedGuid {
        guid: g,
        account,
        expires_unix,
    };
    dir.register(now, req, &record).await.map(|_| ())
}

fn console(account: AccountId) -> ConsoleIdentity {
    ConsoleIdentity {
        account,
        technician: TechnicianName::new("alice".to_string()).unwrap(),
    }
}

async fn claim(
    dir: &RedisDirectory,
    g: Guid,
    account: AccountId,
    hop: u64,
) -> Result<(), DirectoryError> {
    let secret = ResumeSecret::from_bytes([9; 32]);
    dir.claim(Instant::now(), g, console(account), HopId(hop), secret)
        .await
        .map(|_| ())
}

fn is_table(r: &Result<(), DirectoryError>, want: TableError) -> bool {
    matches!(r, Err(DirectoryError::Table(e)) if *e == want)
}

#[tokio::test]
async fn a_guid_registers_once_across_the_cluster_even_when_raced() {
    let server = RedisServer::start();
    let (a, b) = (
        gateway(&server, "gw-a").await,
        gateway(&server, "gw-b").await,
    );
    register(&a, guid(1), ACCOUNT, 1, TICKET)
        .await
        .expect("first REGISTER");
    let again = register(&b, guid(1), ACCOUNT, 1, TICKET).await;
    assert!(is_table(&again, TableError::GuidTaken), "{again:?}");
    // Sixteen gateways' worth of REGISTERs of one fresh GUID at once: one wins.
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let dir = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            register(&dir, guid(2), ACCOUNT, 100 + i, TICKET).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(e) => assert!(
                matches!(e, DirectoryError::Table(TableError::GuidTaken)),
                "{e:?}"
            ),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn queue_lists_the_accounts_waiting_sessions_across_the_cluster_only() {
    let server = RedisServer::start();
    let (a, b) = (
        gateway(&server, "gw-a").await,
        gateway(&server, "gw-b").await,
    );
    register(&a, guid(1), ACCOUNT, 1, TICKET).await.unwrap();
    register(&b, guid(2), ACCOUNT, 1, TICKET).await.unwrap();
    register(&b, guid(3), OTHER, 2, TICKET).await.unwrap();
    for dir in [&a, &b] {
        let q = dir.queue(Instant::now(), &ACCOUNT).await.unwrap();
        let mut got: Vec<Guid> = q.entries().iter().map(|e| e.guid).collect();
        got.sort();
        assert_eq!(got, vec![guid(1), guid(2)]);
    }
    let q = a.queue(Instant::now(), &OTHER).await.unwrap();
    assert_eq!(q.entries().len(), 1);
    // Claimed sessions leave the queue.
    claim(&a, guid(1), ACCOUNT, 10).await.unwrap();
    let q = b.queue(Instant::now(), &ACCOUNT).await.unwrap();
    assert_eq!(
        q.entries().iter().map(|e| e.guid).collect::<Vec<_>>(),
        vec![guid(2)]
    );
}

#[tokio::test]
async fn a_claim_succeeds_once_at_the_owner_and_names_the_owner_elsewhere() {
    let server = RedisServer::start();
    let (a, b) = (
        gateway(&server, "gw-a").await,
        gateway(&server, "gw-b").await,
    );
    register(&a, guid(1), ACCOUNT, 1, TICKET).await.unwrap();
    let at_b = claim(&b, guid(1), ACCOUNT, 10).await;
    assert!(
        matches!(&at_b, Err(DirectoryError::Elsewhere { owner }) if owner == "gw-a"),
        "{at_b:?}"
    );
    let other_account = claim(&a, guid(1), OTHER, 11).await;
    assert!(
        is_table(&other_account, TableError::UnknownGuid),
        "{other_account:?}"
    );
    claim(&a, guid(1), ACCOUNT, 12)
        .await
        .expect("claim at the owner");
    let twice = claim(&a, guid(1), ACCOUNT, 13).await;
    assert!(is_table(&twice, TableError::AlreadyClaimed), "{twice:?}");
    let unknown = claim(&a, guid(9), ACCOUNT, 14).await;
    assert!(is_table(&unknown, TableError::UnknownGuid), "{unknown:?}");
}

#[tokio::test]
async fn keys_are_grouped_by_account_and_carry_ttls_and_closing_removes_the_session() {
    let server = RedisServer::start();
    let a = gateway(&server, "gw-a").await;
    register(&a, guid(1), ACCOUNT, 1, TICKET).await.unwrap();
    let keys = server.raw(&["KEYS", "*"]);
    let names: Vec<&str> = keys.lines().filter(|l| l.starts_with("rescue:")).collect();
    assert!(names.len() >= 4, "{keys}");
    assert!(
        names
            .iter()
            .all(|k| k.contains("{42}") || k.contains("{43}")),
        "{names:?}"
    );
    let hex = "01".repeat(16);
    let s = format!("rescue:{{42}}:s:{hex}");
    let used = format!("rescue:{{42}}:used:{hex}");
    let ttl = |k: &str| -> i64 {
        let r = server.raw(&["PTTL", k]);
        r.trim().trim_start_matches(':').parse().unwrap_or(-9)
    };
    let pending = Limits::default().pending_lifetime.as_millis() as i64;
    let (s_ttl, used_ttl) = (ttl(&s), ttl(&used));
    assert!(s_ttl > 0 && s_ttl <= pending, "session TTL {s_ttl}");
    assert!(
        used_ttl > pending && used_ttl <= TICKET.as_millis() as i64 + 1000,
        "used TTL {used_ttl}"
    );
    // CLOSE ends the session: its entry goes, the GUID stays used.
    a.close(
        Instant::now(),
        HopId(1),
        rescue_proto::wire::signal::CloseReason::Normal,
    )
    .await
    .unwrap();
    assert_eq!(ttl(&s), -2, "session key removed");
    assert!(ttl(&used) > 0, "GUID still remembered");
    let again = register(&a, guid(1), ACCOUNT, 2, TICKET).await;
    assert!(is_table(&again, TableError::GuidTaken), "{again:?}");
}

#[tokio::test]
async fn a_dead_store_fails_set_ups_fast_with_a_typed_error_and_they_work_again_after() {
    let mut server = RedisServer::start();
    let a = gateway(&server, "gw-a").await;
    register(&a, guid(1), ACCOUNT, 1, TICKET).await.unwrap();
    server.kill();
    let started = Instant::now();
    let r = register(&a, guid(2), ACCOUNT, 2, TICKET).await;
    let took = started.elapsed();
    match &r {
        Err(DirectoryError::Timeout { store, .. } | DirectoryError::Unavailable { store, .. }) => {
            assert!(
                store.contains(&server.port().to_string()),
                "names the store: {store}"
            )
        }
        other => panic!("a typed store error, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "failed fast: {took:?}");
    let q = a.queue(Instant::now(), &ACCOUNT).await;
    assert!(q.is_err(), "QUEUE fails too");
    // Back (empty: no persistence), without a new directory: set-ups work again with a
    // ticket issued after the restart.
    server.restart();
    let fresh = HOLD + Duration::from_secs(60);
    let mut ok = false;
    for i in 0..20u64 {
        if register(&a, guid(3), ACCOUNT, 3 + i, fresh).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "REGISTER works again once the store is back");
}

#[tokio::test]
async fn a_store_restarted_empty_refuses_tickets_that_predate_it() {
    let mut server = RedisServer::start();
    let (a, b) = (
        gateway(&server, "gw-a").await,
        gateway(&server, "gw-b").await,
    );
    // The cluster has run for a while (its epoch is a minute old).
    let epoch = (unix_now() - 60) * 1000;
    server.raw(&["SET", "rescue:{42}:epoch", &epoch.to_string()]);
    // A ticket issued two seconds ago (a full lifetime of HOLD), registered at A
    // before the crash; the store forgets it.
    let expires = unix_now() + HOLD.as_secs() - 2;
    register_until(&a, guid(1), ACCOUNT, 1, expires)
        .await
        .unwrap();
    server.restart();
    // The same ticket at B after the restart: refused, not handed out twice.
    let mut last = None;
    for _ in 0..20 {
        let r = register_until(&b, guid(1), ACCOUNT, 1, expires).await;
        if !matches!(
            r,
            Err(DirectoryError::Timeout { .. } | DirectoryError::Unavailable { .. })
        ) {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = last.expect("the store answers again");
    assert!(
        matches!(r, Err(DirectoryError::StoreRestarted { .. })),
        "{r:?}"
    );
    // A ticket issued after the restart (expiring past epoch + hold) registers.
    register(&b, guid(2), ACCOUNT, 2, HOLD + Duration::from_secs(5))
        .await
        .expect("a fresh ticket");
}
