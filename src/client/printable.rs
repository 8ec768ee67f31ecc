//! Text a file name puts on a terminal: the client's log lines and
//! `cloud-client status` show names the user (or another device) chose, and
//! a name may hold any byte but `/` and NUL — a newline would forge a line
//! of the report, an escape sequence would drive the terminal, and a bidi
//! override (U+202E) would show `txt.exe` as `exe.txt` and reorder the rest
//! of the line ("Trojan Source", CVE-2021-42574). Control characters (C0,
//! DEL, C1: [`char::is_control`]), the bidi formatting characters and the
//! line and paragraph separators ([`is_hidden_format`]) are therefore shown
//! escaped; everything else is shown as is. `--json` output is JSON-escaped
//! instead and does not use this.

use std::borrow::Cow;

/// True for the characters a terminal does not show as themselves but
/// obeys: the bidi formatting characters of Unicode's UAX #9 (ALM U+061C,
/// LRM/RLM U+200E-U+200F, the embeddings and overrides U+202A-U+202E, the
/// isolates U+2066-U+2069) and the line and paragraph separators
/// U+2028-U+2029 (a new line to some terminals and editors).
pub fn is_hidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is shown escaped: a control character or
/// [`is_hidden_format`].
fn needs_escape(c: char) -> bool {
    c.is_control() || is_hidden_format(c)
}

/// `s` with each control or hidden formatting character written as Rust
/// writes it in a string literal (`\n`, `\t`, `\r`, else `\u{1b}`,
/// `\u{202e}`); `s` itself when it has none.
/// For free text that mixes names with words (a log line).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for a list with one path per line: as is when it has no control
/// or hidden formatting character, else in double quotes with those, `"` and `\`
/// escaped (as git quotes such names), so the quoted form cannot be taken
/// for a plain name.
pub fn quote_path(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
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
            c if needs_escape(c) => out.extend(c.escape_default()),
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

    /// Every bidi formatting character and both separators (breaker13's
    /// L5: shown raw by `status`), one by one, in both forms.
    #[test]
    fn bidi_and_separator_characters_are_escaped() {
        let all = ['\u{061C}', '\u{200E}', '\u{200F}']
            .into_iter()
            .chain('\u{2028}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}');
        for c in all {
            let name = format!("invoice{c}txt.exe");
            let code = format!("\\u{{{:x}}}", u32::from(c));
            assert_eq!(escape_controls(&name), format!("invoice{code}txt.exe"));
            assert_eq!(quote_path(&name), format!("\"invoice{code}txt.exe\""));
        }
        // Their neighbours are ordinary text.
        for c in [
            '\u{200D}', '\u{2027}', '\u{202F}', '\u{2065}', '\u{206A}', 'é',
        ] {
            let name = format!("a{c}b");
            assert_eq!(escape_controls(&name), name.as_str());
        }
    }

    /// Characters that may appear in shown text: neither control nor
    /// hidden formatting.
    fn shown_ok(c: char) -> bool {
        !c.is_control() && !is_hidden_format(c)
    }

    proptest! {
        /// Whatever the name, what is shown is one line free of control
        /// and hidden formatting characters, and a quoted form is only
        /// given to names that need it.
        #[test]
        fn what_is_shown_has_no_control_character(
            name in any::<String>(),
            bidi in proptest::sample::select(vec!['\u{202E}', '\u{2067}', '\u{2028}', '\u{200F}', 'x']),
            at in 0usize..64,
        ) {
            let mut name = name;
            let at = name.char_indices().map(|(i, _)| i).nth(at).unwrap_or(name.len());
            name.insert(at, bidi);
            for shown in [escape_controls(&name), quote_path(&name)] {
                prop_assert!(shown.chars().all(shown_ok), "{shown:?}");
            }
            let needs = !name.chars().all(shown_ok);
            prop_assert_eq!(quote_path(&name) == name.as_str(), !needs);
        }
    }
}
