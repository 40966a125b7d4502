//! The session layer: channels, sequencing, switch/resume, consent and files.
