//! The audit events a session emits (DESIGN "Control channel semantics"): start and end,
//! every permission asked, granted, denied and revoked, chat (text left out when the
//! policy says so), files with name, size and both digests, path changes.
//!
//! A failing sink never stops the session: the error is logged and the sink itself
//! refuses further records, so the log shows where it stopped.

use rescue_proto::audit::{AuditEvent, Party, PathKind};
use rescue_proto::session::control::DenyReason;
use rescue_proto::session::EndReason;
use rescue_proto::PermissionSet;

use super::driver::Driver;
use super::transfer::to_proto;
use super::Role;

impl Driver {
    fn audit(&self, event: AuditEvent) {
        if let Some(sink) = &self.cfg.audit {
            if let Err(e) = sink.record(event) {
                tracing::error!(error = %e, "audit sink failed");
            }
        }
    }

    fn party(&self, from_peer: bool) -> Party {
        match (self.cfg.role == Role::Applet) != from_peer {
            true => Party::EndUser,
            false => Party::Technician,
        }
    }

    pub(super) fn audit_start(&self) {
        let peer = &self.shared.peer;
        self.audit(AuditEvent::SessionStarted {
            guid: self.cfg.guid.map(|g| g.to_string()).unwrap_or_default(),
            technician: peer.technician.clone(),
            account: peer.account.clone(),
        });
    }

    pub(super) fn audit_end(&self, reason: EndReason) {
        self.audit(AuditEvent::SessionEnded { reason });
    }

    pub(super) fn audit_flush(&self) {
        if let Some(sink) = &self.cfg.audit {
            if let Err(e) = sink.flush() {
                tracing::error!(error = %e, "audit flush failed");
            }
        }
    }

    pub(super) fn audit_path(&self, kind: PathKind) {
        self.audit(AuditEvent::PathChanged { kind });
    }

    pub(super) fn audit_chat(&self, text: &str, from_peer: bool) {
        let from = self.party(from_peer);
        self.audit(AuditEvent::chat(&self.cfg.policy, from, text));
    }

    pub(super) fn audit_asked(&self, set: PermissionSet) {
        let permissions = AuditEvent::list(set);
        self.audit(AuditEvent::PermissionAsked { permissions });
    }

    pub(super) fn audit_denied(&self, set: PermissionSet, reason: DenyReason) {
        let permissions = AuditEvent::list(set);
        self.audit(AuditEvent::PermissionDenied {
            permissions,
            reason,
        });
    }

    pub(super) fn audit_granted(&self, grant_id: u32, set: PermissionSet) {
        let permissions = AuditEvent::list(set);
        self.audit(AuditEvent::PermissionGranted {
            grant_id,
            permissions,
        });
    }

    pub(super) fn audit_camera_started(&self, grant_id: u32) {
        self.audit(AuditEvent::CameraStarted { grant_id });
    }

    pub(super) fn audit_camera_stopped(&self, frames: u64, dropped: u64) {
        self.audit(AuditEvent::CameraStopped { frames, dropped });
    }

    pub(super) fn audit_revoked(&self, grant_id: u32) {
        self.audit(AuditEvent::PermissionRevoked { grant_id });
    }

    pub(super) fn audit_file_done(
        &self,
        from_peer: bool,
        name: &str,
        size: u64,
        d: &rescue_crypto::Digests,
    ) {
        let from = self.party(from_peer);
        self.audit(AuditEvent::file(from, name, size, &to_proto(*d)));
    }

    pub(super) fn audit_file_failed(&self, name: &str, error: &str) {
        self.audit(AuditEvent::FileFailed {
            name: name.to_owned(),
            error: error.to_owned(),
        });
    }
}
