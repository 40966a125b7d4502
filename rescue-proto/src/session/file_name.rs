//! The one file-name rule (PROTOCOL.md 7.6), used by the sender before it offers, by
//! [`FileMsg::decode`](super::file::FileMsg::decode) on every OFFER and by the receiver
//! before it accepts and before it creates anything on disk.
//!
//! A name a peer offers is shown to the end user, who decides on it, and then becomes a
//! file in a download folder. So it must be one plain name on every file system we run
//! on, and it must look like what it is. [`sanitize_name`] refuses (it never rewrites:
//! the name shown is the name stored):
//!
//! - what peer names may never hold ([`crate::text::check_peer_name`]: controls, bidi
//!   controls such as U+202E RIGHT-TO-LEFT OVERRIDE, zero-width and other invisible
//!   characters);
//! - path syntax: `/`, `\`, `.`, `..`, and characters Windows refuses in a name
//!   (`< > : " | ? *`);
//! - look-alike slashes ([`LOOKALIKE_SLASHES`]), which show a path that is not one;
//! - Windows device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`,
//!   also with superscript digits, `CONIN$`, `CONOUT$`), in any case, with or without an
//!   extension (`nul.txt` opens the null device on Windows);
//! - a leading or trailing space, a trailing dot (Windows strips them: the stored name
//!   differs from the one shown), a leading dot (a hidden file: an offered `.bashrc` or
//!   `.ssh` landing in a download folder, which may be a home directory, is an attack,
//!   and the end user does not see it in a listing);
//! - an empty name, or one longer than [`MAX_NAME_LEN`] bytes.

use crate::text::{check_peer_name, PeerTextError};

/// Longest file name in bytes: the common file-system limit (ext4, NTFS, APFS: 255).
pub const MAX_NAME_LEN: usize = 255;

/// Characters that look like `/` or `\` (Unicode confusables of the two separators).
pub const LOOKALIKE_SLASHES: &[char] = &[
    '\u{0337}', // COMBINING SHORT SOLIDUS OVERLAY
    '\u{0338}', // COMBINING LONG SOLIDUS OVERLAY
    '\u{1735}', // PHILIPPINE SINGLE PUNCTUATION
    '\u{2044}', // FRACTION SLASH
    '\u{20e5}', // COMBINING REVERSE SOLIDUS OVERLAY
    '\u{2215}', // DIVISION SLASH
    '\u{2216}', // SET MINUS
    '\u{2571}', // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
    '\u{2572}', // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
    '\u{27cb}', // MATHEMATICAL RISING DIAGONAL
    '\u{27cd}', // MATHEMATICAL FALLING DIAGONAL
    '\u{29f5}', // REVERSE SOLIDUS OPERATOR
    '\u{29f8}', // BIG SOLIDUS
    '\u{29f9}', // BIG REVERSE SOLIDUS
    '\u{fe68}', // SMALL REVERSE SOLIDUS
    '\u{ff0f}', // FULLWIDTH SOLIDUS
    '\u{ff3c}', // FULLWIDTH REVERSE SOLIDUS
];

/// Characters that are path syntax somewhere we run, or that Windows refuses in a name.
const RESERVED: &[char] = &['/', '\\', ':', '<', '>', '"', '|', '?', '*'];

/// Windows device names (compared case-insensitively with the part before the first
/// dot, trailing spaces removed, as Windows does).
const DEVICE_NAMES: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];

/// Why a file name was refused (PROTOCOL.md 7.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("empty file name")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error("file name of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// `.` or `..`.
    #[error("file name is a directory reference")]
    DotName,
    /// Starts with a dot: a hidden file.
    #[error("file name starts with a dot (hidden file)")]
    Hidden,
    /// Starts or ends with a space, or ends with a dot.
    #[error("file name starts or ends with a space or ends with a dot")]
    Padded,
    /// Holds a path separator or a character Windows refuses (`/ \ : < > " | ? *`).
    #[error("file name holds the reserved character {0:?}")]
    Reserved(char),
    /// Holds a character that looks like a slash.
    #[error("file name holds a look-alike slash (U+{:04X})", u32::from(*.0))]
    LookalikeSlash(char),
    /// A Windows device name, with or without an extension.
    #[error("file name is a Windows device name")]
    DeviceName,
    /// Holds a control, bidi, zero-width or other invisible character.
    #[error(transparent)]
    Text(#[from] PeerTextError),
}

/// Checks a file name under PROTOCOL.md 7.6 (see the module docs); returns it unchanged
/// when it passes.
pub fn sanitize_name(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName);
    }
    check_peer_name("file name", name)?;
    if let Some(c) = name.chars().find(|c| RESERVED.contains(c)) {
        return Err(NameError::Reserved(c));
    }
    if let Some(c) = name.chars().find(|c| LOOKALIKE_SLASHES.contains(c)) {
        return Err(NameError::LookalikeSlash(c));
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden);
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.ends_with('.') {
        return Err(NameError::Padded);
    }
    if is_device_name(name) {
        return Err(NameError::DeviceName);
    }
    Ok(name)
}

