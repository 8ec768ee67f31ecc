//! Where this folder's device identity was made (PROTOCOL.md ): the
//! folder root's file system device and inode and its path, in
//! `FOLDER/.cloudservice/origin`. A folder copied with its state
//! (`cp -a`, rsync, a backup restored next to the original) carries the
//! same device key; running both as one device would let each silently
//! overwrite the other's edits. The copy is told apart here, before it
//! connects, and joins as a new device instead ([`judge`] decides; the
//! session acts).

use super::error::ClientError;
use super::fsutil::write_atomic;
use crate::protocol::ClientId;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The name of the record in the state folder.
pub const ORIGIN_FILE: &str = "origin";

/// A folder root as the file system knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The device this record belongs to (a record of another device ID,
    /// left by an identity replaced since, is not this one's).
    pub client: ClientId,
    /// `st_dev` of the folder root.
    pub dev: u64,
    /// `st_ino` of the folder root.
    pub ino: u64,
    /// The folder's absolute path (symlinks resolved).
    pub path: PathBuf,
}

/// What the folder is, compared with where its identity was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The same folder, at the same place.
    Same,
    /// The same folder, moved or remounted: the same inode and either the
    /// same file system device (`mv` within one file system) or the same
    /// path (a removable drive given another device number at the next
    /// mount). The record is updated and the device runs as before.
    Moved,
    /// Another folder that holds a copy of the identity: a `cp -a`, rsync
    /// or restored backup (a new inode), or a move across file systems,
    /// which cannot be told apart from a copy made while the original
    /// still runs. It must not run as the device.
    Copy,
}

/// Decides what `here` is against `recorded`, the folder the identity was
/// made in. Pure: the rule of.
pub fn judge(recorded: &Origin, here: &Origin) -> Verdict {
    let same_inode = recorded.ino == here.ino;
    let same_dev = recorded.dev == here.dev;
    let same_path = recorded.path == here.path;
    match (same_inode, same_dev, same_path) {
        (true, true, true) => Verdict::Same,
        (true, true, false) | (true, false, true) => Verdict::Moved,
        _ => Verdict::Copy,
    }
}

/// The origin of the folder `root` (absolute, symlinks resolved) for device
/// `client`, from the file system.
///
/// # Errors
/// `stat` of `root` failed.
pub fn here(root: &Path, client: ClientId) -> Result<Origin, ClientError> {
    let meta =
        fs::metadata(root).map_err(|e| ClientError::io(format!("stat {}", root.display()), e))?;
    Ok(Origin {
        client,
        dev: meta.dev(),
        ino: meta.ino(),
        path: root.to_path_buf(),
    })
}

/// Reads the record in `state_dir`; `None` when there is none (a folder
/// that joined before records existed: the caller records it, never
/// refuses it) or it is damaged (recorded again the same way: it is a
/// hint for this check only).
///
/// # Errors
/// Reading a file that exists failed.
pub fn load(state_dir: &Path) -> Result<Option<Origin>, ClientError> {
    let file = state_dir.join(ORIGIN_FILE);
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(ClientError::io(format!("read {}", file.display()), e)),
    };
    Ok(parse(&text))
}

fn parse(text: &str) -> Option<Origin> {
    let (mut client, mut dev, mut ino, mut path) = (None, None, None, None);
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("client", n)) => client = n.parse().ok(),
            Some(("dev", n)) => dev = n.parse().ok(),
            Some(("ino", n)) => ino = n.parse().ok(),
            Some(("path-hex", h)) => {
                path = hex_bytes(h).map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
            }
            _ => {}
        }
    }
    Some(Origin {
        client: client?,
        dev: dev?,
        ino: ino?,
        path: path?,
    })
}

