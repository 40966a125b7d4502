//! Pre-authentication slot exhaustion (issue 7, point 7): a flood of idle TCP
//! connections from one source, held open, against a real gateway on loopback. Only the
//! per-source cap of them is held (the rest are closed at once), a legitimate session
//! from another source sets up while they are held, and the held ones are closed by the
//! one pre-auth deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const PER_SOURCE: usize = 4;
const POOL: usize = 12;
const FLOOD: usize = 40;
const DEADLINE: Duration = Duration::from_secs(3);

// The flood exceeds the per-source cap and the unauthenticated pool.
const _: () = assert!(FLOOD > POOL && POOL > 2 * PER_SOURCE);

/// An idle TCP connection to `addr` from the loopback address `source`.
async fn idle_from(source: &str, addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// Whether the gateway has closed `s` (EOF or reset) without waiting.
fn closed_now(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits until the gateway closes `s`.
async fn closed(mut s: TcpStream) {
    let mut buf = [0u8; 1];
    let _ = s.read(&mut buf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_from_one_source_does_not_stop_legitimate_set_ups() {
    let mut limits = fast_limits();
    limits.pre_auth_timeout = DEADLINE;
    limits.max_pre_auth_per_source = PER_SOURCE;
    limits.max_pre_auth_connections = POOL;
    let setup = Setup::start_with(limits).await;
    // The flood comes from 127.0.0.2; the applet and console connect from 127.0.0.1
    // (the loopback source the OS picks for a loopback destination).
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(idle_from("127.0.0.2", &setup.addr).await);
    }
    // All but the per-source cap are closed at once.
    let (mut held, mut dropped) = (Vec::new(), 0usize);
    for s in flood {
        // A connection the gateway closed reads EOF at once; a held one would wait.
        let mut buf = [0u8; 1];
        let mut s = s;
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(_) => dropped += 1,
            Err(_) => held.push(s),
        }
    }
    assert_eq!(held.len(), PER_SOURCE, "held flood connections");
    assert_eq!(dropped, FLOOD - PER_SOURCE);

    // A legitimate session sets up while the flood is held.
    let started = Instant::now();
    let (mut a, mut c) = setup.session().await;
    let setup_time = started.elapsed();
    exchange(&mut a, &mut c, b"during", b"the flood").await;
    assert!(
        held.iter().all(|s| !closed_now(s)),
        "the flood was dropped before the session set up: it waited for their slots"
    );
    assert!(setup_time < DEADLINE, "set-up took {setup_time:?}");

    // The deadline closes the held connections, none long after it.
    for s in held {
        within(closed(s)).await;
    }
    let lasted = flood_started.elapsed();
    assert!(
        lasted >= DEADLINE,
        "closed after {lasted:?}, before the deadline"
    );
    // And the source may connect again.
    let mut again = idle_from("127.0.0.2", &setup.addr).await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(200), again.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "a new connection from the source was not held"
    );
    exchange(&mut a, &mut c, b"after", b"the flood").await;
}
