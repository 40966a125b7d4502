//! Gateway frames and signalling messages (see `PROTOCOL.md` sections 2-5).
//!
//! A gateway connection carries [frames](frame): a 4-byte header (`type: u8`,
//! `length: u24` big-endian) and at most [`MAX_PAYLOAD`](limits::MAX_PAYLOAD) bytes of
//! payload. [`signal`] holds one type per message and the [`signal::Message`] enum over
//! all of them; [`limits`] every size limit and timeout of the gateway layer; [`probe`]
//! the UDP datagram of the rendezvous (3.13).
//!
//! Nothing here can panic on peer input: every parser works on a byte slice through a
//! bounds-checked reader, checks each length against a named limit before it allocates,
//! and rejects trailing bytes. Nothing here performs I/O or reads a clock.

pub mod frame;
pub mod limits;
pub mod probe;
pub mod scan;
pub mod signal;

pub use frame::{Frame, FrameError, FrameType, Header};
pub use signal::{Message, SignalError};
