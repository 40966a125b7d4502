//! BIND: tying a TLS path to the session, and its two ends to the session's secret.
//!
//! The portal mints a 32-byte [`SessionSecret`] K beside each ticket. The applet gets it
//! with the ticket (never inside what REGISTER carries); the technician's console gets it
//! from the portal, never through a gateway. So the gateway, which sees the ticket and
//! relays every byte, never holds K.
//!
//! After the inner TLS handshake both ends take an exporter secret
//! ([`Exporter::from_connection`]: RFC 5705/8446 exporter, label
//! [`BIND_EXPORTER_LABEL`], context = the 16 GUID bytes, 32 bytes) and send
//! `BIND{role, tag}` with `tag = HMAC-SHA256(K, "rescue-bind-v2" || exporter || guid ||
//! role)`. Each side checks the peer's tag for the peer's role in constant time; a
//! mismatch ends the session. A relay that terminated TLS on both sides has two different
//! exporters and cannot produce a matching tag; a gateway that registers a captured ticket
//! and plays the applet, or plays the console, lacks K; a console that claimed another
//! GUID computes a different tag.
//!
//! Later (direct, reconnected) paths are bound with a [`PathKey`] derived from K and the
//! first path's exporter: `tag = HMAC-SHA256(path_key, "rescue-path-bind-v1" || new
//! exporter || guid || role)`, proving that both ends of the new TLS connection hold K and
//! the first path's secret (the anonymous applet has no certificate to prove it otherwise).
//!
//! Secrets here are never printed (`Debug` is redacted) and never compared with `==`.

use core::fmt;

use rescue_proto::Guid;
use ring::hmac;

/// Exporter label of the BIND secret.
pub const BIND_EXPORTER_LABEL: &[u8] = b"EXPORTER-rescue-bind";
/// Length of exporter secrets, path keys and tags.
pub const TAG_LEN: usize = 32;
/// Length of a [`SessionSecret`].
pub const SESSION_SECRET_LEN: usize = 32;
const BIND_CONTEXT: &[u8] = b"rescue-bind-v2";
const PATH_KEY_CONTEXT: &[u8] = b"rescue-path-key-v2";
const PATH_BIND_CONTEXT: &[u8] = b"rescue-path-bind-v1";

/// Why a path could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The TLS connection has no exporter yet (handshake not complete).
    #[error("TLS exporter unavailable: {0}")]
    Exporter(String),
    /// The peer's tag does not match: the peer does not hold the session secret, or it is
    /// another connection, session or role. End the session.
    #[error("BIND tag mismatch")]
    Mismatch,
    /// The OS random generator failed.
    #[error("OS random generator failed")]
    Random,
    /// A session secret in text form is not 64 hex digits.
    #[error("session secret must be 64 hex digits")]
    SecretFormat,
}

/// The per-session secret K that authenticates the two ends to each other (PROTOCOL.md
/// 6.4). 32 bytes from the OS CSPRNG, minted by the portal beside the ticket.
#[derive(Clone)]
pub struct SessionSecret([u8; SESSION_SECRET_LEN]);

