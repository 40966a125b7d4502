//! Verified file transfer (PROTOCOL.md 7.6): offer → accept/reject → chunks →
//! done{md5, sha256} → result.
//!
//! ```text
//!  sender:   Offered ─ACCEPT─► Sending ─finish()─► AwaitResult ─RESULT ok─► Done
//!               └─REJECT/CANCEL──────┴──────CANCEL──────┴─RESULT bad─► Failed
//!  receiver: Offered ─accept()─► Receiving ─DONE─► Verifying ─verify()─► Done | Failed
//! ```
//!
//! Both machines are sans-IO: they never open a file or compute a digest. The sender's
//! caller reads the file and hashes it; the receiver's caller writes the chunks and
//! hashes what it wrote, then hands the digests to [`FileReceiver::verify`]. Success is
//! reported only after both digests match; any failure or cancel tells the caller to
//! remove the partial file ([`FileEvent::RemovePartial`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use super::file_name::{sanitize_name, NameError, LOOKALIKE_SLASHES, MAX_NAME_LEN};
use super::permission::{Grant, PermissionError, Requester};
use crate::permission::Permission;

/// Largest file offered or accepted: 64 GiB, bounds what a peer can make us write.
/// A receiver may set a lower limit ([`FileReceiver::on_offer`]).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024 * 1024;
/// Bytes of file data per CHUNK (fits a frame with room for the chunk header).
pub const CHUNK_SIZE: usize = 32 * 1024;
/// The top bit of a transfer id: set on the ids the applet chooses, clear on the
/// console's (PROTOCOL.md 7.6), so that a CANCEL is never ambiguous.
pub const APPLET_TRANSFER_BIT: u32 = 0x8000_0000;

/// Who chose transfer id `id` (and so sends that file).
pub fn transfer_sender(id: u32) -> crate::Role {
    if id & APPLET_TRANSFER_BIT != 0 {
        crate::Role::Applet
    } else {
        crate::Role::Console
    }
}

/// The first transfer id `role` chooses; each next one adds 1 (and stays in `role`'s half
/// of the id space).
pub fn first_transfer_id(role: crate::Role) -> u32 {
    match role {
        crate::Role::Applet => APPLET_TRANSFER_BIT | 1,
        crate::Role::Console => 1,
    }
}

/// MD5 and SHA-256 of a file, as computed by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digests {
    /// MD5 (compatibility with the original service's thumbprint).
    pub md5: [u8; 16],
    /// SHA-256 (integrity).
    pub sha256: [u8; 32],
}

/// One message on the file channel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileMsg {
    /// Sender proposes a file.
    Offer {
        /// Transfer id chosen by the sender.
        id: u32,
        /// Size in bytes.
        size: u64,
        /// Name; a decoded OFFER's name passed [`sanitize_name`].
        name: String,
    },
    /// Receiver takes it.
    Accept {
        /// Transfer id.
        id: u32,
    },
    /// Receiver declines it.
    Reject {
        /// Transfer id.
        id: u32,
    },
    /// File data at `offset`.
    Chunk {
        /// Transfer id.
        id: u32,
        /// Offset of `data` in the file.
        offset: u64,
        /// At most [`CHUNK_SIZE`] bytes.
        data: Bytes,
    },
    /// All data sent; the sender's digests.
    Done {
        /// Transfer id.
        id: u32,
        /// The digests.
        digests: Digests,
    },
    /// Either side abandons the transfer.
    Cancel {
        /// Transfer id.
        id: u32,
    },
    /// The receiver's verdict after checking the digests.
    Result {
        /// Transfer id.
        id: u32,
        /// Whether both digests matched.
        ok: bool,
    },
}

/// A file-transfer failure. Peer violations end the transfer (the partial file is
/// removed), not the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// No live grant for file transfer (sender side).
    #[error(transparent)]
    Permission(#[from] PermissionError),
    /// File transfer is not granted on the receiving side: answer with REJECT.
    #[error("file transfer not granted")]
    NotPermitted,
    /// The message is malformed.
    #[error("malformed file message")]
    Malformed,
    /// The name breaks the file-name rule (PROTOCOL.md 7.6; [`sanitize_name`]).
    #[error("unacceptable file name: {0}")]
    BadName(#[from] NameError),
    /// The size exceeds the receiver's limit (at most [`MAX_FILE_SIZE`]).
    #[error("file of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The offered size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A chunk out of order, too big, or beyond the offered size; or DONE early.
    #[error("file data out of order or beyond the offered size")]
    BadChunk,
    /// The message does not fit the transfer's state.
    #[error("unexpected file message")]
    Unexpected,
    /// The received file's digests differ from the sender's.
    #[error("file digest mismatch")]
    HashMismatch,
    /// The peer rejected or cancelled.
    #[error("transfer rejected or cancelled by the peer")]
    Cancelled,
}

/// What a file state machine tells its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileEvent {
    /// Write `data` at `offset` of the partial file.
    Write {
        /// Offset.
        offset: u64,
        /// Data.
        data: Bytes,
    },
    /// Bytes transferred so far.
    Progress {
        /// Done.
        done: u64,
        /// Total.
        total: u64,
    },
    /// All data is in: compute both digests of the partial file and call `verify`.
    VerifyNow,
    /// Delete the partial file (failure or cancel).
    RemovePartial,
    /// Transfer verified on the receiving side (audit with name, size and digests).
    Completed {
        /// Sanitised name.
        name: String,
        /// Size.
        size: u64,
        /// Verified digests.
        digests: Digests,
    },
    /// Transfer failed.
    Failed(FileError),
}

