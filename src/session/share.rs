//! The end user's files to the technician (PROTOCOL.md 7.6): the applet sends without a
//! grant (sending their own file is the end user's choice, made in the applet's
//! interface); the console takes it if its application set a download folder and
//! refuses it otherwise. The digests are verified and the transfer audited exactly as in
//! the other direction.

use std::sync::atomic::Ordering;

use rescue_proto::session::file::{transfer_sender, FileSender};

use super::{driver::Command, files, transfer, Role, Session, SessionError, TransferId};

impl Session {
    /// Applet side: sends `size` bytes from `reader` to the technician as a file named
    /// `name`. No grant is needed; the console accepts or refuses the offer, and progress
    /// and the outcome arrive as events, as for [`Session::send_file`].
    pub async fn share_file<R>(
        &self,
        reader: R,
        name: &str,
        size: u64,
    ) -> Result<TransferId, SessionError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        if self.shared.role != Role::Applet {
            return Err(SessionError::WrongRole(self.shared.role));
        }
        let id = self.shared.next_transfer.fetch_add(1, Ordering::Relaxed);
        if transfer_sender(id) != Role::Applet {
            // 2^31 transfers in one session: the applet's half of the ids is used up.
            return Err(SessionError::Ended);
        }
        let (sender, offer) = FileSender::offer_by_end_user(id, name, size)?;
        let file = files::OutgoingFile::new(Box::new(reader), size);
        let out = Box::new(transfer::Outgoing::new(sender, file, None, name, size));
        self.call(
            |reply| Command::SendFile(out, offer, reply),
            self.call_timeout,
        )
        .await?
    }

    /// Applet side: sends the file at `path` to the technician (see
    /// [`Session::share_file`]).
    pub async fn share_path(&self, path: &std::path::Path) -> Result<TransferId, SessionError> {
        let (reader, name, size) = files::open_path(path).await?;
        self.share_file(reader, &name, size).await
    }
}
