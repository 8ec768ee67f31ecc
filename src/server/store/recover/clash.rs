//! What the start's comparison makes of an entry changed by hand while the
//! server was stopped that must not simply become a change (R-10.12,
//! a path whose kind changed (a directory replaced by a file, or
//! a file by a directory), and a file put back older than the journal's
//! version (a restored backup). Pure decisions; `recover` does the I/O.

use crate::fsafe::walk::Found;
use crate::protocol::{ClientId, WirePath};
use crate::server::store::tree::Tree;

/// The client ID in the conflict name of an entry set aside by the start's
/// comparison: no device made it (§7.4's tag with 0, as a restore's change
/// has no author, R-14.3.3).
pub(super) const SERVER_FOLDER: ClientId = 0;

/// The top-most paths where the folder holds another kind of entry than the
/// tree lists there (a file where a directory is journaled, or a directory
/// where a file is), in `found`'s order (parents first), leaving out what is
/// at or below one of `announced` (the cut-off push's paths, R-10.3, which
/// the ordinary comparison completes). Each is set aside under a conflict
/// name so the journaled entry keeps its place: a removal by hand
/// is a loss, never a deletion, whatever was put there instead.
pub(super) fn kind_changes(found: &[Found], tree: &Tree, announced: &[&WirePath]) -> Vec<WirePath> {
    let mut out: Vec<WirePath> = Vec::new();
    for entry in found {
        if out.iter().any(|c| entry.path.is_within(c))
            || announced.iter().any(|a| entry.path.is_within(a))
        {
            continue;
        }
        let Some(node) = tree.get(&entry.path) else {
            continue;
        };
        if node.is_dir() != entry.file.is_none() {
            out.push(entry.path.clone());
        }
    }
    out
}

/// `found` with every entry at or below `from` moved below `to` (an entry
/// whose new path would break a rule of §6 is left out: it stays on disk
/// under `to`, unlisted, as the walk leaves out any unsyncable name).
pub(super) fn moved(found: Vec<Found>, from: &WirePath, to: &WirePath) -> Vec<Found> {
    found
        .into_iter()
        .filter_map(|mut entry| {
            if entry.path.is_within(from) {
                entry.path = entry.path.rebase(from, to)?;
            }
            Some(entry)
        })
        .collect()
}

/// Whether a file found with content other than the journal's current
/// version is a **stale copy** rather than an edit: its mtime is
/// older than the journal's. The server writes every file it places itself
/// (no device's time is kept), so a version's mtime is when the server
/// placed it: a copy carrying an older mtime was put back from a backup or
/// copied with its times kept (`cp -a`), not edited since, and must not
/// roll back the newer version the devices hold. An edit by hand, a `cp`
/// without `-p`, or a `touch` after the copy has a newer mtime.
pub(super) fn is_stale(found_mtime_ns: i64, journaled_mtime_ns: i64) -> bool {
    found_mtime_ns < journaled_mtime_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ContentHash;
    use crate::server::store::tree::NodeKind;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn dir(path: &str) -> Found {
        Found {
            path: p(path),
            file: None,
            executable: false,
        }
    }

    fn file(path: &str) -> Found {
        Found {
            path: p(path),
            file: Some((1, 1)),
            executable: false,
        }
    }

    fn tree(dirs: &[&str], files: &[&str]) -> Tree {
        let mut t = Tree::default();
        for d in dirs {
            t.make_dir(&p(d), 1);
        }
        for f in files {
            let kind = NodeKind::File {
                size: 1,
                hash: ContentHash::of(b"x"),
                mtime_ns: 1,
                executable: false,
            };
            t.put_file(&p(f), kind, 2);
        }
        t
    }

    #[test]
    fn only_the_top_most_kind_change_outside_the_announced_push() {
        let t = tree(&["d", "d/e", "g"], &["d/e/x", "f", "g/y", "h"]);
        // d/e became a file; f became a directory with entries; h is as
        // journaled; g/y became a directory but g is announced.
        let found = vec![
            dir("d"),
            file("d/e"),
            dir("f"),
            dir("f/sub"),
            file("f/sub/z"),
            dir("g"),
            dir("g/y"),
            file("h"),
            file("new"),
        ];
        let g = p("g");
        assert_eq!(kind_changes(&found, &t, &[&g]), vec![p("d/e"), p("f")]);
        assert!(kind_changes(&found[..1], &t, &[]).is_empty());
    }

    #[test]
    fn moved_rebases_the_subtree_only() {
        let found = vec![dir("f"), dir("f/sub"), file("f/sub/z"), file("fa")];
        let to = p("f (conflict 0 2026-12-04 150000)");
        let got: Vec<String> = moved(found, &p("f"), &to)
            .into_iter()
            .map(|e| e.path.as_str().to_owned())
            .collect();
        assert_eq!(
            got,
            [
                "f (conflict 0 2026-12-04 150000)",
                "f (conflict 0 2026-12-04 150000)/sub",
                "f (conflict 0 2026-12-04 150000)/sub/z",
                "fa"
            ]
        );
    }

    #[test]
    fn stale_means_strictly_older_than_the_journal() {
        assert!(is_stale(10, 11));
        assert!(!is_stale(11, 11));
        assert!(!is_stale(12, 11));
    }
}
