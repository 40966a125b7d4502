//! The committed SAS over the inner TLS, driving `rescue_crypto`'s sans-IO SAS exchange
//! (PROTOCOL.md 6.5). Messages are read byte-exactly, never past their
//! end, so the bytes that follow belong to the embedding app.

use rescue_crypto::bind::Exporter;
use rescue_crypto::sas::{AppletSas, ConsoleSas, Sas};
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{read_msg, write_msg};
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

fn sas_error(e: rescue_crypto::sas::SasError) -> Error {
    Error::Sas(e.to_string())
}
