//! Which entries of the folder cannot be synced, and why, in the one wording
//! both the running client (its status file) and `cloud-client status` (its
//! own walk of the folder) use: `status` lists the union of the two, so an
//! entry both see must read the same to be listed once, and the client must
//! see every entry the walk does, or it would call the folder in sync (and
//! move "last sync") while `status` says it is not (soak25).

use crate::protocol::{PathError, WirePath};
use std::fmt;
use std::fs::FileType;
use std::path::Path;

/// Why an entry cannot be synced, whatever the client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsyncable {
    /// Its path is not UTF-8.
    NotUtf8,
    /// Its path breaks a naming rule of the protocol (PROTOCOL.md §2: a
    /// backslash, a control character, a component over 255 bytes, more
    /// than 64 components, ...).
    Name(PathError),
    /// A symbolic link (never followed).
    Symlink,
    /// Neither a regular file nor a directory (a FIFO, a socket, a device).
    Special,
}

impl fmt::Display for Unsyncable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsyncable::NotUtf8 => f.write_str("name is not UTF-8"),
            Unsyncable::Name(e) => write!(f, "name not syncable: {e}"),
            Unsyncable::Symlink => f.write_str("symlink"),
            Unsyncable::Special => f.write_str("not a regular file"),
        }
    }
}

/// Why the path `rel` (under the folder) cannot be carried by the
/// protocol, or `None` when it can. Checked before the ignore rules: a name
/// they could not even match is never "left out by choice".
pub fn name_why(rel: &Path) -> Option<Unsyncable> {
    match rel.to_str().map(WirePath::new) {
        None => Some(Unsyncable::NotUtf8),
        Some(Err(e)) => Some(Unsyncable::Name(e)),
        Some(Ok(_)) => None,
    }
}

/// Why an entry of type `ft` (as `lstat` tells it) is not synced, or
/// `None` for a directory or a regular file. Checked after the ignore
/// rules: an ignored symlink is ignored, not listed.
pub fn kind_why(ft: FileType) -> Option<Unsyncable> {
    if ft.is_symlink() {
        Some(Unsyncable::Symlink)
    } else if ft.is_dir() || ft.is_file() {
        None
    } else {
        Some(Unsyncable::Special)
    }
}

/// How `status` names the entry at `rel`: its path, lossily as UTF-8.
pub fn shown(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn every_name_the_protocol_cannot_carry_has_its_reason() {
        let long = "l".repeat(256);
        let deep = vec!["d"; 65].join("/");
        let cases: [(&Path, &str); 5] = [
            (
                Path::new("a\\b.txt"),
                "name not syncable: backslash in path",
            ),
            (
                Path::new("new\nline.txt"),
                "name not syncable: control character in path",
            ),
            (
                Path::new(OsStr::from_bytes(b"caf\xe9.txt")),
                "name is not UTF-8",
            ),
            (
                Path::new(&long),
                "name not syncable: path component too long",
            ),
            (Path::new(&deep), "name not syncable: path too deep"),
        ];
        for (rel, want) in cases {
            let why = name_why(rel).map(|w| w.to_string());
            assert_eq!(why.as_deref(), Some(want), "{rel:?}");
        }
        for fine in ["a.txt", "dir/sub/é.txt", &vec!["d"; 64].join("/")] {
            assert_eq!(name_why(Path::new(fine)), None, "{fine}");
        }
        assert_eq!(
            shown(Path::new(OsStr::from_bytes(b"caf\xe9"))),
            "caf\u{fffd}"
        );
    }

    #[test]
    fn only_directories_and_regular_files_are_synced_kinds() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::write(root.join("f"), "x").expect("file");
        std::fs::create_dir(root.join("d")).expect("dir");
        std::os::unix::fs::symlink("f", root.join("l")).expect("symlink");
        drop(std::os::unix::net::UnixListener::bind(root.join("s")).expect("socket"));
        let kind = |name: &str| {
            let ft = std::fs::symlink_metadata(root.join(name))
                .expect("lstat")
                .file_type();
            kind_why(ft).map(|w| w.to_string())
        };
        assert_eq!(kind("f"), None);
        assert_eq!(kind("d"), None);
        assert_eq!(kind("l").as_deref(), Some("symlink"));
        assert_eq!(kind("s").as_deref(), Some("not a regular file"));
    }
}
