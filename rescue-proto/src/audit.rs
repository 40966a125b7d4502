//! Audit event types (see PROTOCOL.md section 7).
