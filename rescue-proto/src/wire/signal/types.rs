//! Field types shared by several messages: roles, bounded texts, secrets and codes.

use core::fmt;

use super::SignalError;
pub use crate::party::{AccountId, Role};
use crate::wire::limits::{
    MAX_ERROR_MESSAGE_LEN, MAX_TECHNICIAN_NAME_LEN, RESUME_SECRET_LEN, UDP_TOKEN_LEN,
};

/// Who speaks on a connection (HELLO `role`): an end of the session, or a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Speaker {
    /// An applet (code 0x01) or a console (code 0x02).
    Peer(Role),
    /// A gateway (code 0x03).
    Gateway,
}

/// HELLO's role code of a gateway.
const GATEWAY_CODE: u8 = 0x03;

impl Speaker {
    /// The speaker for a code.
    pub fn from_code(code: u8) -> Result<Self, SignalError> {
        match Role::from_code(code) {
            Some(role) => Ok(Self::Peer(role)),
            None if code == GATEWAY_CODE => Ok(Self::Gateway),
            None => Err(SignalError::UnknownCode {
                field: "role",
                code: code.into(),
            }),
        }
    }

    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Peer(role) => role.code(),
            Self::Gateway => GATEWAY_CODE,
        }
    }
}

/// Checks a length-prefixed UTF-8 text: `min..=max` bytes, and the peer-text rule of
/// PROTOCOL.md 1.3 (names are checked as names, the ERROR message as prose).
fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), SignalError> {
    if s.len() < min || s.len() > max {
        return Err(SignalError::Length {
            field,
            len: s.len(),
        });
    }
    if field == ERROR_TEXT_FIELD {
        crate::text::check_peer_text(field, s)?;
    } else {
        crate::text::check_peer_name(field, s)?;
    }
    Ok(())
}

