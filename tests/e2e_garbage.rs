//! Property: whatever bytes a peer sends after the outer TLS handshake (after a valid
//! HELLO or not), the gateway answers with at most an ERROR, closes the connection within
//! its timeouts, and goes on serving complete sessions.

mod common;

use common::*;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

/// A valid applet HELLO (version 1, role applet).
const HELLO_APPLET: [u8; 7] = [0x01, 0x00, 0x00, 0x03, 0x00, 0x01, 0x01];

fn inputs() -> impl Strategy<Value = (bool, Vec<u8>, bool)> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_end_in_a_closed_connection_and_harm_nobody(
        cases in prop::collection::vec(inputs(), 1..4)
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let setup = Setup::start().await;
            for (hello_first, bytes, close_write) in cases {
                let mut s = raw_applet(&setup).await;
                if hello_first {
                    s.write_all(&HELLO_APPLET).await.unwrap();
                }
                // The gateway may close while we write; that is fine.
                let _ = s.write_all(&bytes).await;
                let _ = s.flush().await;
                if close_write {
                    let _ = s.shutdown().await;
                }
                // `refusal_of` fails the test if the connection stays open.
                let _ = refusal_of(s).await;
            }
            let (mut a, mut c) = setup.session().await;
            exchange(&mut a, &mut c, b"after garbage", b"still fine").await;
        });
    }
}
