//! Terminal plumbing shared by the `applet` and `console` examples: stdin lines for a
//! session loop, and a bounded wait for the session driver to finish at exit.

use std::time::Duration;

use rescue::session::SessionEvent;
use tokio::sync::mpsc::Receiver;

/// Lines typed ahead of the session loop (a person types slower than it reads).
const STDIN_QUEUE: usize = 16;
/// How long ending the session may take before the process exits anyway.
const END_WAIT: Duration = Duration::from_secs(5);

/// Lines of stdin, read on a plain thread (a blocked read there never holds up the
/// runtime's shutdown); the queue closes at the end of stdin or on a read error.
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
