//! The public session API over in-memory paths: chat, policy ∧ consent, grants, end.

mod session_support;

use std::time::Duration;

use rescue::session::{ConsentAnswer, SessionError, SessionEvent};
use rescue_proto::session::control::DenyReason;
use rescue_proto::session::EndReason;
use rescue_proto::Permission;
use session_support::*;

#[tokio::test]
async fn chat_flows_both_ways_in_order() {
    let mut p = Setup::new(policy(&[], false)).start();
    for i in 0..20 {
        p.console.chat(&format!("tech {i}")).await.unwrap();
        p.applet.chat(&format!("user {i}")).await.unwrap();
    }
    for i in 0..20 {
        let t = wait_for(&mut p.applet_events, |e| match e {
            SessionEvent::Chat { text } => Some(text),
            _ => None,
        })
        .await;
        assert_eq!(t, format!("tech {i}"));
        let t = wait_for(&mut p.console_events, |e| match e {
            SessionEvent::Chat { text } => Some(text),
            _ => None,
        })
        .await;
        assert_eq!(t, format!("user {i}"));
    }
    let long = "x".repeat(rescue_proto::session::chat::MAX_CHAT_BYTES + 1);
    assert!(matches!(
        p.console.chat(&long).await,
        Err(SessionError::Chat(_))
    ));
}

#[tokio::test]
async fn forbidden_permission_is_refused_without_asking() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec.clone(), Duration::from_secs(5))
        .start();
    let r = p.console.request(Permission::Reboot).await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::Policy))),
        "{r:?}"
    );
    let r = p.console.request_all().await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::AllInOneForbidden))),
        "{r:?}"
    );
    assert!(
        rec.calls().is_empty(),
        "consent was asked: {:?}",
        rec.calls()
    );
    // The allowed one is asked, exactly once, and granted.
    let g = p.console.request(Permission::FileTransfer).await.unwrap();
    assert!(g.permissions().contains(Permission::FileTransfer));
    let calls = rec.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].permissions.contains(Permission::FileTransfer));
    let id = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::PermissionGranted { grant_id, .. } => Some(grant_id),
        _ => None,
    })
    .await;
    assert_eq!(id, g.id());
    assert_eq!(p.applet.grants().len(), 1);
}

#[tokio::test]
async fn all_in_one_prompt_where_the_policy_allows_it() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let allowed = [Permission::FileTransfer, Permission::RemoteControl];
    let p = Setup::new(policy(&allowed, true))
        .consent(rec.clone(), Duration::from_secs(5))
        .start();
    let g = p.console.request_all().await.unwrap();
    assert_eq!(g.permissions(), allowed.into_iter().collect());
    let calls = rec.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].all_in_one);
    p.console
        .check_grant(&g, Permission::RemoteControl)
        .unwrap();
    assert!(p.console.check_grant(&g, Permission::Reboot).is_err());
}

#[tokio::test]
async fn consent_timeout_is_a_denial() {
    let rec = Recorder::new(None); // never answers
    let p = Setup::new(policy(&[Permission::DesktopView], false))
        .consent(rec.clone(), Duration::from_millis(300))
        .start();
    let started = tokio::time::Instant::now();
    let r = p.console.request(Permission::DesktopView).await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::Timeout))),
        "{r:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(rec.calls().len(), 1);
    assert!(p.applet.grants().is_empty());
}

#[tokio::test]
async fn no_consent_configured_denies_and_the_user_can_say_no() {
    let p = Setup::new(policy(&[Permission::Scripts], false)).start();
    let r = p.console.request(Permission::Scripts).await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::User))),
        "{r:?}"
    );
    let rec = Recorder::new(Some(ConsentAnswer::Deny));
    let p = Setup::new(policy(&[Permission::Scripts], false))
        .consent(rec, Duration::from_secs(5))
        .start();
    let r = p.console.request(Permission::Scripts).await;
    assert!(
        matches!(r, Err(SessionError::Denied(DenyReason::User))),
        "{r:?}"
    );
}