/// The field name of [`ErrorText`]: the one signalling text that is prose, not a name.
const ERROR_TEXT_FIELD: &str = "message";

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Least length in bytes.
            pub const MIN_LEN: usize = $min;
            /// Greatest length in bytes.
            pub const MAX_LEN: usize = $max;

            /// Checks the length bounds and the peer-text rule (PROTOCOL.md 1.3).
            pub fn new(s: impl Into<String>) -> Result<Self, SignalError> {
                let s = s.into();
                check_text($field, &s, $min, $max)?;
                Ok(Self(s))
            }

            /// Decodes from UTF-8 bytes with the same checks as [`Self::new`].
            pub fn from_utf8(bytes: &[u8]) -> Result<Self, SignalError> {
                let s = core::str::from_utf8(bytes).map_err(|_| SignalError::Text { field: $field })?;
                Self::new(s)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

bounded_text!(
    /// A technician's display name from the console certificate: 1 to 128 bytes of UTF-8,
    /// a name under PROTOCOL.md 1.3 (the end user sees it).
    TechnicianName, "technician", 1, MAX_TECHNICIAN_NAME_LEN
);

bounded_text!(
    /// The text of an ERROR: 0 to 128 bytes of UTF-8, prose under PROTOCOL.md 1.3.
    #[derive(Default)]
    ErrorText, "message", 0, MAX_ERROR_MESSAGE_LEN
);

/// Compares two byte strings of equal length without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0 && a.len() == b.len()
}

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Wraps the bytes (drawn by the caller from a CSPRNG).
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Compares without an early exit on the first differing byte; use this, not
            /// `==`, on a value a peer presents.
            pub fn ct_eq(&self, other: &Self) -> bool {
                ct_eq(&self.0, &other.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Secrets never reach logs.
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_bytes!(
    /// The per-session, per-party secret that proves a party in REATTACH (32 bytes).
    ResumeSecret, RESUME_SECRET_LEN
);

secret_bytes!(
    /// The token a peer sends in its UDP probe to the gateway (16 bytes).
    RendezvousToken, UDP_TOKEN_LEN
);

macro_rules! u16_codes {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $var:ident = $code:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[repr(u16)]
        pub enum $name {
            $($(#[$vdoc])* $var = $code,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The value for a code; unknown codes are rejected.
            pub fn from_code(code: u16) -> Result<Self, SignalError> {
                match code {
                    $($code => Ok(Self::$var),)*
                    _ => Err(SignalError::UnknownCode { field: $field, code: code.into() }),
                }
            }

            /// The code on the wire.
            pub const fn code(self) -> u16 {
                self as u16
            }
        }
    };
}

u16_codes!(
    /// Why a request was refused or a connection is being closed (ERROR `code`).
    ErrorCode, "error code" {
        /// The ticket's signature, format or gateway binding is wrong.
        BadTicket = 0x0001,
        /// The ticket has expired.
        ExpiredTicket = 0x0002,
        /// No live session has this GUID.
        UnknownGuid = 0x0003,
        /// The GUID is registered already (or was, and its ticket is still valid).
        GuidTaken = 0x0004,
        /// The session belongs to another account than the console's certificate.
        WrongAccount = 0x0005,
        /// The session has been claimed by a console already.
        AlreadyClaimed = 0x0006,
        /// A malformed frame, an unexpected message, or a request the role may not make.
        ProtocolViolation = 0x0007,
        /// The HELLO version is not one this gateway speaks.
        VersionMismatch = 0x0008,
        /// An awaited message did not come in time.
        Timeout = 0x0009,
        /// A session or connection limit is reached; try another gateway.
        Overloaded = 0x000A,
        /// The gateway is shutting down; try another gateway.
        ShuttingDown = 0x000B,
        /// A fault inside the gateway.
        Internal = 0x000C,
        /// REATTACH refused: wrong resume secret or identity, or the grace period is over.
        BadResume = 0x000D,
    }
);

u16_codes!(
    /// Why a party ends the connection in an orderly way (CLOSE `reason`).
    CloseReason, "close reason" {
        /// Done; nothing went wrong.
        Normal = 0x0000,
        /// The end user ended the session.
        EndUser = 0x0001,
        /// The technician ended the session.
        Technician = 0x0002,
        /// The connection was idle for too long.
        IdleTimeout = 0x0003,
        /// The sender is shutting down.
        ShuttingDown = 0x0004,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_and_free_of_control_characters() {
        assert!(TechnicianName::new("").is_err());
        assert!(TechnicianName::new("a".repeat(MAX_TECHNICIAN_NAME_LEN)).is_ok());
        assert!(TechnicianName::new("a".repeat(MAX_TECHNICIAN_NAME_LEN + 1)).is_err());
        assert!(TechnicianName::new("Eve\u{7}").is_err());
        for bad in ["Eve\u{1b}[2J", "\u{202e}evE", "Ev\u{200b}e", "Ev\u{200d}e"] {
            assert!(matches!(
                TechnicianName::new(bad),
                Err(SignalError::PeerText(e)) if e.field == "technician"
            ));
        }
        assert!(ErrorText::new("busy \u{1b}]52;c;AAAA\u{7}").is_err());
        assert!(ErrorText::new("emoji \u{1f468}\u{200d}\u{1f469}").is_ok());
        assert!(TechnicianName::from_utf8(&[0xff]).is_err());
        assert!(ErrorText::new("").is_ok());
    }

    #[test]
    fn secrets_compare_and_never_print() {
        let a = ResumeSecret::from_bytes([1; RESUME_SECRET_LEN]);
        let mut other = [1; RESUME_SECRET_LEN];
        other[31] = 2;
        assert!(a.ct_eq(&a.clone()));
        assert!(!a.ct_eq(&ResumeSecret::from_bytes(other)));
        assert_eq!(format!("{a:?}"), "ResumeSecret(..)");
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_rejected() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Ok(*c));
        }
        for c in CloseReason::ALL {
            assert_eq!(CloseReason::from_code(c.code()), Ok(*c));
        }
        assert!(ErrorCode::from_code(0).is_err());
        assert!(CloseReason::from_code(0xffff).is_err());
        assert!(Speaker::from_code(0).is_err());
        assert!(Speaker::from_code(4).is_err());
        assert_eq!(Speaker::from_code(3), Ok(Speaker::Gateway));
        assert_eq!(Speaker::from_code(1), Ok(Speaker::Peer(Role::Applet)));
    }
}
