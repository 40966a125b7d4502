//! Deterministic link simulator (test support).
