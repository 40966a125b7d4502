//! One UDP socket on quinn-udp: batched receive (`recvmmsg`, GRO) and segmented send
//! (GSO) with a fallback to one datagram per `sendmsg` when the kernel refuses GSO.
//!
//! Send errors other than "would block" are logged and treated as loss, as quinn does:
//! the transport above retransmits. This module never retries a datagram by itself.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use ::tokio::io::Interest;
use ::tokio::net::UdpSocket;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Kernel socket buffer asked for in each direction: 4 MiB holds about 3,000 datagrams of
/// 1,200 bytes, a few milliseconds of a multi-gigabit flow (Linux caps it at rmem_max).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;
/// Largest UDP payload one received datagram (or GRO segment) can have.
pub(crate) const MAX_UDP_PAYLOAD: usize = 65_527;

/// A UDP socket driven through quinn-udp.
#[derive(Debug)]
pub(crate) struct UdpIo {
    io: UdpSocket,
    state: UdpSocketState,
    /// Set by tests and callers that want one datagram per `sendmsg`.
    gso_allowed: bool,
    /// Datagrams that could not be sent (errors other than "would block").
    send_errors: AtomicU64,
}

impl UdpIo {
    /// Binds `addr`, enables GRO where the kernel has it and enlarges the socket buffers.
    /// Must be called inside a tokio runtime.
    pub(crate) fn bind(addr: SocketAddr, gso_allowed: bool) -> io::Result<Self> {
        Self::from_std(std::net::UdpSocket::bind(addr)?, gso_allowed)
    }

    /// Takes over a bound socket (made non-blocking here), as [`UdpIo::bind`] sets one up.
    pub(crate) fn from_std(std: std::net::UdpSocket, gso_allowed: bool) -> io::Result<Self> {
        std.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std).into())?;
        // Best effort: a smaller buffer only costs throughput.
        let _ = state.set_recv_buffer_size((&std).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&std).into(), SOCKET_BUFFER);
        Ok(Self {
            io: UdpSocket::from_std(std)?,
            state,
            gso_allowed,
            send_errors: AtomicU64::new(0),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// How many equal-size datagrams one send may carry (1 without GSO). Can drop to 1 at
    /// run time when the kernel rejects GSO.
    pub(crate) fn max_gso_segments(&self) -> usize {
        if self.gso_allowed {
            self.state.max_gso_segments().max(1)
        } else {
            1
        }
    }

    /// How many datagrams one receive buffer may hold after GRO (1 without GRO).
    pub(crate) fn gro_segments(&self) -> usize {
        self.state.gro_segments().max(1)
    }

    /// Datagrams dropped because the kernel refused them.
    pub(crate) fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// Receives a batch: fills `meta[..n]`, each describing `len` bytes of the matching
    /// buffer split into datagrams of `stride` bytes.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.io.poll_recv_ready(cx))?;
            let res = self.io.try_io(Interest::READABLE, || {
                self.state.recv((&self.io).into(), bufs, meta)
            });
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends one transmit (several datagrams when `segment_size` is set). Returns
    /// `Pending` only while the socket buffer is full; other errors count as loss.
    pub(crate) fn poll_send(&self, cx: &mut Context<'_>, t: &Transmit<'_>) -> Poll<()> {
        loop {
            if ready!(self.io.poll_send_ready(cx)).is_err() {
                self.send_errors.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(());
            }
            let res = self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), t)
            });
            match res {
                Ok(()) => return Poll::Ready(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    self.on_send_error(e, t);
                    return Poll::Ready(());
                }
            }
        }
    }

    /// Sends one transmit, waiting while the socket buffer is full.
    pub(crate) async fn send(&self, t: &Transmit<'_>) {
        poll_fn(|cx| self.poll_send(cx, t)).await
    }

    /// A failed GSO send (EIO/EINVAL from drivers that advertise GSO and cannot do it):
    /// quinn-udp has already lowered `max_gso_segments` to 1; send the datagrams of this
    /// transmit one by one so they are not lost. Anything else is counted as loss.
    fn on_send_error(&self, e: io::Error, t: &Transmit<'_>) {
        let gso_refused = matches!(e.raw_os_error(), Some(EIO | EINVAL));
        let Some(seg) = t.segment_size.filter(|_| gso_refused) else {
            tracing::debug!(error = %e, dest = %t.destination, "UDP send failed");
            self.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        tracing::debug!(error = %e, "GSO send refused; sending datagrams one by one");
        for chunk in t.contents.chunks(seg.max(1)) {
            let one = Transmit {
                destination: t.destination,
                ecn: t.ecn,
                contents: chunk,
                segment_size: None,
                src_ip: t.src_ip,
            };
            let res = self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &one)
            });
            if res.is_err() {
                self.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `EIO` and `EINVAL` on Linux (the values are the same on every Unix we build for).
const EIO: i32 = 5;
const EINVAL: i32 = 22;

/// Splits one received buffer described by `meta` into its datagrams.
pub(crate) fn datagrams<'a>(buf: &'a [u8], meta: &RecvMeta) -> impl Iterator<Item = &'a [u8]> {
    let len = meta.len.min(buf.len());
    let stride = if meta.stride == 0 {
        len.max(1)
    } else {
        meta.stride
    };
    buf.get(..len).unwrap_or_default().chunks(stride)
}

