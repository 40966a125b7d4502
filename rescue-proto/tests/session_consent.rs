//! Policy ∧ consent end to end over two reliable cores: a forbidden permission is never
//! asked, an action needs a live grant, and END revokes every grant on both sides.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use rescue_proto::permission::{Permission, PermissionSet, Policy};
use rescue_proto::session::control::ControlMsg;
use rescue_proto::session::file::{FileError, FileSender};
use rescue_proto::session::permission::{
    GateEvent, Gatekeeper, Grant, PermissionError, RequestEvent, Requester, DEFAULT_CONSENT_TIMEOUT,
};
use rescue_proto::session::reliable::{Config, Event, PathId, Reliable};
use rescue_proto::session::{EndReason, Role, CONTROL};

struct World {
    now: Instant,
    applet: Reliable,
    console: Reliable,
    gate: Gatekeeper,
    req: Requester,
    grants: Vec<Grant>,
    asked: Vec<PermissionSet>,
    gate_revoked: Vec<u32>,
    req_revoked: Vec<u32>,
    granted_ids: Vec<u32>,
    questions: Vec<u32>,
}

impl World {
    fn new(policy: Policy) -> Self {
        let now = Instant::now();
        let mut applet = Reliable::new(Role::Applet, Config::default(), now);
        let mut console = Reliable::new(Role::Console, Config::default(), now);
        applet.on_path_up(now, PathId(0)).unwrap();
        console.on_path_up(now, PathId(0)).unwrap();
        Self {
            now,
            applet,
            console,
            gate: Gatekeeper::new(policy, DEFAULT_CONSENT_TIMEOUT),
            req: Requester::new(),
            grants: vec![],
            asked: vec![],
            gate_revoked: vec![],
            req_revoked: vec![],
            granted_ids: vec![],
            questions: vec![],
        }
    }

