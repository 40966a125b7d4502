//! Refused registrations and claims: each gets a typed ERROR and a closed connection, and
//! the gateway goes on serving other sessions.

mod common;

use common::*;
use rescue::portal::{Portal, SessionRequest};
use rescue::Error;
use rescue_crypto::ticket::TicketSigner;
use rescue_proto::wire::signal::ErrorCode;
use rescue_proto::{Guid, Policy};

fn refusal(res: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
    match res {
        Err(e) => e
            .refusal()
            .unwrap_or_else(|| panic!("not a refusal: {e:?}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

async fn fresh_session_still_works(setup: &Setup) {
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, b"still", b"serving").await;
}

#[tokio::test]
async fn a_forged_ticket_is_refused() {
    let setup = Setup::start().await;
    let forger = Portal::new(
        TicketSigner::generate().unwrap(),
        vec![setup.addr.clone()],
        setup.pki.gateway_ca.pin(),
    );
    let issued = forger.issue(&setup.request()).unwrap();
    let res = within(setup.unverified_applet(&issued).register()).await;
    assert_eq!(refusal(res), ErrorCode::BadTicket);
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn an_expired_ticket_is_refused() {
    let setup = Setup::start().await;
    let issued = setup.portal.issue_until(&setup.request(), 1_000).unwrap();
    let res = within(setup.unverified_applet(&issued).register()).await;
    assert_eq!(refusal(res), ErrorCode::ExpiredTicket);
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_ticket_for_an_account_the_gateway_does_not_serve_is_refused() {
    let setup = Setup::start().await;
    let req = SessionRequest::new(
        UNSERVED_ACCOUNT,
        setup.pki.account_ca.pin(),
        Policy::default(),
    );
    let issued = setup.portal.issue(&req).unwrap();
    let res = within(setup.applet(&issued).register()).await;
    assert_eq!(refusal(res), ErrorCode::WrongAccount);
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_guid_registered_twice_is_refused() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let first = within(setup.applet(&issued).register()).await.unwrap();
    let res = within(setup.applet(&issued).register()).await;
    assert_eq!(refusal(res), ErrorCode::GuidTaken);
    // The first registration is unharmed: it can still be claimed.
    let console = setup.console().await;
    let (a, c) =
        within(async { tokio::join!(first.wait_paired(), console.claim(issued.claim_key())) })
            .await;
    assert_eq!(a.unwrap().sas(), c.unwrap().sas());
}

#[tokio::test]
async fn claiming_an_unknown_guid_is_refused() {
    let setup = Setup::start().await;
    let console = setup.console().await;
    let key = rescue::ClaimKey {
        guid: Guid::from_bytes([7; 16]),
        secret: setup.issue().secret,
    };
    let res = within(console.claim(key)).await;
    assert_eq!(refusal(res), ErrorCode::UnknownGuid);
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_console_of_another_account_neither_sees_nor_claims_the_session() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let _registration = within(setup.applet(&issued).register()).await.unwrap();
    let mut own = setup.console().await;
    let listed = within(own.queue()).await.unwrap();
    assert!(listed.iter().any(|w| w.guid == issued.guid));
    let mut other = within(setup.console_with(setup.other_console.clone()))
        .await
        .unwrap();
    let listed = within(other.queue()).await.unwrap();
    assert!(
        listed.iter().all(|w| w.guid != issued.guid),
        "leaked across accounts"
    );
    let res = within(other.claim(issued.claim_key())).await;
    assert_eq!(refusal(res), ErrorCode::WrongAccount);
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_second_claim_is_refused() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    let first = setup.console().await;
    let second = setup.console().await;
    let (a, c) =
        within(async { tokio::join!(registration.wait_paired(), first.claim(issued.claim_key())) })
            .await;
    let (mut a, mut c) = (a.unwrap(), c.unwrap());
    let res = within(second.claim(issued.claim_key())).await;
    assert_eq!(refusal(res), ErrorCode::AlreadyClaimed);
    // The paired session is unharmed.
    exchange(&mut a, &mut c, b"first", b"claim").await;
}

#[tokio::test]
async fn a_console_certificate_from_an_unknown_ca_cannot_connect_as_console() {
    let setup = Setup::start().await;
    let stranger = rescue_crypto::pki::AccountCa::generate(UNSERVED_ACCOUNT)
        .unwrap()
        .issue_console_cert("eve", std::time::Duration::from_secs(600))
        .unwrap();
    let res = within(setup.console_with(stranger)).await;
    assert!(res.is_err(), "a console from an unknown CA was accepted");
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn an_unclaimed_session_expires_after_the_pending_lifetime() {
    let mut limits = fast_limits();
    limits.pending_lifetime = std::time::Duration::from_millis(300);
    let setup = Setup::start_with(limits).await;
    let issued = setup.issue();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    let res = within(registration.wait_paired()).await;
    assert_eq!(refusal(res), ErrorCode::Timeout);
    let console = setup.console().await;
    let res = within(console.claim(issued.claim_key())).await;
    assert_eq!(refusal(res), ErrorCode::UnknownGuid);
}

#[tokio::test]
async fn a_ticket_cannot_be_replayed_after_its_session_ended() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    let registration = within(setup.applet(&issued).register()).await.unwrap();
    let console = setup.console().await;
    let (a, c) = within(async {
        tokio::join!(
            registration.wait_paired(),
            console.claim(issued.claim_key())
        )
    })
    .await;
    drop((a.unwrap(), c.unwrap()));
    // Wait until the session has ended (its hops are gone), then replay the ticket.
    within(async {
        while setup.gateway.stats().live_sessions > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let res = within(setup.applet(&issued).register()).await;
    assert_eq!(refusal(res), ErrorCode::GuidTaken);
}

#[tokio::test]
async fn the_applet_refuses_a_forged_ticket_itself() {
    let setup = Setup::start().await;
    let forger = Portal::new(
        TicketSigner::generate().unwrap(),
        vec![setup.addr.clone()],
        setup.pki.gateway_ca.pin(),
    );
    let forged = forger.issue(&setup.request()).unwrap();
    let key = setup.pki.verify_key();
    let err = rescue::Applet::from_ticket(forged.ticket, forged.secret, &key).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Ticket(rescue_crypto::ticket::TicketError::BadSignature)
        ),
        "got {err:?}"
    );
    let genuine = setup.issue();
    let applet = rescue::Applet::from_ticket(genuine.ticket, genuine.secret, &key).unwrap();
    assert_eq!(applet.guid(), genuine.guid);
}
