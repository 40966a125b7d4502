//! Congestion control: a [`Controller`] trait with NewReno and CUBIC.
//!
//! Controllers count bytes. The connection calls [`Controller::on_ack`] for newly
//! acknowledged bytes outside recovery, [`Controller::on_congestion_event`] once per
//! recovery episode (the first loss detected after the previous episode ended), and
//! [`Controller::on_rto`] on a retransmission timeout. Controllers never see peer
//! input directly: every value passed in is already checked by the connection.

mod cubic;
mod newreno;

use std::fmt;
use std::time::{Duration, Instant};

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
}

/// Builds the controller `kind` with an initial window of `iw` segments of `mss`.
pub fn build(kind: CongestionKind, mss: usize, iw: usize) -> Box<dyn Controller> {
    match kind {
        CongestionKind::NewReno => Box::new(NewReno::new(mss, iw)),
        CongestionKind::Cubic => Box::new(Cubic::new(mss, iw)),
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
