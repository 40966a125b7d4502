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
//!
//! # Driving it
//!
//! A thin async driver runs one [`Reliable`] per session over any number of paths (each
//! an `AsyncRead + AsyncWrite`, the end-to-end TLS stream):
//!
//! 1. when a path is up and bound, call `on_path_up(now, id)` *before* reading from it;
//!    read it through `FramedRead<_, frame::FrameCodec>` and pass every frame to
//!    `handle_frame(now, id, bytes)`; on EOF or an I/O error call `on_path_lost`;
//! 2. after every input, loop `poll_transmit(now, id, &mut buf)` for each path until it
//!    returns `false` and write `buf` in one go (large writes suit TLS);
//! 3. drain `poll_event()`: `Data` on [`CONTROL`] goes to [`control::ControlMsg::decode`]
//!    and the [`permission::Gatekeeper`] (applet) or [`permission::Requester`] (console),
//!    on [`CHAT`] to [`chat::decode`], on [`FILE`] to [`file::FileMsg::decode`] and the
//!    file machines; `Ended` calls `end()` on the gatekeeper or requester (grants die on
//!    both sides); `PathLost` / `PathRetired` close that transport (after a grace period
//!    for a retired one); `Closed` or a `SessionError` close everything;
//! 4. sleep until the earliest of `poll_timeout()` (and the gatekeeper's), then call
//!    `handle_timeout(now)`.

pub mod candidates;
pub mod channels;
pub mod chat;
pub mod control;
mod events;
pub mod file;
mod file_name;
pub mod frame;
pub mod media;
pub mod media_queue;
pub mod media_stream;
mod path;
pub mod permission;
pub mod reliable;
pub mod sendbuf;

pub use channels::{Role, CHAT, CONTROL, FILE, MEDIA};
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
    let mut media_rx = media_stream::MediaReceiver::new();
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
                    MEDIA => drop(media_rx.handle(now, &payload)),
                    _ => {}
                }
            }
        }
    }
    let _ = core.handle_timeout(now + std::time::Duration::from_secs(60));
}
