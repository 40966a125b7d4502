//! Portal-signed session manager requests (PROTOCOL.md 9.4).
