//! The user's tree as the server knows it: path → file or directory, with versions.

use crate::protocol::{ChangeEntry, ContentHash, EntryState, WirePath};
use std::collections::BTreeMap;
use std::ops::Bound;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file.
    File {
        /// Bytes.
        size: u64,
        /// BLAKE3 of the content.
        hash: ContentHash,
        /// Modification time on the server's disk (ns since the epoch), to
        /// notice files changed behind the server's back after a crash.
        mtime_ns: i64,
        /// The executable bit (PROTOCOL.md §15): on disk as `x` wherever
        /// the file is readable (0644 → 0755).
        executable: bool,
    },
    /// A directory.
    Dir,
}

/// One path in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// File or directory.
    pub kind: NodeKind,
    /// Sequence number of the change that last created, modified or moved it.
    pub version: u64,
}

impl Node {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }

    /// This node as a pull-reply entry for `path`.
    pub fn entry(&self, path: &WirePath) -> ChangeEntry {
        let (state, executable) = match self.kind {
            NodeKind::File {
                size,
                hash,
                executable,
                ..
            } => (EntryState::File { size, hash }, executable),
            NodeKind::Dir => (EntryState::Dir, false),
        };
        ChangeEntry {
            path: path.clone(),
            version: self.version,
            state,
            executable,
        }
    }
}

/// Every path of one user, ordered so that a directory's descendants follow it
/// as the key range `dir/` .. `dir0` (`'0'` is the byte after `'/'`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<WirePath, Node>,
    /// For a file whose changes since its content last changed were all
    /// mode changes (SetMode, §15.3): the version of that content. Absent
    /// for every other path (its content is as old as its version).
    content_since: BTreeMap<WirePath, u64>,
}

impl Tree {
    /// The node at `path`.
    pub fn get(&self, path: &WirePath) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the user has no files or folders.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every path, in order (parents before children).
    pub fn iter(&self) -> impl Iterator<Item = (&WirePath, &Node)> {
        self.nodes.iter()
    }

