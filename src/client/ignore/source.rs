//! Reading `.cloudignore` and noticing when it changes, so an edit (local,
//! or pulled from another device) takes effect without a restart; and the
//! state folder's record of which rules the index was last trimmed with, so
//! a change made while the client was not running is noticed at start-up.

use super::decode::decode_rules;
use super::{IgnoreRules, RuleError, DEFAULT_RULES, IGNORE_FILE, MAX_RULES_BYTES};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Name of the record in the state folder: the hex digest of the rules the
/// index was last trimmed with.
pub const APPLIED_FILE: &str = "ignore-applied";

/// What `stat` said about `.cloudignore` when it was last read: a different
/// answer means "read it again". `None` when it was absent (or not a file).
type Fingerprint = Option<(u64, i64, i64, i64, i64, u64)>;

/// The rules as their sources said at a [`RuleSource::peek`], kept while
/// those sources do not change again.
#[derive(Debug)]
pub struct Peeked {
    seen: Vec<Fingerprint>,
    rules: IgnoreRules,
}

/// `.cloudignore` as last read, compiled.
#[derive(Debug)]
pub struct RuleSource {
    file: PathBuf,
    /// The `.cloudignore (conflict …)` copies found at the last read.
    copies: Vec<PathBuf>,
    /// [`RuleSource::stamps`] at the last read.
    seen: Vec<Fingerprint>,
    rules: IgnoreRules,
    errors: Vec<RuleError>,
    digest: String,
}

impl RuleSource {
    /// Reads `ROOT/.cloudignore` (absent: the defaults alone).
    pub fn load(root: &Path) -> RuleSource {
        let mut source = RuleSource {
            file: root.join(IGNORE_FILE),
            copies: Vec::new(),
            seen: Vec::new(),
            rules: IgnoreRules::default(),
            errors: Vec::new(),
            digest: String::new(),
        };
        source.read();
        source
    }

    /// Looks at the rules' sources again (an `lstat` of `.cloudignore`, of
    /// the folder root and of each held copy; they are read only when one of
    /// those changed, or always when `force`). True when the rules changed.
    pub fn refresh(&mut self, force: bool) -> bool {
        if !force && self.stamps() == self.seen {
            return false;
        }
        let before = std::mem::take(&mut self.digest);
        self.read();
        self.digest != before
    }

    /// The rules as their sources say now, when they changed since the
    /// last read, without adopting them (the session adopts new rules
    /// between pulls, [`RuleSource::refresh`]); `None` when nothing changed.
    /// `last` keeps what an earlier peek read, reused while the sources stay
    /// as they were then (an `lstat` each, as for `refresh`).
    pub fn peek<'a>(&self, last: &'a mut Option<Peeked>) -> Option<&'a IgnoreRules> {
        let now = self.stamps();
        if now == self.seen {
            *last = None;
            return None;
        }
        if last.as_ref().is_none_or(|p| p.seen != now) {
            let root = self.file.parent().unwrap_or(Path::new("."));
            let fresh = RuleSource::load(root);
            *last = Some(Peeked {
                seen: fresh.seen,
                rules: fresh.rules,
            });
        }
        last.as_ref().map(|p| &p.rules)
    }

    /// The rules in force.
    pub fn rules(&self) -> &IgnoreRules {
        &self.rules
    }

    /// What was wrong with the file when last read (empty when nothing).
    pub fn errors(&self) -> &[RuleError] {
        &self.errors
    }

    /// Hex BLAKE3 of the defaults and the file's text: equal digests, equal rules.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// What `stat` says now about everything the rules come from: the
    /// file, the folder root (its timestamps change when an entry is added,
    /// removed or renamed there, such as a conflict copy) and each held copy.
    fn stamps(&self) -> Vec<Fingerprint> {
        let root = self.file.parent().and_then(dir_stamp);
        std::iter::once(fingerprint(&self.file))
            .chain(std::iter::once(root))
            .chain(self.copies.iter().map(|c| fingerprint(c)))
            .collect()
    }

    fn read(&mut self) {
        let held = held_copies(&self.file);
        self.copies = held
            .iter()
            .map(|(name, _)| self.file.with_file_name(name))
            .collect();
        self.seen = self.stamps();
        let (text, mut errors) = match self.seen[0] {
            None => (String::new(), Vec::new()),
            Some(_) => match read_text(&self.file) {
                Ok(decoded) => decoded,
                Err(e) => (String::new(), vec![e]),
            },
        };
        let (mut rules, bad_lines) = IgnoreRules::from_text(&text);
        errors.extend(bad_lines);
        for (_, copy) in &held {
            rules = rules.holding(copy);
        }
        for e in &errors {
            log::warn!("{e}");
        }
        let mut hasher = blake3::Hasher::new();
        for rule in DEFAULT_RULES {
            hasher.update(rule.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(b"\0");
        hasher.update(text.as_bytes());
        for (name, copy) in &held {
            hasher.update(b"\0");
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
            hasher.update(copy.as_bytes());
        }
        self.digest = hasher.finalize().to_hex().to_string();
        self.rules = rules;
        self.errors = errors;
    }
}

/// The `.cloudignore` conflict copies beside `file` (regular files named
/// `.cloudignore (conflict …)`, as the conflict naming of §7.4 makes them),
/// by name, with their text; unreadable ones are skipped.
fn held_copies(file: &Path) -> Vec<(String, String)> {
    let Some(root) = file.parent() else {
        return Vec::new();
    };
    let prefix = format!("{IGNORE_FILE} (conflict ");
    let Ok(listing) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut held: Vec<(String, String)> = listing
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let copy = root.join(&name);
            (name.starts_with(&prefix) && fingerprint(&copy).is_some())
                .then(|| read_text(&copy).ok().map(|(text, _)| (name, text)))
                .flatten()
        })
        .collect();
    held.sort();
    held
}

