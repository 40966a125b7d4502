//! PROTOCOL.md section 7 test vectors: every message encodes to exactly the vector's
//! bytes and decodes back; the rejected vectors give the documented typed errors.

use bytes::{Bytes, BytesMut};
use rescue_proto::permission::{Permission, PermissionSet};
use rescue_proto::session::control::{ControlMsg, DenyReason};
use rescue_proto::session::file::{Digests, FileMsg};
use rescue_proto::session::frame::{EndReason, Frame, FrameError, FrameKind};

const DOC: &str = include_str!("../../PROTOCOL.md");

fn v(name: &str) -> Bytes {
    Bytes::from(rescue_proto::vectors::vector(DOC, name).unwrap_or_else(|| panic!("vector {name}")))
}

fn check_frame(name: &str, f: Frame) {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    assert_eq!(out.freeze(), v(name), "encode {name}");
    assert_eq!(Frame::decode(&v(name)), Ok(f), "decode {name}");
}

#[test]
fn frame_vectors() {
    let c =
        |kind, seq, ack, p: &'static [u8]| Frame::control(kind, seq, ack, Bytes::from_static(p));
    check_frame(
        "session.data",
        Frame::data(1, 5, 3, Bytes::from_static(b"hi")),
    );
    check_frame(
        "session.open",
        Frame {
            kind: FrameKind::Open,
            ..Frame::data(16, 0, 0, Bytes::from_static(b"app"))
        },
    );
    check_frame(
        "session.close",
        Frame {
            kind: FrameKind::Close,
            ..Frame::data(16, 1, 0, Bytes::new())
        },
    );
    check_frame(
        "session.end",
        c(FrameKind::End, 7, 2, &[EndReason::EndUser as u8]),
    );
    check_frame("session.ack", c(FrameKind::Ack, 0, 9, &[]));
    check_frame(
        "session.ping",
        c(FrameKind::Ping, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 1]),
    );
    check_frame(
        "session.pong",
        c(FrameKind::Pong, 0, 4, &[0, 0, 0, 0, 0, 0, 0, 1]),
    );
    check_frame("session.switch", c(FrameKind::Switch, 42, 17, &[]));
    check_frame("session.resume", c(FrameKind::Resume, 0, 17, &[]));
    assert_eq!(
        Frame::decode(&v("session.end")).unwrap().end_reason(),
        Some(EndReason::EndUser)
    );
    assert_eq!(Frame::decode(&v("session.ping")).unwrap().token(), Some(1));
}

#[test]
fn rejected_frame_vectors() {
    assert_eq!(
        Frame::decode(&v("session.bad.oversize")),
        Err(FrameError::Oversize(65537))
    );
    assert_eq!(
        Frame::decode(&v("session.bad.unknown_kind")),
        Err(FrameError::UnknownKind(0x20))
    );
    assert_eq!(
        Frame::decode(&v("session.bad.trailing")),
        Err(FrameError::TrailingBytes(1))
    );
    assert!(matches!(
        Frame::decode(&v("session.bad.ack_channel")),
        Err(FrameError::Malformed {
            kind: FrameKind::Ack,
            ..
        })
    ));
    assert_eq!(
        Frame::decode(&v("session.bad.open_label_control")),
        Err(FrameError::Malformed {
            kind: FrameKind::Open,
            what: "label text"
        })
    );
}

#[test]
fn rejected_peer_text_vectors() {
    use rescue_proto::session::chat::{self, ChatError};
    use rescue_proto::session::file::{FileError, NameError};
    use rescue_proto::text::CharClass;
    match chat::decode(&v("session.chat.bad.escape")) {
        Err(ChatError::Text(e)) => assert_eq!((e.class, e.offset), (CharClass::Control, 0)),
        other => panic!("{other:?}"),
    }
    match FileMsg::decode(&v("session.file.bad.offer_bidi")) {
        Err(FileError::BadName(NameError::Text(e))) => {
            assert_eq!((e.class, e.ch, e.offset), (CharClass::Bidi, '\u{202e}', 1))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        FileMsg::decode(&v("session.file.bad.offer_hidden")),
        Err(FileError::BadName(NameError::Hidden))
    );
    assert_eq!(
        FileMsg::offer_id(&v("session.file.bad.offer_hidden")),
        Some(1)
    );
}

#[test]
fn control_vectors() {
    let cases = [
        (
            "session.control.request",
            ControlMsg::Request {
                request_id: 1,
                permission: Permission::FileTransfer,
            },
        ),
        (
            "session.control.request_all",
            ControlMsg::RequestAll { request_id: 2 },
        ),
        (
            "session.control.grant",
            ControlMsg::Grant {
                request_id: 1,
                grant_id: 7,
                permissions: PermissionSet::EMPTY.with(Permission::FileTransfer),
            },
        ),
        (
            "session.control.deny",
            ControlMsg::Deny {
                request_id: 2,
                reason: DenyReason::Policy,
            },
        ),
        ("session.control.revoke", ControlMsg::Revoke { grant_id: 7 }),
    ];
    for (name, msg) in cases {
        assert_eq!(msg.encode(), v(name), "encode {name}");
        assert_eq!(ControlMsg::decode(&v(name)), Ok(msg), "decode {name}");
    }
}

#[test]
fn file_vectors() {
    let digests = Digests {
        md5: hex::decode("900150983cd24fb0d6963f7d28e17f72")
            .unwrap()
            .try_into()
            .unwrap(),
        sha256: hex::decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
            .unwrap()
            .try_into()
            .unwrap(),
    };
    let cases = [
        (
            "session.file.offer",
            FileMsg::Offer {
                id: 1,
                size: 3,
                name: "a.txt".into(),
            },
        ),
        ("session.file.accept", FileMsg::Accept { id: 1 }),
        (
            "session.file.chunk",
            FileMsg::Chunk {
                id: 1,
                offset: 0,
                data: Bytes::from_static(b"abc"),
            },
        ),
        ("session.file.done", FileMsg::Done { id: 1, digests }),
        ("session.file.cancel", FileMsg::Cancel { id: 1 }),
        ("session.file.result", FileMsg::Result { id: 1, ok: true }),
    ];
    for (name, msg) in cases {
        assert_eq!(msg.encode(), v(name), "encode {name}");
        assert_eq!(FileMsg::decode(&v(name)), Ok(msg), "decode {name}");
    }
}
