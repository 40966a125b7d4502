//! The console name carried by a console certificate: account id and technician, in a
//! URI subject alternative name
//! `urn:rescue:account:<decimal id>:technician:<percent-encoded UTF-8 name>`.
//!
//! Parsing is strict (decimal digits only, well-formed percent escapes, UTF-8, 1 to
//! [`MAX_TECHNICIAN_NAME_LEN`] bytes) and never panics; a certificate with no such URI or
//! with two of them has no console name.

use rustls_pki_types::CertificateDer;

use super::{AccountId, PkiError, MAX_TECHNICIAN_NAME_LEN};

/// Prefix of the URI SAN of a console certificate.
const CONSOLE_URI_PREFIX: &str = "urn:rescue:account:";
/// Separator between account id and technician name in the URI SAN.
const CONSOLE_URI_TECH: &str = ":technician:";

/// Who a console certificate belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsoleName {
    /// The account whose CA issued the certificate.
    pub account: AccountId,
    /// The technician's name (UTF-8).
    pub technician: String,
}

impl ConsoleName {
    /// Reads the console name from a certificate's URI SAN. This does not verify the
    /// certificate: call it only on a chain a verifier accepted.
    pub fn from_cert(cert: &CertificateDer<'_>) -> Result<Self, PkiError> {
        let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| PkiError::NoConsoleName)?;
        let mut found = ee.valid_uri_names().filter_map(Self::from_uri);
        match (found.next(), found.next()) {
            (Some(name), None) => Ok(name),
            _ => Err(PkiError::NoConsoleName),
        }
    }

    pub(super) fn to_uri(&self) -> String {
        let mut uri = format!("{CONSOLE_URI_PREFIX}{}{CONSOLE_URI_TECH}", self.account.0);
        for &b in self.technician.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                uri.push(char::from(b));
            } else {
                uri.push_str(&format!("%{b:02X}"));
            }
        }
        uri
    }

    fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(CONSOLE_URI_PREFIX)?;
        let (id, tech) = rest.split_once(CONSOLE_URI_TECH)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let account = AccountId(id.parse().ok()?);
        let technician = percent_decode(tech)?;
        if technician.is_empty() || technician.len() > MAX_TECHNICIAN_NAME_LEN {
            return None;
        }
        // PROTOCOL.md 1.3: the end user reads this name; it is a name under the peer-text rule.
        rescue_proto::text::check_peer_name("technician", &technician).ok()?;
        Some(Self {
            account,
            technician,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn console_uri_round_trips(account in any::<u64>(), technician in "\\PC{1,40}") {
            prop_assume!(technician.len() <= MAX_TECHNICIAN_NAME_LEN);
            prop_assume!(rescue_proto::text::check_peer_name("technician", &technician).is_ok());
            let name = ConsoleName { account: AccountId(account), technician };
            let uri = name.to_uri();
            prop_assert!(uri.is_ascii());
            prop_assert_eq!(ConsoleName::from_uri(&uri), Some(name));
        }

        #[test]
        fn arbitrary_uris_never_panic(uri in "urn:rescue:account:[0-9]{0,3}:technician:[%0-9A-Fa-z]{0,12}") {
            if let Some(name) = ConsoleName::from_uri(&uri) {
                prop_assert_eq!(ConsoleName::from_uri(&name.to_uri()), Some(name));
            }
        }
    }

    #[test]
    fn uri_name_parsing_is_strict() {
        assert!(ConsoleName::from_uri("urn:rescue:account:12:technician:bob").is_some());
        assert!(ConsoleName::from_uri("urn:rescue:account::technician:bob").is_none());
        assert!(ConsoleName::from_uri("urn:rescue:account:+1:technician:bob").is_none());
        assert!(ConsoleName::from_uri("urn:rescue:account:1:technician:").is_none());
        assert!(ConsoleName::from_uri("urn:rescue:account:1:technician:%4").is_none());
        assert!(ConsoleName::from_uri("urn:rescue:account:1:technician:%FF").is_none());
        for bad in ["%1B%5B2J", "evil%E2%80%AE", "a%E2%80%8Bb", "a%0Ab"] {
            let uri = format!("urn:rescue:account:1:technician:{bad}");
            assert!(ConsoleName::from_uri(&uri).is_none(), "{bad}");
        }
        assert!(
            ConsoleName::from_uri("urn:rescue:account:99999999999999999999:technician:a").is_none()
        );
    }
}
