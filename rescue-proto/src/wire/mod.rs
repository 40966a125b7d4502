//! Gateway frames and signalling messages (see PROTOCOL.md sections 2-5).
