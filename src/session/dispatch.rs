//! What the driver does with the machines' output: core events, control messages
//! (the applet's [`Gatekeeper`], the console's `Requester`), chat, and session end.

use rescue_proto::audit::PathKind;
use rescue_proto::session::candidates::{Candidates, Transport, CANDIDATES_TYPE};
use rescue_proto::session::chat;
use rescue_proto::session::control::ControlMsg;
use rescue_proto::session::file::FileMsg;
use rescue_proto::session::permission::{GateEvent, Grant, RequestEvent};
use rescue_proto::session::reliable::Event;
use rescue_proto::session::{EndReason, CHAT, CONTROL, FILE, MEDIA};
use rescue_proto::{Permission, PermissionSet};

use super::consent::ConsentRequest;
use super::driver::{now, Delivery, Driver, Internal, Reply};
use super::{SessionError, SessionEvent};
use crate::direct::Note;

impl Driver {
    /// Runs every machine until none has output left; returns how much was handled.
    pub(super) fn drain_machines(&mut self) -> usize {
        let mut total = 0;
        loop {
            let mut n = 0;
            while let Some(ev) = self.core.poll_event() {
                self.on_core_event(ev);
                n += 1;
            }
            n += self.flush_gate();
            while let Some(ev) = self.requester_event() {
                self.on_request_event(ev);
                n += 1;
            }
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    fn on_core_event(&mut self, ev: Event) {
        if !matches!(ev, Event::Data { .. }) {
            tracing::debug!(role = ?self.cfg.role, ?ev, "core event");
        }
        match ev {
            Event::Data { channel, payload } => match channel {
                CONTROL => self.on_control(&payload),
                CHAT => self.on_chat(&payload),
                FILE => self.on_file_payload(payload),
                MEDIA => self.on_media(payload),
                ch => self.deliver(Delivery::Channel(ch, payload)),
            },
            Event::ChannelOpened { channel, label } => {
                let c = self.new_channel(channel, label);
                self.deliver(Delivery::Event(SessionEvent::ChannelOpened(c)));
            }
            Event::ChannelClosed { channel, .. } => {
                self.channels.remove(&channel);
            }
            Event::Rejected { channel, error } => {
                tracing::debug!(channel, %error, "frame rejected");
            }
            Event::PathActive { path, .. } => {
                let info = self.path_info(path);
                if let Ok(mut v) = self.shared.view.lock() {
                    v.path.clone_from(&info);
                }
                if let Some(info) = info {
                    self.audit_path(info.kind);
                    self.deliver(Delivery::Event(SessionEvent::PathChanged(info)));
                }
            }
            Event::PathRetired { path } => {
                // Make before break: while a direct path is current the relay stays up
                // (keepalives only), so that the session is back on it at once if the
                // direct path dies.
                let kind = self.path_info(path).map(|i| i.kind);
                if kind == Some(PathKind::Relay) && self.direct.is_some() {
                    return;
                }
                self.retire_path(path);
                let _ = self.core.on_path_lost(now(), path);
            }
            Event::PathLost { path, .. } => {
                let kind = self.path_info(path).map(|i| i.kind);
                self.kill_path(path);
                if kind.is_some_and(|k| k != PathKind::Relay) {
                    self.note_direct_lost();
                }
                self.deliver(Delivery::Event(SessionEvent::PathLost { id: path }));
            }
            Event::Ended { reason, by_peer } => self.on_ended(reason, by_peer),
            _ => {}
        }
    }

    fn on_control(&mut self, payload: &[u8]) {
        if payload
            .first()
            .is_some_and(|t| Transport::from_type_byte(*t).is_some())
        {
            return self.on_candidates(payload);
        }
        let msg = match ControlMsg::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "bad control message");
                return self.end(EndReason::ProtocolError);
            }
        };
        let res = match self.gate.as_mut() {
            Some(g) => g.handle(now(), msg),
            None => self
                .shared
                .requester
                .lock()
                .map_or(Ok(()), |mut r| r.handle(msg)),
        };
        if let Err(e) = res {
            // PROTOCOL.md 7.4: an unsolicited answer is a violation: end the session.
            tracing::warn!(error = %e, "control protocol violation");
            self.end(EndReason::ProtocolError);
        }
    }

    /// CANDIDATES go from the applet to the console only, UDP_CANDIDATES either way; a
    /// malformed list is a protocol violation (PROTOCOL.md 7.4); an end without direct
    /// paths ignores them.
    fn on_candidates(&mut self, payload: &[u8]) {
        if payload.first() == Some(&CANDIDATES_TYPE) && self.cfg.role != super::Role::Console {
            tracing::warn!("CANDIDATES from the console");
            return self.end(EndReason::ProtocolError);
        }
        match Candidates::decode(payload) {
            Ok(c) => self.note_direct(Note::Candidates(c)),
            Err(e) => {
                tracing::warn!(error = %e, "bad CANDIDATES");
                self.end(EndReason::ProtocolError);
            }
        }
    }

    fn on_chat(&mut self, payload: &[u8]) {
        match chat::decode(payload) {
            Ok(text) => {
                self.audit_chat(text, true);
                let text = text.to_owned();
                self.deliver(Delivery::Event(SessionEvent::Chat { text }));
            }
            // The frame is rejected; the session goes on.
            Err(e) => tracing::debug!(error = %e, "chat message rejected"),
        }
    }

    pub(super) fn send_chat(&mut self, text: &str) -> Result<(), SessionError> {
        let payload = chat::encode(text)?;
        self.core.send(CHAT, payload)?;
        self.audit_chat(text, false);
        Ok(())
    }

    pub(super) fn send_request(&mut self, p: Option<Permission>, reply: Reply<Grant>) {
        let made = match self.shared.requester.lock() {
            Ok(mut r) => match p {
                Some(p) => r.request(p),
                None => r.request_all(),
            },
            Err(_) => return drop(reply.send(Err(SessionError::Ended))),
        };
        let msg = match made {
            Ok(m) => m,
            Err(e) => return drop(reply.send(Err(e.into()))),
        };
        let (id, set) = match msg {
            ControlMsg::Request {
                request_id,
                permission,
            } => (request_id, PermissionSet::EMPTY.with(permission)),
            ControlMsg::RequestAll { request_id } => (request_id, self.cfg.policy.allowed),
            _ => return drop(reply.send(Err(SessionError::Ended))),
        };
        if let Err(e) = self.core.send(CONTROL, msg.encode()) {
            return drop(reply.send(Err(e.into())));
        }
        self.audit_asked(set);
        self.requests.insert(id, (set, reply));
    }

    /// Sends the gatekeeper's messages and handles its events.
    fn flush_gate(&mut self) -> usize {
        let Some(mut g) = self.gate.take() else {
            return 0;
        };
        let mut n = 0;
        while self.core.can_send(CONTROL, 16) {
            let Some(m) = g.poll_outgoing() else { break };
            let _ = self.core.send(CONTROL, m.encode());
            n += 1;
        }
        let events: Vec<GateEvent> = std::iter::from_fn(|| g.poll_event()).collect();
        self.gate = Some(g);
        n += events.len();
        events.into_iter().for_each(|e| self.on_gate_event(e));
        n
    }

    fn on_gate_event(&mut self, e: GateEvent) {
        match e {
            GateEvent::Ask {
                question,
                permissions,
                ..
            } => {
                self.audit_asked(permissions);
                self.ask_consent(question, permissions);
                let ev = SessionEvent::PermissionAsked { permissions };
                self.deliver(Delivery::Event(ev));
            }
            GateEvent::Denied {
                permissions,
                reason,
            } => {
                self.audit_denied(permissions, reason);
                let ev = SessionEvent::PermissionDenied {
                    permissions,
                    reason,
                };
                self.deliver(Delivery::Event(ev));
            }
            GateEvent::Granted {
                grant_id,
                permissions,
            } => self.on_granted(grant_id, permissions),
            GateEvent::Revoked { grant_id } => self.on_grant_gone(grant_id),
            _ => {}
        }
    }

    /// Asks the application's consent in a task of its own (under its timeout); the
    /// answer comes back as [`Internal::Consent`]. No consent configured means no.
    fn ask_consent(&mut self, question: u32, permissions: PermissionSet) {
        let tx = self.internal_tx.clone();
        let Some(consent) = self.cfg.consent.clone() else {
            let _ = tx.try_send(Internal::Consent(question, false));
            return;
        };
        let peer = &self.shared.peer;
        let req = if permissions.iter().count() == 1 {
            let p = permissions
                .iter()
                .next()
                .unwrap_or(Permission::RemoteControl);
            ConsentRequest::single(p, &peer.technician, &peer.account)
        } else {
            ConsentRequest::all_in_one(permissions, &peer.technician, &peer.account)
        };
        tokio::spawn(async move {
            let yes = consent.ask(req).await == super::ConsentAnswer::Allow;
            let _ = tx.send(Internal::Consent(question, yes)).await;
        });
    }

    fn on_request_event(&mut self, e: RequestEvent) {
        match e {
            RequestEvent::Granted { request_id, grant } => {
                let (id, set) = (grant.id(), grant.permissions());
                self.on_granted(id, set);
                match self.requests.remove(&request_id) {
                    Some((_, reply)) => {
                        if let Err(Ok(grant)) = reply.send(Ok(grant)) {
                            self.give_back(grant); // the caller gave up waiting
                        }
                    }
                    None => self.give_back(grant),
                }
            }
            RequestEvent::Denied { request_id, reason } => {
                let (set, reply) = match self.requests.remove(&request_id) {
                    Some((s, r)) => (s, Some(r)),
                    None => (PermissionSet::EMPTY, None),
                };
                self.audit_denied(set, reason);
                if let Some(r) = reply {
                    let _ = r.send(Err(SessionError::Denied(reason)));
                }
                let ev = SessionEvent::PermissionDenied {
                    permissions: set,
                    reason,
                };
                self.deliver(Delivery::Event(ev));
            }
            RequestEvent::Revoked { grant_id } => self.on_grant_gone(grant_id),
            _ => {}
        }
    }

    /// A grant nobody holds any more: revoke it at once.
    fn give_back(&mut self, grant: Grant) {
        let msg = self
            .shared
            .requester
            .lock()
            .ok()
            .and_then(|mut r| r.release(grant));
        if let Some(m) = msg {
            let _ = self.core.send(CONTROL, m.encode());
        }
    }

    fn on_granted(&mut self, grant_id: u32, permissions: PermissionSet) {
        if let Ok(mut v) = self.shared.view.lock() {
            v.grants.insert(grant_id, permissions);
        }
        self.audit_granted(grant_id, permissions);
        let ev = SessionEvent::PermissionGranted {
            grant_id,
            permissions,
        };
        self.deliver(Delivery::Event(ev));
    }

    /// A grant ended (either side, or the end of the session): transfers under it stop.
    pub(super) fn on_grant_gone(&mut self, grant_id: u32) {
        let set = match self.shared.view.lock() {
            Ok(mut v) => v.grants.remove(&grant_id),
            Err(_) => None,
        };
        if set.is_none() {
            return;
        }
        self.audit_revoked(grant_id);
        self.cancel_transfers_of(grant_id);
        self.media_grant_gone(grant_id);
        let ev = SessionEvent::PermissionRevoked { grant_id };
        self.deliver(Delivery::Event(ev));
    }

    /// The session ended (END either way, or a failure): every grant is void.
    pub(super) fn on_ended(&mut self, reason: EndReason, by_peer: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.end_reason = Some(reason);
        if let Some(g) = self.gate.as_mut() {
            g.end();
        }
        if let Ok(mut r) = self.shared.requester.lock() {
            r.end();
        }
        self.drain_machines();
        let ids: Vec<u32> = match self.shared.view.lock() {
            Ok(v) => v.grants.keys().copied().collect(),
            Err(_) => Vec::new(),
        };
        ids.into_iter().for_each(|id| self.on_grant_gone(id));
        self.cancel_all_transfers();
        self.stop_media();
        for (_, (_, reply)) in std::mem::take(&mut self.requests) {
            let _ = reply.send(Err(SessionError::Ended));
        }
        self.channels.clear();
        if let Ok(mut v) = self.shared.view.lock() {
            v.ended = true;
        }
        self.audit_end(reason);
        self.deliver(Delivery::Event(SessionEvent::Ended { reason, by_peer }));
    }

    fn on_file_payload(&mut self, payload: bytes::Bytes) {
        match FileMsg::decode(&payload) {
            Ok(m) => self.on_file_msg(m),
            Err(e) => match FileMsg::offer_id(&payload) {
                // PROTOCOL.md 7.6: an OFFER the decoder refused (a bad name) is rejected
                // before anything is accepted.
                Some(id) => self.reject_offer(super::TransferId(id), None, &e),
                // A bad file message fails the transfer, not the session; without a
                // readable id there is no transfer to fail.
                None => tracing::debug!(error = %e, "malformed file message dropped"),
            },
        }
    }

    fn requester_event(&mut self) -> Option<RequestEvent> {
        if self.gate.is_some() {
            return None;
        }
        self.shared.requester.lock().ok()?.poll_event()
    }
}