/// Whether Windows would open a device for `name` (`nul`, `Com1.txt`, `LPT¹.tar.gz`).
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if DEVICE_NAMES.iter().any(|d| stem.eq_ignore_ascii_case(d)) {
        return true;
    }
    let mut chars = stem.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let digit = chars.next();
    let numbered = prefix.eq_ignore_ascii_case("COM") || prefix.eq_ignore_ascii_case("LPT");
    numbered
        && chars.next().is_none()
        && digit.is_some_and(|d| d.is_ascii_digit() || matches!(d, '\u{b9}' | '\u{b2}' | '\u{b3}'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::text::{refused_class, CharClass};

    #[test]
    fn plain_names_pass_unchanged() {
        for ok in [
            "report v2.pdf",
            "a.txt",
            "Grüße 東京.tar.gz",
            "console.log",
            "COM10.txt",
            "conference.doc",
            "nulls",
            "a..b",
            "x",
        ] {
            assert_eq!(sanitize_name(ok), Ok(ok), "{ok:?}");
        }
        assert!(sanitize_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn each_refused_class_has_its_error() {
        use NameError::*;
        let cases: &[(&str, NameError)] = &[
            ("", Empty),
            (".", DotName),
            ("..", DotName),
            (".bashrc", Hidden),
            (".ssh", Hidden),
            ("a.txt.", Padded),
            ("a.txt ", Padded),
            (" a.txt", Padded),
            ("a/b", Reserved('/')),
            ("a\\b", Reserved('\\')),
            ("c:x", Reserved(':')),
            ("what?.txt", Reserved('?')),
            ("a*b", Reserved('*')),
            ("a|b", Reserved('|')),
            ("a\"b", Reserved('"')),
            ("<a>", Reserved('<')),
            ("..\u{2215}etc\u{2215}passwd", LookalikeSlash('\u{2215}')),
            ("a\u{2044}b", LookalikeSlash('\u{2044}')),
            ("a\u{29f8}b", LookalikeSlash('\u{29f8}')),
            ("a\u{ff0f}b", LookalikeSlash('\u{ff0f}')),
            ("a\u{ff3c}b", LookalikeSlash('\u{ff3c}')),
            ("a\u{2216}b", LookalikeSlash('\u{2216}')),
            ("CON", DeviceName),
            ("con.txt", DeviceName),
            ("Nul.tar.gz", DeviceName),
            ("aux", DeviceName),
            ("prn.", Padded),
            ("COM1", DeviceName),
            ("lpt9.log", DeviceName),
            ("COM0.x", DeviceName),
            ("LPT\u{b9}.txt", DeviceName),
            ("CON .txt", DeviceName),
            ("conin$", DeviceName),
        ];
        for (name, want) in cases {
            assert_eq!(sanitize_name(name), Err(*want), "{name:?}");
        }
        assert_eq!(
            sanitize_name(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(TooLong(MAX_NAME_LEN + 1))
        );
    }

    #[test]
    fn controls_bidi_and_zero_width_characters_are_refused() {
        let cases = [
            ("evil\u{202e}fdp.exe", CharClass::Bidi),
            ("a\u{200e}.txt", CharClass::Bidi),
            ("a\u{2066}.txt", CharClass::Bidi),
            ("a\u{200b}.txt", CharClass::Invisible),
            ("a\u{200c}.txt", CharClass::Joiner),
            ("a\u{200d}.txt", CharClass::Joiner),
            ("a\u{2060}.txt", CharClass::Invisible),
            ("\u{feff}a.txt", CharClass::Invisible),
            ("a\nb", CharClass::Control),
            ("a\0b", CharClass::Control),
            ("a\u{1b}[31mb", CharClass::Control),
            ("a\u{85}b", CharClass::Control),
        ];
        for (name, class) in cases {
            match sanitize_name(name) {
                Err(NameError::Text(e)) => assert_eq!(e.class, class, "{name:?}"),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    /// Characters worth mixing into arbitrary names: every refused kind and the ASCII
    /// that makes paths.
    fn tricky() -> impl Strategy<Value = char> {
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '\u{202e}', '\u{200b}', '\u{200d}', '\u{feff}', '\u{1b}', '\n', '\u{9b}', '.', ' ',
                '/', '\\', ':', '\u{2215}', '\u{ff0f}',
            ]),
            "[a-zA-Z0-9]".prop_map(|s| s.chars().next().unwrap_or('a')),
        ]
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_one_plain_visible_name(
            chars in prop::collection::vec(tricky(), 0..40)
        ) {
            let name: String = chars.into_iter().collect();
            if let Ok(n) = sanitize_name(&name) {
                prop_assert_eq!(n, name.as_str());
                prop_assert!(!n.is_empty() && n.len() <= MAX_NAME_LEN);
                prop_assert!(n.chars().all(|c| refused_class(c).is_none()));
                prop_assert!(!n.chars().any(|c| RESERVED.contains(&c) || LOOKALIKE_SLASHES.contains(&c)));
                prop_assert!(!n.starts_with('.') && !n.ends_with('.'));
                prop_assert!(!n.starts_with(' ') && !n.ends_with(' '));
                let p = std::path::Path::new(n);
                prop_assert_eq!(p.components().count(), 1);
                prop_assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(n));
            }
        }
    }
}
