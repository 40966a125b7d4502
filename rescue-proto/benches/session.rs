//! Session-layer throughput over an in-memory transport, as a ratio to the raw transport.
//!
//! Two reliable cores exchange frames through byte buffers on one thread: the sender
//! queues DATA on the file channel, `poll_transmit` writes frames into a 256 KiB wire
//! buffer, the "transport" copies the wire into the receiver's buffer, `FrameCodec`
//! splits it and the receiver handles every frame and delivers the payloads; its ACKs
//! flow back the same way. The `raw` baseline moves the same bytes in the same payload
//! sizes through the same two copies with no framing, sequencing or ACKs.
//! Run: `cargo bench -p rescue-proto --bench session` (about a minute).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rescue_proto::session::frame::{FrameCodec, HEADER_LEN};
use rescue_proto::session::reliable::{Config, Event, PathId, Reliable};
use rescue_proto::session::{Role, FILE};
use tokio_util::codec::Decoder;

/// Bytes the transport moves per write (large writes, as through TLS).
const WIRE_CHUNK: usize = 256 * 1024;
const PATH: PathId = PathId(0);

/// Moves every frame `from` has for the path into `to`, through one copy; returns the
/// payload bytes `to` delivered.
fn carry(
    t: Instant,
    from: &mut Reliable,
    to: &mut Reliable,
    wire: &mut BytesMut,
    rx: &mut BytesMut,
) -> usize {
    let mut delivered = 0;
    loop {
        while wire.len() < WIRE_CHUNK && from.poll_transmit(t, PATH, wire) {}
        if wire.is_empty() {
            return delivered;
        }
        rx.extend_from_slice(wire); // the transport's copy
        wire.clear();
        while let Ok(Some(f)) = FrameCodec.decode(rx) {
            to.handle_frame(t, PATH, f).expect("valid frames");
        }
        while let Some(e) = to.poll_event() {
            if let Event::Data { payload, .. } = e {
                delivered += payload.len();
                black_box(payload);
            }
        }
    }
}

/// Sends `total` bytes in `payload`-byte DATA frames from one core to the other.
fn session_transfer(total: usize, payload: usize) -> usize {
    let start = Instant::now();
    let mut a = Reliable::new(Role::Console, Config::default(), start);
    let mut b = Reliable::new(Role::Applet, Config::default(), start);
    a.on_path_up(start, PATH).unwrap();
    b.on_path_up(start, PATH).unwrap();
    let chunk = Bytes::from(vec![0xa5; payload]);
    let (mut w1, mut r1, mut w2, mut r2) = Default::default();
    let (mut sent, mut got) = (0, 0);
    let mut t = start;
    while got < total {
        while sent < total && a.send(FILE, chunk.clone()).is_ok() {
            sent += payload;
        }
        got += carry(t, &mut a, &mut b, &mut w1, &mut r1);
        // A virtual clock: lets the receiver's delayed ACK fire when a round stalls.
        t += Duration::from_millis(1);
        b.handle_timeout(t).unwrap();
        carry(t, &mut b, &mut a, &mut w2, &mut r2);
        a.handle_timeout(t).unwrap();
    }
    got
}

/// The raw transport: the same wire image (each payload behind a 23-byte gap where the
/// session header would be, so both runs copy the same bytes at the same alignments)
/// written into the wire buffer in the same payload sizes, copied once by the
/// "transport" and handed out as slices; no framing, sequencing or ACKs.
fn raw_transfer(total: usize, payload: usize) -> usize {
    let src = vec![0xa5u8; payload];
    let gap = [0u8; HEADER_LEN];
    let (mut wire, mut rx) = (
        Vec::with_capacity(2 * WIRE_CHUNK),
        Vec::with_capacity(2 * WIRE_CHUNK),
    );
    let (mut sent, mut got) = (0, 0);
    while got < total {
        while sent < total && wire.len() < WIRE_CHUNK {
            wire.extend_from_slice(&gap);
            wire.extend_from_slice(&src);
            sent += payload;
        }
        rx.clear();
        rx.extend_from_slice(&wire); // the transport's copy
        wire.clear();
        for d in rx.chunks(HEADER_LEN + payload) {
            got += d.len() - HEADER_LEN;
            black_box(&d[HEADER_LEN..]);
        }
    }
    got
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_vs_raw");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (payload, total) in [(256, 2 << 20), (16 * 1024, 32 << 20), (64 * 1024, 32 << 20)] {
        let frames = (total / payload) as u64;
        for (name, f) in [
            ("session", session_transfer as fn(usize, usize) -> usize),
            ("raw", raw_transfer),
        ] {
            g.throughput(Throughput::Bytes(total as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("{name}_bytes"), payload),
                &payload,
                |b, &p| b.iter(|| assert_eq!(f(total, p), total)),
            );
            if payload == 256 {
                g.throughput(Throughput::Elements(frames));
                g.bench_with_input(
                    BenchmarkId::new(format!("{name}_frames"), payload),
                    &payload,
                    |b, &p| b.iter(|| assert_eq!(f(total, p), total)),
                );
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