/// The file's identity and timestamps, without following a symlink; `None`
/// when it is absent or not a regular file (a symlink is not synced, so it
/// does not make rules either).
fn fingerprint(file: &Path) -> Fingerprint {
    let meta = fs::symlink_metadata(file).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    Some((
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
    ))
}

/// A directory's timestamps and identity, without following a symlink;
/// `None` when it is absent or not a directory.
fn dir_stamp(dir: &Path) -> Fingerprint {
    let meta = fs::symlink_metadata(dir).ok()?;
    meta.file_type().is_dir().then(|| {
        (
            0,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino(),
        )
    })
}

/// The file's text, at most [`MAX_RULES_BYTES`], with the lines
/// [`decode_rules`] skipped.
///
/// # Errors
/// [`RuleError::TooLarge`], [`RuleError::Unreadable`].
fn read_text(file: &Path) -> Result<(String, Vec<RuleError>), RuleError> {
    let opened = fs::File::open(file).map_err(|e| RuleError::Unreadable(e.kind()))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_RULES_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RuleError::Unreadable(e.kind()))?;
    if bytes.len() as u64 > MAX_RULES_BYTES {
        let bytes = fs::metadata(file).map_or(MAX_RULES_BYTES + 1, |m| m.len());
        return Err(RuleError::TooLarge { bytes });
    }
    Ok(decode_rules(&bytes))
}

/// The digest recorded in the state folder `state` (`None`: never recorded).
pub fn applied_digest(state: &Path) -> Option<String> {
    let text = fs::read_to_string(state.join(APPLIED_FILE)).ok()?;
    Some(text.trim().to_owned())
}

