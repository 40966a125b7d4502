//! Congestion control: a [`Controller`] trait with NewReno, CUBIC and BBR.
//!
//! Controllers count bytes. The connection calls [`Controller::on_ack`] for newly
//! acknowledged bytes outside recovery, [`Controller::on_congestion_event`] once per
//! recovery episode (the first loss detected after the previous episode ended), and
//! [`Controller::on_rto`] on a retransmission timeout. Controllers never see peer
//! input directly: every value passed in is already checked by the connection.
//! Model-based controllers (BBR) also get a [`RateSample`] per ACK that delivered
//! data ([`Controller::on_rate_sample`]) and set the pacing rate
//! ([`Controller::pacing_rate`]).

pub mod bbr;
mod cubic;
mod newreno;

use std::fmt;
use std::time::{Duration, Instant};

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use newreno::NewReno;

use crate::config::CongestionKind;

/// A congestion controller (byte-counting).
pub trait Controller: Send + fmt::Debug {
    /// The congestion window in bytes.
    fn window(&self) -> usize;
    /// `acked` bytes were newly acknowledged at `now`; `srtt` is the smoothed RTT;
    /// `app_limited` is true when the sender did not use the window, in which case
    /// the window must not grow.
    fn on_ack(&mut self, now: Instant, acked: usize, srtt: Duration, app_limited: bool);
    /// A loss was detected: reduce once for this recovery episode.
    fn on_congestion_event(&mut self, now: Instant);
    /// The retransmission timer expired: collapse to the loss window (RFC 5681 §3.1).
    fn on_rto(&mut self, now: Instant);
    /// Whether the controller is in slow start.
    fn in_slow_start(&self) -> bool;
    /// Delay-based slow-start exit (HyStart++, RFC 9406): the RTT rose, so the
    /// queue is filling; continue in congestion avoidance from the current window.
    fn exit_slow_start(&mut self);
    /// A delivery-rate sample (draft-ietf-ccwg-bbr §4.5.2), after every ACK that
    /// delivered data, in or out of recovery. Loss-based controllers ignore it.
    fn on_rate_sample(&mut self, _now: Instant, _rs: &RateSample) {}
    /// The recovery episode (of a loss or an RTO) ended.
    fn on_recovery_exit(&mut self) {}
    /// The pacing rate in bytes per second; `None`: the connection paces at
    /// 1.25 × window / SRTT.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
}

/// One delivery-rate sample (draft-ietf-ccwg-bbr §4.5.2 and
/// draft-cheng-iccrg-delivery-rate-estimation), built by the connection from its
/// own send and ACK times: peer input only decides which segments count as
/// delivered, and only segments really sent can be.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct RateSample {
    /// Bytes delivered over the connection's life (C.delivered), after this ACK.
    pub delivered_total: u64,
    /// C.delivered when the newest segment this ACK delivered was sent.
    pub prior_delivered: u64,
    /// Bytes delivered between that send and this ACK (rs.delivered).
    pub delivered: u64,
    /// The sample's interval: the longer of its send and ACK phases.
    pub interval: Duration,
    /// `delivered / interval` in bytes per second; `None` when the interval is
    /// zero or shorter than the minimum RTT (ACK compression would inflate it).
    pub delivery_rate: Option<u64>,
    /// Bytes newly acknowledged or SACKed by this ACK.
    pub newly_acked: u64,
    /// Bytes newly declared lost since the previous sample.
    pub newly_lost: u64,
    /// Bytes declared lost between that send and this ACK (C.lost − P.lost).
    pub lost: u64,
    /// Bytes in flight when that segment was sent (P.tx_in_flight).
    pub tx_in_flight: usize,
    /// Bytes in flight after this ACK.
    pub inflight: usize,
    /// The RTT sample of this ACK, if it gave one.
    pub rtt: Option<Duration>,
    /// The segment was sent while the application, not the network, limited the rate.
    pub app_limited: bool,
    /// The window was full when the ACK arrived.
    pub cwnd_limited: bool,
}

/// Builds the controller `kind` at `now` with an initial window of `iw` segments of
/// `mss`; `seed` drives any randomised timing (BBR's probe jitter).
pub fn build(
    kind: CongestionKind,
    now: Instant,
    mss: usize,
    iw: usize,
    seed: u64,
) -> Box<dyn Controller> {
    match kind {
        CongestionKind::NewReno => Box::new(NewReno::new(mss, iw)),
        CongestionKind::Cubic => Box::new(Cubic::new(mss, iw)),
        CongestionKind::Bbr => Box::new(Bbr::new(now, mss, iw, seed)),
        CongestionKind::BbrLossTolerant => Box::new(Bbr::loss_tolerant(now, mss, iw, seed)),
    }
}

/// RFC 6928 initial window: `iw` segments, at most the `min(iw × mss, max(2 × mss, 14600))`
/// formula of RFC 6928 §2 when `iw` is 10.
pub(crate) fn initial_window(mss: usize, iw: usize) -> usize {
    let iw = iw.clamp(1, 10);
    if iw == 10 {
        (10 * mss).min((2 * mss).max(14_600))
    } else {
        iw * mss
    }
}

/// The smallest window a controller ever uses: two segments (RFC 5681 eq. 4).
pub(crate) fn min_window(mss: usize) -> usize {
    2 * mss
}
