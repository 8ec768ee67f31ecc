//! Which paths are not synced: `.cloudignore` (gitignore syntax, at the
//! folder's root) on top of built-in defaults for the temporary files
//! editors, office suites and browsers leave behind. The decision here is
//! pure (path + is-a-directory → [`Decision`]); reading the file and noticing
//! that it changed is [`source`]'s job.
//!
//! Matching is ripgrep's gitignore implementation (`ignore::gitignore`), so
//! the rules mean what they mean to git: a pattern without `/` matches a name
//! at any depth, a leading `/` anchors it at the folder's root, a trailing
//! `/` matches directories only, `**` spans directories, later lines win, and
//! `!pattern` re-includes what an earlier line (or a default) excluded —
//! except below an excluded directory, which is never entered (as in git).
//!
//! What an ignored path means for syncing (README "Ignoring files"): it is
//! never pushed, a pull never creates, overwrites or deletes it, and it does
//! not count for the empty-folder guard. `.cloudignore` itself is always
//! synced, so every device shares the rules.

use super::status::original_name;
use crate::protocol::limits::STATE_DIR_NAME;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::fmt;
use std::path::{Path, PathBuf};

pub mod apply;
pub mod decode;
pub mod kept;
pub mod source;

/// The rules file, at the folder's root; synced like any file.
pub const IGNORE_FILE: &str = ".cloudignore";

/// Most bytes of `.cloudignore` that are read: a larger file is refused as a
/// whole ([`RuleError::TooLarge`]) and only the defaults apply.
pub const MAX_RULES_BYTES: u64 = 1024 * 1024;

/// Built-in rules, applied before `.cloudignore` (so a `!pattern` there
/// re-includes any of them). Each is a temporary file some program writes
/// and removes again; syncing it would only cause churn and stray copies.
pub const DEFAULT_RULES: &[&str] = &[
    // vim: swap files (`.name.swp`, then `.swo`, …) and the `4913` file vim
    // creates to test whether a directory is writable.
    "*.swp",
    "*.swo",
    "*.swx",
    "4913",
    // Backup files of vim, emacs, nano, gedit, …: `name~`.
    "*~",
    // emacs: lock links `.#name` and auto-save files `#name#`.
    ".#*",
    "\\#*#",
    // LibreOffice / OpenOffice lock files: `.~lock.name#`.
    ".~lock.*#",
    // Microsoft Office owner (lock) files: `~$name.docx`.
    "~$*",
    // Partial downloads: Firefox `.part`, Chrome `.crdownload`, and the
    // generic `.tmp` many programs write before renaming into place.
    "*.part",
    "*.crdownload",
    "*.tmp",
];

/// Whether a path is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Synced as usual.
    Synced,
    /// Matched by a rule (or inside an ignored directory): left alone.
    Ignored,
}

/// A line of `.cloudignore` that could not be used, or the file as a whole.
/// Every other line still applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// Line `line` (1-based) is not a valid glob.
    BadPattern {
        /// 1-based line number in `.cloudignore`.
        line: usize,
        /// The line as written.
        pattern: String,
        /// The glob parser's explanation.
        reason: String,
    },
    /// The file is larger than [`MAX_RULES_BYTES`]: none of it applies.
    TooLarge {
        /// Its size in bytes.
        bytes: u64,
    },
    /// Line `line` (1-based) is not text (not UTF-8, or a broken UTF-16
    /// sequence): it is skipped ([`decode::decode_rules`]).
    NotUtf8 {
        /// 1-based line number in `.cloudignore`.
        line: usize,
    },
    /// The file exists but could not be read (the error's kind): none of it applies.
    Unreadable(std::io::ErrorKind),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::BadPattern {
                line,
                pattern,
                reason,
            } => write!(f, "{IGNORE_FILE} line {line} {pattern:?} is skipped: {reason}"),
            RuleError::TooLarge { bytes } => write!(
                f,
                "{IGNORE_FILE} is {bytes} bytes (at most {MAX_RULES_BYTES}); only the built-in rules apply"
            ),
            RuleError::NotUtf8 { line } => write!(
                f,
                "{IGNORE_FILE} line {line} is skipped: not UTF-8 (or UTF-16 with a byte-order mark) text"
            ),
            RuleError::Unreadable(kind) => write!(
                f,
                "{IGNORE_FILE} could not be read ({kind}); only the built-in rules apply"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// The compiled rules of one folder.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    matcher: Gitignore,
    /// The rules of `.cloudignore` conflict copies at the root (a device's
    /// own rules that lost a conflict): a path any of them ignores stays
    /// ignored too, until the user resolves the conflict by removing the
    /// copy. Never pushing what some device's rules hid is the safe side.
    held: Vec<Gitignore>,
}