/// Records `digest` as the rules the index was trimmed with.
///
/// # Errors
/// Writing the record.
pub fn save_applied(state: &Path, digest: &str) -> std::io::Result<()> {
    crate::client::fsutil::write_atomic(&state.join(APPLIED_FILE), format!("{digest}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_notices_an_edit_and_only_a_real_change_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut source = RuleSource::load(dir.path());
        let defaults = source.digest().to_owned();
        assert!(!source.rules().ignores("build/x", false));
        assert!(!source.refresh(false), "nothing changed");
        fs::write(dir.path().join(IGNORE_FILE), "build/\n").expect("write");
        assert!(source.refresh(false));
        assert!(source.rules().ignores("build/x", false));
        assert!(!source.refresh(true), "same text read again is no change");
        fs::remove_file(dir.path().join(IGNORE_FILE)).expect("rm");
        assert!(source.refresh(false));
        assert_eq!(source.digest(), defaults);
        assert!(!source.rules().ignores("build/x", false));
    }

    #[test]
    fn peek_sees_new_rules_without_adopting_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = RuleSource::load(dir.path());
        let mut last = None;
        assert!(source.peek(&mut last).is_none(), "nothing changed");
        fs::write(dir.path().join(IGNORE_FILE), "big.bin\n").expect("write");
        let seen = source.peek(&mut last).expect("changed");
        assert!(seen.ignores("big.bin", false));
        assert!(!source.rules().ignores("big.bin", false), "not adopted");
        assert!(source
            .peek(&mut last)
            .is_some_and(|r| r.ignores("big.bin", false)));
        fs::write(dir.path().join(IGNORE_FILE), "other\n").expect("write");
        // A second edit is read again (the size differs, so the stat does).
        let seen = source.peek(&mut last).expect("changed");
        assert!(!seen.ignores("big.bin", false) && seen.ignores("other", false));
    }

    #[test]
    fn bad_files_fall_back_to_the_defaults_with_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(IGNORE_FILE);
        // A line that is not text is skipped; the others apply (BOM and
        // UTF-16: src/client/ignore/decode.rs).
        fs::write(&file, b"\xef\xbb\xbf*.log\na\xff\n/secret\n").expect("write");
        let source = RuleSource::load(dir.path());
        assert_eq!(source.errors(), &[RuleError::NotUtf8 { line: 2 }]);
        assert!(source.rules().ignores("a.swp", false));
        assert!(
            source.rules().ignores("a.log", false),
            "the first rule, after the BOM"
        );
        assert!(source.rules().ignores("secret", false));
        let big = vec![b'x'; (MAX_RULES_BYTES + 10) as usize];
        fs::write(&file, big).expect("write");
        let source = RuleSource::load(dir.path());
        assert_eq!(
            source.errors(),
            &[RuleError::TooLarge {
                bytes: MAX_RULES_BYTES + 10
            }]
        );
        fs::remove_file(&file).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", &file).expect("symlink");
        let source = RuleSource::load(dir.path());
        assert!(source.errors().is_empty(), "a symlink is not read");
    }

    /// The outside tester's privacy leak: a device's own rules that lost a
    /// `.cloudignore` conflict (now a conflict copy) keep ignoring what they
    /// ignored, beside the shared rules, until the copy is removed.
    #[test]
    fn a_cloudignore_conflict_copy_keeps_its_rules_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IGNORE_FILE), "*.log\n").unwrap();
        let copy = dir
            .path()
            .join(format!("{IGNORE_FILE} (conflict 2 2026-12-01 120000)"));
        fs::write(&copy, "secret.txt\n").unwrap();
        let mut source = RuleSource::load(dir.path());
        assert!(source.rules().ignores("secret.txt", false));
        assert!(source.rules().ignores("b.log", false));
        assert!(!source.rules().ignores("notes.txt", false));
        let with_copy = source.digest().to_owned();
        fs::remove_file(&copy).unwrap();
        // Unforced: the ticks between safety rescans must notice it.
        assert!(source.refresh(false), "removing the copy changes the rules");
        assert_ne!(source.digest(), with_copy);
        assert!(!source.rules().ignores("secret.txt", false));
        assert!(source.rules().ignores("b.log", false));
        // A copy that arrives (pulled: another device's rules lost) while
        // `.cloudignore` stays as it is is noticed too, and so is its edit.
        let pulled = dir
            .path()
            .join(format!("{IGNORE_FILE} (conflict 3 2026-12-01 120500)"));
        fs::write(&pulled, "other.txt\n").unwrap();
        assert!(source.refresh(false), "a new copy changes the rules");
        assert!(source.rules().ignores("other.txt", false));
        fs::write(&pulled, "other.txt\nmore.txt\n").unwrap();
        assert!(source.refresh(false), "an edited copy changes the rules");
        assert!(source.rules().ignores("more.txt", false));
        assert!(!source.refresh(false), "nothing changed");
    }

    #[test]
    fn applied_digest_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(applied_digest(dir.path()), None);
        save_applied(dir.path(), "abc").expect("save");
        assert_eq!(applied_digest(dir.path()).as_deref(), Some("abc"));
    }
}
