//! BIND: tying a TLS path to the session.
//!
//! After the inner TLS handshake both ends take an exporter secret
//! ([`Exporter::from_connection`]: RFC 5705/8446 exporter, label
//! [`BIND_EXPORTER_LABEL`], context = the 16 GUID bytes, 32 bytes) and send
//! `BIND{role, tag}` with `tag = HMAC-SHA256(exporter, "rescue-bind-v1" || guid || role)`.
//! Each side checks the peer's tag for the peer's role in constant time; a mismatch ends
//! the session. A relay that terminated TLS on both sides has two different exporters
//! and cannot produce a matching tag; a console that claimed another GUID computes a
//! different tag.
//!
//! Later (direct) paths are bound with a [`PathKey`] derived from the first path's
//! exporter: `tag = HMAC-SHA256(path_key, "rescue-path-bind-v1" || new exporter || guid
//! || role)`, proving that both ends of the new TLS connection hold the first path's
//! secret (the anonymous applet has no certificate to prove it otherwise).
//!
//! Secrets here are never printed (`Debug` is redacted) and never compared with `==`.

use core::fmt;

use rescue_proto::Guid;
use ring::hmac;

/// Exporter label of the BIND secret.
pub const BIND_EXPORTER_LABEL: &[u8] = b"EXPORTER-rescue-bind";
/// Length of exporter secrets, path keys and tags.
pub const TAG_LEN: usize = 32;
const BIND_CONTEXT: &[u8] = b"rescue-bind-v1";
const PATH_KEY_CONTEXT: &[u8] = b"rescue-path-key-v1";
const PATH_BIND_CONTEXT: &[u8] = b"rescue-path-bind-v1";

/// Why a path could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The TLS connection has no exporter yet (handshake not complete).
    #[error("TLS exporter unavailable: {0}")]
    Exporter(String),
    /// The peer's tag does not match: another connection, session or role. End the
    /// session.
    #[error("BIND tag mismatch")]
    Mismatch,
}

/// Which end of the session a tag speaks for (the one `Role` of the workspace).
pub use rescue_proto::Role;

/// A 32-byte exporter secret of one TLS connection, for one session GUID.
#[derive(Clone)]
pub struct Exporter([u8; TAG_LEN]);

impl Exporter {
    /// Exports the BIND secret of a connection whose handshake is complete
    /// (label [`BIND_EXPORTER_LABEL`], context = the GUID bytes).
    pub fn from_connection<D>(
        conn: &rustls::ConnectionCommon<D>,
        guid: &Guid,
    ) -> Result<Self, BindError> {
        conn.export_keying_material([0u8; TAG_LEN], BIND_EXPORTER_LABEL, Some(guid.as_bytes()))
            .map(Self)
            .map_err(|e| BindError::Exporter(e.to_string()))
    }

    /// Wraps raw exporter bytes (test vectors, or an exporter taken by other means).
    pub fn from_bytes(bytes: [u8; TAG_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw secret; keep it inside the process.
    pub(crate) fn secret(&self) -> &[u8; TAG_LEN] {
        &self.0
    }
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporter(..)")
    }
}

/// The first path's BIND tag for `role`.
pub fn bind_tag(exporter: &Exporter, guid: &Guid, role: Role) -> [u8; TAG_LEN] {
    tag(
        &exporter.0,
        &[BIND_CONTEXT, guid.as_bytes(), &[role.code()]],
    )
}

/// Checks a peer's first-path tag for `role` in constant time.
pub fn verify_bind_tag(
    exporter: &Exporter,
    guid: &Guid,
    role: Role,
    tag: &[u8],
) -> Result<(), BindError> {
    verify(
        &exporter.0,
        &[BIND_CONTEXT, guid.as_bytes(), &[role.code()]],
        tag,
    )
}

/// The key that binds later paths, derived from the first path's exporter.
#[derive(Clone)]
pub struct PathKey([u8; TAG_LEN]);

impl PathKey {
    /// `HMAC-SHA256(first exporter, "rescue-path-key-v1" || guid)`.
    pub fn derive(first_path: &Exporter, guid: &Guid) -> Self {
        Self(tag(&first_path.0, &[PATH_KEY_CONTEXT, guid.as_bytes()]))
    }

    /// The BIND tag of a later path whose own exporter is `path`.
    pub fn bind_tag(&self, path: &Exporter, guid: &Guid, role: Role) -> [u8; TAG_LEN] {
        tag(
            &self.0,
            &[PATH_BIND_CONTEXT, &path.0, guid.as_bytes(), &[role.code()]],
        )
    }

    /// Checks a peer's later-path tag for `role` in constant time.
    pub fn verify_bind_tag(
        &self,
        path: &Exporter,
        guid: &Guid,
        role: Role,
        tag: &[u8],
    ) -> Result<(), BindError> {
        verify(
            &self.0,
            &[PATH_BIND_CONTEXT, &path.0, guid.as_bytes(), &[role.code()]],
            tag,
        )
    }
}

impl fmt::Debug for PathKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PathKey(..)")
    }
}

fn tag(key: &[u8], parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), BindError> {
    let msg: Vec<u8> = parts.concat();
    // ring documents hmac::verify as constant-time in the tag comparison.
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), &msg, tag)
        .map_err(|_| BindError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(b: u8) -> Guid {
        Guid::from_bytes([b; 16])
    }

    #[test]
    fn tags_verify_only_for_same_secret_guid_and_role() {
        let e = Exporter::from_bytes([7; 32]);
        let t = bind_tag(&e, &guid(1), Role::Applet);
        assert_eq!(verify_bind_tag(&e, &guid(1), Role::Applet, &t), Ok(()));
        assert_eq!(
            verify_bind_tag(&e, &guid(1), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(
            verify_bind_tag(&e, &guid(2), Role::Applet, &t),
            Err(BindError::Mismatch)
        );
        let other = Exporter::from_bytes([8; 32]);
        assert_eq!(
            verify_bind_tag(&other, &guid(1), Role::Applet, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(
            verify_bind_tag(&e, &guid(1), Role::Applet, &t[..31]),
            Err(BindError::Mismatch)
        );
        assert_ne!(bind_tag(&e, &guid(1), Role::Console), t);
    }

    #[test]
    fn tag_is_hmac_sha256_of_the_documented_message() {
        let e = Exporter::from_bytes([7; 32]);
        let mut msg = b"rescue-bind-v1".to_vec();
        msg.extend_from_slice(&[1; 16]);
        msg.push(0x02);
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]), &msg);
        assert_eq!(
            bind_tag(&e, &guid(1), Role::Console).as_slice(),
            expect.as_ref()
        );
    }

    #[test]
    fn path_tags_depend_on_first_and_new_exporter() {
        let first = Exporter::from_bytes([1; 32]);
        let new = Exporter::from_bytes([2; 32]);
        let k = PathKey::derive(&first, &guid(3));
        let t = k.bind_tag(&new, &guid(3), Role::Console);
        assert_eq!(k.verify_bind_tag(&new, &guid(3), Role::Console, &t), Ok(()));
        let stranger = PathKey::derive(&Exporter::from_bytes([9; 32]), &guid(3));
        assert_eq!(
            stranger.verify_bind_tag(&new, &guid(3), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        let replay = Exporter::from_bytes([4; 32]);
        assert_eq!(
            k.verify_bind_tag(&replay, &guid(3), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(Role::from_code(Role::Applet.code()), Some(Role::Applet));
        assert_eq!(Role::from_code(0), None);
        assert_eq!(Role::Applet.peer(), Role::Console);
    }
}