impl Default for IgnoreRules {
    fn default() -> Self {
        IgnoreRules::from_text("").0
    }
}

impl IgnoreRules {
    /// The defaults plus the lines of `text` (a `.cloudignore`'s content),
    /// with the lines that could not be used. Never fails: a bad line is
    /// skipped and reported, the rest applies.
    pub fn from_text(text: &str) -> (IgnoreRules, Vec<RuleError>) {
        let mut builder = GitignoreBuilder::new(Path::new("."));
        for rule in DEFAULT_RULES {
            // The defaults are constants, tested to compile (see tests).
            let _ = builder.add_line(None, rule);
        }
        let mut errors = Vec::new();
        let from = Some(PathBuf::from(IGNORE_FILE));
        for (n, line) in text.lines().enumerate() {
            if let Err(e) = builder.add_line(from.clone(), line) {
                errors.push(RuleError::BadPattern {
                    line: n + 1,
                    pattern: line.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let matcher = match builder.build() {
            Ok(m) => m,
            Err(e) => {
                // Every line compiled on its own, so this is not expected;
                // fall back to nothing rather than to a partial set.
                errors.push(RuleError::BadPattern {
                    line: 0,
                    pattern: String::new(),
                    reason: e.to_string(),
                });
                Gitignore::empty()
            }
        };
        (
            IgnoreRules {
                matcher,
                held: Vec::new(),
            },
            errors,
        )
    }

    /// These rules, plus the rules of a `.cloudignore` conflict copy
    /// (`others`: its text), which keep ignoring what they ignore.
    pub fn holding(mut self, others: &str) -> IgnoreRules {
        let (rules, _) = IgnoreRules::from_text(others);
        self.held.push(rules.matcher);
        self
    }

    /// Whether `path` (relative, `/`-separated, as on the wire) is synced;
    /// `is_dir` says whether it is a directory (patterns ending in `/` match
    /// only directories). A path inside an ignored directory is ignored.
    /// `.cloudignore` at the root is never ignored.
    pub fn decide(&self, path: &str, is_dir: bool) -> Decision {
        if path.is_empty() || (path == IGNORE_FILE && !is_dir) || path.starts_with('/') {
            return Decision::Synced;
        }
        // Another synced folder's state inside this one (nested folders):
        // its device key must never travel (PROTOCOL.md §6.1 P13 reserves
        // only the top level; the client keeps every level out). That state
        // is a directory: a regular file of that name below the top level
        // is the user's, and synced (§6.1 P13; breaker13's L2: it was left
        // out and listed nowhere).
        let mut parts = path.split('/');
        let last = parts.next_back();
        if parts.any(|part| part == STATE_DIR_NAME) || (is_dir && last == Some(STATE_DIR_NAME)) {
            return Decision::Ignored;
        }
        // A conflict copy is decided as the path it is a copy of: it holds
        // content that was synced (an ignored path never conflicts), and a
        // rule that re-includes `foo.tmp` must not hide
        // `foo (conflict 2 …).tmp` from the other devices.
        let untagged = untag_conflict_copies(path);
        let path = untagged.as_deref().unwrap_or(path);
        // Ancestors first, from the top: as in git, an excluded directory
        // is never entered, so a `!` rule cannot re-include what lies below
        // it. (`matched_path_or_any_parents` would let the path's own `!`
        // win.)
        let ignored_by = |matcher: &Gitignore| {
            path.match_indices('/')
                .any(|(cut, _)| matcher.matched(&path[..cut], true).is_ignore())
                || matcher.matched(path, is_dir).is_ignore()
        };
        if std::iter::once(&self.matcher)
            .chain(&self.held)
            .any(ignored_by)
        {
            Decision::Ignored
        } else {
            Decision::Synced
        }
    }

    /// True when `path` is ignored as a file or as a directory: for a path
    /// whose kind is unknown (a deletion the server reports for a path this
    /// device does not track), where leaving it alone is the safe answer.
    pub fn ignores_either(&self, path: &str) -> bool {
        self.decide(path, false) == Decision::Ignored
            || self.decide(path, true) == Decision::Ignored
    }

    /// True when `path` is ignored (shorthand for [`IgnoreRules::decide`]).
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        self.decide(path, is_dir) == Decision::Ignored
    }
}

/// `path` with each conflict-copy component (§7.4) replaced by the name it
/// was made from; `None` when no component is one.
fn untag_conflict_copies(path: &str) -> Option<String> {
    if !path.contains(" (conflict ") {
        return None;
    }
    let parts: Vec<String> = path
        .split('/')
        .map(|part| original_name(part).unwrap_or_else(|| part.to_owned()))
        .collect();
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests;
