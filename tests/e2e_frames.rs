//! Bad bytes on the outer hop: garbage before HELLO, an oversize frame, a truncated
//! frame, a silent peer. Each gets a typed ERROR (where one can be sent) and a closed
//! connection; the gateway goes on serving.

mod common;

use common::*;
use rescue_proto::wire::signal::ErrorCode;
use tokio::io::AsyncWriteExt;

async fn fresh_session_still_works(setup: &Setup) {
    let (mut a, mut c) = setup.session().await;
    exchange(&mut a, &mut c, b"still", b"serving").await;
}

#[tokio::test]
async fn garbage_before_hello_is_a_protocol_violation() {
    let setup = Setup::start().await;
    let mut s = raw_applet(&setup).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::ProtocolViolation));
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn an_oversize_frame_is_refused_from_its_header() {
    let setup = Setup::start().await;
    let mut s = raw_applet(&setup).await;
    // HELLO type with a 16 MiB - 1 length: refused before anything is buffered.
    s.write_all(&[0x01, 0xff, 0xff, 0xff]).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::ProtocolViolation));
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_truncated_frame_is_refused() {
    let setup = Setup::start().await;
    let mut s = raw_applet(&setup).await;
    // HELLO announcing 3 payload bytes, only 1 sent, then the write side closed.
    s.write_all(&[0x01, 0x00, 0x00, 0x03, 0x00]).await.unwrap();
    s.flush().await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::ProtocolViolation));
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_malformed_hello_payload_is_refused() {
    let setup = Setup::start().await;
    let mut s = raw_applet(&setup).await;
    // HELLO with a role code that does not exist.
    s.write_all(&[0x01, 0x00, 0x00, 0x03, 0x00, 0x01, 0x7f])
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::ProtocolViolation));
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_peer_that_opens_tls_and_says_nothing_is_timed_out() {
    let setup = Setup::start().await;
    let s = raw_applet(&setup).await;
    let started = std::time::Instant::now();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::Timeout));
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn a_peer_that_never_starts_tls_is_dropped() {
    let setup = Setup::start().await;
    let mut tcp = tokio::net::TcpStream::connect(&setup.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = within(tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)).await;
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the gateway must close a silent TCP peer"
    );
    fresh_session_still_works(&setup).await;
}

#[tokio::test]
async fn an_applet_sending_a_console_request_is_refused() {
    let setup = Setup::start().await;
    let issued = setup.issue();
    // A valid applet registers, then a raw applet sends QUEUE (console-only) after HELLO.
    let _r = within(setup.applet(&issued).register()).await.unwrap();
    let mut s = raw_applet(&setup).await;
    s.write_all(&[0x01, 0x00, 0x00, 0x03, 0x00, 0x01, 0x01])
        .await
        .unwrap(); // HELLO v1 applet
    s.write_all(&[0x04, 0x00, 0x00, 0x00]).await.unwrap(); // QUEUE
    s.flush().await.unwrap();
    assert_eq!(refusal_of(s).await, Some(ErrorCode::ProtocolViolation));
}
