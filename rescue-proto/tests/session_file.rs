//! The file receiver driven by random peer messages: it never panics, never reports
//! success without matching digests and a complete file, never writes past the offered
//! size, and asks for the partial file's removal whenever a started transfer fails.

use bytes::Bytes;
use proptest::prelude::*;
use rescue_proto::session::file::{Digests, FileEvent, FileMsg, FileReceiver, MAX_FILE_SIZE};

const GOOD: Digests = Digests {
    md5: [1; 16],
    sha256: [2; 32],
};

#[derive(Clone, Debug)]
enum Step {
    Peer(FileMsg),
    Verify(bool),
    Cancel,
}

fn step(size: u64) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..=size, 0usize..64).prop_map(|(offset, len)| {
            Step::Peer(FileMsg::Chunk { id: 1, offset, data: Bytes::from(vec![0; len]) })
        }),
        1 => any::<bool>().prop_map(|good| {
            let digests = if good { GOOD } else { Digests { md5: [9; 16], ..GOOD } };
            Step::Peer(FileMsg::Done { id: 1, digests })
        }),
        1 => Just(Step::Peer(FileMsg::Cancel { id: 1 })),
        1 => Just(Step::Peer(FileMsg::Accept { id: 1 })),
        1 => any::<bool>().prop_map(Step::Verify),
        1 => Just(Step::Cancel),
    ]
}

proptest! {
    #[test]
    fn receiver_invariants(size in 0u64..200, steps in proptest::collection::vec(step(200), 0..60)) {
        let offer = FileMsg::Offer { id: 1, size, name: "f.bin".into() };
        let mut r = FileReceiver::on_offer(&offer, true, MAX_FILE_SIZE).unwrap();
        r.accept();
        let (mut written, mut done_sent, mut failed, mut removed, mut completed) = (0u64, false, false, false, false);
        for s in steps {
            let events = match s {
                Step::Peer(m) => {
                    done_sent |= matches!(m, FileMsg::Done { digests, .. } if digests == GOOD);
                    r.handle(m)
                }
                Step::Verify(good) => r.verify(if good { GOOD } else { Digests { sha256: [7; 32], ..GOOD } }).1,
                Step::Cancel => r.cancel().1,
            };
            for e in events {
                match e {
                    FileEvent::Write { offset, data } => {
                        prop_assert_eq!(offset, written);
                        written += data.len() as u64;
                        prop_assert!(written <= size);
                    }
                    FileEvent::Completed { size: s, digests, .. } => {
                        prop_assert!(!failed && done_sent && written == size && s == size);
                        prop_assert_eq!(digests, GOOD);
                        completed = true;
                    }
                    FileEvent::Failed(_) => {
                        prop_assert!(!completed);
                        failed = true;
                    }
                    FileEvent::RemovePartial => removed = true,
                    _ => {}
                }
            }
        }
        if failed {
            prop_assert!(removed, "a failed transfer leaves no partial file");
        }
    }
}
