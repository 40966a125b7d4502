//! Other messages signed with the portal's ticket key: the same Ed25519 key and scheme
//! as tickets, domain-separated by a label (PROTOCOL.md 9.4, 9.5).
//!
//! The signed message is `len(label) u8 | label | message`. A ticket's signed message
//! starts with the byte `r` (0x72) of its context `rescue-ticket-v1`, which as a length
//! would name a 114-byte label; labels are at most [`MAX_LABEL_LEN`] bytes, so no labelled
//! signature can pass as a ticket signature or the other way round, and no two labels
//! collide.

use ring::signature::{UnparsedPublicKey, ED25519};

use super::{TicketError, TicketSigner, TicketVerifyKey, SIGNATURE_LEN};

/// Longest label: a short name, well below 0x72 (see the module docs).
pub const MAX_LABEL_LEN: usize = 64;

fn message(label: &[u8], msg: &[u8]) -> Result<Vec<u8>, TicketError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(TicketError::Key);
    }
    let mut m = Vec::with_capacity(1 + label.len() + msg.len());
    // Fits: at most MAX_LABEL_LEN (checked above).
    m.push(label.len() as u8);
    m.extend_from_slice(label);
    m.extend_from_slice(msg);
    Ok(m)
}

impl TicketSigner {
    /// Signs `msg` under `label` (1 to [`MAX_LABEL_LEN`] bytes; else `TicketError::Key`).
    pub fn sign_labelled(
        &self,
        label: &[u8],
        msg: &[u8],
    ) -> Result<[u8; SIGNATURE_LEN], TicketError> {
        let sig = self.pair.sign(&message(label, msg)?);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        Ok(out)
    }
}

impl TicketVerifyKey {
    /// Checks a signature of [`TicketSigner::sign_labelled`].
    pub fn verify_labelled(&self, label: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), TicketError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message(label, msg)?, sig)
            .map_err(|_| TicketError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_and_tickets_do_not_verify() {
        let s = TicketSigner::generate().unwrap();
        let k = s.verify_key();
        let sig = s.sign_labelled(b"a", b"msg").unwrap();
        assert_eq!(k.verify_labelled(b"a", b"msg", &sig), Ok(()));
        assert_eq!(
            k.verify_labelled(b"b", b"msg", &sig),
            Err(TicketError::BadSignature)
        );
        assert_eq!(
            k.verify_labelled(b"a", b"msh", &sig),
            Err(TicketError::BadSignature)
        );
        assert_eq!(s.sign_labelled(&[0; 65], b"m"), Err(TicketError::Key));
        // The first byte of a ticket's signed message cannot be a label length.
        assert!(usize::from(super::super::SIGNING_CONTEXT[0]) > MAX_LABEL_LEN);
    }
}
