//! Two gateways over one Redis (issue 9, points 2 and 5): QUEUE at either gateway lists
//! the account's waiting sessions across the cluster, a claim at the wrong gateway is
//! refused with the owner named, and when Redis is killed a relayed session keeps
//! running while new set-ups fail at once with a typed refusal, then work again once
//! Redis is back (without a gateway restart).

mod common;
mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use common::{fast_limits, fast_timeouts, within, ACCOUNT, OTHER_ACCOUNT};
use redis_support::RedisServer;
use rescue::devpki::DevPki;
use rescue::directory::{Directory, RedisConfig, RedisDirectory};
use rescue::portal::{Portal, SessionRequest};
use rescue::{Applet, Console, Gateway, GatewayConfig};
use rescue_proto::handoff::gateway::Limits;
use rescue_proto::wire::signal::ErrorCode;
use rescue_proto::Policy;

struct Cluster {
    pki: DevPki,
    /// Held for their lifetime (dropping one does not stop it).
    _gateways: Vec<Gateway>,
    addrs: Vec<String>,
}

async fn cluster(redis: &RedisServer, n: usize) -> Cluster {
    let pki = DevPki::generate(["127.0.0.1"], ACCOUNT, "alice").unwrap();
    let limits = fast_limits();
    let mut gateways = Vec::new();
    for i in 0..n {
        let mut rc = RedisConfig::new(redis.url(), format!("gw-{i}"));
        rc.accounts = vec![ACCOUNT, OTHER_ACCOUNT];
        let table = Limits {
            pending_lifetime: limits.pending_lifetime,
            ..Limits::default()
        };
        let dir = RedisDirectory::connect(rc, table).await.expect("connect");
        let dir: Arc<dyn Directory> = Arc::new(dir);
        let mut config = GatewayConfig::new(
            pki.gateway.clone(),
            [(ACCOUNT, pki.account_ca.cert().clone())],
            pki.verify_key(),
        );
        config.limits = limits.clone();
        config.directory = Some(dir);
        let gw = Gateway::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        gateways.push(gw);
    }
    let addrs = gateways
        .iter()
        .map(|g| g.local_addr().to_string())
        .collect();
    Cluster {
        pki,
        _gateways: gateways,
        addrs,
    }
}

impl Cluster {
    /// A portal whose tickets list `gateways` (indexes), in that order.
    fn portal(&self, gateways: &[usize]) -> Portal {
        let list = gateways.iter().map(|i| self.addrs[*i].clone()).collect();
        Portal::new(
            rescue_crypto::ticket::TicketSigner::from_pkcs8(self.pki.signer.pkcs8()).unwrap(),
            list,
            self.pki.gateway_ca.pin(),
        )
    }

    fn request(&self) -> SessionRequest {
        SessionRequest::new(ACCOUNT, self.pki.account_ca.pin(), Policy::default())
    }

    async fn console(&self, at: usize) -> Console {
        Console::connect(
            &self.addrs[at],
            self.pki.gateway_ca.pin(),
            self.pki.console.clone(),
            fast_timeouts(),
        )
        .await
        .unwrap()
    }

    fn applet(&self, issued: &rescue::portal::IssuedSession) -> Applet {
        Applet::from_ticket(
            issued.ticket.clone(),
            issued.secret.clone(),
            &self.pki.verify_key(),
        )
        .unwrap()
        .with_timeouts(fast_timeouts())
    }
}

#[tokio::test]
async fn queue_spans_the_cluster_and_a_claim_at_the_wrong_gateway_names_the_owner() {
    let redis = RedisServer::start();
    let c = cluster(&redis, 2).await;
    let issued = c.portal(&[0]).issue(&c.request()).unwrap();
    let registration = within(c.applet(&issued).register()).await.unwrap();
    // QUEUE at gateway 1 lists the session waiting at gateway 0.
    let mut at_1 = c.console(1).await;
    let queue = within(at_1.queue()).await.unwrap();
    assert_eq!(
        queue.iter().map(|w| w.guid).collect::<Vec<_>>(),
        vec![issued.guid]
    );
    let wrong = within(at_1.claim(issued.claim_key())).await;
    let err = wrong.expect_err("refused at the wrong gateway");
    assert_eq!(err.refusal(), Some(ErrorCode::UnknownGuid), "{err}");
    assert!(err.to_string().contains("gw-0"), "names the owner: {err}");
    // At the owner, the claim pairs.
    let at_0 = c.console(0).await;
    let (a, s) =
        within(async { tokio::join!(registration.wait_paired(), at_0.claim(issued.claim_key())) })
            .await;
    let (mut a, mut s) = (a.unwrap(), s.unwrap());
    common::exchange(&mut a, &mut s, b"over gw-0", b"back").await;
}

#[tokio::test]
async fn with_redis_dead_relays_run_and_set_ups_fail_fast_then_work_again() {
    let mut redis = RedisServer::start();
    let c = cluster(&redis, 2).await;
    let portal = c.portal(&[0]);
    let issued = portal.issue(&c.request()).unwrap();
    let registration = within(c.applet(&issued).register()).await.unwrap();
    let console = c.console(0).await;
    let (a, s) = within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    let (mut a, mut s) = (a.unwrap(), s.unwrap());
    common::exchange(&mut a, &mut s, b"before", b"the kill").await;

    redis.kill();
    // The relayed session does not touch the store.
    common::exchange(&mut a, &mut s, b"while redis", b"is dead").await;
    // A new set-up is refused at once, typed (the store's name stays in the log).
    let next = portal.issue(&c.request()).unwrap();
    let started = std::time::Instant::now();
    let refused = within(c.applet(&next).register()).await;
    let err = refused.expect_err("REGISTER refused while the store is down");
    assert_eq!(err.refusal(), Some(ErrorCode::Overloaded), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Back (empty, no persistence): a ticket issued now registers, with no restart of
    // the gateways; the store's first answers after the restart may still fail.
    redis.restart();
    let mut registered = None;
    for _ in 0..20 {
        let fresh = portal.issue(&c.request()).unwrap();
        if let Ok(r) = within(c.applet(&fresh).register()).await {
            registered = Some(r);
            break;
        }
        // Retry backoff while the store's connection manager reconnects.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        registered.is_some(),
        "set-ups work again once Redis is back"
    );
    common::exchange(&mut a, &mut s, b"after", b"the restart").await;
}