#[tokio::test]
async fn revoked_grant_can_no_longer_act() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(policy(&[Permission::FileTransfer], false))
        .consent(rec, Duration::from_secs(5))
        .start();
    let g = p.console.request(Permission::FileTransfer).await.unwrap();
    p.console.check_grant(&g, Permission::FileTransfer).unwrap();
    p.applet.revoke(g.id()).await.unwrap();
    let id = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::PermissionRevoked { grant_id } => Some(grant_id),
        _ => None,
    })
    .await;
    assert_eq!(id, g.id());
    let r = p.console.send_file(&b"data"[..], "a.txt", 4, &g).await;
    assert!(matches!(r, Err(SessionError::Transfer(_))), "{r:?}");
    assert!(p.console.check_grant(&g, Permission::FileTransfer).is_err());
    // A grant that never covered file transfer does not either.
    assert!(matches!(
        p.applet.request(Permission::Reboot).await,
        Err(SessionError::WrongRole(_))
    ));
}

#[tokio::test]
async fn end_by_the_end_user_revokes_grants_on_both_sides() {
    let rec = Recorder::new(Some(ConsentAnswer::Allow));
    let mut p = Setup::new(policy(&[Permission::RemoteControl], false))
        .consent(rec, Duration::from_secs(5))
        .start();
    let g = p.console.request(Permission::RemoteControl).await.unwrap();
    wait_for(&mut p.applet_events, |e| {
        matches!(e, SessionEvent::PermissionGranted { .. }).then_some(())
    })
    .await;
    p.applet.end();
    let a = drain(&mut p.applet_events).await;
    let c = drain(&mut p.console_events).await;
    for (side, evs, by_peer) in [("applet", &a, false), ("console", &c, true)] {
        assert!(
            evs.iter().any(
                |e| matches!(e, SessionEvent::PermissionRevoked { grant_id } if *grant_id == g.id())
            ),
            "{side}: {evs:?}"
        );
        assert!(
            evs.iter().any(|e| matches!(e, SessionEvent::Ended { reason: EndReason::EndUser, by_peer: b } if *b == by_peer)),
            "{side}: {evs:?}"
        );
    }
    assert!(p.applet.grants().is_empty() && p.console.grants().is_empty());
    assert!(p
        .console
        .check_grant(&g, Permission::RemoteControl)
        .is_err());
    assert!(matches!(
        p.console.chat("hi").await,
        Err(SessionError::Ended)
    ));
    assert!(p.applet.is_ended() && p.console.is_ended());
}

#[tokio::test]
async fn application_channel_is_an_ordered_byte_stream_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut p = Setup::new(policy(&[], false)).start();
    let ch = p.console.open_channel("echo").await.unwrap();
    let mut peer = wait_for(&mut p.applet_events, |e| match e {
        SessionEvent::ChannelOpened(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(peer.label(), "echo");
    assert_eq!(peer.id(), ch.id());
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; 10_000];
        loop {
            let n = peer.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            peer.write_all(&buf[..n]).await.unwrap();
        }
        peer.shutdown().await.unwrap();
    });
    let data = content(300_000, None);
    let (mut rd, mut wr) = tokio::io::split(ch);
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            wr.write_all(&data).await.unwrap();
            wr
        })
    };
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, rd.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "echoed bytes differ");
    // CLOSE ends the channel both ways (PROTOCOL.md 7.2): the peer reads EOF.
    let mut ch = rd.unsplit(writer.await.unwrap());
    ch.shutdown().await.unwrap();
    echo.await.unwrap();
}

#[tokio::test]
async fn the_end_users_end_is_not_blocked_by_a_flooding_technician() {
    let mut p = Setup::new(policy(&[], false)).start();
    // The applet's application reads nothing: its event queue fills and the session
    // stops taking input (backpressure).
    for i in 0..300 {
        let r =
            tokio::time::timeout(Duration::from_millis(200), p.console.chat(&format!("{i}"))).await;
        if r.is_err() {
            break; // the console's buffers are full too
        }
    }
    let started = tokio::time::Instant::now();
    p.applet.end();
    let reason = wait_for(&mut p.console_events, |e| match e {
        SessionEvent::Ended {
            reason,
            by_peer: true,
        } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::EndUser);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(p.applet.is_ended());
}
