//! Scripted segment-level tests of the connection state machine.