impl SessionSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Result<Self, BindError> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; SESSION_SECRET_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| BindError::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps raw bytes (test vectors, or a secret delivered by the portal).
    pub fn from_bytes(bytes: [u8; SESSION_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, to hand to the applet download or the console (keep them secret).
    pub fn expose(&self) -> &[u8; SESSION_SECRET_LEN] {
        &self.0
    }

    /// The text form: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the text form (64 hex digits, either case; surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, BindError> {
        let mut bytes = [0u8; SESSION_SECRET_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| BindError::SecretFormat)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(..)")
    }
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

/// The first path's BIND tag for `role`: `HMAC-SHA256(K, "rescue-bind-v2" || exporter
/// || guid || role)`.
pub fn bind_tag(
    secret: &SessionSecret,
    exporter: &Exporter,
    guid: &Guid,
    role: Role,
) -> [u8; TAG_LEN] {
    tag(
        &secret.0,
        &[BIND_CONTEXT, &exporter.0, guid.as_bytes(), &[role.code()]],
    )
}

/// Checks a peer's first-path tag for `role` in constant time.
pub fn verify_bind_tag(
    secret: &SessionSecret,
    exporter: &Exporter,
    guid: &Guid,
    role: Role,
    tag: &[u8],
) -> Result<(), BindError> {
    verify(
        &secret.0,
        &[BIND_CONTEXT, &exporter.0, guid.as_bytes(), &[role.code()]],
        tag,
    )
}

/// The key that binds later paths, derived from K and the first path's exporter.
#[derive(Clone)]
pub struct PathKey([u8; TAG_LEN]);

impl PathKey {
    /// `HMAC-SHA256(K, "rescue-path-key-v2" || first exporter || guid)`.
    pub fn derive(secret: &SessionSecret, first_path: &Exporter, guid: &Guid) -> Self {
        Self(tag(
            &secret.0,
            &[PATH_KEY_CONTEXT, &first_path.0, guid.as_bytes()],
        ))
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

    fn k(b: u8) -> SessionSecret {
        SessionSecret::from_bytes([b; 32])
    }

    #[test]
    fn tags_verify_only_for_same_secret_exporter_guid_and_role() {
        let e = Exporter::from_bytes([7; 32]);
        let t = bind_tag(&k(5), &e, &guid(1), Role::Applet);
        assert_eq!(
            verify_bind_tag(&k(5), &e, &guid(1), Role::Applet, &t),
            Ok(())
        );
        assert_eq!(
            verify_bind_tag(&k(5), &e, &guid(1), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(
            verify_bind_tag(&k(5), &e, &guid(2), Role::Applet, &t),
            Err(BindError::Mismatch)
        );
        // Same exporter and GUID, no K (what a gateway playing one end has).
        assert_eq!(
            verify_bind_tag(&k(6), &e, &guid(1), Role::Applet, &t),
            Err(BindError::Mismatch)
        );
        let other = Exporter::from_bytes([8; 32]);
        assert_eq!(
            verify_bind_tag(&k(5), &other, &guid(1), Role::Applet, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(
            verify_bind_tag(&k(5), &e, &guid(1), Role::Applet, &t[..31]),
            Err(BindError::Mismatch)
        );
        assert_ne!(bind_tag(&k(5), &e, &guid(1), Role::Console), t);
    }

    #[test]
    fn tag_is_hmac_sha256_of_the_documented_message() {
        let e = Exporter::from_bytes([7; 32]);
        let mut msg = b"rescue-bind-v2".to_vec();
        msg.extend_from_slice(&[7; 32]);
        msg.extend_from_slice(&[1; 16]);
        msg.push(0x02);
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[5; 32]), &msg);
        assert_eq!(
            bind_tag(&k(5), &e, &guid(1), Role::Console).as_slice(),
            expect.as_ref()
        );
    }

    #[test]
    fn session_secrets_round_trip_as_hex_and_never_print() {
        let s = SessionSecret::generate().unwrap();
        let back = SessionSecret::from_hex(&format!(" {}\n", s.to_hex())).unwrap();
        assert_eq!(back.expose(), s.expose());
        assert_ne!(SessionSecret::generate().unwrap().expose(), s.expose());
        assert_eq!(format!("{s:?}"), "SessionSecret(..)");
        assert_eq!(
            SessionSecret::from_hex("abc").unwrap_err(),
            BindError::SecretFormat
        );
        assert!(SessionSecret::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn path_tags_depend_on_secret_first_and_new_exporter() {
        let first = Exporter::from_bytes([1; 32]);
        let new = Exporter::from_bytes([2; 32]);
        let key = PathKey::derive(&k(5), &first, &guid(3));
        let t = key.bind_tag(&new, &guid(3), Role::Console);
        assert_eq!(
            key.verify_bind_tag(&new, &guid(3), Role::Console, &t),
            Ok(())
        );
        let stranger = PathKey::derive(&k(5), &Exporter::from_bytes([9; 32]), &guid(3));
        assert_eq!(
            stranger.verify_bind_tag(&new, &guid(3), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        let no_secret = PathKey::derive(&k(6), &first, &guid(3));
        assert_eq!(
            no_secret.verify_bind_tag(&new, &guid(3), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        let replay = Exporter::from_bytes([4; 32]);
        assert_eq!(
            key.verify_bind_tag(&replay, &guid(3), Role::Console, &t),
            Err(BindError::Mismatch)
        );
        assert_eq!(Role::from_code(Role::Applet.code()), Some(Role::Applet));
        assert_eq!(Role::from_code(0), None);
        assert_eq!(Role::Applet.peer(), Role::Console);
    }
}
