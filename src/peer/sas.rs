//! The committed SAS over the inner TLS, driving `rescue_crypto`'s sans-IO SAS exchange
//! (PROTOCOL.md 6.5), and the reading and writing of inner messages (BIND, SAS). Messages are read byte-exactly, never past their
//! end, so the bytes that follow belong to the embedding app.

use rescue_crypto::bind::Exporter;
use rescue_crypto::msg::{InnerMsg, MAX_MSG_LEN};
use rescue_crypto::sas::{AppletSas, ConsoleSas, Sas};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::inner::stream_error;
use crate::error::Error;

/// Applet side of the committed SAS: commit, read the console's nonce, reveal.
pub(crate) async fn applet<S>(stream: &mut S, exporter: &Exporter) -> Result<Sas, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (state, commit) = AppletSas::start(exporter.clone()).map_err(sas_error)?;
    write_msg(stream, commit).await?;
    let nonce = read_msg(stream).await?;
    let (sas, reveal) = state.handle(nonce).map_err(sas_error)?;
    write_msg(stream, reveal).await?;
    Ok(sas)
}

/// Console side of the committed SAS: read the commitment, send a nonce, check the
/// reveal against the commitment.
pub(crate) async fn console<S>(stream: &mut S, exporter: &Exporter) -> Result<Sas, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let state = ConsoleSas::new(exporter.clone()).map_err(sas_error)?;
    let commit = read_msg(stream).await?;
    let (state, nonce) = state.handle(commit).map_err(sas_error)?;
    write_msg(stream, nonce).await?;
    let reveal = read_msg(stream).await?;
    state.handle(reveal).map_err(sas_error)
}

pub(crate) async fn write_msg<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: InnerMsg,
) -> Result<(), Error> {
    stream
        .write_all(&msg.encode())
        .await
        .map_err(stream_error)?;
    stream.flush().await.map_err(stream_error)
}

/// Reads one message, a byte at a time (at most [`MAX_MSG_LEN`] bytes, from the TLS
/// plaintext buffer), so nothing after it is consumed.
pub(crate) async fn read_msg<S: AsyncRead + Unpin>(stream: &mut S) -> Result<InnerMsg, Error> {
    let mut buf = [0u8; MAX_MSG_LEN];
    for filled in 0..MAX_MSG_LEN {
        let byte = stream.read_u8().await.map_err(stream_error)?;
        // `filled < MAX_MSG_LEN` by the loop bound.
        if let Some(slot) = buf.get_mut(filled) {
            *slot = byte;
        }
        let have = buf.get(..=filled).unwrap_or(&[]);
        match InnerMsg::decode(have) {
            Ok(Some((msg, _))) => return Ok(msg),
            Ok(None) => {}
            Err(e) => return Err(Error::Protocol(format!("inner message: {e}"))),
        }
    }
    Err(Error::Protocol(
        "inner message longer than any known".into(),
    ))
}

fn sas_error(e: rescue_crypto::sas::SasError) -> Error {
    Error::Sas(e.to_string())
}
