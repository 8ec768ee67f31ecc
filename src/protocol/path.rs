//! Path rules shared by server and client: what a synced path may look like.

use super::error::PathError;
use super::limits::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH, STATE_DIR_NAME};
use std::fmt;

/// A path that satisfies every rule of PROTOCOL.md §6: relative, `/`-separated,
/// UTF-8, no empty / `.` / `..` components, no NUL, `\` or control characters,
/// bounded length and depth, and not inside the client's state folder.
///
/// Holding a `WirePath` is proof the checks ran, so code that joins it onto a
/// root folder cannot climb out of that folder by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WirePath(String);

impl WirePath {
    /// Checks `text` against the path rules.
    ///
    /// # Errors
    /// The first rule the text breaks.
    pub fn new(text: &str) -> Result<WirePath, PathError> {
        validate(text)?;
        Ok(WirePath(text.to_owned()))
    }

    /// Checks raw bytes (as they came off the wire).
    ///
    /// # Errors
    /// [`PathError::BadUtf8`] or the first rule the text breaks.
    pub fn from_bytes(bytes: &[u8]) -> Result<WirePath, PathError> {
        let text = std::str::from_utf8(bytes).map_err(|_| PathError::BadUtf8)?;
        WirePath::new(text)
    }

    /// The path as text, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, root first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent path, or `None` for a top-level name.
    pub fn parent(&self) -> Option<WirePath> {
        self.0
            .rfind('/')
            .map(|cut| WirePath(self.0[..cut].to_owned()))
    }

