//! Test fixtures shared by the planner's unit tests: an index and a folder
//! built from `(path, inode)` pairs, where a file's content follows its
//! inode (inode `n` holds the 8 bytes of `n`), so a moved file keeps its
//! content and an edit is a new inode.

use super::ops::DiskEntry;
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::protocol::{ContentHash, WirePath};
use std::collections::BTreeMap;

/// A wire path from a literal that is one.
pub fn p(s: &str) -> WirePath {
    WirePath::new(s).expect("a wire path")
}

/// A 5-byte file's stat on device 1 at inode `ino` (birth time unknown).
pub fn stat(ino: u64) -> Stat {
    Stat {
        size: 5,
        mtime_ns: 7,
        ctime_ns: 7,
        dev: 1,
        ino,
        exec: false,
        btime_ns: 0,
    }
}

/// The content of inode `ino`.
pub fn hash(ino: u64) -> ContentHash {
    ContentHash::of(&ino.to_le_bytes())
}

/// The index: files as (path, inode), each its own content, version 10 +
/// inode; directories at version 1. `stat` gives each file's recorded stat.
pub fn index_with(
    files: &[(&str, u64)],
    dirs: &[&str],
    stat: impl Fn(u64) -> Stat,
) -> BTreeMap<WirePath, Entry> {
    let mut known: BTreeMap<WirePath, Entry> = files
        .iter()
        .map(|(f, ino)| (p(f), Entry::synced_file(stat(*ino), hash(*ino), 10 + ino)))
        .collect();
    for d in dirs {
        let dir = Entry {
            kind: EntryKind::Dir,
            version: 1,
        };
        known.insert(p(d), dir);
    }
    known
}

/// The folder on disk: files as (path, inode), and directories.
/// `stat` gives each file's stat.
pub fn folder_with(
    files: &[(&str, u64)],
    dirs: &[&str],
    stat: impl Fn(u64) -> Stat,
) -> BTreeMap<WirePath, DiskEntry> {
    let mut disk: BTreeMap<WirePath, DiskEntry> = files
        .iter()
        .map(|(f, ino)| (p(f), DiskEntry::File(stat(*ino))))
        .collect();
    for d in dirs {
        disk.insert(p(d), DiskEntry::Dir);
    }
    disk
}
