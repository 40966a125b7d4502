//! The channel table: which channel ids are open, closed or unknown (PROTOCOL.md 7.2).
//!
//! Channels 0 (control), 1 (chat), 2 (file) and 3 (media) are always open. Application channels
//! start at [`FIRST_APP_CHANNEL`]; the applet allocates even ids, the console odd ones,
//! each strictly increasing, so "closed" needs no per-id memory: an id of the opener's
//! parity below its next id that is not open is closed.

use std::collections::BTreeMap;

use super::frame::ChannelId;

/// The control channel: permissions, grants, revocations.
pub const CONTROL: ChannelId = 0;
/// The chat channel.
pub const CHAT: ChannelId = 1;
/// The file-transfer channel.
pub const FILE: ChannelId = 2;
/// The media channel: camera frames and keyframe requests (PROTOCOL.md 9.1).
pub const MEDIA: ChannelId = 3;
/// The first application channel id; 4..16 are reserved (unknown).
pub const FIRST_APP_CHANNEL: ChannelId = 16;
/// Most application channels open at once per session: bounds the channel table.
pub const MAX_APP_CHANNELS: usize = 64;

pub use crate::party::Role;

/// What a channel id currently names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Open,
    Closed,
    Unknown,
}

/// Open application channels and the id counters of both sides.
#[derive(Debug)]
pub(crate) struct Channels {
    role: Role,
    open: BTreeMap<ChannelId, String>,
    /// Next id this side allocates (u32 so exhaustion is visible, not a wrap).
    next_local: u32,
    /// Next id the peer may open.
    next_peer: u32,
}

impl Channels {
    pub(crate) fn new(role: Role) -> Self {
        let first = u32::from(FIRST_APP_CHANNEL);
        let (local, peer) = match role {
            Role::Applet => (first, first + 1),
            Role::Console => (first + 1, first),
        };
        Self {
            role,
            open: BTreeMap::new(),
            next_local: local,
            next_peer: peer,
        }
    }

    fn is_local(&self, c: ChannelId) -> bool {
        c.is_multiple_of(2) == (self.role == Role::Applet)
    }

    pub(crate) fn lookup(&self, c: ChannelId) -> Lookup {
        if c <= MEDIA || self.open.contains_key(&c) {
            return Lookup::Open;
        }
        let next = if self.is_local(c) {
            self.next_local
        } else {
            self.next_peer
        };
        if c >= FIRST_APP_CHANNEL && u32::from(c) < next {
            Lookup::Closed
        } else {
            Lookup::Unknown
        }
    }

    /// Allocates the next local id; `None` when the table is full or ids ran out.
    pub(crate) fn alloc(&mut self, label: &str) -> Option<ChannelId> {
        if self.open.len() >= MAX_APP_CHANNELS {
            return None;
        }
        let id = ChannelId::try_from(self.next_local).ok()?;
        self.next_local += 2;
        self.open.insert(id, label.to_owned());
        Some(id)
    }

    /// The peer opens `c`. `Err` when the id breaks the allocation rule (fatal);
    /// `Ok(false)` when the table is full (the channel is refused with CLOSE).
    pub(crate) fn peer_open(&mut self, c: ChannelId, label: &str) -> Result<bool, ()> {
        // PROTOCOL.md 7.2: "the opener's ids have its parity and strictly increase".
        if c < FIRST_APP_CHANNEL || self.is_local(c) || u32::from(c) < self.next_peer {
            return Err(());
        }
        self.next_peer = u32::from(c) + 2;
        if self.open.len() >= MAX_APP_CHANNELS {
            return Ok(false);
        }
        self.open.insert(c, label.to_owned());
        Ok(true)
    }

    /// Closes an application channel; `false` if it was not open.
    pub(crate) fn close(&mut self, c: ChannelId) -> bool {
        self.open.remove(&c).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_parity_and_closed_is_remembered() {
        let mut a = Channels::new(Role::Applet);
        let c = a.alloc("x").unwrap();
        assert_eq!(c, 16);
        assert_eq!(a.lookup(c), Lookup::Open);
        assert_eq!(a.lookup(18), Lookup::Unknown);
        assert!(a.close(c));
        assert_eq!(a.lookup(c), Lookup::Closed);
        assert_eq!(a.peer_open(17, "p"), Ok(true));
        assert_eq!(a.peer_open(17, "p"), Err(()));
        assert_eq!(a.peer_open(18, "p"), Err(()));
        assert_eq!(a.lookup(MEDIA), Lookup::Open);
        assert_eq!(a.lookup(4), Lookup::Unknown);
        assert_eq!(a.lookup(CHAT), Lookup::Open);
    }

    #[test]
    fn table_is_bounded() {
        let mut a = Channels::new(Role::Console);
        for _ in 0..MAX_APP_CHANNELS {
            assert!(a.alloc("x").is_some());
        }
        assert!(a.alloc("x").is_none());
        assert_eq!(a.peer_open(16, "p"), Ok(false));
    }
}
