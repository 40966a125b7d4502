//! Sans-IO hand-off state machines: the gateway session table and the peer sides.
