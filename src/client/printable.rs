//! Text a file name puts on a terminal: the client's log lines and
//! `cloud-client status` show names the user (or another device) chose, and
//! a name may hold any byte but `/` and NUL — a newline would forge a line
//! of the report, an escape sequence would drive the terminal. Control
//! characters (C0, DEL, C1: [`char::is_control`]) are therefore shown
//! escaped; everything else is shown as is. `--json` output is JSON-escaped
//! instead and does not use this.

use std::borrow::Cow;

/// `s` with each control character written as Rust writes it in a string
/// literal (`\n`, `\t`, `\r`, else `\u{1b}`); `s` itself when it has none.
/// For free text that mixes names with words (a log line).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for a list with one path per line: as is when it has no control
/// character, else in double quotes with control characters, `"` and `\`
/// escaped (as git quotes such names), so the quoted form cannot be taken
/// for a plain name.
pub fn quote_path(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 10);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_without_control_characters_are_shown_as_they_are() {
        for name in ["a/b.txt", "café.txt", "with \"quotes\" and \\", "€ é 日本"] {
            assert_eq!(escape_controls(name), name);
            assert_eq!(quote_path(name), name);
        }
    }

    #[test]
    fn newlines_and_escape_sequences_are_escaped() {
        assert_eq!(escape_controls("new\nline.txt"), "new\\nline.txt");
        assert_eq!(
            escape_controls("esc\u{1b}[31mred.txt"),
            "esc\\u{1b}[31mred.txt"
        );
        assert_eq!(escape_controls("nel\u{85}x"), "nel\\u{85}x");
        assert_eq!(quote_path("a\tb\\\"c"), "\"a\\tb\\\\\\\"c\"");
    }

    proptest! {
        /// Whatever the name, what is shown is one line free of control
        /// characters, and a quoted form is only given to names that need it.
        #[test]
        fn what_is_shown_has_no_control_character(name in any::<String>()) {
            for shown in [escape_controls(&name), quote_path(&name)] {
                prop_assert!(!shown.chars().any(char::is_control), "{shown:?}");
            }
            let needs = name.chars().any(char::is_control);
            prop_assert_eq!(quote_path(&name) == name.as_str(), !needs);
        }
    }
}
