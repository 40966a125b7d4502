//! Conveniences over the event stream, for the common waits: the next chat message, the
//! end of the session, the next event of one kind. They read the same bounded queue as
//! [`Session::events`], so use one or the other: once the receiver has been taken, they
//! answer [`SessionError::EventsTaken`].

use std::time::Duration;

use rescue_proto::session::EndReason;

use super::{Session, SessionError, SessionEvent};

impl Session {
    /// The next event, or `None` once the session has ended and every event was read.
    /// Fails with [`SessionError::EventsTaken`] if [`Session::events`] took the queue.
    pub async fn next_event(&mut self) -> Result<Option<SessionEvent>, SessionError> {
        let events = self.events.as_mut().ok_or(SessionError::EventsTaken)?;
        Ok(events.recv().await)
    }

    /// Waits for the next chat message from the peer, skipping other events (path
    /// changes, grants, ...). Fails with [`SessionError::Ended`] if the session ends
    /// first.
    ///
    /// Skipped events are gone; use [`Session::next_event`] or [`Session::events`] to see
    /// everything.
    pub async fn next_chat(&mut self) -> Result<String, SessionError> {
        loop {
            match self.next_event().await? {
                Some(SessionEvent::Chat { text }) => return Ok(text),
                Some(SessionEvent::Ended { .. }) | None => return Err(SessionError::Ended),
                Some(_) => {}
            }
        }
    }

    /// As [`Session::next_chat`], giving up after `wait` with [`SessionError::Timeout`].
    pub async fn next_chat_within(&mut self, wait: Duration) -> Result<String, SessionError> {
        tokio::time::timeout(wait, self.next_chat())
            .await
            .map_err(|_| SessionError::Timeout)?
    }

    /// Waits until the session has ended (by either side, or a failure) and returns why,
    /// reading and dropping the events still queued.
    pub async fn ended(&mut self) -> Result<EndReason, SessionError> {
        loop {
            match self.next_event().await? {
                Some(SessionEvent::Ended { reason, .. }) => return Ok(reason),
                Some(_) => {}
                None => {
                    let reason = *self
                        .shared
                        .end_reason
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    return reason.ok_or(SessionError::Ended);
                }
            }
        }
    }
}