    /// True when `self` is `other` or lies below it.
    pub fn is_within(&self, other: &WirePath) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// Replaces the leading `from` of this path with `to` (for directory renames).
    /// Returns `None` when the path is not within `from` or the result breaks a rule.
    pub fn rebase(&self, from: &WirePath, to: &WirePath) -> Option<WirePath> {
        if !self.is_within(from) {
            return None;
        }
        let rest = &self.0[from.0.len()..];
        WirePath::new(&format!("{}{}", to.0, rest)).ok()
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// This path joined onto a local root folder.
    pub fn to_local(&self, root: &std::path::Path) -> std::path::PathBuf {
        let mut out = root.to_path_buf();
        for part in self.components() {
            out.push(part);
        }
        out
    }

    /// The top-most of `paths`: each one that is not inside (nor equal to)
    /// another one of them, in input order — the subtrees to remove or
    /// report when a whole set goes. Any input order gives the same set;
    /// `a b` sorting between `a` and `a/x` does not hide that `a/x` is
    /// inside `a`. O(n × depth).
    pub fn top_most(paths: impl IntoIterator<Item = WirePath>) -> Vec<WirePath> {
        let all: Vec<WirePath> = paths.into_iter().collect();
        let set: std::collections::HashSet<&str> = all.iter().map(|p| p.as_str()).collect();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut keep = Vec::new();
        for path in &all {
            let mut above = path.parent();
            let covered = loop {
                match above {
                    Some(a) if set.contains(a.as_str()) => break true,
                    Some(a) => above = a.parent(),
                    None => break false,
                }
            };
            if !covered && seen.insert(path.as_str()) {
                keep.push(path.clone());
            }
        }
        keep
    }
}

/// Lets maps keyed by `WirePath` be searched with plain `&str` ranges; the
/// orderings agree because a `WirePath` is compared as its text.
impl std::borrow::Borrow<str> for WirePath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WirePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate(text: &str) -> Result<(), PathError> {
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if text.starts_with('/') {
        return Err(PathError::Absolute);
    }
    for ch in text.chars() {
        match ch {
            '\0' => return Err(PathError::Nul),
            '\\' => return Err(PathError::Backslash),
            c if c.is_ascii_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    let mut depth = 0usize;
    for (index, part) in text.split('/').enumerate() {
        depth += 1;
        if depth > MAX_PATH_DEPTH {
            return Err(PathError::TooDeep);
        }
        match part {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::DotComponent),
            ".." => return Err(PathError::DotDotComponent),
            _ => {}
        }
        if part.len() > MAX_COMPONENT_BYTES {
            return Err(PathError::ComponentTooLong);
        }
        if index == 0 && part == STATE_DIR_NAME {
            return Err(PathError::Reserved);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng as _, SeedableRng};

    #[test]
    fn path_rules_table() {
        let long_component = "a".repeat(MAX_COMPONENT_BYTES + 1);
        let too_deep = vec!["d"; MAX_PATH_DEPTH + 1].join("/");
        let deepest = vec!["d"; MAX_PATH_DEPTH].join("/");
        let too_long = vec!["a".repeat(200); 21].join("/");
        let cases: Vec<(&str, Result<(), PathError>)> = vec![
            ("a", Ok(())),
            ("dir/file.txt", Ok(())),
            ("naïve café/ünï cödé 📁.bin", Ok(())),
            ("with space/x y", Ok(())),
            (".hidden", Ok(())),
            ("a/.cloudservice", Ok(())),
            ("...", Ok(())),
            ("", Err(PathError::Empty)),
            ("/etc/passwd", Err(PathError::Absolute)),
            ("../x", Err(PathError::DotDotComponent)),
            ("a/../../x", Err(PathError::DotDotComponent)),
            ("a/./b", Err(PathError::DotComponent)),
            ("a//b", Err(PathError::EmptyComponent)),
            ("a/", Err(PathError::EmptyComponent)),
            ("a\0b", Err(PathError::Nul)),
            ("..\\x", Err(PathError::Backslash)),
            ("a\nb", Err(PathError::ControlCharacter)),
            (".cloudservice/index", Err(PathError::Reserved)),
            (long_component.as_str(), Err(PathError::ComponentTooLong)),
            (too_deep.as_str(), Err(PathError::TooDeep)),
            (deepest.as_str(), Ok(())),
            (too_long.as_str(), Err(PathError::TooLong)),
        ];
        for (text, expected) in cases {
            assert_eq!(WirePath::new(text).map(|_| ()), expected, "{text:?}");
        }
        assert_eq!(WirePath::from_bytes(b"\xff"), Err(PathError::BadUtf8));
    }

    #[test]
    fn within_and_rebase() {
        let p = |s: &str| WirePath::new(s).unwrap();
        assert!(p("a/b").is_within(&p("a")));
        assert!(p("a").is_within(&p("a")));
        assert!(!p("ab").is_within(&p("a")));
        assert_eq!(p("a/b/c").rebase(&p("a/b"), &p("x")), Some(p("x/c")));
        assert_eq!(p("a/b").rebase(&p("q"), &p("x")), None);
        assert_eq!(p("a/b/c").parent(), Some(p("a/b")));
        assert_eq!(p("a").parent(), None);
        assert_eq!(p("a/b/c").file_name(), "c");
    }

    /// Found while merging the four "top-most" loops: the ones that only
    /// compared with the last kept path let `a/x` through after `a b`.
    #[test]
    fn top_most_ignores_order_and_sibling_names_between() {
        let p = |s: &str| WirePath::new(s).unwrap();
        let ps = |v: &[&str]| v.iter().map(|s| p(s)).collect::<Vec<_>>();
        let sorted = ps(&["a", "a b", "a.txt", "a/x", "a/x/y", "b/c", "b/c", "b/d/e"]);
        let top = ps(&["a", "a b", "a.txt", "b/c", "b/d/e"]);
        assert_eq!(WirePath::top_most(sorted.clone()), top);
        // Any order: the same set, in input order.
        let mut reversed = sorted;
        reversed.reverse();
        let mut got = WirePath::top_most(reversed);
        got.sort();
        assert_eq!(got, top);
        // Randomized: against the definition.
        let names = ["a", "a b", "a/b", "a/b/c", "a/b c", "ab", "b", "b/a"];
        let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let mut input = Vec::new();
            for name in names {
                if rng.random::<bool>() {
                    input.push(p(name));
                }
            }
            let got = WirePath::top_most(input.clone());
            for x in &input {
                let inside_other = input.iter().any(|y| y != x && x.is_within(y));
                assert_eq!(got.contains(x), !inside_other, "{x} in {input:?}");
            }
        }
    }
}
