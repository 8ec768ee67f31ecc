//! Folders read by content: the one walk over a synced folder (leaving out
//! the client's top-level `.cloudservice` state folder), a folder as a
//! [`Tree`], differences between trees, and writing test files.

use std::collections::BTreeMap;
use std::path::Path;

/// A folder by content: relative path → `None` for a directory, the bytes
/// for a regular file.
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// Every entry below `root` (not `root` itself) with its path relative to
/// `root`, except the top-level `.cloudservice` folder and what it holds.
/// Unreadable entries are skipped (a folder under test changes while read).
pub fn walk(root: &Path) -> impl Iterator<Item = (String, walkdir::DirEntry)> + '_ {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".cloudservice" || e.depth() != 1)
        .filter_map(Result::ok)
        .map(move |item| {
            let rel = item
                .path()
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            (rel, item)
        })
}

/// Reads a folder as a [`Tree`]: directories and regular files (symlinks and
/// special files are not synced, so they are left out).
pub fn tree(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    for (rel, item) in walk(root) {
        if item.file_type().is_dir() {
            out.insert(rel, None);
        } else if item.file_type().is_file() {
            if let Ok(bytes) = std::fs::read(item.path()) {
                out.insert(rel, Some(bytes));
            }
        }
    }
    out
}

/// Total bytes of the regular files of a folder.
pub fn tree_bytes(root: &Path) -> u64 {
    walk(root)
        .filter(|(_, e)| e.file_type().is_file())
        .filter_map(|(_, e)| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Writes `data` at `path` below `root`, creating parent directories.
pub fn write(root: &Path, path: &str, data: impl AsRef<[u8]>) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
    std::fs::write(full, data).expect("write");
}

/// A one-line-per-entry description of how two trees differ.
pub fn tree_diff(a: &Tree, b: &Tree) -> String {
    let show = |v: &Option<Vec<u8>>| match v {
        None => "dir".to_owned(),
        Some(bytes) => format!(
            "file {} B {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(24)])
        ),
    };
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("  only in first:  {k} ({})\n", show(v))),
            Some(w) if w != v => {
                out.push_str(&format!("  differs: {k} ({} vs {})\n", show(v), show(w)))
            }
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push_str(&format!("  only in second: {k} ({})\n", show(v)));
        }
    }
    out
}

/// Sets the permission bits of `path` (e.g. `0o755`).
pub fn chmod(path: &Path, bits: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).expect("chmod");
}

/// Appends `data` to the existing file `path` in one open-append-close.
pub fn append(path: &Path, data: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(data.as_bytes()).expect("append");
}

/// Every regular file below `root` (as [`walk`] sees it) with its owner
/// `x` bit.
pub fn exec_bits(root: &Path) -> BTreeMap<String, bool> {
    use std::os::unix::fs::PermissionsExt;
    walk(root)
        .filter(|(_, e)| e.file_type().is_file())
        .filter_map(|(rel, e)| {
            let m = e.metadata().ok()?;
            Some((rel, m.permissions().mode() & 0o100 != 0))
        })
        .collect()
}

/// Writes `bytes` over `path` keeping its mtime (and, with as many bytes,
/// its size): bit rot, or an edit followed by `touch -r` of a saved copy.
/// R-10.4's start-up comparison of size and mtime cannot see it; one with
/// a new mtime is a hand edit (tests/e2e_server_hand_edits.rs).
pub fn damage_in_place(path: &Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(path, bytes).expect("damage the server's copy");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(mtime).expect("keep the mtime");
}
