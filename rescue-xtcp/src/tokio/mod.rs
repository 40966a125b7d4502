//! The tokio driver: `XtcpSocket` and `XtcpStream` on quinn-udp.
//!
//! One UDP socket carries many connections; one driver task per socket feeds received
//! datagrams to the sans-IO endpoint, sends what it produces (GSO batches where the kernel
//! has them), fires its timers and wakes the streams. This module never interprets
//! segments itself and never retries a datagram: that is the core's job.

// Parts of the socket layer are used only by the driver, which lands next.
#[allow(dead_code)]
pub(crate) mod udp;
