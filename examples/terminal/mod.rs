//! Terminal plumbing shared by the examples: the one escaping function for anything a
//! peer supplied ([`shown`]), stdin lines for a session loop, and a bounded wait for the
//! session driver to finish at exit.

use std::time::Duration;

use rescue::session::SessionEvent;
use tokio::sync::mpsc::Receiver;

/// Lines typed ahead of the session loop (a person types slower than it reads).
const STDIN_QUEUE: usize = 16;
/// How long ending the session may take before the process exits anyway: the END linger
/// (5 s, our END unanswered) plus the driver's own bound on its last writes and CLOSE.
const END_WAIT: Duration = Duration::from_secs(12);

/// Text from a peer (chat, names, file names, reasons, error messages) as it may be
/// printed: every control, bidi or invisible character is written as `\u{..}`
/// (`rescue_proto::text::escape_for_display`). The decoders refuse such text already;
/// this is the second line of defence at every print, so that no peer can redraw the
/// terminal (ANSI sequences), write its clipboard (OSC 52) or reorder a line.
pub(crate) fn shown(text: impl std::fmt::Display) -> String {
    rescue_proto::text::escape_for_display(&text.to_string())
}

/// Lines of stdin, read on a plain thread (a blocked read there never holds up the
/// runtime's shutdown); the queue closes at the end of stdin or on a read error.
#[allow(dead_code)] // the demo reads no stdin
pub(crate) fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(l) = line else { return };
            if tx.blocking_send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lets the driver finish (our END acknowledged, or our ACK of the peer's END sent)
/// before the process exits, at most [`END_WAIT`]: the driver drops the event queue once
/// the core closed (END sent and answered, or its linger ran out).
pub(crate) async fn wait_closed(events: &mut Receiver<SessionEvent>) {
    let ended = async { while events.recv().await.is_some() {} };
    let _ = tokio::time::timeout(END_WAIT, ended).await;
}

/// The word the examples print for a path kind (`relay`, `direct-tcp`, `direct-udp`).
pub(crate) fn path_name(kind: rescue::session::PathKind) -> &'static str {
    use rescue::session::PathKind;
    match kind {
        PathKind::Relay => "relay",
        PathKind::DirectTcp => "direct-tcp",
        PathKind::DirectUdp => "direct-udp",
        _ => "other",
    }
}

/// The direct-path flags both the applet and the console take.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DirectArgs {
    /// Direct paths to try once the relayed session runs: off, tcp, udp or any.
    #[arg(long, default_value = "any", value_parser = parse_direct)]
    pub(crate) direct: rescue::session::DirectPolicy,
    /// Seconds the TCP phase of a direct-path round lasts (the applet listens, the
    /// console dials) before UDP is tried.
    #[arg(long, value_name = "SECS", default_value_t = rescue_proto::paths::TCP_WINDOW.as_secs())]
    pub(crate) direct_window: u64,
}

// The demo shares this module but takes no flags.
#[allow(dead_code)]
impl DirectArgs {
    /// The session's direct-path settings.
    pub(crate) fn config(&self) -> rescue::session::DirectConfig {
        rescue::session::DirectConfig {
            policy: self.direct,
            tcp_window: std::time::Duration::from_secs(self.direct_window.max(1)),
            ..rescue::session::DirectConfig::default()
        }
    }
}

fn parse_direct(s: &str) -> Result<rescue::session::DirectPolicy, String> {
    use rescue::session::DirectPolicy;
    match s {
        "off" => Ok(DirectPolicy::Off),
        "tcp" => Ok(DirectPolicy::Tcp),
        "udp" => Ok(DirectPolicy::Udp),
        "any" => Ok(DirectPolicy::Any),
        _ => Err(format!("{s:?}: expected off, tcp, udp or any")),
    }
}
