//! Unit tests of the file-transfer machines.

use super::*;
use crate::permission::PermissionSet;
use crate::session::control::ControlMsg;
use crate::session::permission::RequestEvent;

fn granted() -> (Requester, Grant) {
    let mut r = Requester::new();
    let ControlMsg::Request { request_id, .. } = r.request(Permission::FileTransfer).unwrap()
    else {
        panic!("not a request")
    };
    let p = PermissionSet::EMPTY.with(Permission::FileTransfer);
    r.handle(ControlMsg::Grant {
        request_id,
        grant_id: 9,
        permissions: p,
    })
    .unwrap();
    let Some(RequestEvent::Granted { grant, .. }) = r.poll_event() else {
        panic!("no grant")
    };
    (r, grant)
}

fn wire(m: FileMsg) -> FileMsg {
    FileMsg::decode(&m.encode()).unwrap()
}

const D: Digests = Digests {
    md5: [1; 16],
    sha256: [2; 32],
};

fn transfer(
    actual: Digests,
) -> (
    FileSender,
    FileReceiver,
    Vec<FileEvent>,
    Result<Option<bool>, FileError>,
) {
    let (req, grant) = granted();
    let (mut s, offer) = FileSender::offer(&req, &grant, 1, "report.txt", 40_000).unwrap();
    let mut r = FileReceiver::on_offer(&wire(offer), true, MAX_FILE_SIZE).unwrap();
    assert_eq!(r.offer(), ("report.txt", 40_000));
    s.handle(&wire(r.accept())).unwrap();
    let mut events = vec![];
    for len in [CHUNK_SIZE, 40_000 - CHUNK_SIZE] {
        let c = s.chunk(Bytes::from(vec![7; len])).unwrap();
        events.extend(r.handle(wire(c)));
    }
    events.extend(r.handle(wire(s.finish(D).unwrap())));
    let (result, ev) = r.verify(actual);
    events.extend(ev);
    let verdict = s.handle(&wire(result.unwrap()));
    (s, r, events, verdict)
}

#[test]
fn verified_transfer_reports_success_only_after_digests_match() {
    let (_, _, events, verdict) = transfer(D);
    assert_eq!(verdict, Ok(Some(true)));
    assert!(events.contains(&FileEvent::Progress {
        done: 40_000,
        total: 40_000
    }));
    assert!(events.contains(&FileEvent::VerifyNow));
    let done = FileEvent::Completed {
        name: "report.txt".into(),
        size: 40_000,
        digests: D,
    };
    assert_eq!(events.last(), Some(&done));
}

#[test]
fn bad_hash_fails_and_removes_the_partial_file() {
    let bad = Digests {
        sha256: [3; 32],
        ..D
    };
    let (_, _, events, verdict) = transfer(bad);
    assert_eq!(verdict, Err(FileError::HashMismatch));
    assert!(events.contains(&FileEvent::Failed(FileError::HashMismatch)));
    assert!(events.contains(&FileEvent::RemovePartial));
    assert!(!events
        .iter()
        .any(|e| matches!(e, FileEvent::Completed { .. })));
}

#[test]
fn sending_needs_a_live_grant() {
    let (mut req, grant) = granted();
    let id = grant.id();
    req.handle(ControlMsg::Revoke { grant_id: id }).unwrap();
    let r = FileSender::offer(&req, &grant, 1, "a", 1);
    assert_eq!(
        r.err(),
        Some(FileError::Permission(PermissionError::Revoked(id)))
    );
    let offer = FileMsg::Offer {
        id: 1,
        size: 1,
        name: "a".into(),
    };
    assert_eq!(
        FileReceiver::on_offer(&offer, false, MAX_FILE_SIZE).err(),
        Some(FileError::NotPermitted)
    );
}

#[test]
fn out_of_order_oversize_and_cancel() {
    let offer = FileMsg::Offer {
        id: 1,
        size: 10,
        name: "a".into(),
    };
    let mut r = FileReceiver::on_offer(&offer, true, MAX_FILE_SIZE).unwrap();
    r.accept();
    let ev = r.handle(FileMsg::Chunk {
        id: 1,
        offset: 5,
        data: Bytes::from_static(b"x"),
    });
    assert_eq!(
        ev,
        vec![
            FileEvent::Failed(FileError::BadChunk),
            FileEvent::RemovePartial
        ]
    );
    let mut r = FileReceiver::on_offer(&offer, true, MAX_FILE_SIZE).unwrap();
    r.accept();
    let ev = r.handle(FileMsg::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from(vec![0; 11]),
    });
    assert_eq!(ev[0], FileEvent::Failed(FileError::BadChunk));
    let mut r = FileReceiver::on_offer(&offer, true, MAX_FILE_SIZE).unwrap();
    r.accept();
    let ev = r.handle(FileMsg::Cancel { id: 1 });
    assert_eq!(
        ev,
        vec![
            FileEvent::Failed(FileError::Cancelled),
            FileEvent::RemovePartial
        ]
    );
    let big = FileMsg::Offer {
        id: 1,
        size: MAX_FILE_SIZE + 1,
        name: "a".into(),
    };
    assert_eq!(
        FileReceiver::on_offer(&big, true, u64::MAX).err(),
        Some(FileError::TooLarge {
            size: MAX_FILE_SIZE + 1,
            limit: MAX_FILE_SIZE
        })
    );
}

