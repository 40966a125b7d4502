//! The permissions a technician can ask for, and the group policy that bounds them.
//!
//! Chat needs no permission: it is allowed from the start of every session. Every other
//! action needs a grant, and a grant needs both the group policy (carried in the signed
//! applet ticket) and the end user's consent. What the policy forbids is refused without
//! asking the end user.
//!
//! On the wire a [`PermissionSet`] is a big-endian `u32` bit mask, bit `n` standing for
//! the permission whose code is `n` (see [`Permission::code`]). Bits that name no
//! permission are reserved: a decoder rejects them.

use core::fmt;

/// One thing a technician can ask to do on the end user's device.
///
/// The discriminants are the wire codes and never change.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
pub enum Permission {
    /// Control the end user's mouse and keyboard.
    RemoteControl = 0,
    /// See the end user's desktop without controlling it.
    DesktopView = 1,
    /// Send files to or receive files from the end user.
    FileTransfer = 2,
    /// Browse and manage the end user's file system.
    FileManager = 3,
    /// Read system information (OS, hardware, processes).
    SystemInfo = 4,
    /// Reboot the end user's device.
    Reboot = 5,
    /// Reconnect automatically after a reboot or network loss.
    Reconnect = 6,
    /// Run scripts on the end user's device.
    Scripts = 7,
    /// Synchronise the clipboard both ways.
    ClipboardSync = 8,
    /// Open a URL in the end user's browser.
    SendUrl = 9,
    /// Ask the end user for credentials (for example to elevate).
    RequestCredentials = 10,
    /// Record the session.
    RecordSession = 11,
    /// Show the technician's screen to the end user.
    ScreenSharing = 12,
    /// Hand the session over to another technician.
    TransferSession = 13,
    /// Hide the session from the rest of the technician's group.
    PrivateSession = 14,
    /// Stream the device's camera one way to the technician (Lens, PROTOCOL.md 9).
    Camera = 15,
}

impl Permission {
    /// Every permission, in code order.
    pub const ALL: [Permission; 16] = [
        Permission::RemoteControl,
        Permission::DesktopView,
        Permission::FileTransfer,
        Permission::FileManager,
        Permission::SystemInfo,
        Permission::Reboot,
        Permission::Reconnect,
        Permission::Scripts,
        Permission::ClipboardSync,
        Permission::SendUrl,
        Permission::RequestCredentials,
        Permission::RecordSession,
        Permission::ScreenSharing,
        Permission::TransferSession,
        Permission::PrivateSession,
        Permission::Camera,
    ];

    /// The wire code of this permission (its bit position in a [`PermissionSet`]).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The permission with this wire code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// A short human-readable name, as shown in a consent prompt.
    pub const fn label(self) -> &'static str {
        match self {
            Permission::RemoteControl => "remote control",
            Permission::DesktopView => "desktop view",
            Permission::FileTransfer => "file transfer",
            Permission::FileManager => "file manager",
            Permission::SystemInfo => "system information",
            Permission::Reboot => "reboot",
            Permission::Reconnect => "reconnect",
            Permission::Scripts => "scripts",
            Permission::ClipboardSync => "clipboard sync",
            Permission::SendUrl => "send URL",
            Permission::RequestCredentials => "request credentials",
            Permission::RecordSession => "record session",
            Permission::ScreenSharing => "screen sharing",
            Permission::TransferSession => "transfer session",
            Permission::PrivateSession => "private session",
            Permission::Camera => "camera",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A set of permissions, as a bit mask (bit `n` = permission with code `n`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u32);

/// The bits that name a permission; every other bit is reserved.
const DEFINED_BITS: u32 = (1 << Permission::ALL.len()) - 1;

impl PermissionSet {
    /// No permission.
    pub const EMPTY: Self = Self(0);
    /// Every permission.
    pub const ALL: Self = Self(DEFINED_BITS);

    /// The set from its wire form; `None` when a reserved bit is set.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !DEFINED_BITS != 0 {
            None
        } else {
            Some(Self(bits))
        }
    }

    /// The wire form of the set.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether `p` is in the set.
    pub const fn contains(self, p: Permission) -> bool {
        self.0 & (1 << p.code()) != 0
    }

    /// The set with `p` added.
    #[must_use]
    pub const fn with(self, p: Permission) -> Self {
        Self(self.0 | (1 << p.code()))
    }

    /// The set with `p` removed.
    #[must_use]
    pub const fn without(self, p: Permission) -> Self {
        Self(self.0 & !(1 << p.code()))
    }

    /// Permissions in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in code order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The technician group's policy for a session, carried in the signed applet ticket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Permissions the group may ask for; anything else is refused without asking.
    pub allowed: PermissionSet,
    /// Whether the group may use the single prompt for all allowed rights.
    pub all_in_one_allowed: bool,
    /// Whether chat text is left out of the audit trail.
    pub exclude_chat_from_audit: bool,
}

/// Wire flags of a [`Policy`] (one byte after the permission mask).
impl Policy {
    /// Flag bit: the all-in-one prompt is allowed.
    pub const FLAG_ALL_IN_ONE: u8 = 0x01;
    /// Flag bit: chat text is excluded from the audit trail.
    pub const FLAG_EXCLUDE_CHAT: u8 = 0x02;
    /// Length of the wire form: `u32` mask, `u8` flags.
    pub const WIRE_LEN: usize = 5;

    /// The wire form: the big-endian permission mask, then the flag byte.
    pub fn to_bytes(self) -> [u8; Self::WIRE_LEN] {
        let m = self.allowed.bits().to_be_bytes();
        let mut flags = 0;
        if self.all_in_one_allowed {
            flags |= Self::FLAG_ALL_IN_ONE;
        }
        if self.exclude_chat_from_audit {
            flags |= Self::FLAG_EXCLUDE_CHAT;
        }
        [m[0], m[1], m[2], m[3], flags]
    }

    /// Reads the wire form; `None` when a reserved permission bit or flag is set.
    pub fn from_bytes(b: [u8; Self::WIRE_LEN]) -> Option<Self> {
        let allowed = PermissionSet::from_bits(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        let flags = b[4];
        if flags & !(Self::FLAG_ALL_IN_ONE | Self::FLAG_EXCLUDE_CHAT) != 0 {
            return None;
        }
        Some(Self {
            allowed,
            all_in_one_allowed: flags & Self::FLAG_ALL_IN_ONE != 0,
            exclude_chat_from_audit: flags & Self::FLAG_EXCLUDE_CHAT != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_round_trip() {
        for (i, p) in Permission::ALL.iter().enumerate() {
            assert_eq!(usize::from(p.code()), i);
            assert_eq!(Permission::from_code(p.code()), Some(*p));
        }
        assert_eq!(Permission::from_code(15), Some(Permission::Camera));
        assert_eq!(Permission::from_code(16), None);
    }

    #[test]
    fn reserved_bits_are_rejected() {
        assert_eq!(PermissionSet::from_bits(1 << 16), None);
        assert_eq!(PermissionSet::from_bits(0xffff), Some(PermissionSet::ALL));
        assert_eq!(Policy::from_bytes([0, 0, 0, 0, 0x04]), None);
    }

    #[test]
    fn policy_wire_form_round_trips() {
        let p = Policy {
            allowed: [Permission::FileTransfer, Permission::Reboot]
                .into_iter()
                .collect(),
            all_in_one_allowed: true,
            exclude_chat_from_audit: false,
        };
        let b = p.to_bytes();
        assert_eq!(b, [0, 0, 0, 0x24, 0x01]);
        assert_eq!(Policy::from_bytes(b), Some(p));
    }
}