const T_OFFER: u8 = 1;
const T_ACCEPT: u8 = 2;
const T_REJECT: u8 = 3;
const T_CHUNK: u8 = 4;
const T_DONE: u8 = 5;
const T_CANCEL: u8 = 6;
const T_RESULT: u8 = 7;

impl FileMsg {
    /// The wire form (payload of one DATA frame on channel 2).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Self::Offer { id, size, name } => {
                put_head(&mut b, T_OFFER, *id);
                b.put_u64(*size);
                b.put_slice(name.as_bytes());
            }
            Self::Accept { id } => put_head(&mut b, T_ACCEPT, *id),
            Self::Reject { id } => put_head(&mut b, T_REJECT, *id),
            Self::Chunk { id, offset, data } => {
                put_head(&mut b, T_CHUNK, *id);
                b.put_u64(*offset);
                b.put_slice(data);
            }
            Self::Done { id, digests } => {
                put_head(&mut b, T_DONE, *id);
                b.put_slice(&digests.md5);
                b.put_slice(&digests.sha256);
            }
            Self::Cancel { id } => put_head(&mut b, T_CANCEL, *id),
            Self::Result { id, ok } => {
                put_head(&mut b, T_RESULT, *id);
                b.put_u8(u8::from(*ok));
            }
        }
        b.freeze()
    }

    /// The transfer id of an OFFER payload, whatever else is wrong with it: a receiver
    /// whose [`FileMsg::decode`] refused an OFFER (a bad name) answers REJECT with it.
    pub fn offer_id(p: &[u8]) -> Option<u32> {
        match p {
            [T_OFFER, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }

    /// Decodes one message; CHUNK data shares `p`'s memory. An OFFER whose name breaks
    /// [`sanitize_name`] is refused here (`BadName`), so no decoded OFFER carries one.
    pub fn decode(p: &Bytes) -> Result<Self, FileError> {
        let mut r = p.clone();
        if r.len() < 5 {
            return Err(FileError::Malformed);
        }
        let t = r.get_u8();
        let id = r.get_u32();
        let exact = |r: &Bytes, n: usize| {
            if r.len() == n {
                Ok(())
            } else {
                Err(FileError::Malformed)
            }
        };
        Ok(match t {
            T_OFFER if r.len() >= 8 => {
                let size = r.get_u64();
                let name = core::str::from_utf8(&r).map_err(|_| FileError::Malformed)?;
                let name = sanitize_name(name)?.to_owned();
                Self::Offer { id, size, name }
            }
            T_ACCEPT => exact(&r, 0).map(|_| Self::Accept { id })?,
            T_REJECT => exact(&r, 0).map(|_| Self::Reject { id })?,
            T_CANCEL => exact(&r, 0).map(|_| Self::Cancel { id })?,
            T_CHUNK if r.len() >= 8 && r.len() - 8 <= CHUNK_SIZE => {
                let offset = r.get_u64();
                Self::Chunk {
                    id,
                    offset,
                    data: r,
                }
            }
            T_DONE => {
                exact(&r, 48)?;
                let mut d = Digests {
                    md5: [0; 16],
                    sha256: [0; 32],
                };
                r.copy_to_slice(&mut d.md5);
                r.copy_to_slice(&mut d.sha256);
                Self::Done { id, digests: d }
            }
            T_RESULT if r.len() == 1 && r[0] <= 1 => Self::Result { id, ok: r[0] == 1 },
            _ => return Err(FileError::Malformed),
        })
    }

    /// The transfer id.
    pub fn id(&self) -> u32 {
        match self {
            Self::Offer { id, .. }
            | Self::Accept { id }
            | Self::Reject { id }
            | Self::Chunk { id, .. }
            | Self::Done { id, .. }
            | Self::Cancel { id }
            | Self::Result { id, .. } => *id,
        }
    }
}

fn put_head(b: &mut BytesMut, t: u8, id: u32) {
    b.put_u8(t);
    b.put_u32(id);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    Offered,
    Sending,
    AwaitResult,
    Done,
    Failed,
}

/// Sends one file. Construction requires a live file-transfer [`Grant`].
#[derive(Debug)]
pub struct FileSender {
    id: u32,
    size: u64,
    sent: u64,
    state: SendState,
}

impl FileSender {
    /// Offers a file (the console, under a grant); returns the sender and the OFFER to
    /// send.
    pub fn offer(
        requester: &Requester,
        grant: &Grant,
        id: u32,
        name: &str,
        size: u64,
    ) -> Result<(Self, FileMsg), FileError> {
        requester.verify(grant, Permission::FileTransfer)?;
        Self::offer_unchecked(id, name, size)
    }

    /// Offers a file of the end user's (the applet): no grant, since sending their own
    /// file is the end user's choice; the console decides whether to take it.
    pub fn offer_by_end_user(id: u32, name: &str, size: u64) -> Result<(Self, FileMsg), FileError> {
        Self::offer_unchecked(id, name, size)
    }

    fn offer_unchecked(id: u32, name: &str, size: u64) -> Result<(Self, FileMsg), FileError> {
        let name = sanitize_name(name)?.to_owned();
        if size > MAX_FILE_SIZE {
            return Err(FileError::TooLarge {
                size,
                limit: MAX_FILE_SIZE,
            });
        }
        let s = Self {
            id,
            size,
            sent: 0,
            state: SendState::Offered,
        };
        Ok((s, FileMsg::Offer { id, size, name }))
    }

    /// Whether the receiver accepted and data may flow.
    pub fn is_sending(&self) -> bool {
        self.state == SendState::Sending
    }

    /// The next CHUNK for `data` (the next bytes of the file, at most [`CHUNK_SIZE`]).
    pub fn chunk(&mut self, data: Bytes) -> Result<FileMsg, FileError> {
        let end = self
            .sent
            .checked_add(data.len() as u64)
            .ok_or(FileError::BadChunk)?;
        if self.state != SendState::Sending || data.len() > CHUNK_SIZE || end > self.size {
            return Err(FileError::BadChunk);
        }
        let msg = FileMsg::Chunk {
            id: self.id,
            offset: self.sent,
            data,
        };
        self.sent = end;
        Ok(msg)
    }

    /// Bytes sent so far and the total.
    pub fn progress(&self) -> (u64, u64) {
        (self.sent, self.size)
    }

    /// All data sent: the DONE with the caller's digests of the file.
    pub fn finish(&mut self, digests: Digests) -> Result<FileMsg, FileError> {
        if self.state != SendState::Sending || self.sent != self.size {
            return Err(FileError::BadChunk);
        }
        self.state = SendState::AwaitResult;
        Ok(FileMsg::Done {
            id: self.id,
            digests,
        })
    }

    /// Abandons the transfer; the CANCEL to send (if any is due).
    pub fn cancel(&mut self) -> Option<FileMsg> {
        let live = matches!(
            self.state,
            SendState::Offered | SendState::Sending | SendState::AwaitResult
        );
        self.state = SendState::Failed;
        live.then_some(FileMsg::Cancel { id: self.id })
    }

    /// A message from the receiver. `Ok(Some(true))`: verified by the receiver;
    /// `Ok(Some(false))` never happens (failures are errors); `Ok(None)`: carry on.
    pub fn handle(&mut self, msg: &FileMsg) -> Result<Option<bool>, FileError> {
        let r = match (self.state, msg) {
            (SendState::Offered, FileMsg::Accept { .. }) => {
                self.state = SendState::Sending;
                Ok(None)
            }
            (SendState::AwaitResult, FileMsg::Result { ok: true, .. }) => {
                self.state = SendState::Done;
                Ok(Some(true))
            }
            (SendState::AwaitResult, FileMsg::Result { ok: false, .. }) => {
                Err(FileError::HashMismatch)
            }
            (SendState::Done | SendState::Failed, _) => Ok(None),
            (_, FileMsg::Reject { .. } | FileMsg::Cancel { .. }) => Err(FileError::Cancelled),
            _ => Err(FileError::Unexpected),
        };
        if r.is_err() {
            self.state = SendState::Failed;
        }
        r
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecvState {
    Offered,
    Receiving,
    Verifying,
    Done,
    Failed,
}

/// Receives one file.
#[derive(Debug)]
pub struct FileReceiver {
    id: u32,
    name: String,
    size: u64,
    received: u64,
    expected: Option<Digests>,
    state: RecvState,
}

impl FileReceiver {
    /// Takes an OFFER, before anything is accepted. `permitted` is the caller's check
    /// that file transfer is allowed (on the applet:
    /// [`Gatekeeper::is_granted`](super::permission::Gatekeeper::is_granted) of file
    /// transfer); `max_size` is the receiver's limit (capped at [`MAX_FILE_SIZE`]). On any
    /// error (`NotPermitted`, `TooLarge`, `BadName`) the caller sends `FileMsg::Reject`:
    /// PROTOCOL.md 7.6 refuses these before ACCEPT.
    pub fn on_offer(msg: &FileMsg, permitted: bool, max_size: u64) -> Result<Self, FileError> {
        let FileMsg::Offer { id, size, name } = msg else {
            return Err(FileError::Unexpected);
        };
        if !permitted {
            return Err(FileError::NotPermitted);
        }
        let limit = max_size.min(MAX_FILE_SIZE);
        if *size > limit {
            return Err(FileError::TooLarge { size: *size, limit });
        }
        let name = sanitize_name(name)?.to_owned();
        Ok(Self {
            id: *id,
            name,
            size: *size,
            received: 0,
            expected: None,
            state: RecvState::Offered,
        })
    }

    /// The sanitised name and the size, to show the end user.
    pub fn offer(&self) -> (&str, u64) {
        (&self.name, self.size)
    }

    /// Accepts; the ACCEPT to send.
    pub fn accept(&mut self) -> FileMsg {
        self.state = RecvState::Receiving;
        FileMsg::Accept { id: self.id }
    }

    /// Declines; the REJECT to send.
    pub fn reject(&mut self) -> FileMsg {
        self.state = RecvState::Failed;
        FileMsg::Reject { id: self.id }
    }

    /// A message from the sender; returns what the caller must do, in order.
    pub fn handle(&mut self, msg: FileMsg) -> Vec<FileEvent> {
        match (self.state, msg) {
            (RecvState::Receiving, FileMsg::Chunk { offset, data, .. }) => {
                self.on_chunk(offset, data)
            }
            (RecvState::Receiving, FileMsg::Done { digests, .. }) if self.received == self.size => {
                self.expected = Some(digests);
                self.state = RecvState::Verifying;
                vec![FileEvent::VerifyNow]
            }
            (RecvState::Done | RecvState::Failed, _) => vec![],
            (_, FileMsg::Cancel { .. }) => self.fail(FileError::Cancelled),
            (_, FileMsg::Done { .. }) => self.fail(FileError::BadChunk),
            _ => self.fail(FileError::Unexpected),
        }
    }

    fn on_chunk(&mut self, offset: u64, data: Bytes) -> Vec<FileEvent> {
        let end = self.received.checked_add(data.len() as u64);
        // PROTOCOL.md 7.6: chunks are contiguous and never pass the offered size.
        if offset != self.received || end.is_none_or(|e| e > self.size) {
            return self.fail(FileError::BadChunk);
        }
        self.received = end.unwrap_or(self.size);
        let progress = FileEvent::Progress {
            done: self.received,
            total: self.size,
        };
        vec![FileEvent::Write { offset, data }, progress]
    }

    /// The caller's digests of the received file; success only if both match.
    /// Returns the RESULT to send and the events.
    pub fn verify(&mut self, actual: Digests) -> (Option<FileMsg>, Vec<FileEvent>) {
        let Some(expected) = self.expected.filter(|_| self.state == RecvState::Verifying) else {
            return (None, vec![]);
        };
        let ok = expected == actual;
        let result = Some(FileMsg::Result { id: self.id, ok });
        if !ok {
            return (result, self.fail(FileError::HashMismatch));
        }
        self.state = RecvState::Done;
        let done = FileEvent::Completed {
            name: self.name.clone(),
            size: self.size,
            digests: actual,
        };
        (result, vec![done])
    }

    /// Abandons the transfer: the CANCEL to send and the events.
    pub fn cancel(&mut self) -> (Option<FileMsg>, Vec<FileEvent>) {
        let live = matches!(
            self.state,
            RecvState::Offered | RecvState::Receiving | RecvState::Verifying
        );
        if !live {
            return (None, vec![]);
        }
        (
            Some(FileMsg::Cancel { id: self.id }),
            self.fail(FileError::Cancelled),
        )
    }

    fn fail(&mut self, e: FileError) -> Vec<FileEvent> {
        let had_file = self.state != RecvState::Offered;
        self.state = RecvState::Failed;
        let mut ev = vec![FileEvent::Failed(e)];
        if had_file {
            ev.push(FileEvent::RemovePartial);
        }
        ev
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
