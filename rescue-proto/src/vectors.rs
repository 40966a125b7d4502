//! Test vectors from `PROTOCOL.md`, for the tests of every crate.
//!
//! A vector is written in `PROTOCOL.md` as two lines inside a fenced block:
//!
//! ```text
//! vector: frame.hello
//! hex: 01 00 00 04 00 01 01 00
//! ```
//!
//! The `hex:` line may be continued on following lines that start with `hex+:`.

/// The bytes of the vector called `name` in the document `doc`, if present.
///
/// Returns `None` when the vector is missing or its hex is malformed.
pub fn vector(doc: &str, name: &str) -> Option<Vec<u8>> {
    let mut lines = doc.lines().map(str::trim);
    lines.find(|l| l.strip_prefix("vector:").map(str::trim) == Some(name))?;
    let first = lines.next()?.strip_prefix("hex:")?;
    let mut hex = String::from(first);
    for l in lines {
        match l.strip_prefix("hex+:") {
            Some(more) => hex.push_str(more),
            None => break,
        }
    }
    let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    ::hex::decode(digits).ok()
}

/// Every vector name in `doc`, in order.
pub fn names(doc: &str) -> impl Iterator<Item = &str> {
    doc.lines()
        .filter_map(|l| l.trim().strip_prefix("vector:").map(str::trim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_multi_line_vectors() {
        let doc = "x\n```\nvector: a.b\nhex: 01 02\nhex+: 0a\n```\nvector: c\nhex: zz\n";
        assert_eq!(vector(doc, "a.b"), Some(vec![1, 2, 10]));
        assert_eq!(vector(doc, "c"), None);
        assert_eq!(vector(doc, "missing"), None);
        assert_eq!(names(doc).collect::<Vec<_>>(), ["a.b", "c"]);
    }
}
