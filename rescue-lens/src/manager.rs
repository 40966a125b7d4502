//! The session manager's REST API (PROTOCOL.md 9.4).
