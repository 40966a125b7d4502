//! The one rule for text a peer supplies (PROTOCOL.md 1.3): chat, file names, technician
//! and account names, channel labels, ERROR messages, ticket group names.
//!
//! Such text ends up on a terminal or in a dialog in front of a person who decides on
//! it (a consent prompt, a file to keep). A control character can redraw that screen
//! (ANSI escape sequences, OSC 52 writes the clipboard), a bidi override can make
//! `exe.txt` read as `txt.exe`, and an invisible character can make two names look the
//! same. Decoders therefore refuse every text holding one of them, with a
//! [`PeerTextError`] naming the field and the [`CharClass`] of the first offending code
//! point; nothing is silently stripped (a stripped text is not what the peer sent).
//!
//! Two strengths, one table ([`refused_class`]):
//! - [`check_peer_text`] (prose: chat, ERROR messages) refuses [`CharClass::Control`],
//!   [`CharClass::Bidi`], [`CharClass::LineSeparator`] and [`CharClass::Invisible`];
//! - [`check_peer_name`] (names: technician, account, group, file names, channel labels)
//!   refuses those and also [`CharClass::Joiner`] (ZWJ and ZWNJ are needed in emoji
//!   sequences and some scripts in prose, but in a name they only serve to make two
//!   different names look alike).

use core::fmt;

/// Why a code point is refused in peer text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CharClass {
    /// Unicode category Cc: C0 controls U+0000–U+001F (tab and newline included), DEL
    /// U+007F, C1 controls U+0080–U+009F. Terminal escape sequences start here.
    Control,
    /// Bidi formatting: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069. They
    /// reorder what is shown (`gpj.exe` shown as `exe.jpg`).
    Bidi,
    /// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: a line break by another
    /// name.
    LineSeparator,
    /// Format characters that show nothing: U+00AD, U+180E, U+200B, U+2060–U+2064,
    /// U+206A–U+206F, U+FEFF, U+FFF9–U+FFFB, tags U+E0000–U+E007F.
    Invisible,
    /// U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER: refused in names only.
    Joiner,
}

impl CharClass {
    /// A short description, for messages.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Control => "a control character",
            Self::Bidi => "a bidi control",
            Self::LineSeparator => "a line or paragraph separator",
            Self::Invisible => "an invisible format character",
            Self::Joiner => "a zero-width joiner",
        }
    }
}

impl fmt::Display for CharClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A peer's text holds a refused code point. The message names the code point as
/// `U+XXXX`, never the character itself, so logging the error is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerTextError {
    /// Which field (`"chat"`, `"technician"`, `"file name"`, ...).
    pub field: &'static str,
    /// The class of the first refused code point.
    pub class: CharClass,
    /// The code point.
    pub ch: char,
    /// Its byte offset in the text.
    pub offset: usize,
}

impl fmt::Display for PeerTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds {} (U+{:04X}) at byte {}",
            self.field,
            self.class,
            u32::from(self.ch),
            self.offset
        )
    }
}

impl std::error::Error for PeerTextError {}

/// The class that makes `c` refused in a name, or `None` if it may appear there.
/// Prose refuses the same except [`CharClass::Joiner`].
pub const fn refused_class(c: char) -> Option<CharClass> {
    Some(match c {
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => CharClass::Control,
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            CharClass::Bidi
        }
        '\u{2028}' | '\u{2029}' => CharClass::LineSeparator,
        '\u{ad}'
        | '\u{180e}'
        | '\u{200b}'
        | '\u{2060}'..='\u{2064}'
        | '\u{206a}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}' => CharClass::Invisible,
        '\u{200c}' | '\u{200d}' => CharClass::Joiner,
        _ => return None,
    })
}

/// Checks prose a peer sent (chat, ERROR messages): see the module docs.
pub fn check_peer_text(field: &'static str, s: &str) -> Result<(), PeerTextError> {
    check(field, s, false)
}