/// Receive buffers for one batch: `slots` buffers of `slot_len` bytes.
#[derive(Debug)]
pub(crate) struct RecvBufs {
    storage: Vec<u8>,
    slot_len: usize,
    pub(crate) meta: Vec<RecvMeta>,
}

impl RecvBufs {
    /// Buffers for `slots` receives of up to `gro_segments` datagrams of `max_payload`.
    pub(crate) fn new(slots: usize, max_payload: usize, gro_segments: usize) -> Self {
        let slot_len = max_payload.min(MAX_UDP_PAYLOAD) * gro_segments.max(1);
        let slot_len = slot_len.clamp(MAX_UDP_PAYLOAD, 64 * MAX_UDP_PAYLOAD);
        Self {
            storage: vec![0; slot_len * slots.max(1)],
            slot_len,
            meta: vec![RecvMeta::default(); slots.max(1)],
        }
    }

    /// Receives one batch from `udp`; returns the number of filled slots.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        udp: &UdpIo,
    ) -> Poll<io::Result<usize>> {
        let mut slices: Vec<IoSliceMut<'_>> = self
            .storage
            .chunks_mut(self.slot_len)
            .map(IoSliceMut::new)
            .collect();
        udp.poll_recv(cx, &mut slices, &mut self.meta)
    }

    /// Receives one batch from `udp` (async).
    pub(crate) async fn recv(&mut self, udp: &UdpIo) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, udp)).await
    }

    /// The datagrams of slot `i` with their sender.
    pub(crate) fn slot(&self, i: usize) -> Option<(SocketAddr, impl Iterator<Item = &[u8]>)> {
        let meta = self.meta.get(i)?;
        let start = i.checked_mul(self.slot_len)?;
        let buf = self.storage.get(start..start + self.slot_len)?;
        Some((meta.addr, datagrams(buf, meta)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_gro_batch_by_stride() {
        let buf: Vec<u8> = (0..10).collect();
        let meta = RecvMeta {
            len: 10,
            stride: 4,
            ..RecvMeta::default()
        };
        let parts: Vec<&[u8]> = datagrams(&buf, &meta).collect();
        assert_eq!(parts, vec![&[0, 1, 2, 3][..], &[4, 5, 6, 7], &[8, 9]]);
    }

    #[test]
    fn never_reads_past_the_buffer() {
        let buf = [1u8; 4];
        let meta = RecvMeta {
            len: 100,
            stride: 0,
            ..RecvMeta::default()
        };
        assert_eq!(datagrams(&buf, &meta).count(), 1);
    }

    #[tokio::test]
    async fn sends_a_gso_batch_and_receives_every_datagram() {
        let a = UdpIo::bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let b = UdpIo::bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let seg = 1200;
        let n = a.max_gso_segments().min(10);
        let contents: Vec<u8> = (0..seg * n - 7).map(|i| (i / seg) as u8).collect();
        let t = Transmit {
            destination: b.local_addr().unwrap(),
            ecn: None,
            contents: &contents,
            segment_size: (n > 1).then_some(seg),
            src_ip: None,
        };
        a.send(&t).await;
        let mut bufs = RecvBufs::new(quinn_udp::BATCH_SIZE, seg, b.gro_segments());
        let mut got = Vec::new();
        while got.len() < n {
            let k = ::tokio::time::timeout(std::time::Duration::from_secs(5), bufs.recv(&b))
                .await
                .unwrap()
                .unwrap();
            for i in 0..k {
                let (from, dgrams) = bufs.slot(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.extend(dgrams.map(<[u8]>::to_vec));
            }
        }
        assert_eq!(got.concat(), contents);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, d)| d.iter().all(|b| *b == i as u8)));
        assert_eq!(a.send_errors(), 0);
    }
}
