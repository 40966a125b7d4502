//! The two ends of a Lens stream through the relay: the app's [`Publisher`] (seals each
//! frame and uploads it once) and the console's [`Subscriber`] (receives and opens).
//!
//! The media key is a [`StreamKey`] the app makes ([`generate_key`]) and hands to
//! each technician over that technician's own end-to-end session
//! (`rescue::Session::send_stream_key`); the relay never has it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rescue_proto::session::media::StreamKey;
use rescue_proto::session::media_stream::MediaFrame;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::sframe::{Decryptor, Encryptor, SframeError};
use crate::wire::{encode_msg, metadata, read_msg, write_msg, MsgType, WireError, FLAG_KEYFRAME};
use crate::MeetingId;

/// Longest a client waits for JOINED.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client write may stall.
pub const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The stream broke.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Connecting or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The relay refused or ended the connection (its BYE reason byte).
    #[error("relay said bye ({0})")]
    Bye(u8),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// A frame did not open (wrong key or meeting, altered, replayed).
    #[error(transparent)]
    Sframe(#[from] SframeError),
    /// An opened frame is shorter than its timestamp.
    #[error("frame plaintext truncated")]
    Truncated,
}

/// A fresh stream key for `meeting` from the OS CSPRNG.
pub fn generate_key(meeting: MeetingId, key_id: u64) -> StreamKey {
    let mut base_key = [0u8; 32];
    // The OS CSPRNG does not fail on supported systems; a failure leaves a zero key,
    // which the check below refuses to use.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut base_key);
    StreamKey {
        key_id,
        meeting: meeting.0,
        base_key,
    }
}

async fn join(
    addr: &str,
    token: &[u8],
) -> Result<(ReadHalf<TcpStream>, WriteHalf<TcpStream>), ClientError> {
    let s = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::Timeout)??;
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = tokio::io::split(s);
    write_msg(&mut wr, MsgType::Join, token).await?;
    match timeout(CONNECT_TIMEOUT, read_msg(&mut rd)).await {
        Ok(Ok(Some((MsgType::Joined, _)))) => Ok((rd, wr)),
        Ok(Ok(Some((MsgType::Bye, b)))) => Err(ClientError::Bye(b[0])),
        Ok(Ok(_)) => Err(ClientError::Bye(0)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// The app's end: seals frames and uploads each once.
pub struct Publisher {
    wr: WriteHalf<TcpStream>,
    enc: Encryptor,
    meeting: MeetingId,
    keyframe: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

impl Publisher {
    /// Joins the relay at `addr` with an app `token`, sealing with `key`.
    pub async fn connect(addr: &str, token: &[u8], key: &StreamKey) -> Result<Self, ClientError> {
        let (mut rd, wr) = join(addr, token).await?;
        let keyframe = Arc::new(AtomicBool::new(true));
        let flag = keyframe.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some((t, _))) = read_msg(&mut rd).await {
                if t == MsgType::Keyframe {
                    flag.store(true, Ordering::Release);
                }
            }
        });
        Ok(Self {
            wr,
            enc: Encryptor::new(key.key_id, &key.base_key),
            meeting: MeetingId(key.meeting),
            keyframe,
            reader,
        })
    }

    /// Whether the relay asked for a keyframe since the last call.
    pub fn keyframe_wanted(&self) -> bool {
        self.keyframe.swap(false, Ordering::AcqRel)
    }

    /// Seals and uploads one frame.
    pub async fn send(&mut self, f: &MediaFrame) -> Result<(), ClientError> {
        let flags = if f.keyframe { FLAG_KEYFRAME } else { 0 };
        let mut plain = Vec::with_capacity(8 + f.data.len());
        plain.extend_from_slice(&f.capture_us.to_be_bytes());
        plain.extend_from_slice(&f.data);
        let sealed = self.enc.seal(&metadata(&self.meeting, flags), &plain)?;
        let mut body = Vec::with_capacity(1 + sealed.len());
        body.push(flags);
        body.extend_from_slice(&sealed);
        let msg = encode_msg(MsgType::Media, &body);
        timeout(CLIENT_WRITE_TIMEOUT, self.wr.write_all(&msg))
            .await
            .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A frame a [`Subscriber`] received and opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedFrame {
    /// The SFrame counter (the app's frame number).
    pub counter: u64,
    /// The frame.
    pub frame: MediaFrame,
}

/// A console's end: receives sealed frames and opens them.
pub struct Subscriber {
    rd: ReadHalf<TcpStream>,
    wr: WriteHalf<TcpStream>,
    dec: Decryptor,
    meeting: MeetingId,
}

impl Subscriber {
    /// Joins the relay at `addr` with a console `token`, opening with `key`.
    pub async fn connect(addr: &str, token: &[u8], key: &StreamKey) -> Result<Self, ClientError> {
        let (rd, wr) = join(addr, token).await?;
        Ok(Self {
            rd,
            wr,
            dec: Decryptor::new(key.key_id, &key.base_key),
            meeting: MeetingId(key.meeting),
        })
    }

    /// The next frame; `Ok(None)` when the relay closed the stream.
    pub async fn recv(&mut self) -> Result<Option<OpenedFrame>, ClientError> {
        loop {
            match read_msg(&mut self.rd).await? {
                None => return Ok(None),
                Some((MsgType::Media, body)) => {
                    let flags = body[0];
                    let (counter, plain) =
                        self.dec.open(&metadata(&self.meeting, flags), &body[1..])?;
                    if plain.len() < 8 {
                        return Err(ClientError::Truncated);
                    }
                    let mut cap = [0u8; 8];
                    cap.copy_from_slice(&plain[..8]);
                    let data = Bytes::from(plain).slice(8..);
                    let frame = MediaFrame {
                        keyframe: flags & FLAG_KEYFRAME != 0,
                        capture_us: u64::from_be_bytes(cap),
                        data,
                    };
                    return Ok(Some(OpenedFrame { counter, frame }));
                }
                Some((MsgType::Bye, b)) => return Err(ClientError::Bye(b[0])),
                Some(_) => {}
            }
        }
    }

    /// Asks the app (through the relay) for a keyframe.
    pub async fn request_keyframe(&mut self) -> Result<(), ClientError> {
        timeout(
            CLIENT_WRITE_TIMEOUT,
            write_msg(&mut self.wr, MsgType::Keyframe, &[]),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }
}