/// Checks a name a peer sent (technician, account, group, file name, channel label):
/// like [`check_peer_text`], and joiners are refused too.
pub fn check_peer_name(field: &'static str, s: &str) -> Result<(), PeerTextError> {
    check(field, s, true)
}

fn check(field: &'static str, s: &str, name: bool) -> Result<(), PeerTextError> {
    for (offset, ch) in s.char_indices() {
        match refused_class(ch) {
            Some(CharClass::Joiner) if !name => {}
            Some(class) => {
                return Err(PeerTextError {
                    field,
                    class,
                    ch,
                    offset,
                })
            }
            None => {}
        }
    }
    Ok(())
}

/// `s` with every code point of [`refused_class`] written as `\u{XXXX}` (and `\` as
/// `\\`, so the escaping cannot be faked): safe to print on a terminal. For showing
/// text whose origin is not a checked decoder (or as a second line of defence).
pub fn escape_for_display(s: &str) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if refused_class(c).is_some() {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_class_is_refused_with_its_field_and_offset() {
        let cases = [
            ("a\u{1b}[2J", CharClass::Control, 1),
            ("tab\there", CharClass::Control, 3),
            ("line\n", CharClass::Control, 4),
            ("del\u{7f}", CharClass::Control, 3),
            ("c1\u{9b}31m", CharClass::Control, 2),
            ("gpj\u{202e}.exe", CharClass::Bidi, 3),
            ("\u{2066}x", CharClass::Bidi, 0),
            ("x\u{61c}", CharClass::Bidi, 1),
            ("x\u{200f}", CharClass::Bidi, 1),
            ("a\u{2028}b", CharClass::LineSeparator, 1),
            ("a\u{200b}b", CharClass::Invisible, 1),
            ("a\u{feff}", CharClass::Invisible, 1),
            ("a\u{e0041}", CharClass::Invisible, 1),
            ("soft\u{ad}", CharClass::Invisible, 4),
        ];
        for (s, class, offset) in cases {
            let e = check_peer_text("chat", s).unwrap_err();
            assert_eq!(
                (e.field, e.class, e.offset),
                ("chat", class, offset),
                "{s:?}"
            );
            assert_eq!(check_peer_name("technician", s).unwrap_err().class, class);
        }
    }

    #[test]
    fn joiners_pass_in_prose_but_not_in_names() {
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        assert_eq!(check_peer_text("chat", family), Ok(()));
        let e = check_peer_name("technician", "al\u{200d}ice").unwrap_err();
        assert_eq!(e.class, CharClass::Joiner);
        assert_eq!(check_peer_name("technician", "Zoë Ångström 東京"), Ok(()));
    }

    #[test]
    fn the_error_message_names_the_code_point_not_the_character() {
        let e = check_peer_text("chat", "x\u{1b}]52;c;AAAA\u{7}").unwrap_err();
        let m = e.to_string();
        assert_eq!(m, "chat holds a control character (U+001B) at byte 1");
        assert!(!m.contains('\u{1b}'));
    }

    #[test]
    fn escaping_leaves_no_refused_character_and_is_unambiguous() {
        assert_eq!(
            escape_for_display("a\u{1b}[1m\\u{1b}"),
            "a\\u{001b}[1m\\\\u{1b}"
        );
        assert_eq!(escape_for_display("plain äöü"), "plain äöü");
    }

    proptest! {
        #[test]
        fn accepted_text_holds_no_refused_character(s in any::<String>()) {
            if check_peer_name("name", &s).is_ok() {
                prop_assert!(s.chars().all(|c| refused_class(c).is_none()));
            }
            if check_peer_text("chat", &s).is_ok() {
                prop_assert!(!s.chars().any(|c| c.is_control()));
                prop_assert!(s.chars().all(|c| matches!(refused_class(c), None | Some(CharClass::Joiner))));
            }
        }

        #[test]
        fn escaped_text_always_passes(s in any::<String>()) {
            prop_assert_eq!(check_peer_name("name", &escape_for_display(&s)), Ok(()));
        }
    }
}
