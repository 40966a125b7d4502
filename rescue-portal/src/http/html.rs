//! Page rendering: one layout, and escaping of every interpolated value (the pages are
//! plain `format!` templates; [`esc`] is applied to everything not written here).

use axum::response::Html;

use crate::auth::Principal;

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf_field(who: &Principal) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&who.csrf)
    )
}

/// A whole page: `body` is trusted markup built with [`esc`].
pub(crate) fn page(title: &str, who: Option<&Principal>, body: &str) -> Html<String> {
    let nav = match who {
        Some(w) => {
            let admin = if w.is_admin {
                r#" · <a id="nav-admin" href="/admin">Admin</a> · <a href="/admin/audit">Audit</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav><a id="nav-queue" href="/queue">Queue</a>{admin} · {} <form method="post" action="/logout" style="display:inline">{}<button id="logout">Log out</button></form></nav>"#,
                esc(&w.email),
                csrf_field(w)
            )
        }
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · rescue portal</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}nav{{margin-bottom:1em}}.code{{font-family:monospace;font-size:1.4em}}</style>
</head><body>{nav}<h1>{t}</h1>
{body}
</body></html>"#,
        t = esc(title)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(esc(r#"<b a="x">'&"#), "&lt;b a=&quot;x&quot;&gt;&#39;&amp;");
    }
}
