//! Limits against guessing (issue 9, point 7; PROTOCOL.md section 5): a source that
//! failed `MAX_REGISTER_FAILURES_PER_SOURCE` REGISTERs, or `MAX_CLAIM_FAILURES_PER_SOURCE`
//! CLAIMs, in one `FAILURE_WINDOW` is refused `overloaded` even with a valid request,
//! and others are not.

mod common;
mod gateway_support;

use std::time::Duration;

use common::{within, Setup};
use rescue::Console;
use rescue_proto::wire::limits::{MAX_CLAIM_FAILURES_PER_SOURCE, MAX_REGISTER_FAILURES_PER_SOURCE};
use rescue_proto::wire::signal::ErrorCode;

#[tokio::test]
async fn a_source_of_failed_registrations_is_refused_then_even_with_a_good_ticket() {
    let setup = Setup::start().await;
    let pin = setup.pki.gateway_ca.pin();
    for i in 0..MAX_REGISTER_FAILURES_PER_SOURCE {
        let hop = gateway_support::register_raw(&setup.addr, pin, b"not a ticket").await;
        let code = gateway_support::error_of(hop).await.map(|(c, _)| c);
        assert_eq!(code, Some(ErrorCode::BadTicket), "failure {i}");
    }
    let good = setup.issue();
    let hop = gateway_support::register_raw(&setup.addr, pin, &good.ticket).await;
    let (code, text) = gateway_support::error_of(hop).await.expect("refused");
    assert_eq!(code, ErrorCode::Overloaded, "{text}");
    assert!(text.contains("failed registrations"), "{text}");
}

#[tokio::test]
async fn a_source_of_failed_claims_is_refused_then_even_for_a_waiting_session() {
    let setup = Setup::start().await;
    let mut timeouts = common::fast_timeouts();
    timeouts.claim_wait = Duration::ZERO;
    let console = || {
        Console::connect(
            &setup.addr,
            setup.pki.gateway_ca.pin(),
            setup.pki.console.clone(),
            timeouts.clone(),
        )
    };
    for i in 0..MAX_CLAIM_FAILURES_PER_SOURCE {
        // A session issued but never registered: its GUID is unknown to the gateway.
        let unknown = setup.issue();
        let c = console().await.unwrap();
        let err = within(c.claim(unknown.claim_key()))
            .await
            .expect_err("unknown");
        assert_eq!(
            err.refusal(),
            Some(ErrorCode::UnknownGuid),
            "failure {i}: {err}"
        );
    }
    let issued = setup.issue();
    let _registration = within(setup.applet(&issued).register()).await.unwrap();
    let c = console().await.unwrap();
    let err = within(c.claim(issued.claim_key()))
        .await
        .expect_err("limited");
    assert_eq!(err.refusal(), Some(ErrorCode::Overloaded), "{err}");
    // The applet side (registrations) is not limited by the consoles' failures.
    let other = setup.issue();
    within(setup.applet(&other).register())
        .await
        .expect("REGISTER still works");
}
