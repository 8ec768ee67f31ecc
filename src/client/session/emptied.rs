//! The empty-folder guard (PROTOCOL.md ): an unmounted drive or an
//! `rm -rf folder/*` must not become a deletion on the server and every other
//! device.
//!
//! Why top-level dot-names count as "left by a glob": a shell's `*` does not
//! match names beginning with `.`, so `rm -rf ~/Sync/*` leaves `.cloudignore`
//! (which the README recommends and which is synced), `.gitignore` or
//! `.envrc` behind. Counting those as "not empty" let such a removal of
//! everything else through (breaker25 F1: 40 of 41 files deleted on every
//! device). A folder whose synced files all live under dot-names (someone
//! syncing dotfiles) is judged as before: only a fully empty folder stops it.

use crate::client::error::ClientError;
use crate::client::ignore::IgnoreRules;
use crate::client::index::{EntryKind, Index};
use crate::protocol::limits::STATE_DIR_NAME;
use std::fs;
use std::path::Path;

/// Fewer synced files than this never trip the guard.
pub(super) const EMPTIED_THRESHOLD: usize = crate::client::schedule::removal::HOLD_MIN;

/// What the guard found: how many synced files are gone, and the dot-entries
/// still at the top (empty for a folder with nothing left at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Emptied {
    /// Synced files the folder no longer shows: all of them for an empty
    /// folder, else those outside top-level dot-names.
    pub gone: usize,
    /// Top-level names left, each beginning with `.`, sorted.
    pub left: Vec<String>,
}

/// The pure decision. `present` holds the names at the folder's top that
/// count (neither the state directory nor ignored); `synced_tops` yields, for
/// each file the index lists, its first path component.
///
/// Returns `Some` when the folder is empty and at least
/// [`EMPTIED_THRESHOLD`] files were synced, or when every present name begins
/// with `.` and at least [`EMPTIED_THRESHOLD`] synced files lie outside such
/// names (so all of those are gone).
pub(super) fn judge<'a>(
    present: &[String],
    synced_tops: impl IntoIterator<Item = &'a str>,
) -> Option<Emptied> {
    let mut all = 0;
    let mut outside_dots = 0;
    for top in synced_tops {
        all += 1;
        if !top.starts_with('.') {
            outside_dots += 1;
        }
    }
    if present.is_empty() {
        return (all >= EMPTIED_THRESHOLD).then(|| Emptied {
            gone: all,
            left: Vec::new(),
        });
    }
    if present.iter().all(|n| n.starts_with('.')) && outside_dots >= EMPTIED_THRESHOLD {
        let mut left = present.to_vec();
        left.sort();
        return Some(Emptied {
            gone: outside_dots,
            left,
        });
    }
    None
}

/// Refuses to start (or go on) when [`judge`] finds the folder emptied.
/// Ignored entries do not count: a folder holding only those is empty.
///
/// # Errors
/// `FolderEmptied`; `FolderVanished` when the folder cannot be listed.
pub(super) fn check_not_emptied(
    root: &Path,
    index: &Index,
    rules: &IgnoreRules,
) -> Result<(), ClientError> {
    if index.file_count() < EMPTIED_THRESHOLD {
        return Ok(());
    }
    let entries = fs::read_dir(root).map_err(|_| ClientError::FolderVanished(root.into()))?;
    let mut present = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == STATE_DIR_NAME {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match name.to_str() {
            Some(n) if rules.ignores(n, is_dir) => {}
            // A name that is not UTF-8 is never a dot-name we can tell
            // apart: it counts as content left.
            Some(n) => present.push(n.to_owned()),
            None => present.push(String::from("\u{fffd}")),
        }
    }
    let synced_tops = index
        .iter()
        .filter(|(_, e)| matches!(e.kind, EntryKind::File { .. }))
        .filter_map(|(p, _)| p.components().next());
    match judge(&present, synced_tops) {
        Some(found) => Err(ClientError::FolderEmptied {
            folder: root.to_path_buf(),
            indexed_files: found.gone,
            left: found.left,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn tops(dotted: usize, plain: usize) -> Vec<&'static str> {
        let mut v = vec![".config"; dotted];
        v.extend(std::iter::repeat_n("photos", plain));
        v
    }

    #[test]
    fn an_empty_folder_trips_at_the_threshold_only() {
        assert_eq!(judge(&[], tops(0, EMPTIED_THRESHOLD - 1)), None);
        assert_eq!(
            judge(&[], tops(3, EMPTIED_THRESHOLD)),
            Some(Emptied {
                gone: EMPTIED_THRESHOLD + 3,
                left: vec![]
            })
        );
    }

    #[test]
    fn only_dot_names_left_by_a_glob_trip_it() {
        let found = judge(&names(&[".envrc", ".cloudignore"]), tops(1, 40));
        assert_eq!(
            found,
            Some(Emptied {
                gone: 40,
                left: names(&[".cloudignore", ".envrc"])
            })
        );
    }

    #[test]
    fn any_plain_name_left_means_not_emptied() {
        assert_eq!(judge(&names(&[".cloudignore", "notes"]), tops(1, 40)), None);
        assert_eq!(judge(&names(&["x"]), tops(0, 400)), None);
    }

    #[test]
    fn a_folder_of_dotfiles_is_judged_as_before() {
        // Someone syncing dotfiles: removing `.config/` while `.bashrc`
        // stays is an ordinary removal.
        assert_eq!(judge(&names(&[".bashrc"]), tops(400, 0)), None);
        // Few synced files outside dot-names: below the threshold.
        assert_eq!(
            judge(&names(&[".bashrc"]), tops(400, EMPTIED_THRESHOLD - 1)),
            None
        );
    }

    #[test]
    fn the_count_is_exact_for_every_mix() {
        for dotted in 0..30 {
            for plain in 0..30 {
                let found = judge(&names(&[".a"]), tops(dotted, plain));
                assert_eq!(found.is_some(), plain >= EMPTIED_THRESHOLD);
                if let Some(f) = found {
                    assert_eq!(f.gone, plain);
                }
            }
        }
    }
}
