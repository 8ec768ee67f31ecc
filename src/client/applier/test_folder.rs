//! A synced folder in a temporary directory, shared by the applier's tests.

use super::*;
use crate::client::fsutil::hash_file;
use crate::client::scanner::{DiskEntry, Scanner};

pub(super) fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

/// A pull reply's entry: a file holding `data` at `version`.
pub(super) fn file(path: &str, version: u64, data: &str) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::File {
            size: data.len() as u64,
            hash: ContentHash::of(data.as_bytes()),
        },
        executable: false,
    }
}

/// A pull reply's entry: a directory.
pub(super) fn dir(path: &str, version: u64) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::Dir,
        executable: false,
    }
}

/// A pull reply's entry: deleted.
pub(super) fn deleted(path: &str, version: u64) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::Deleted,
        executable: false,
    }
}

/// A folder, the applier's temporary area beside it, and its index.
pub(super) struct Folder {
    pub(super) _dir: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) tmp: PathBuf,
    pub(super) index: Index,
}

impl Folder {
    pub(super) fn new() -> Folder {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sync");
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&tmp).unwrap();
        Folder {
            _dir: dir,
            root,
            tmp,
            index: Index::new(),
        }
    }

    /// Writes a file, creating its parent directories.
    pub(super) fn write(&self, path: &str, data: &str) {
        let full = self.root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, data).unwrap();
    }

    pub(super) fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.root.join(path)).ok()
    }

    /// Indexes the folder (files and directories) as synced at `version`.
    pub(super) fn sync_all(&mut self, version: u64) {
        for (path, entry) in Scanner::new(&self.root).scan(None).unwrap() {
            let kind = match entry {
                DiskEntry::Dir => EntryKind::Dir,
                DiskEntry::File(stat) => EntryKind::File {
                    stat,
                    hash: hash_file(&path.to_local(&self.root)).unwrap().0,
                },
            };
            self.index.insert(path, Entry { kind, version });
        }
    }
}

/// Every file (with its content) and directory below `root`, sorted.
pub(super) fn snapshot(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: Vec<(String, Option<Vec<u8>>)> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let content = e.file_type().is_file().then(|| fs::read(e.path()).unwrap());
            (rel, content)
        })
        .collect();
    out.sort();
    out
}
