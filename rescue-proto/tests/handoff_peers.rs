//! The applet and console machines: driven together with the gateway's session table
//! (no sockets, a virtual clock), and fed random message sequences.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rescue_proto::handoff::applet::Applet;
use rescue_proto::handoff::console::Console;
use rescue_proto::handoff::gateway::{ReattachRequest, RegisterRequest};
use rescue_proto::handoff::{
    Connected, ConsoleIdentity, HopId, PeerError, PeerEvent, SessionTable, Step,
};
use rescue_proto::wire::limits::PROTOCOL_VERSION;
use rescue_proto::wire::signal::*;
use rescue_proto::Guid;

const APPLET: HopId = HopId(1);
const CONSOLE: HopId = HopId(2);

fn gw_hello() -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Gateway,
    })
}

fn guid() -> Guid {
    Guid::from_bytes([7; 16])
}

fn identity() -> ConsoleIdentity {
    ConsoleIdentity {
        account: AccountId(42),
        technician: TechnicianName::new("Ana").expect("valid"),
    }
}

fn step<S>(r: Result<Step<S>, PeerError>) -> (S, Option<Message>, Option<PeerEvent>) {
    let s = r.expect("accepted");
    (s.next, s.send, s.event)
}

/// Registers an applet and pairs a console through the table; returns both machines.
fn paired(now: Instant, table: &mut SessionTable) -> (Applet, Console) {
    let (applet, sent) = Applet::register(now, Register::new(b"ticket".to_vec()).expect("small"));
    assert!(matches!(&sent, [Message::Hello(_), Message::Register(_)]));
    let (applet, _, _) = step(applet.handle(now, gw_hello()));
    let req = RegisterRequest {
        guid: guid(),
        account: identity().account,
        ticket_expires: now + Duration::from_secs(3600),
        hop: APPLET,
        resume_secret: ResumeSecret::from_bytes([1; 32]),
    };
    let registered = table.register(now, req).expect("fresh");
    let (applet, _, ev) = step(applet.handle(now, Message::Registered(registered)));
    assert_eq!(
        ev,
        Some(PeerEvent::Registered {
            guid: guid(),
            lifetime_secs: 600
        })
    );

    let (console, hello) = Console::start(now);
    assert!(matches!(
        hello,
        Message::Hello(Hello {
            role: Speaker::Peer(Role::Console),
            ..
        })
    ));
    let (console, _, _) = step(console.handle(now, gw_hello()));
    let Console::Idle(idle) = console else {
        panic!("idle after HELLO")
    };
    let (console, q) = idle.queue(now);
    assert_eq!(q, Message::Queue(Queue));
    let list = table.queue(now, &identity().account);
    let (console, _, ev) = step(console.handle(now, Message::QueueList(list.clone())));
    assert_eq!(ev, Some(PeerEvent::Queue(list.clone())));
    let Console::Idle(idle) = console else {
        panic!("idle after QUEUE_LIST")
    };
    let (console, claim) = idle.claim(now, list.entries()[0].guid);
    assert_eq!(claim, Message::Claim(Claim { guid: guid() }));
    let p = table
        .claim(
            now,
            guid(),
            identity(),
            CONSOLE,
            ResumeSecret::from_bytes([2; 32]),
        )
        .expect("claim");
    let (applet, _, ev) = step(applet.handle(now, Message::Paired(p.to_applet.clone())));
    assert_eq!(ev, Some(PeerEvent::Paired(p.to_applet)));
    let (console, _, _) = step(console.handle(now, Message::Paired(p.to_console)));
    (applet, console)
}

