//! The tokio driver: `XtcpSocket` and `XtcpStream` on quinn-udp.
