//! The gateway's Prometheus metrics (issue 9, point 6; the `metrics` feature, on by
//! default): a session's set-up, its relayed bytes, the waiting and relaying gauges and
//! refusals by code show in the registry's text encoding.

mod common;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rescue::gateway::GatewayMetrics;
use rescue::{Gateway, GatewayConfig};

/// The value of the sample line starting with `name` (labels included), if any.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_session_and_a_refusal_show_in_the_metrics() {
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let setup = common::Setup::start().await;
    // A second gateway of the same PKI, with metrics.
    let mut config = GatewayConfig::new(
        setup.pki.gateway.clone(),
        [(common::ACCOUNT, setup.pki.account_ca.cert().clone())],
        setup.pki.verify_key(),
    );
    config.limits = common::fast_limits();
    config.metrics = Some(metrics);
    let gw = Gateway::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = gw.local_addr().to_string();
    let portal = rescue::portal::Portal::new(
        rescue_crypto::ticket::TicketSigner::from_pkcs8(setup.pki.signer.pkcs8()).unwrap(),
        vec![addr.clone()],
        setup.pki.gateway_ca.pin(),
    );
    let issued = portal.issue(&setup.request()).unwrap();
    let registration = common::within(setup.applet(&issued).register())
        .await
        .unwrap();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        sample(&text, "rescue_gateway_sessions_waiting"),
        Some(1.0),
        "{text}"
    );
    let console = rescue::Console::connect(
        &addr,
        setup.pki.gateway_ca.pin(),
        setup.pki.console.clone(),
        common::fast_timeouts(),
    )
    .await
    .unwrap();
    let (a, c) = common::within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    let (mut a, mut c) = (a.unwrap(), c.unwrap());
    common::exchange(&mut a, &mut c, b"metrics", b"please").await;
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        sample(&text, "rescue_gateway_sessions_waiting"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rescue_gateway_sessions_relaying"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rescue_gateway_setups_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rescue_gateway_register_seconds_count"),
        Some(1.0),
        "{text}"
    );
    // The same ticket again: refused `guid taken`, counted by its code.
    let again = common::within(setup.applet(&issued).register()).await;
    assert!(again.is_err());
    drop((a, c));
    let stats = gw.shutdown().await;
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        sample(&text, "rescue_gateway_refusals_total{code=\"GuidTaken\"}").is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rescue_gateway_sessions_relaying"),
        Some(0.0),
        "{text}"
    );
    let relayed = sample(
        &text,
        "rescue_gateway_relayed_bytes_total{dir=\"applet_to_console\"}",
    );
    assert!(
        relayed.is_some_and(|b| b > 0.0 && b <= stats.bytes_forwarded() as f64),
        "{text}"
    );
}