    /// The paths strictly below `dir`, in order.
    pub fn descendants<'a>(
        &'a self,
        dir: &WirePath,
    ) -> impl Iterator<Item = (&'a WirePath, &'a Node)> + 'a {
        let low = format!("{dir}/");
        let high = format!("{dir}0");
        self.nodes.range::<str, _>((
            Bound::Included(low.as_str()),
            Bound::Excluded(high.as_str()),
        ))
    }

    /// The nearest ancestor of `path` that is a file, if any.
    pub fn file_ancestor(&self, path: &WirePath) -> Option<WirePath> {
        let mut current = path.parent();
        let mut found = None;
        while let Some(p) = current {
            if matches!(self.nodes.get(&p), Some(n) if !n.is_dir()) {
                found = Some(p.clone());
            }
            current = p.parent();
        }
        found
    }

    /// Adds missing parent directories of `path` with `version`; returns
    /// the ones it added.
    fn ensure_parents(&mut self, path: &WirePath, version: u64) -> Vec<WirePath> {
        let mut added = Vec::new();
        let mut current = path.parent();
        while let Some(p) = current {
            if self.nodes.contains_key(&p) {
                break;
            }
            current = p.parent();
            self.nodes.insert(
                p.clone(),
                Node {
                    kind: NodeKind::Dir,
                    version,
                },
            );
            added.push(p);
        }
        added
    }

    /// True when `path` is an executable file.
    pub fn is_executable(&self, path: &WirePath) -> bool {
        matches!(
            self.nodes.get(path),
            Some(Node {
                kind: NodeKind::File {
                    executable: true,
                    ..
                },
                ..
            })
        )
    }

    /// Sets the executable bit of the file at `path` (a change at
    /// `version`); false when no file is there.
    pub fn set_executable(&mut self, path: &WirePath, on: bool, version: u64) -> bool {
        match self.nodes.get_mut(path) {
            Some(Node {
                kind: NodeKind::File { executable, .. },
                version: v,
            }) => {
                *executable = on;
                self.content_since.entry(path.clone()).or_insert(*v);
                *v = version;
                true
            }
            _ => false,
        }
    }

    /// True when the file at `path` has the content (and the place) it had
    /// at version `base`: `base` is its version, or only mode changes
    /// (SetMode) came after `base`. False for a directory or
    /// nothing at `path`.
    pub fn content_unchanged_since(&self, path: &WirePath, base: u64) -> bool {
        self.content_version(path).is_some_and(|since| {
            since <= base && self.nodes.get(path).is_some_and(|n| base <= n.version)
        })
    }

    /// The version that placed the content of the file at `path` (its
    /// version, or the one before the SetModes that followed it); `None`
    /// for a directory or nothing at `path`.
    pub fn content_version(&self, path: &WirePath) -> Option<u64> {
        match self.nodes.get(path) {
            Some(node) if !node.is_dir() => Some(
                self.content_since
                    .get(path)
                    .copied()
                    .unwrap_or(node.version),
            ),
            _ => None,
        }
    }

    /// Every version a base comparison can still ask about: each entry's
    /// version and each file's content version (§7.2). Their authors are
    /// what the store keeps.
    pub fn live_versions(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes
            .values()
            .map(|n| n.version)
            .chain(self.content_since.values().copied())
    }

    /// Records a file (creating parents); returns the parents it created.
    pub fn put_file(&mut self, path: &WirePath, kind: NodeKind, version: u64) -> Vec<WirePath> {
        self.content_since.remove(path);
        let added = self.ensure_parents(path, version);
        self.nodes.insert(path.clone(), Node { kind, version });
        added
    }

    /// Records a directory (creating parents; an existing directory keeps
    /// its version); returns the parents it created.
    pub fn make_dir(&mut self, path: &WirePath, version: u64) -> Vec<WirePath> {
        let added = self.ensure_parents(path, version);
        self.nodes.entry(path.clone()).or_insert(Node {
            kind: NodeKind::Dir,
            version,
        });
        added
    }

    /// Removes `path` and everything below it.
    pub fn remove(&mut self, path: &WirePath) {
        let below: Vec<WirePath> = self.descendants(path).map(|(k, _)| k.clone()).collect();
        for key in below {
            self.nodes.remove(&key);
            self.content_since.remove(&key);
        }
        self.nodes.remove(path);
        self.content_since.remove(path);
    }

    /// Moves `from` and everything below it to `to` (creating parents); every
    /// moved node gets `version`. Returns the parents it created.
    pub fn rename(&mut self, from: &WirePath, to: &WirePath, version: u64) -> Vec<WirePath> {
        let mut moved: Vec<(WirePath, Node)> = self
            .descendants(from)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if let Some(node) = self.nodes.get(from) {
            moved.push((from.clone(), *node));
        }
        self.remove(from);
        let added = self.ensure_parents(to, version);
        for (old, node) in moved {
            if let Some(new) = old.rebase(from, to) {
                // Moved: its place changed at `version`, so a base before
                // the move is not "only mode changes since".
                self.content_since.remove(&new);
                self.nodes.insert(new, Node { version, ..node });
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn file(size: u64) -> NodeKind {
        NodeKind::File {
            size,
            hash: ContentHash::of(&size.to_be_bytes()),
            mtime_ns: 0,
            executable: false,
        }
    }

    #[test]
    fn parents_descendants_rename_remove() {
        let mut t = Tree::default();
        t.put_file(&p("a/b/c.txt"), file(1), 1);
        t.put_file(&p("a b.txt"), file(2), 2);
        t.put_file(&p("a.txt"), file(3), 3);
        assert!(t.get(&p("a")).unwrap().is_dir());
        assert!(t.get(&p("a/b")).unwrap().is_dir());
        let below: Vec<&str> = t.descendants(&p("a")).map(|(k, _)| k.as_str()).collect();
        assert_eq!(below, vec!["a/b", "a/b/c.txt"]);
        t.rename(&p("a"), &p("x/y"), 4);
        assert!(t.get(&p("a")).is_none());
        assert_eq!(t.get(&p("x/y/b/c.txt")).unwrap().version, 4);
        assert!(t.get(&p("x")).unwrap().is_dir());
        t.remove(&p("x"));
        let left: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(left, vec!["a b.txt", "a.txt"]);
        assert_eq!(t.file_ancestor(&p("a.txt/z")), Some(p("a.txt")));
    }

    #[test]
    fn content_unchanged_since_spans_mode_changes_only() {
        let mut t = Tree::default();
        let f = p("d/f.sh");
        t.put_file(&f, file(1), 3);
        assert!(t.content_unchanged_since(&f, 3));
        assert!(!t.content_unchanged_since(&f, 2));
        assert!(t.set_executable(&f, true, 5));
        assert!(t.set_executable(&f, false, 8));
        for base in [3, 5, 8] {
            assert!(t.content_unchanged_since(&f, base), "{base}");
        }
        assert!(!t.content_unchanged_since(&f, 2));
        assert!(!t.content_unchanged_since(&f, 9), "not yet a version");
        assert!(!t.content_unchanged_since(&p("d"), 3), "a directory");
        // New content: only its own version counts again.
        t.put_file(&f, file(2), 10);
        assert!(!t.content_unchanged_since(&f, 8));
        assert!(t.set_executable(&f, true, 11));
        assert!(t.content_unchanged_since(&f, 10));
        // Moved: a base from before the move no longer is.
        t.rename(&p("d"), &p("e"), 12);
        let moved = p("e/f.sh");
        assert!(!t.content_unchanged_since(&moved, 10));
        assert!(t.content_unchanged_since(&moved, 12));
        assert!(t.set_executable(&moved, false, 13));
        assert!(t.content_unchanged_since(&moved, 12));
        // Removed and made again: nothing of the old file is left.
        t.remove(&p("e"));
        t.put_file(&moved, file(3), 14);
        assert!(!t.content_unchanged_since(&moved, 12));
        assert!(!t.content_unchanged_since(&p("missing"), 1));
    }
}