#[test]
fn applet_and_console_pair_relay_and_survive_a_lost_hop() {
    let now = Instant::now();
    let mut table = SessionTable::default();
    let (applet, console) = paired(now, &mut table);
    // The first applet machine is abandoned with its hop below.
    let (_lost_applet, _, ev) = step(applet.handle(now, Message::Data(Bytes::from_static(b"hi"))));
    assert_eq!(ev, Some(PeerEvent::Data(Bytes::from_static(b"hi"))));
    assert_eq!(table.peer_of(CONSOLE), Some(APPLET));

    // The applet's hop drops; the console hears PEER_GONE and waits.
    let out = table.hop_lost(now, APPLET);
    assert_eq!(out.len(), 1);
    let (console, _, ev) = step(console.handle(now, out[0].message.clone()));
    assert_eq!(ev, Some(PeerEvent::PeerGone { grace_secs: 30 }));
    assert!(matches!(
        console,
        Console::Connected(Connected::PeerAway(_))
    ));

    // The applet comes back on a new hop with its secret.
    let later = now + Duration::from_secs(3);
    let (applet, sent) = Applet::reattach(later, guid(), ResumeSecret::from_bytes([1; 32]));
    let Message::Reattach(r) = &sent[1] else {
        panic!("REATTACH second")
    };
    let (applet, _, _) = step(applet.handle(later, gw_hello()));
    let back = table
        .reattach(
            later,
            ReattachRequest {
                guid: r.guid,
                role: Role::Applet,
                resume_secret: r.resume_secret.clone(),
                identity: None,
                hop: HopId(3),
                new_secret: ResumeSecret::from_bytes([3; 32]),
            },
        )
        .expect("valid secret");
    let (applet, _, ev) = step(applet.handle(later, Message::Resumed(back.resumed)));
    assert_eq!(ev, Some(PeerEvent::Resumed { paired: true }));
    let notify = back.notify.expect("console told");
    assert_eq!(notify.hop, CONSOLE);
    let (console, _, ev) = step(console.handle(later, notify.message));
    assert_eq!(ev, Some(PeerEvent::PeerBack));
    assert_eq!(table.peer_of(CONSOLE), Some(HopId(3)));

    // The end user ends the session: the console gets CLOSE and ends too.
    let out = table.close(later, HopId(3), CloseReason::EndUser);
    let (console, _, _) = step(console.handle(later, out[0].message.clone()));
    assert!(console.is_ended() && !applet.is_ended());
    assert!(table.is_empty());
    // The applet side can always end, whatever state it is in.
    let (applet, close) = applet.close(CloseReason::EndUser);
    assert!(applet.is_ended());
    assert_eq!(
        close,
        Message::Close(Close {
            reason: CloseReason::EndUser
        })
    );
}

#[test]
fn a_peer_away_too_long_times_out_and_ping_is_answered() {
    let now = Instant::now();
    let mut table = SessionTable::default();
    let (applet, _console) = paired(now, &mut table);
    let (applet, pong, _) = step(applet.handle(now, Message::Ping(Ping { nonce: 9 })));
    assert_eq!(pong, Some(Message::Pong(Pong { nonce: 9 })));
    let (applet, _, _) = step(applet.handle(now, Message::PeerGone(PeerGone { grace_secs: 30 })));
    let deadline = applet.poll_timeout().expect("waits with a deadline");
    let applet = applet
        .handle_timeout(deadline - Duration::from_millis(1))
        .expect("not yet");
    assert_eq!(
        applet.handle_timeout(deadline).err(),
        Some(PeerError::Timeout)
    );
}

#[test]
fn an_absurd_lifetime_from_the_gateway_is_capped() {
    let now = Instant::now();
    let (applet, _) = Applet::register(now, Register::new(vec![1]).expect("small"));
    let (applet, _, _) = step(applet.handle(now, gw_hello()));
    let r = Registered {
        guid: guid(),
        lifetime_secs: u32::MAX,
        resume_secret: ResumeSecret::from_bytes([1; 32]),
    };
    let (applet, _, _) = step(applet.handle(now, Message::Registered(r)));
    let deadline = applet.poll_timeout().expect("a deadline");
    assert!(deadline > now && deadline <= now + Duration::from_secs(24 * 3600));
}

#[test]
fn wrong_gateway_hello_and_errors_stop_the_machines() {
    let now = Instant::now();
    let (applet, _) = Applet::register(now, Register::new(vec![1]).expect("small"));
    let bad = Message::Hello(Hello {
        version: 2,
        role: Speaker::Gateway,
    });
    assert_eq!(
        applet.clone().handle(now, bad).err(),
        Some(PeerError::BadHello { version: 2 })
    );
    let not_gw = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Speaker::Peer(Role::Console),
    });
    assert!(applet.clone().handle(now, not_gw).is_err());
    let refused = Message::Error(ErrorMessage::new(ErrorCode::BadTicket));
    assert!(matches!(
        applet.clone().handle(now, refused),
        Err(PeerError::Refused {
            code: ErrorCode::BadTicket,
            ..
        })
    ));
    assert!(matches!(
        applet.handle(now, Message::Data(Bytes::from_static(b"x"))),
        Err(PeerError::Unexpected(_))
    ));
    let (console, _) = Console::start(now);
    assert_eq!(
        console.handle_timeout(now + Duration::from_secs(60)).err(),
        Some(PeerError::Timeout)
    );
}