fn render(origin: &Origin) -> String {
    format!(
        "client {}\ndev {}\nino {}\npath-hex {}\n",
        origin.client,
        origin.dev,
        origin.ino,
        origin
            .path
            .as_os_str()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The bytes of a lowercase or uppercase hex string (a path is any bytes
/// but a newline would break the record's lines, so it is kept as hex).
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Records `origin` in `state_dir` (atomically).
///
/// # Errors
/// Writing the file.
pub fn save(state_dir: &Path, origin: &Origin) -> Result<(), ClientError> {
    let file = state_dir.join(ORIGIN_FILE);
    write_atomic(&file, render(origin).as_bytes())
        .map_err(|e| ClientError::io(format!("write {}", file.display()), e))
}

/// A folder found to be a copy: which device's identity it holds and where
/// that identity was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOf {
    /// The device whose identity the copy holds.
    pub device: ClientId,
    /// The folder that identity was made in.
    pub original: PathBuf,
}

/// Checks the folder `root` (canonical) that holds the identity of device
/// `client`: `Ok(None)` when it may run as that device (recording where it
/// is when there was no record, or the folder moved), `Ok(Some(copy))`
/// when it is a copy ([`Verdict::Copy`]).
///
/// # Errors
/// `stat` of the folder, reading or writing the record.
pub fn check(
    state_dir: &Path,
    root: &Path,
    client: ClientId,
) -> Result<Option<CopyOf>, ClientError> {
    let here = here(root, client)?;
    let recorded = load(state_dir)?.filter(|r| r.client == client);
    let Some(recorded) = recorded else {
        save(state_dir, &here)?;
        return Ok(None);
    };
    match judge(&recorded, &here) {
        Verdict::Same => Ok(None),
        Verdict::Moved => {
            if recorded.path != here.path {
                log::info!(
                    "this folder moved from {} (the same folder: same inode); still device {client}",
                    recorded.path.display()
                );
            }
            save(state_dir, &here)?;
            Ok(None)
        }
        Verdict::Copy => Ok(Some(CopyOf {
            device: client,
            original: recorded.path,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin(dev: u64, ino: u64, path: &str) -> Origin {
        Origin {
            client: 4,
            dev,
            ino,
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn the_rule_table() {
        let at = origin(2049, 77, "/home/u/Sync");
        let cases = [
            (origin(2049, 77, "/home/u/Sync"), Verdict::Same),
            // mv within the file system keeps the inode.
            (origin(2049, 77, "/home/u/Elsewhere"), Verdict::Moved),
            // A drive given another device number, mounted at the same place.
            (origin(2065, 77, "/home/u/Sync"), Verdict::Moved),
            // cp -a / rsync next to the original.
            (origin(2049, 912, "/home/u/Sync-copy"), Verdict::Copy),
            // A backup restored where the original was (new inode).
            (origin(2049, 912, "/home/u/Sync"), Verdict::Copy),
            // Another file system and another path: a copy or a move across
            // file systems, which look the same.
            (origin(2065, 77, "/mnt/u/Sync"), Verdict::Copy),
            (origin(2065, 912, "/mnt/u/Sync"), Verdict::Copy),
        ];
        for (here, want) in cases {
            assert_eq!(judge(&at, &here), want, "{here:?}");
        }
    }

    proptest! {
        /// Whatever the numbers: only an equal inode can be the same
        /// folder, and then only with the device or the path equal too.
        #[test]
        fn only_the_same_inode_runs_as_the_device(
            a in (0u64..4, 0u64..4, 0usize..3),
            b in (0u64..4, 0u64..4, 0usize..3),
        ) {
            let paths = ["/a", "/b", "/a/b"];
            let x = origin(a.0, a.1, paths[a.2]);
            let y = origin(b.0, b.1, paths[b.2]);
            let verdict = judge(&x, &y);
            let runs = verdict != Verdict::Copy;
            prop_assert_eq!(runs, x.ino == y.ino && (x.dev == y.dev || x.path == y.path));
            prop_assert_eq!(verdict == Verdict::Same, x == y);
            prop_assert_eq!(judge(&y, &x), verdict, "symmetric");
        }

        #[test]
        fn a_record_reads_back(dev: u64, ino: u64, client: u64, name in proptest::collection::vec(1u8..=255, 1..40)) {
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name));
            let o = Origin { client, dev, ino, path };
            prop_assert_eq!(parse(&render(&o)), Some(o));
        }
    }

    #[test]
    fn a_copy_is_found_and_a_move_is_not() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("Sync").canonicalize().unwrap_or_else(|_| {
            fs::create_dir(top.path().join("Sync")).unwrap();
            top.path().join("Sync").canonicalize().unwrap()
        });
        let state = root.join(".cloudservice");
        fs::create_dir(&state).unwrap();
        // No record: recorded, runs.
        assert_eq!(check(&state, &root, 4).unwrap(), None);
        assert!(state.join(ORIGIN_FILE).is_file());
        assert_eq!(check(&state, &root, 4).unwrap(), None);
        // Moved within the file system: runs, record follows.
        let moved = top.path().join("Moved");
        fs::rename(&root, &moved).unwrap();
        let moved = moved.canonicalize().unwrap();
        let moved_state = moved.join(".cloudservice");
        assert_eq!(check(&moved_state, &moved, 4).unwrap(), None);
        assert_eq!(load(&moved_state).unwrap().unwrap().path, moved);
        // A copy (new inode) with the record copied too.
        let copy = top.path().join("Copy");
        fs::create_dir_all(copy.join(".cloudservice")).unwrap();
        fs::copy(
            moved_state.join(ORIGIN_FILE),
            copy.join(".cloudservice").join(ORIGIN_FILE),
        )
        .unwrap();
        let copy = copy.canonicalize().unwrap();
        let found = check(&copy.join(".cloudservice"), &copy, 4).unwrap();
        assert_eq!(
            found,
            Some(CopyOf {
                device: 4,
                original: moved.clone()
            })
        );
        // A record of another device (an identity replaced since) is not
        // this one's: recorded again.
        assert_eq!(check(&copy.join(".cloudservice"), &copy, 9).unwrap(), None);
        // A damaged record is recorded again.
        fs::write(moved_state.join(ORIGIN_FILE), "dev x\n").unwrap();
        assert_eq!(check(&moved_state, &moved, 4).unwrap(), None);
        assert_eq!(
            load(&moved_state).unwrap().unwrap().ino,
            here(&moved, 4).unwrap().ino
        );
    }
}
