//! Two reliable cores over simulated paths: random traffic on several channels, graceful
//! switches and abrupt path kills at random points; every payload must arrive exactly
//! once and in order on its channel.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rescue_proto::session::reliable::{Config, Event, PathId, Reliable, SendError};
use rescue_proto::session::{Role, CHAT, CONTROL, FILE};

/// One simulated path: frames in flight in each direction (index 0: a→b, 1: b→a).
#[derive(Default)]
struct Link {
    queues: [VecDeque<Bytes>; 2],
    /// Side `i` still believes the path is up.
    up: [bool; 2],
    /// The link is cut: everything written is lost.
    cut: bool,
}

struct Net {
    now: Instant,
    cores: [Reliable; 2],
    links: BTreeMap<u64, Link>,
    next_path: u64,
    events: [Vec<Event>; 2],
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        let cores = [
            Reliable::new(Role::Applet, Config::default(), now),
            Reliable::new(Role::Console, Config::default(), now),
        ];
        Self {
            now,
            cores,
            links: BTreeMap::new(),
            next_path: 0,
            events: [vec![], vec![]],
        }
    }

    fn path_up(&mut self, side: usize, id: u64) {
        let link = self.links.entry(id).or_default();
        link.up[side] = true;
        self.cores[side].on_path_up(self.now, PathId(id)).unwrap();
    }

    fn new_path(&mut self, sides: [usize; 2]) -> u64 {
        while self.links.len() >= rescue_proto::session::reliable::MAX_PATHS {
            let oldest = *self.links.keys().next().unwrap();
            self.settle();
            self.lose(0, oldest);
            self.lose(1, oldest);
            self.links.remove(&oldest);
        }
        let id = self.next_path;
        self.next_path += 1;
        self.path_up(sides[0], id);
        self.path_up(sides[1], id);
        id
    }

    fn lose(&mut self, side: usize, id: u64) {
        if let Some(l) = self.links.get_mut(&id) {
            if l.up[side] {
                l.up[side] = false;
                let _ = self.cores[side].on_path_lost(self.now, PathId(id));
            }
        }
    }

    /// Cuts a link: in-flight frames are lost.
    fn cut(&mut self, id: u64) {
        if let Some(l) = self.links.get_mut(&id) {
            l.cut = true;
            l.queues = Default::default();
        }
    }

    /// Moves frames: transmit everything, then deliver up to `budget` frames per queue.
    fn step(&mut self, budget: usize) -> bool {
        let mut progress = false;
        for side in 0..2 {
            self.cores[side].handle_timeout(self.now).unwrap();
        }
        for side in 0..2 {
            for (id, link) in self.links.iter_mut() {
                if !link.up[side] {
                    continue;
                }
                let mut out = BytesMut::new();
                while self.cores[side].poll_transmit(self.now, PathId(*id), &mut out) {
                    let f = out.split().freeze();
                    if !link.cut {
                        link.queues[side].push_back(f);
                    }
                    progress = true;
                }
            }
        }
        for side in 0..2 {
            let peer = 1 - side;
            for (id, link) in self.links.iter_mut() {
                for _ in 0..budget {
                    let Some(f) = link.queues[side].pop_front() else {
                        break;
                    };
                    progress = true;
                    if link.up[peer] {
                        self.cores[peer]
                            .handle_frame(self.now, PathId(*id), f)
                            .unwrap();
                    }
                }
            }
        }
        self.now += Duration::from_millis(5);
        for side in 0..2 {
            while let Some(e) = self.cores[side].poll_event() {
                self.events[side].push(e);
            }
        }
        progress
    }

    /// Runs until nothing moves and no timer is due within 100 ms (ACK delays fire,
    /// keepalives do not).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if self.step(usize::MAX) {
                continue;
            }
            let soon = self.now + Duration::from_millis(100);
            let next = self.cores.iter().filter_map(Reliable::poll_timeout).min();
            match next.filter(|t| *t <= soon) {
                Some(t) => self.now = self.now.max(t),
                None => return,
            }
        }
        panic!("did not settle");
    }

    /// The data payloads received by `side`, per channel.
    fn received(&self, side: usize) -> BTreeMap<u16, Vec<Bytes>> {
        let mut m: BTreeMap<u16, Vec<Bytes>> = BTreeMap::new();
        for e in &self.events[side] {
            if let Event::Data { channel, payload } = e {
                m.entry(*channel).or_default().push(payload.clone());
            }
        }
        m
    }
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        side: usize,
        ch: usize,
        len: usize,
    },
    Step(usize),
    Switch,
    Kill,
    KillSeenLate,
    DropOld,
    /// The current (direct) path dies and nothing replaces it: the session falls back to
    /// an older path that was kept open after SWITCH (make before break, the relay).
    KillFallBack,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..4usize, 0..3000usize).prop_map(|(side, ch, len)| Op::Send { side, ch, len }),
        4 => (1..20usize).prop_map(Op::Step),
        1 => Just(Op::Switch),
        1 => Just(Op::Kill),
        1 => Just(Op::KillSeenLate),
        1 => Just(Op::DropOld),
        1 => Just(Op::KillFallBack),
    ]
}

