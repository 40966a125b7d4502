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
mod events;
pub mod file;
pub mod frame;
mod path;
pub mod permission;
pub mod reliable;
pub mod sendbuf;

pub use channels::{Role, CHAT, CONTROL, FILE};
pub use frame::{ChannelId, EndReason, Frame, FrameError, FrameKind};
pub use reliable::{Event, PathId, Reliable, SendError, SessionError};

/// Fuzzing entry point: `data` is the byte stream of one path into a fresh console-side
/// core; also decodes whatever it delivers on the control, chat and file channels.
/// Must never panic, whatever the input.
#[doc(hidden)]
pub fn fuzz_session(data: &[u8]) {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    frame::fuzz_decode(data);
    let now = std::time::Instant::now();
    let path = PathId(0);
    let mut core = Reliable::new(Role::Console, reliable::Config::default(), now);
    let _ = core.on_path_up(now, path);
    let mut stream = BytesMut::from(data);
    let mut out = BytesMut::new();
    while let Ok(Some(f)) = frame::FrameCodec.decode(&mut stream) {
        if core.handle_frame(now, path, f).is_err() {
            return;
        }
        while core.poll_transmit(now, path, &mut out) {}
        out.clear();
        while let Some(e) = core.poll_event() {
            if let Event::Data { channel, payload } = e {
                match channel {
                    CONTROL => drop(control::ControlMsg::decode(&payload)),
                    CHAT => drop(chat::decode(&payload)),
                    FILE => drop(file::FileMsg::decode(&payload)),
                    _ => {}
                }
            }
        }
    }
    let _ = core.handle_timeout(now + std::time::Duration::from_secs(60));
}
