//! The session API over a real gateway: applet and console meet, run TLS end to end,
//! and a `Session` on each side chats, asks and grants, and moves a verified file.

mod common;
mod session_support;

use std::time::Duration;

use common::*;
use rescue::session::SessionEvent;
use rescue::session::{
    ConsentAnswer, ConsentConfig, DirectPolicy, PathKind, Session, SessionConfig,
};
use rescue_proto::Permission;
use session_support::{content, digests, policy, wait_for, Recorder};

#[tokio::test]
async fn chat_consent_and_a_verified_file_through_the_gateway() {
    let setup = Setup::start().await;
    let (a, c) = setup.session().await;
    assert_eq!(a.sas(), c.sas());
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let pol = policy(&[Permission::FileTransfer], false);
    let mut a_cfg = SessionConfig::applet(&a, pol);
    a_cfg.consent = Some(ConsentConfig::new(rec.clone()).with_timeout(Duration::from_secs(5)));
    a_cfg.download_dir = Some(dir.path().to_owned());
    // This test is about the relay: no direct path.
    a_cfg.direct.policy = DirectPolicy::Off;
    let mut c_cfg = SessionConfig::console(&c, pol);
    c_cfg.direct.policy = DirectPolicy::Off;
    let mut applet = Session::start(a, PathKind::Relay, a_cfg);
    let mut console = Session::start(c, PathKind::Relay, c_cfg);
    assert_eq!(applet.sas(), console.sas());
    assert!(applet.sas().is_some());
    assert_eq!(applet.peer().technician, "alice");
    let (mut a_ev, mut c_ev) = (applet.events().unwrap(), console.events().unwrap());

    console.chat("hello through the relay").await.unwrap();
    let t = wait_for(&mut a_ev, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await;
    assert_eq!(t, "hello through the relay");

    assert!(console.request(Permission::Reboot).await.is_err());
    let g = console.request(Permission::FileTransfer).await.unwrap();
    assert_eq!(rec.calls().len(), 1);
    assert_eq!(rec.calls()[0].technician, "alice");

    let data = content(1_500_000, None);
    console
        .send_file(
            std::io::Cursor::new(data.clone()),
            "via-gw.bin",
            1_500_000,
            &g,
        )
        .await
        .unwrap();
    let file = wait_for(&mut a_ev, |e| match e {
        SessionEvent::FileReceived { file, .. } => Some(file),
        SessionEvent::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(file.digests, digests(&data));
    assert_eq!(std::fs::read(&file.path).unwrap(), data);
    wait_for(&mut c_ev, |e| match e {
        SessionEvent::FileSent { .. } => Some(()),
        _ => None,
    })
    .await;

    applet.end();
    wait_for(&mut c_ev, |e| match e {
        SessionEvent::Ended { by_peer: true, .. } => Some(()),
        _ => None,
    })
    .await;
    assert!(console.check_grant(&g, Permission::FileTransfer).is_err());
}
