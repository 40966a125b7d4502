//! `tokio_util::codec` framing of gateway frames.
