//! `.cloudignore` bytes → rule text, the way people's editors save it.
//!
//! Why not plain UTF-8 or nothing: a rule file that cannot be read as a
//! whole would leave only the built-in rules, so the first rules a user
//! wrote (often the ones that keep secrets out) would stop applying and
//! those files would be uploaded. So:
//! - a UTF-8 byte-order mark (Windows Notepad's "UTF-8 with BOM") is
//!   skipped, as git skips it in `.gitignore`;
//! - UTF-16 with a byte-order mark (Notepad's "Unicode", PowerShell's `>`)
//!   is decoded;
//! - a line that is not valid text is skipped and reported
//!   ([`RuleError::NotUtf8`] with its number); every other line applies,
//!   as with a bad pattern.
//!
//! Line numbers are kept: a skipped line stays as an empty line, so a later
//! [`RuleError::BadPattern`] names the line the user sees.

use super::RuleError;

const UTF8_BOM: &[u8] = &[0xef, 0xbb, 0xbf];
const UTF16_LE_BOM: &[u8] = &[0xff, 0xfe];
const UTF16_BE_BOM: &[u8] = &[0xfe, 0xff];

/// The text of a rule file's `bytes`, with a [`RuleError::NotUtf8`] for each
/// line that was skipped (1-based, in order).
pub fn decode_rules(bytes: &[u8]) -> (String, Vec<RuleError>) {
    if let Some(rest) = bytes.strip_prefix(UTF16_LE_BOM) {
        return from_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(UTF16_BE_BOM) {
        return from_utf16(rest, u16::from_be_bytes);
    }
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (text.to_owned(), Vec::new());
    }
    let mut errors = Vec::new();
    let lines: Vec<&str> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(n, line)| {
            std::str::from_utf8(line).unwrap_or_else(|_| {
                errors.push(RuleError::NotUtf8 { line: n + 1 });
                ""
            })
        })
        .collect();
    (lines.join("\n"), errors)
}

/// UTF-16 code units from byte pairs read with `unit` (an odd last byte is
/// not text); a line holding an unpaired surrogate is skipped.
fn from_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> (String, Vec<RuleError>) {
    let units = bytes.chunks(2).map(|pair| match *pair {
        [a, b] => unit([a, b]),
        // An odd byte out: not a character; U+FFFD marks it below.
        _ => 0xfffd_u16,
    });
    let decoded: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    let mut errors = Vec::new();
    let lines: Vec<&str> = decoded
        .split('\n')
        .enumerate()
        .map(|(n, line)| {
            if line.contains(char::REPLACEMENT_CHARACTER) {
                errors.push(RuleError::NotUtf8 { line: n + 1 });
                ""
            } else {
                line
            }
        })
        .collect();
    (lines.join("\n"), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng as _, SeedableRng};

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            UTF16_BE_BOM.to_vec()
        } else {
            UTF16_LE_BOM.to_vec()
        };
        for u in text.encode_utf16() {
            out.extend(if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn utf8_with_or_without_a_bom_is_the_same_text() {
        let text = "*.log\r\n!keep.log\nbuild/\n# é\n";
        for bytes in [
            text.as_bytes().to_vec(),
            [UTF8_BOM, text.as_bytes()].concat(),
        ] {
            assert_eq!(decode_rules(&bytes), (text.to_owned(), Vec::new()));
        }
    }

    #[test]
    fn utf16_with_a_bom_either_order_is_decoded() {
        let text = "*.log\r\nsecret/\nnaïve-😀.txt\n";
        for big_endian in [false, true] {
            assert_eq!(
                decode_rules(&utf16(text, big_endian)),
                (text.to_owned(), Vec::new()),
                "big endian: {big_endian}"
            );
        }
    }

    #[test]
    fn a_line_that_is_not_text_is_skipped_the_others_apply() {
        let bytes = b"*.log\nbad\xff line\n\xc3\nbuild/";
        let (text, errors) = decode_rules(bytes);
        assert_eq!(text, "*.log\n\n\nbuild/");
        assert_eq!(
            errors,
            vec![
                RuleError::NotUtf8 { line: 2 },
                RuleError::NotUtf8 { line: 3 }
            ]
        );
        // UTF-16: an unpaired surrogate on line 2, an odd byte at the end.
        let mut bytes = UTF16_LE_BOM.to_vec();
        for u in [
            b'a' as u16,
            b'\n' as u16,
            0xd800,
            b'x' as u16,
            b'\n' as u16,
            b'c' as u16,
        ] {
            bytes.extend(u.to_le_bytes());
        }
        bytes.push(b'z');
        let (text, errors) = decode_rules(&bytes);
        assert_eq!(text, "a\n\n");
        assert_eq!(
            errors,
            vec![
                RuleError::NotUtf8 { line: 2 },
                RuleError::NotUtf8 { line: 3 }
            ]
        );
    }

    /// Any bytes: no panic, as many lines out as in (line numbers kept),
    /// and every valid UTF-8 line of a BOM-less file kept as it was.
    #[test]
    fn random_bytes_keep_their_line_count_and_valid_lines() {
        let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.random::<u64>();
        for _ in 0..2_000 {
            let len = (next() % 64) as usize;
            let alphabet = [
                b'a', b'\n', b'*', 0xff, 0xc3, 0xa9, 0xef, 0xbb, 0xbf, 0xfe, 0,
            ];
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let (text, errors) = decode_rules(&bytes);
            if bytes.starts_with(UTF16_LE_BOM) || bytes.starts_with(UTF16_BE_BOM) {
                continue;
            }
            let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
            let lines_in: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
            let lines_out: Vec<&str> = text.split('\n').collect();
            assert_eq!(lines_in.len(), lines_out.len(), "{bytes:?}");
            for (n, (i, o)) in lines_in.iter().zip(&lines_out).enumerate() {
                match std::str::from_utf8(i) {
                    Ok(s) => assert_eq!(s, *o, "{bytes:?}"),
                    Err(_) => {
                        assert!(o.is_empty());
                        assert!(errors.contains(&RuleError::NotUtf8 { line: n + 1 }));
                    }
                }
            }
        }
    }
}
