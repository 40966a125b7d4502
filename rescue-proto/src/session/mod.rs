//! The session layer: channels, sequencing, switch/resume, consent and files.
//!
//! Everything here is sans-IO: the caller supplies bytes and the time (`now`) and gets
//! back bytes to write, events and deadlines. Nothing here reads a clock, touches a
//! socket, spawns a task or computes a hash (digests and hash functions come from the
//! caller, so this crate needs no crypto dependency).
//!
//! Start from [`reliable::Reliable`] (one per session; drives frames over any number of
//! paths), then [`permission::Gatekeeper`] (applet side) and [`permission::Requester`]
//! (console side), [`file::FileSender`] / [`file::FileReceiver`] and [`chat`].
//! The byte formats are in PROTOCOL.md section 7.

pub mod channels;
pub mod chat;
pub mod control;
pub mod file;
pub mod frame;
mod path;
pub mod permission;
pub mod reliable;
pub mod sendbuf;

pub use channels::{Role, CHAT, CONTROL, FILE};
pub use frame::{ChannelId, EndReason, Frame, FrameError, FrameKind};
pub use reliable::{Event, PathId, Reliable, SendError, SessionError};
