//! Property: whatever the interleaving of chat in both directions with abrupt path cuts
//! and graceful switches, every message arrives exactly once and in order on both sides
//! (the driver's path handling on top of the core's own properties).

mod session_support;

use proptest::prelude::*;
use rescue::session::{PathKind, SessionEvent};
use session_support::*;
use tokio::sync::mpsc::Receiver;

#[derive(Clone, Debug)]
enum Op {
    Console(u8),
    Applet(u8),
    Cut,
    Switch,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..4).prop_map(Op::Console),
        6 => (1u8..4).prop_map(Op::Applet),
        1 => Just(Op::Cut),
        1 => Just(Op::Switch),
    ]
}

/// Collects chat texts until `done` holds for an event.
async fn collect_until(
    rx: &mut Receiver<SessionEvent>,
    chats: &mut Vec<String>,
    mut done: impl FnMut(&SessionEvent) -> bool,
) {
    wait_for(rx, |e| {
        if done(&e) {
            return Some(());
        }
        if let SessionEvent::Chat { text } = e {
            chats.push(text);
        }
        None
    })
    .await
}

async fn next_chat(rx: &mut Receiver<SessionEvent>) -> String {
    wait_for(rx, |e| match e {
        SessionEvent::Chat { text } => Some(text),
        _ => None,
    })
    .await
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut p = Setup::new(policy(&[], false)).start();
    let mut wire = std::mem::replace(&mut p.wire, Wire::new());
    let (mut sent_c, mut sent_a) = (Vec::new(), Vec::new());
    let (mut got_a, mut got_c) = (Vec::new(), Vec::new());
    let mut paths = 0;
    for op in ops {
        match op {
            Op::Console(n) => {
                for _ in 0..n {
                    let t = format!("c{}", sent_c.len());
                    p.console.chat(&t).await.unwrap();
                    sent_c.push(t);
                }
            }
            Op::Applet(n) => {
                for _ in 0..n {
                    let t = format!("a{}", sent_a.len());
                    p.applet.chat(&t).await.unwrap();
                    sent_a.push(t);
                }
            }
            Op::Cut | Op::Switch if paths >= 3 => {}
            Op::Cut | Op::Switch => {
                paths += 1;
                if matches!(op, Op::Cut) {
                    wire.cut();
                    let lost = |e: &SessionEvent| matches!(e, SessionEvent::PathLost { .. });
                    collect_until(&mut p.applet_events, &mut got_a, lost).await;
                    collect_until(&mut p.console_events, &mut got_c, lost).await;
                }
                let mut next = Wire::new();
                let (a, c) = (next.applet.take().unwrap(), next.console.take().unwrap());
                p.applet.add_path(a, PathKind::DirectTcp).await.unwrap();
                p.console.add_path(c, PathKind::DirectTcp).await.unwrap();
                wire = next;
            }
        }
    }
    while got_a.len() < sent_c.len() {
        got_a.push(next_chat(&mut p.applet_events).await);
    }
    while got_c.len() < sent_a.len() {
        got_c.push(next_chat(&mut p.console_events).await);
    }
    prop_assert_eq!(got_a, sent_c);
    prop_assert_eq!(got_c, sent_a);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chat_is_delivered_exactly_once_in_order_across_cuts_and_switches(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(run(ops))?;
    }
}
