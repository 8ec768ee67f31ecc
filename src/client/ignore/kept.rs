//! Whether a local directory is kept out of sync by the rules: the one look
//! at the disk behind [`crate::client::conflict::Disk::IgnoredDir`].

use super::IgnoreRules;
use crate::client::index::Index;
use crate::protocol::WirePath;
use std::fs;
use std::path::Path;

/// True when the local directory at `path` (in the folder `root`) is never
/// pushed: the rules ignore it, or the index does not know it and all it
/// holds is ignored (at least one ignored entry, at any depth through
/// directories of the same kind, and nothing else the scanner would push).
/// This is the scanner's own rule (`ignore::apply::drop_ignored_only_dirs`)
/// read from the disk. An empty directory, or one holding any file or
/// directory the rules do not ignore, is pushed: false. Symlinks, special
/// files and names the protocol cannot carry are never pushed, so they do
/// not count either way. A directory that cannot be read counts as pushed
/// (false: the caller then waits for the push, as before).
pub fn kept_out(root: &Path, path: &WirePath, rules: &IgnoreRules, index: &Index) -> bool {
    if rules.ignores(path.as_str(), true) {
        return true;
    }
    if index.get(path).is_some() {
        return false;
    }
    only_ignored_below(root, path, rules, index)
}

/// The content test of [`kept_out`] for a directory neither ignored nor
/// indexed.
fn only_ignored_below(root: &Path, dir: &WirePath, rules: &IgnoreRules, index: &Index) -> bool {
    let Ok(listing) = fs::read_dir(dir.to_local(root)) else {
        return false;
    };
    let mut holds_ignored = false;
    for item in listing {
        let Ok(item) = item else { return false };
        let Ok(kind) = item.file_type() else {
            return false;
        };
        let Some(child) = item
            .file_name()
            .to_str()
            .and_then(|name| WirePath::new(&format!("{dir}/{name}")).ok())
        else {
            continue;
        };
        if kind.is_file() {
            if !rules.ignores(child.as_str(), false) {
                return false;
            }
            holds_ignored = true;
        } else if kind.is_dir() {
            if !kept_out(root, &child, rules, index) {
                return false;
            }
            holds_ignored = true;
        }
    }
    holds_ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(p: &str) -> WirePath {
        WirePath::new(p).expect("path")
    }

    #[test]
    fn a_directory_is_kept_out_when_it_or_all_it_holds_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let (rules, _) = IgnoreRules::from_text("build/\n*.tmp\n");
        let index = Index::new();
        let make = |p: &str| fs::create_dir_all(root.join(p)).expect("mkdir");
        let put = |p: &str| fs::write(root.join(p), "x").expect("write");
        make("build/sub");
        put("build/sub/a.o");
        make("proj/deep");
        put("proj/build.tmp");
        put("proj/deep/c.tmp");
        make("mixed/deep");
        put("mixed/x.tmp");
        put("mixed/deep/real.c");
        make("empty");
        make("only_empty_dir/inner");
        std::os::unix::fs::symlink("/etc", root.join("proj/link")).expect("symlink");
        let kept = |p: &str| kept_out(root, &wire(p), &rules, &index);
        assert!(kept("build"), "ignored by a rule");
        assert!(kept("proj"), "holds only ignored files (and a symlink)");
        assert!(!kept("mixed"), "a file the rules do not ignore is below");
        assert!(!kept("empty"), "an empty directory is pushed");
        assert!(
            !kept("only_empty_dir"),
            "an empty directory below is pushed"
        );
        assert!(!kept("missing"), "cannot be read: not decided here");
        let mut known = Index::new();
        known.insert(
            wire("proj"),
            crate::client::index::Entry {
                kind: crate::client::index::EntryKind::Dir,
                version: 1,
            },
        );
        assert!(
            !kept_out(root, &wire("proj"), &rules, &known),
            "a synced directory is not the scanner's to drop"
        );
    }
}