    /// The drivers' loop: control messages out, frames across, events in.
    fn run(&mut self) {
        for _ in 0..100 {
            while let Some(m) = self.gate.poll_outgoing() {
                let _ = self.applet.send(CONTROL, m.encode());
            }
            let mut moved = false;
            let mut out = BytesMut::new();
            while self.applet.poll_transmit(self.now, PathId(0), &mut out) {
                self.console
                    .handle_frame(self.now, PathId(0), out.split().freeze())
                    .unwrap();
                moved = true;
            }
            while self.console.poll_transmit(self.now, PathId(0), &mut out) {
                self.applet
                    .handle_frame(self.now, PathId(0), out.split().freeze())
                    .unwrap();
                moved = true;
            }
            moved |= self.events();
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn events(&mut self) -> bool {
        let mut any = false;
        while let Some(e) = self.applet.poll_event() {
            any = true;
            match e {
                Event::Data {
                    channel: CONTROL,
                    payload,
                } => {
                    let m = ControlMsg::decode(&payload).unwrap();
                    self.gate.handle(self.now, m).unwrap();
                }
                Event::Ended { .. } => self.gate.end(),
                _ => {}
            }
        }
        while let Some(e) = self.console.poll_event() {
            any = true;
            match e {
                Event::Data {
                    channel: CONTROL,
                    payload,
                } => {
                    self.req
                        .handle(ControlMsg::decode(&payload).unwrap())
                        .unwrap();
                }
                Event::Ended { .. } => self.req.end(),
                _ => {}
            }
        }
        while let Some(e) = self.gate.poll_event() {
            any = true;
            match e {
                GateEvent::Ask {
                    question,
                    permissions,
                    ..
                } => {
                    self.asked.push(permissions);
                    self.questions.push(question);
                }
                GateEvent::Revoked { grant_id } => self.gate_revoked.push(grant_id),
                GateEvent::Granted { grant_id, .. } => self.granted_ids.push(grant_id),
                _ => {}
            }
        }
        while let Some(e) = self.req.poll_event() {
            any = true;
            match e {
                RequestEvent::Granted { grant, .. } => self.grants.push(grant),
                RequestEvent::Revoked { grant_id } => self.req_revoked.push(grant_id),
                _ => {}
            }
        }
        any
    }

    fn request(&mut self, p: Option<Permission>) {
        let m = match p {
            Some(p) => self.req.request(p),
            None => self.req.request_all(),
        };
        if let Ok(m) = m {
            let _ = self.console.send(CONTROL, m.encode());
        }
    }

    /// The end user answers every open question with `yes`.
    fn answer_all(&mut self, yes: bool) {
        for q in std::mem::take(&mut self.questions) {
            self.gate.answer(q, yes);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Request(u8),
    RequestAll,
    Answer(bool),
    Timeout,
    UserRevokes(usize),
    End(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..16).prop_map(Op::Request),
        1 => Just(Op::RequestAll),
        4 => any::<bool>().prop_map(Op::Answer),
        1 => Just(Op::Timeout),
        2 => (0usize..8).prop_map(Op::UserRevokes),
        1 => any::<bool>().prop_map(Op::End),
    ]
}

proptest! {
    #[test]
    fn policy_and_consent_hold_under_random_use(
        allowed in 0u32..0x8000,
        all_in_one in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let policy = Policy {
            allowed: PermissionSet::from_bits(allowed).unwrap(),
            all_in_one_allowed: all_in_one,
            exclude_chat_from_audit: false,
        };
        let mut w = World::new(policy);
        let mut ended = false;
        for op in ops {
            match op {
                Op::Request(c) => w.request(Permission::from_code(c)),
                Op::RequestAll => w.request(None),
                Op::Answer(yes) => w.answer_all(yes),
                Op::Timeout => {
                    w.now += DEFAULT_CONSENT_TIMEOUT + Duration::from_secs(1);
                    w.gate.handle_timeout(w.now);
                    w.questions.clear();
                }
                Op::UserRevokes(i) => {
                    if let Some(id) = w.granted_ids.get(i).copied() {
                        w.gate.revoke(id);
                    }
                }
                Op::End(by_applet) => {
                    if by_applet { w.applet.end(EndReason::EndUser) } else { w.console.end(EndReason::Technician) }
                    ended = true;
                }
            }
            w.run();
            // A forbidden permission is never even asked.
            for a in &w.asked {
                prop_assert_eq!(a.intersection(policy.allowed), *a);
            }
            if !all_in_one {
                prop_assert!(w.asked.iter().all(|a| a.iter().count() <= 1));
            }
            // Whatever the console may use, the applet has granted and not revoked.
            for g in &w.grants {
                for p in g.permissions().iter() {
                    if w.req.verify(g, p).is_ok() {
                        prop_assert!(w.gate.is_granted(p), "{:?} usable but not granted", p);
                    }
                }
            }
        }
        if ended {
            // END revokes everything on both sides.
            for p in Permission::ALL {
                prop_assert!(!w.gate.is_granted(p));
            }
            for g in &w.grants {
                prop_assert_eq!(w.req.verify(g, Permission::FileTransfer).err().map(|e| matches!(e, PermissionError::Revoked(_))), Some(true));
                prop_assert!(w.req_revoked.contains(&g.id()));
                prop_assert!(w.gate_revoked.contains(&g.id()));
            }
        }
    }
}

#[test]
fn file_transfer_needs_a_live_grant_and_end_voids_it() {
    let policy = Policy {
        allowed: PermissionSet::ALL,
        ..Policy::default()
    };
    let mut w = World::new(policy);
    w.request(Some(Permission::FileTransfer));
    w.run();
    w.answer_all(true);
    w.run();
    let grant = w.grants.pop().expect("granted");
    assert!(FileSender::offer(&w.req, &grant, 1, "a.txt", 3).is_ok());
    w.applet.end(EndReason::EndUser);
    w.run();
    let r = FileSender::offer(&w.req, &grant, 2, "a.txt", 3);
    assert_eq!(
        r.err(),
        Some(FileError::Permission(PermissionError::Revoked(grant.id())))
    );
    assert!(!w.gate.is_granted(Permission::FileTransfer));
    assert!(w.applet.is_closed() && w.console.is_closed());
}
