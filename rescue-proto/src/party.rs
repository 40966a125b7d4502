//! The two words every layer shares: which end of a session ([`Role`]) and which tenant
//! ([`AccountId`]). Defined once here, the lowest crate that needs them; `rescue-crypto`
//! (BIND, certificates, tickets), the session layer and the root crate use these types.

use core::fmt;
use core::str::FromStr;

/// Which end of a session: the end user's applet or the technician's console.
///
/// The wire code (HELLO's role, BIND's role byte) is `0x01` applet, `0x02` console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The end user's applet (inner TLS client; allocates even application channel ids).
    Applet,
    /// The technician's console (inner TLS server; allocates odd application channel ids).
    Console,
}

impl Role {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            Role::Applet => 0x01,
            Role::Console => 0x02,
        }
    }

    /// The role of a wire code, `None` for any other byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Role::Applet),
            0x02 => Some(Role::Console),
            _ => None,
        }
    }

    /// The other end.
    pub const fn peer(self) -> Self {
        match self {
            Role::Applet => Role::Console,
            Role::Console => Role::Applet,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Applet => "applet",
            Role::Console => "console",
        })
    }
}

/// Most decimal digits of an account id in text form (`u64::MAX` has 20).
pub const MAX_ACCOUNT_DIGITS: usize = 20;

/// An account (tenant) identifier: a `u64`, written in decimal wherever it is text
/// (certificate names, PAIRED, logs).
///
/// The gateway learns a console's account from its client certificate, never from a
/// message field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An account id in text form that is not canonical decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("account id is not a canonical decimal u64")]
pub struct AccountIdError;

impl AccountId {
    /// Parses the canonical decimal form: 1 to [`MAX_ACCOUNT_DIGITS`] ASCII digits, no
    /// sign, no leading zero (except `0` itself), within `u64`. Anything else is refused,
    /// so one account has exactly one text form.
    pub fn from_decimal(bytes: &[u8]) -> Result<Self, AccountIdError> {
        let canonical = !bytes.is_empty()
            && bytes.len() <= MAX_ACCOUNT_DIGITS
            && bytes.iter().all(u8::is_ascii_digit)
            && (bytes.len() == 1 || bytes.first() != Some(&b'0'));
        if !canonical {
            return Err(AccountIdError);
        }
        let text = core::str::from_utf8(bytes).map_err(|_| AccountIdError)?;
        text.parse().map(AccountId).map_err(|_| AccountIdError)
    }
}

impl FromStr for AccountId {
    type Err = AccountIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_decimal(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_pair_up() {
        for r in [Role::Applet, Role::Console] {
            assert_eq!(Role::from_code(r.code()), Some(r));
            assert_eq!(r.peer().peer(), r);
            assert_ne!(r.peer(), r);
        }
        assert_eq!(Role::from_code(0), None);
        assert_eq!(Role::from_code(3), None);
    }

    #[test]
    fn only_canonical_decimal_is_an_account() {
        assert_eq!("42".parse(), Ok(AccountId(42)));
        assert_eq!("0".parse(), Ok(AccountId(0)));
        assert_eq!("18446744073709551615".parse(), Ok(AccountId(u64::MAX)));
        for bad in [
            "",
            "042",
            "+4",
            "-4",
            "4 ",
            "acme",
            "18446744073709551616",
            "٤٢",
        ] {
            assert_eq!(bad.parse::<AccountId>(), Err(AccountIdError), "{bad:?}");
        }
        assert_eq!(AccountId(7).to_string(), "7");
    }
}
