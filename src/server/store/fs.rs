//! Disk access confined to one user's folder: every path is resolved component
//! by component and refused if any existing part of it is a symlink.

use crate::protocol::WirePath;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Why a disk operation on a user's folder failed.
#[derive(Debug)]
pub enum StoreError {
    /// The user has no folder or no state on this server.
    UnknownUser,
    /// A component of the path is a symlink (planted on the server side):
    /// following it could leave the user's folder, so nothing is done.
    Symlink(WirePath),
    /// The operating system refused.
    Io(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownUser => f.write_str("unknown user"),
            StoreError::Symlink(p) => write!(f, "refusing to follow a symlink at {p}"),
            StoreError::Io(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// What is on disk at a path, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisk {
    /// Nothing.
    Absent,
    /// A regular file.
    File,
    /// A real directory.
    Dir,
    /// A symlink or special file: never read, written through, or synced.
    Other,
}

/// Looks at `path` under `root`, checking that no ancestor is a symlink.
///
/// # Errors
/// [`StoreError::Symlink`] when an ancestor is a symlink or not a directory
/// that could be walked into; I/O errors other than "not found".
pub fn inspect(root: &Path, path: &WirePath) -> Result<(PathBuf, OnDisk), StoreError> {
    let mut current = root.to_path_buf();
    let parts: Vec<&str> = path.components().collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let last = i + 1 == parts.len();
        let meta = match fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                current.extend(&parts[i + 1..]);
                return Ok((current, OnDisk::Absent));
            }
            Err(e) => return Err(e.into()),
        };
        let kind = meta.file_type();
        if last {
            let state = if kind.is_dir() {
                OnDisk::Dir
            } else if kind.is_file() {
                OnDisk::File
            } else {
                OnDisk::Other
            };
            return Ok((current, state));
        }
        if kind.is_symlink() {
            return Err(StoreError::Symlink(path.clone()));
        }
        if !kind.is_dir() {
            // A file where a directory is needed: the caller decides.
            current.extend(&parts[i + 1..]);
            return Ok((current, OnDisk::Absent));
        }
    }
    Ok((current, OnDisk::Dir))
}

/// Creates every missing directory of `path` (itself included), refusing to
/// walk through symlinks.
///
/// # Errors
/// A symlink or a file in the way, or the OS refused.
pub fn make_dirs(root: &Path, path: &WirePath) -> Result<PathBuf, StoreError> {
    let mut current = root.to_path_buf();
    for part in path.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(StoreError::Symlink(path.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
    Ok(current)
}

/// The local path where `path` should go, with its parents created.
///
/// # Errors
/// As [`make_dirs`].
pub fn prepare_parent(root: &Path, path: &WirePath) -> Result<PathBuf, StoreError> {
    match path.parent() {
        Some(parent) => Ok(make_dirs(root, &parent)?.join(path.file_name())),
        None => Ok(root.join(path.file_name())),
    }
}

/// Removes whatever is at `path` (a file, a symlink itself, or a directory
/// tree — `remove_dir_all` does not follow symlinks inside it).
///
/// # Errors
/// A symlink among the ancestors, or the OS refused.
pub fn remove(root: &Path, path: &WirePath) -> Result<(), StoreError> {
    let (local, state) = inspect(root, path)?;
    match state {
        OnDisk::Absent => Ok(()),
        OnDisk::Dir => Ok(fs::remove_dir_all(local)?),
        OnDisk::File | OnDisk::Other => Ok(fs::remove_file(local)?),
    }
}

/// Moves `from` to `to` within the folder (parents of `to` created).
///
/// # Errors
/// A symlink among the ancestors, or the OS refused.
pub fn rename(root: &Path, from: &WirePath, to: &WirePath) -> Result<(), StoreError> {
    let (src, _) = inspect(root, from)?;
    let dst = prepare_parent(root, to)?;
    Ok(fs::rename(src, dst)?)
}

/// Modification time in nanoseconds since the epoch (0 when unknown).
pub fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Makes a rename or create in `dir` durable (fsync of the directory).
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinked_ancestor_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let p = WirePath::new("link/x.txt").unwrap();
        assert!(matches!(
            inspect(root.path(), &p),
            Err(StoreError::Symlink(_))
        ));
        assert!(matches!(
            prepare_parent(root.path(), &p),
            Err(StoreError::Symlink(_))
        ));
        assert!(matches!(
            remove(root.path(), &p),
            Err(StoreError::Symlink(_))
        ));
        // The link itself can be removed without touching its target.
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        remove(root.path(), &WirePath::new("link").unwrap()).unwrap();
        assert!(outside.path().join("keep").exists());
    }
}
