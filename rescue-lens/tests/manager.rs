//! The session manager over loopback HTTP (PROTOCOL.md 9.4): the whole life of a meeting
//! with portal-signed requests, and every refusal happening before the body is parsed.

use std::time::Duration;

use rescue_crypto::ticket::TicketSigner;
use rescue_lens::client::{generate_key, ClientError, Subscriber};
use rescue_lens::manager::{raw_call, CallError, Manager, ManagerClient};
use rescue_lens::signed::{sign_request, RequestVerifier};
use rescue_lens::{Lens, LensConfig, LensRole};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

struct Service {
    lens: Lens,
    api: String,
    relay: String,
    portal_pkcs8: Vec<u8>,
}

impl Service {
    fn portal(&self) -> TicketSigner {
        TicketSigner::from_pkcs8(&self.portal_pkcs8).unwrap()
    }
    fn client(&self) -> ManagerClient {
        ManagerClient::new(&self.api, self.portal())
    }
}

async fn service() -> Service {
    let portal = TicketSigner::generate().unwrap();
    let lens = Lens::new(LensConfig::default(), TicketSigner::generate().unwrap());
    let mgr = Manager::new(
        lens.clone(),
        RequestVerifier::new(vec![portal.verify_key()]),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { mgr.serve(l).await });
    let r = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = r.local_addr().unwrap().to_string();
    let me = lens.clone();
    tokio::spawn(async move { me.serve_relay(r).await });
    Service {
        lens,
        api,
        relay,
        portal_pkcs8: portal.pkcs8().to_vec(),
    }
}

#[tokio::test]
async fn create_join_leave_delete_with_signed_requests() {
    let s = service().await;
    let c = s.client();
    let m = c
        .create("0123abcd-4567-89ef-0011-223344556677")
        .await
        .unwrap();
    assert_eq!(s.lens.meetings(), 1);
    let app = c.join(&m, LensRole::App).await.unwrap();
    assert!(
        matches!(c.join(&m, LensRole::App).await, Err(CallError::Status(409))),
        "one app per meeting"
    );
    let con = c.join(&m, LensRole::Console).await.unwrap();
    assert_ne!(app.participant, con.participant);
    let key = generate_key(m, 1);
    let mut sub = Subscriber::connect(&s.relay, &con.token, &key)
        .await
        .unwrap();
    // Leaving closes the connection with BYE 2 (left).
    c.leave(&m, con.participant).await.unwrap();
    let r = tokio::time::timeout(WAIT, sub.recv()).await.unwrap();
    assert!(matches!(r, Err(ClientError::Bye(2))), "{r:?}");
    assert!(matches!(
        c.leave(&m, con.participant).await,
        Err(CallError::Status(404))
    ));
    // A token of the meeting does not work once it is deleted.
    let con2 = c.join(&m, LensRole::Console).await.unwrap();
    c.delete(&m).await.unwrap();
    assert_eq!(s.lens.meetings(), 0);
    let r = Subscriber::connect(&s.relay, &con2.token, &key).await;
    assert!(matches!(r, Err(ClientError::Bye(1))), "{:?}", r.err());
    assert!(matches!(c.delete(&m).await, Err(CallError::Status(404))));
    assert!(matches!(
        c.join(&m, LensRole::Console).await,
        Err(CallError::Status(404))
    ));
}

#[tokio::test]
async fn unsigned_foreign_replayed_and_stale_requests_are_refused_before_parsing() {
    let s = service().await;
    // Not JSON at all: a 400 would mean the body was parsed; 401 means it was not.
    let garbage = b"{not json";
    let (st, _) = raw_call(&s.api, "POST", "/lens", &[], garbage)
        .await
        .unwrap();
    assert_eq!(st, 401, "unsigned");
    let other = TicketSigner::generate().unwrap();
    let h = sign_request(&other, "POST", "/lens", garbage, rescue_lens::unix_now());
    let (st, _) = raw_call(&s.api, "POST", "/lens", &h, garbage)
        .await
        .unwrap();
    assert_eq!(st, 401, "signed by another key");
    let now = rescue_lens::unix_now();
    let h = sign_request(&s.portal(), "POST", "/lens", garbage, now - 3600);
    let (st, _) = raw_call(&s.api, "POST", "/lens", &h, garbage)
        .await
        .unwrap();
    assert_eq!(st, 409, "stale");
    // Signed properly, the same body is now parsed and refused as malformed.
    let h = sign_request(&s.portal(), "POST", "/lens", garbage, now);
    let (st, _) = raw_call(&s.api, "POST", "/lens", &h, garbage)
        .await
        .unwrap();
    assert_eq!(st, 400);
    // A valid request works once; its replay is refused.
    let body = br#"{"session":"s1"}"#;
    let h = sign_request(&s.portal(), "POST", "/lens", body, now);
    let (st, _) = raw_call(&s.api, "POST", "/lens", &h, body).await.unwrap();
    assert_eq!(st, 201);
    let (st, _) = raw_call(&s.api, "POST", "/lens", &h, body).await.unwrap();
    assert_eq!(st, 409, "replay");
    assert_eq!(s.lens.meetings(), 1);
    // A signature for one path does not serve another.
    let h = sign_request(&s.portal(), "DELETE", "/lens/00", b"", now);
    let (st, _) = raw_call(&s.api, "DELETE", "/lens/11", &h, b"")
        .await
        .unwrap();
    assert_eq!(st, 401);
    // Too large a body is refused before it is read.
    let big = vec![b'x'; 5000];
    let (st, _) = raw_call(&s.api, "POST", "/lens", &[], &big).await.unwrap();
    assert_eq!(st, 413);
}
