//! Connection and endpoint configuration.

use std::time::Duration;

/// Largest window in bytes: far below 2^31 so wrap-safe sequence comparisons
/// (`Seq`) stay correct across a whole window.
pub const MAX_WINDOW: usize = 1 << 30;
/// Smallest MSS accepted from configuration or a peer's SYN: smaller segments
/// would make the header dominate and the per-segment tables explode.
pub const MIN_MSS: u16 = 64;
/// Largest MSS: one segment must fit one UDP datagram (65507 bytes) with headers.
pub const MAX_MSS: u16 = 65_000;

/// Which congestion controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CongestionKind {
    /// CUBIC (RFC 9438), as in Linux and quinn.
    Cubic,
    /// NewReno (RFC 5681 + RFC 6582), the reference controller.
    NewReno,
    /// BBR (draft-ietf-ccwg-bbr, "BBRv3"): model-based and paced.
    Bbr,
    /// BBR that takes losses without queueing delay as random, not congestion
    /// ([`crate::cc::Bbr::loss_tolerant`]): the default, chosen by measurement
    /// (docs/PERFORMANCE.md): on a lossless loopback as fast as CUBIC,
    /// through 1 % and 5 % random loss 19× and 38× quinn's CUBIC (CUBIC itself:
    /// 0.9× and 0.75×), and on a full drop-tail buffer it answers as the draft's BBR.
    #[default]
    BbrLossTolerant,
}

/// Configuration shared by an endpoint and its connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Payload bytes per segment we send and accept (the peer's SYN may lower what
    /// we send). Default 1200, as quinn's initial MTU, so datagrams stay under 1280.
    pub mss: u16,
    /// Bytes the application may queue for sending (unacknowledged plus unsent).
    pub send_buffer: usize,
    /// Receive buffer, and so the largest advertised window. Default 4 MiB;
    /// advertised with window scaling.
    pub recv_buffer: usize,
    /// A connection that hears nothing valid from its peer for this long is closed
    /// with [`crate::CloseReason::TimedOut`]. Default 30 s.
    pub user_timeout: Duration,
    /// An idle connection sends a keepalive probe this often (≤ 25 s to hold NAT
    /// mappings; capped at a third of `user_timeout`). Default 10 s.
    pub keepalive_interval: Duration,
    /// The congestion controller.
    pub congestion: CongestionKind,
    /// Most connections in SYN-RECEIVED at once; further SYNs are dropped and
    /// counted (RFC 4987 bounded half-open table).
    pub max_half_open: usize,
    /// Most established incoming connections waiting for [`crate::Endpoint::accept`].
    pub max_accept_queue: usize,
    /// Most connections an endpoint holds at once.
    pub max_connections: usize,
    /// Lower bound of the retransmission timeout (RFC 6298 §2.4 allows < 1 s;
    /// Linux uses 200 ms). Default 200 ms.
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout. Default 10 s (below RFC 6298's
    /// 60 s: a hole-punched path must recover quickly after a NAT blackout; the
    /// user timeout decides when to give up).
    pub max_rto: Duration,
    /// Initial RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Longest delay of an ACK for in-order data (RFC 9293 allows up to 500 ms,
    /// RFC 5681 recommends ≤ 200 ms; we use 25 ms).
    pub max_ack_delay: Duration,
    /// Least time a connection stays in TIME-WAIT (it also stays at least twice
    /// `max_rto` and at least `user_timeout`, to answer a retransmitted FIN). Connection ids and random ISNs
    /// separate incarnations, so seconds suffice. Default 2 s.
    pub time_wait: Duration,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: usize,
    /// Pace transmissions at 1.25 × cwnd / srtt (quinn's pacer).
    pub pacing: bool,
    /// Largest segment payload path-MTU discovery (RFC 8899) probes for, and the
    /// largest this side accepts (announced in its SYN); `mss` is where it starts.
    /// Default 1400: a 1,472-byte UDP payload with a full SACK header, which fits
    /// a 1,500-byte Ethernet MTU over IPv4. At most `mss`: discovery is off.
    pub max_mss: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1200,
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            user_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
            congestion: CongestionKind::BbrLossTolerant,
            max_half_open: 64,
            max_accept_queue: 64,
            max_connections: 1024,
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(10),
            initial_rto: Duration::from_secs(1),
            max_ack_delay: Duration::from_millis(25),
            time_wait: Duration::from_secs(2),
            initial_window: 10,
            pacing: true,
            max_mss: 1400,
        }
    }
}

impl Config {
    /// The MSS clamped to [`MIN_MSS`]..=[`MAX_MSS`].
    pub(crate) fn clamped_mss(&self) -> u16 {
        self.mss.clamp(MIN_MSS, MAX_MSS)
    }

    /// The largest segment payload we accept and may probe for (at least the MSS).
    pub(crate) fn clamped_max_mss(&self) -> u16 {
        self.max_mss.clamp(MIN_MSS, MAX_MSS).max(self.clamped_mss())
    }

    /// The receive buffer clamped to [`MAX_WINDOW`] and at least two segments.
    pub(crate) fn clamped_recv_buffer(&self) -> usize {
        self.recv_buffer
            .clamp(2 * usize::from(self.clamped_mss()), MAX_WINDOW)
    }

    /// The send buffer clamped to [`MAX_WINDOW`] and at least one segment.
    pub(crate) fn clamped_send_buffer(&self) -> usize {
        self.send_buffer
            .clamp(usize::from(self.clamped_mss()), MAX_WINDOW)
    }

    /// The keepalive interval, at most 25 s and at most a third of the user timeout.
    pub(crate) fn effective_keepalive(&self) -> Duration {
        self.keepalive_interval
            .min(Duration::from_secs(25))
            .min(self.user_timeout / 3)
            .max(Duration::from_millis(10))
    }

    /// The window-scale shift that lets the receive buffer fit a 16-bit window.
    pub(crate) fn window_scale(&self) -> u8 {
        let mut shift = 0u8;
        while (self.clamped_recv_buffer() >> shift) > usize::from(u16::MAX) && shift < 14 {
            shift += 1;
        }
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_window_needs_scaling_and_fits() {
        let c = Config::default();
        let s = c.window_scale();
        assert_eq!(s, 7);
        assert!(c.clamped_recv_buffer() >> s <= usize::from(u16::MAX));
        assert!(c.effective_keepalive() <= Duration::from_secs(25));
    }

    #[test]
    fn limits_clamp_silly_values() {
        let c = Config {
            mss: 1,
            recv_buffer: 0,
            keepalive_interval: Duration::from_secs(600),
            ..Config::default()
        };
        assert_eq!(c.clamped_mss(), MIN_MSS);
        assert_eq!(c.clamped_recv_buffer(), 2 * usize::from(MIN_MSS));
        assert_eq!(c.window_scale(), 0);
        assert_eq!(c.effective_keepalive(), Duration::from_secs(10));
    }
}