#[test]
fn an_offer_over_the_receivers_limit_is_refused_before_accept() {
    let offer = FileMsg::Offer {
        id: 1,
        size: 1001,
        name: "a".into(),
    };
    assert_eq!(
        FileReceiver::on_offer(&offer, true, 1000).err(),
        Some(FileError::TooLarge {
            size: 1001,
            limit: 1000
        })
    );
    assert!(FileReceiver::on_offer(&offer, true, 1001).is_ok());
}

#[test]
fn names_are_checked_in_decode_and_before_accept() {
    let evil = FileMsg::Offer {
        id: 1,
        size: 1,
        name: "../../etc/passwd".into(),
    };
    assert_eq!(
        FileReceiver::on_offer(&evil, true, MAX_FILE_SIZE).err(),
        Some(FileError::BadName(NameError::Reserved('/')))
    );
    for (name, want) in [
        (
            "evil\u{202e}fdp.exe",
            "file name holds a bidi control (U+202E) at byte 4",
        ),
        (".bashrc", "file name starts with a dot (hidden file)"),
        ("con.txt", "file name is a Windows device name"),
    ] {
        // The encoder does not check (a hostile peer's would not): the decoder must.
        let payload = FileMsg::Offer {
            id: 7,
            size: 1,
            name: name.into(),
        }
        .encode();
        let e = FileMsg::decode(&payload).unwrap_err();
        assert!(matches!(e, FileError::BadName(_)), "{name:?}: {e:?}");
        assert_eq!(e.to_string(), format!("unacceptable file name: {want}"));
        assert_eq!(FileMsg::offer_id(&payload), Some(7));
    }
    assert_eq!(FileMsg::offer_id(&FileMsg::Accept { id: 7 }.encode()), None);
    let (req, grant) = granted();
    assert_eq!(
        FileSender::offer(&req, &grant, 1, ".bashrc", 1).err(),
        Some(FileError::BadName(NameError::Hidden))
    );
}

#[test]
fn strict_decoding() {
    assert_eq!(
        FileMsg::decode(&Bytes::from_static(&[2, 0, 0, 0])),
        Err(FileError::Malformed)
    );
    assert_eq!(
        FileMsg::decode(&Bytes::from_static(&[2, 0, 0, 0, 1, 0])),
        Err(FileError::Malformed)
    );
    assert_eq!(
        FileMsg::decode(&Bytes::from_static(&[7, 0, 0, 0, 1, 2])),
        Err(FileError::Malformed)
    );
    assert_eq!(
        FileMsg::decode(&Bytes::from_static(&[9, 0, 0, 0, 1])),
        Err(FileError::Malformed)
    );
    let mut big = vec![4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    big.resize(big.len() + CHUNK_SIZE + 1, 0);
    assert_eq!(
        FileMsg::decode(&Bytes::from(big)),
        Err(FileError::Malformed)
    );
}

#[test]
fn transfer_ids_name_their_sender_and_the_halves_never_meet() {
    use crate::Role;
    assert_eq!(
        transfer_sender(first_transfer_id(Role::Applet)),
        Role::Applet
    );
    assert_eq!(
        transfer_sender(first_transfer_id(Role::Console)),
        Role::Console
    );
    assert_eq!(transfer_sender(APPLET_TRANSFER_BIT - 1), Role::Console);
    assert_eq!(transfer_sender(u32::MAX), Role::Applet);
    assert_eq!(transfer_sender(0), Role::Console);
    // The end user's offer needs no grant; its name and size are still checked.
    assert!(FileSender::offer_by_end_user(first_transfer_id(Role::Applet), "log.txt", 9).is_ok());
    assert!(FileSender::offer_by_end_user(APPLET_TRANSFER_BIT | 2, "../x", 9).is_err());
    assert!(matches!(
        FileSender::offer_by_end_user(APPLET_TRANSFER_BIT | 3, "big", MAX_FILE_SIZE + 1),
        Err(FileError::TooLarge { .. })
    ));
}