fn payload(side: usize, ch: u16, n: u32, len: usize) -> Bytes {
    let mut v = format!("{side}:{ch}:{n}:").into_bytes();
    v.resize(v.len() + len, (n % 251) as u8);
    Bytes::from(v)
}

fn current_path(net: &Net) -> Option<u64> {
    net.links
        .iter()
        .rev()
        .find(|(_, l)| !l.cut && l.up[0] && l.up[1])
        .map(|(id, _)| *id)
}

fn run(ops: Vec<Op>) {
    let mut net = Net::new();
    net.new_path([0, 1]);
    net.settle();
    let app = net.cores[0].open_channel("app").unwrap();
    net.settle();
    let chans = [CONTROL, CHAT, FILE, app];
    let mut sent: [BTreeMap<u16, Vec<Bytes>>; 2] = Default::default();
    let mut counter = 0u32;
    for op in ops {
        match op {
            Op::Send { side, ch, len } => {
                let ch = chans[ch];
                counter += 1;
                let p = payload(side, ch, counter, len);
                match net.cores[side].send(ch, p.clone()) {
                    Ok(()) => sent[side].entry(ch).or_default().push(p),
                    Err(SendError::Backpressure) => {}
                    Err(e) => panic!("send: {e}"),
                }
            }
            Op::Step(n) => {
                net.step(n);
            }
            Op::Switch => {
                net.new_path([0, 1]);
            }
            Op::Kill => {
                if let Some(id) = current_path(&net) {
                    net.cut(id);
                    net.lose(0, id);
                    net.lose(1, id);
                    net.new_path([1, 0]);
                }
            }
            Op::KillSeenLate => {
                // Side 0 notices at once; side 1 only after the new path is up, so it
                // first tries a graceful SWITCH on the dead path.
                if let Some(id) = current_path(&net) {
                    net.cut(id);
                    net.lose(0, id);
                    net.new_path([0, 1]);
                    net.step(3);
                    net.lose(1, id);
                }
            }
            Op::KillFallBack => {
                let live = net.links.values().filter(|l| !l.cut).count();
                if let Some(id) = current_path(&net).filter(|_| live > 1) {
                    net.cut(id);
                    net.lose(0, id);
                    net.lose(1, id);
                }
            }
            Op::DropOld => {
                let old: Vec<u64> = net.links.keys().copied().collect();
                if let Some(first) = old.first().filter(|_| old.len() > 1) {
                    let first = *first;
                    net.settle();
                    net.lose(0, first);
                    net.lose(1, first);
                    net.links.remove(&first);
                }
            }
        }
    }
    if current_path(&net).is_none() {
        net.new_path([0, 1]);
    }
    net.settle();
    for (side, sent) in sent.iter().enumerate() {
        let got = net.received(1 - side);
        for (ch, want) in sent {
            let have = got.get(ch).cloned().unwrap_or_default();
            assert_eq!(have.len(), want.len(), "side {side} channel {ch}: count");
            assert!(have == *want, "side {side} channel {ch}: order or content");
        }
        assert_eq!(
            net.cores[side].buffered(),
            (0, 0),
            "everything acknowledged"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn exactly_once_in_order_across_switches_and_kills(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}

#[test]
fn graceful_switch_retires_the_old_path() {
    let mut net = Net::new();
    let old = net.new_path([0, 1]);
    net.settle();
    net.cores[0]
        .send(CHAT, Bytes::from_static(b"before"))
        .unwrap();
    net.step(0);
    let new = net.new_path([0, 1]);
    net.cores[0]
        .send(CHAT, Bytes::from_static(b"after"))
        .unwrap();
    net.settle();
    let retired = |e: &Event| matches!(e, Event::PathRetired { path } if path.0 == old);
    assert!(net.events[0].iter().any(retired) && net.events[1].iter().any(retired));
    assert_eq!(net.cores[0].send_path(), Some(PathId(new)));
    let got = net.received(1);
    assert_eq!(
        got[&CHAT],
        vec![Bytes::from_static(b"before"), Bytes::from_static(b"after")]
    );
}

#[test]
fn blackholed_path_is_detected_by_keepalive_and_the_session_resumes() {
    let mut net = Net::new();
    let old = net.new_path([0, 1]);
    net.settle();
    let first = Bytes::from_static(b"lost in the black hole");
    net.cores[0].send(CHAT, first.clone()).unwrap();
    net.cut(old); // silently: nobody is told
    net.step(0);
    // Time passes; each side's keepalive notices the silence on its own.
    let start = net.now;
    while net.links[&old].up.iter().any(|u| *u) {
        net.now += Duration::from_millis(500);
        assert!(
            net.now - start < Duration::from_secs(13),
            "not detected in time"
        );
        for side in 0..2 {
            net.cores[side].handle_timeout(net.now).unwrap();
            while let Some(e) = net.cores[side].poll_event() {
                if matches!(e, Event::PathLost { .. }) {
                    net.links.get_mut(&old).unwrap().up[side] = false;
                }
                net.events[side].push(e);
            }
        }
    }
    assert!(net.now - start >= Duration::from_secs(12));
    net.new_path([1, 0]);
    net.settle();
    assert_eq!(net.received(1)[&CHAT], vec![first]);
    assert_eq!(net.cores[0].buffered(), (0, 0));
}