#[test]
fn a_console_refuses_paired_for_another_session() {
    let now = Instant::now();
    let (console, _) = Console::start(now);
    let (console, _, _) = step(console.handle(now, gw_hello()));
    let Console::Idle(idle) = console else {
        panic!("idle")
    };
    let (console, _) = idle.claim(now, guid());
    let other = Paired::ToConsole {
        guid: Guid::from_bytes([8; 16]),
        resume_secret: ResumeSecret::from_bytes([0; 32]),
    };
    assert_eq!(
        console.handle(now, Message::Paired(other)).err(),
        Some(PeerError::WrongSession)
    );
}

fn any_message() -> impl Strategy<Value = Message> {
    let g = prop_oneof![Just(guid()), Just(Guid::from_bytes([8; 16]))];
    prop_oneof![
        (
            prop_oneof![Just(1u16), Just(2)],
            prop_oneof![Just(Speaker::Gateway), Just(Speaker::Peer(Role::Applet))]
        )
            .prop_map(|(version, role)| Message::Hello(Hello { version, role })),
        g.clone().prop_map(|guid| Message::Registered(Registered {
            guid,
            lifetime_secs: 600,
            resume_secret: ResumeSecret::from_bytes([1; 32])
        })),
        Just(Message::QueueList(QueueList::default())),
        g.clone()
            .prop_map(|guid| Message::Paired(Paired::ToConsole {
                guid,
                resume_secret: ResumeSecret::from_bytes([2; 32])
            })),
        Just(Message::Paired(Paired::ToApplet {
            account: identity().account,
            technician: identity().technician
        })),
        Just(Message::Data(Bytes::from_static(b"d"))),
        any::<u64>().prop_map(|nonce| Message::Ping(Ping { nonce })),
        (0u32..3).prop_map(|grace_secs| Message::PeerGone(PeerGone { grace_secs })),
        Just(Message::PeerBack(PeerBack)),
        (g, any::<bool>()).prop_map(|(guid, paired)| Message::Resumed(Resumed {
            guid,
            resume_secret: ResumeSecret::from_bytes([3; 32]),
            paired
        })),
        Just(Message::Close(Close {
            reason: CloseReason::Normal
        })),
        Just(Message::Error(ErrorMessage::new(ErrorCode::Internal))),
    ]
}

/// Checks the event order rules of one machine's run: DATA only after PAIRED or
/// RESUMED{paired}, nothing after the end.
struct Order {
    paired: bool,
    ended: bool,
}

impl Order {
    fn see(&mut self, ev: &Option<PeerEvent>) -> Result<(), TestCaseError> {
        prop_assert!(!self.ended, "event after the end");
        match ev {
            Some(PeerEvent::Paired(_)) | Some(PeerEvent::Resumed { paired: true }) => {
                self.paired = true
            }
            Some(PeerEvent::Data(_)) => prop_assert!(self.paired, "DATA before PAIRED"),
            Some(PeerEvent::Ended(_)) => self.ended = true,
            _ => {}
        }
        Ok(())
    }
}

proptest! {
    #[test]
    fn the_applet_never_panics_and_keeps_event_order(
        msgs in proptest::collection::vec(any_message(), 0..12),
        reattach in any::<bool>(),
    ) {
        let now = Instant::now();
        let (mut applet, _) = if reattach {
            Applet::reattach(now, guid(), ResumeSecret::from_bytes([1; 32]))
        } else {
            Applet::register(now, Register::new(vec![1]).expect("small"))
        };
        let mut order = Order { paired: false, ended: false };
        for m in msgs {
            match applet.handle(now, m) {
                Ok(s) => { order.see(&s.event)?; applet = s.next; }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn the_console_never_panics_and_keeps_event_order(
        msgs in proptest::collection::vec(any_message(), 0..12),
        claims in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let now = Instant::now();
        let (mut console, _) = Console::start(now);
        let mut order = Order { paired: false, ended: false };
        for (m, claim) in msgs.into_iter().zip(claims) {
            if let Console::Idle(idle) = console {
                console = if claim { idle.claim(now, guid()).0 } else { idle.queue(now).0 };
            }
            match console.handle(now, m) {
                Ok(s) => { order.see(&s.event)?; console = s.next; }
                Err(_) => break,
            }
        }
    }
}
