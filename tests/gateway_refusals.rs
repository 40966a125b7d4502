//! Gateway refusals of issue 7: the HELLO codes per role (PROTOCOL.md 3.1) and the
//! limits of remembered GUIDs, each refused with its own ERROR text, only for the
//! account over its quota (point 4).

mod common;
mod gateway_support;

use common::*;
use gateway_support::{error_of, hello, raw_hop, register_raw};
use rescue::portal::SessionRequest;
use rescue_proto::wire::signal::{ErrorCode, Role, Speaker};
use rescue_proto::Policy;

#[tokio::test]
async fn a_console_hello_without_a_certificate_is_wrong_account() {
    let setup = Setup::start().await;
    let mut hop = raw_hop(&setup.addr, setup.pki.gateway_ca.pin(), None).await;
    hello(&mut hop, Speaker::Peer(Role::Console)).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::WrongAccount, "{message}");
}

#[tokio::test]
async fn an_applet_hello_with_a_client_certificate_is_a_protocol_violation() {
    let setup = Setup::start().await;
    let cert = setup.pki.console.clone();
    let mut hop = raw_hop(&setup.addr, setup.pki.gateway_ca.pin(), Some(&cert)).await;
    hello(&mut hop, Speaker::Peer(Role::Applet)).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::ProtocolViolation, "{message}");
}

#[tokio::test]
async fn a_gateway_hello_from_a_client_is_a_protocol_violation() {
    let setup = Setup::start().await;
    let mut hop = raw_hop(&setup.addr, setup.pki.gateway_ca.pin(), None).await;
    hello(&mut hop, Speaker::Gateway).await;
    let (code, _) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::ProtocolViolation);
}

/// Registers one session with a ticket for `req` and lets the applet leave.
async fn register_and_leave(setup: &Setup, req: &SessionRequest) {
    let issued = setup.portal.issue(req).unwrap();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    drop(registration);
    within(async {
        while setup.gateway.stats().live_sessions > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn only_the_account_over_its_remembered_quota_is_refused_and_the_error_says_so() {
    let mut limits = fast_limits();
    limits.max_ended_per_account = 3;
    limits.max_ended = 5;
    let setup = Setup::start_with(limits).await;
    let busy = setup.request();
    let quiet = SessionRequest::new(OTHER_ACCOUNT, setup.other_ca.pin(), Policy::default());
    for _ in 0..3 {
        register_and_leave(&setup, &busy).await;
    }
    assert_eq!(setup.gateway.stats().live_sessions, 0);
    // The busy account is refused, naming its quota (with no live session at all).
    let issued = setup.portal.issue(&busy).unwrap();
    let hop = register_raw(&setup.addr, setup.pki.gateway_ca.pin(), &issued.ticket).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::Overloaded);
    assert_eq!(message, "account remembered GUID quota reached");
    // The other account registers.
    register_and_leave(&setup, &quiet).await;
    register_and_leave(&setup, &quiet).await;
    // Now the gateway's capacity (5) is reached: every account is refused, and told so.
    let issued = setup.portal.issue(&quiet).unwrap();
    let hop = register_raw(&setup.addr, setup.pki.gateway_ca.pin(), &issued.ticket).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::Overloaded);
    assert_eq!(message, "remembered GUID capacity reached");
}

#[tokio::test]
async fn the_session_limits_name_themselves_too() {
    let mut limits = fast_limits();
    limits.max_sessions_per_account = 1;
    let setup = Setup::start_with(limits).await;
    let first = setup.issue();
    let _a = within(setup.applet(&first).register()).await.unwrap();
    let second = setup.issue();
    let hop = register_raw(&setup.addr, setup.pki.gateway_ca.pin(), &second.ticket).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::Overloaded);
    assert_eq!(message, "account session quota reached");
    // Another account is not affected by that quota.
    let other = SessionRequest::new(OTHER_ACCOUNT, setup.other_ca.pin(), Policy::default());
    let b = setup.portal.issue(&other).unwrap();
    let _b = within(setup.applet(&b).register()).await.unwrap();

    let mut limits = fast_limits();
    limits.max_sessions = 1;
    let setup = Setup::start_with(limits).await;
    let first = setup.issue();
    let _a = within(setup.applet(&first).register()).await.unwrap();
    let other = SessionRequest::new(OTHER_ACCOUNT, setup.other_ca.pin(), Policy::default());
    let b = setup.portal.issue(&other).unwrap();
    let hop = register_raw(&setup.addr, setup.pki.gateway_ca.pin(), &b.ticket).await;
    let (code, message) = error_of(hop).await.expect("an ERROR");
    assert_eq!(code, ErrorCode::Overloaded);
    assert_eq!(message, "gateway session limit reached");
}
