//! Disk access confined to one user's folder: every path is resolved component
//! by component and refused if any existing part of it is a symlink.

use super::dirfd::{self, Walked};
use crate::protocol::WirePath;
use rustix::fs::{
    fstat, fsync, openat, renameat, statat, unlinkat, AtFlags, FileType, Mode, OFlags, CWD,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Why a disk operation on a user's folder failed.
#[derive(Debug)]
pub enum StoreError {
    /// The user has no folder or no state on this server.
    UnknownUser,
    /// A component of the path is a symlink (planted on the server side):
    /// following it could leave the user's folder, so nothing is done.
    Symlink(WirePath),
    /// The change can never be stored as asked (a path too long for its
    /// conflict place, a name the disk's file system refuses): retrying the
    /// same push fails the same way (Error `Unstorable`, PROTOCOL.md §4.5).
    Unstorable(String),
    /// The operating system refused.
    Io(io::Error),
}

impl StoreError {
    /// Whether retrying the same change can never succeed: an explicit
    /// [`StoreError::Unstorable`], or the file system refusing a name
    /// (too long for it, or bytes it cannot represent).
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Unstorable(_) => true,
            StoreError::Io(e) => matches!(
                Errno::from_io_error(e),
                Some(Errno::NAMETOOLONG | Errno::ILSEQ)
            ),
            StoreError::UnknownUser | StoreError::Symlink(_) => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownUser => f.write_str("unknown user"),
            StoreError::Symlink(p) => write!(f, "refusing to follow a symlink at {p}"),
            StoreError::Unstorable(why) => write!(f, "cannot be stored: {why}"),
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

impl From<Errno> for StoreError {
    fn from(e: Errno) -> Self {
        StoreError::Io(e.into())
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

/// The components of `path` before its last, and its last.
fn split(path: &WirePath) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = path.components().collect();
    let last = parts.pop().unwrap_or_default();
    (parts, last)
}

/// The handle of `path`'s parent directory, created when `create` is set;
/// `None` when it is missing or not a directory (without `create`).
fn parent_dir(root: &Path, path: &WirePath, create: bool) -> Result<Option<OwnedFd>, StoreError> {
    let (parents, _) = split(path);
    Ok(match dirfd::walk(root, &parents, create, path)? {
        Walked::Dir(fd) => Some(fd),
        Walked::Absent => None,
    })
}

/// Looks at `path` under `root`, checking that no ancestor is a symlink.
///
/// # Errors
/// [`StoreError::Symlink`] when an ancestor is a symlink; I/O errors other
/// than "not found".
pub fn inspect(root: &Path, path: &WirePath) -> Result<OnDisk, StoreError> {
    let Some(dir) = parent_dir(root, path, false)? else {
        return Ok(OnDisk::Absent);
    };
    Ok(match dirfd::kind_at(&dir, split(path).1)? {
        None => OnDisk::Absent,
        Some((FileType::Directory, _)) => OnDisk::Dir,
        Some((FileType::RegularFile, _)) => OnDisk::File,
        Some(_) => OnDisk::Other,
    })
}

/// Creates every missing directory of `path` (itself included), refusing to
/// walk through symlinks.
///
/// # Errors
/// A symlink or a file in the way, or the OS refused.
pub fn make_dirs(root: &Path, path: &WirePath) -> Result<(), StoreError> {
    let parts: Vec<&str> = path.components().collect();
    dirfd::walk(root, &parts, true, path)?;
    Ok(())
}

/// Moves the complete temporary file `temp` (outside the folder) to `path`,
/// creating its parents; returns the placed file's mtime in nanoseconds.
///
/// # Errors
/// A symlink or a file in the way of the parents, or the OS refused.
pub fn place_file(root: &Path, temp: &Path, path: &WirePath) -> Result<i64, StoreError> {
    let dir = parent_dir(root, path, true)?.ok_or_else(|| StoreError::Symlink(path.clone()))?;
    let name = split(path).1;
    renameat(CWD, temp, &dir, name)?;
    let st = statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(dirfd::stat_mtime_ns(&st))
}

/// Removes whatever is at `path` (a file, a symlink itself, or a directory
/// tree, whose symlinks are removed and never followed).
///
/// # Errors
/// A symlink among the ancestors, or the OS refused.
pub fn remove(root: &Path, path: &WirePath) -> Result<(), StoreError> {
    let Some(dir) = parent_dir(root, path, false)? else {
        return Ok(());
    };
    let name = split(path).1;
    match dirfd::kind_at(&dir, name)? {
        None => Ok(()),
        Some((FileType::Directory, _)) => Ok(dirfd::remove_tree(&dir, OsStr::new(name))?),
        Some(_) => Ok(unlinkat(&dir, name, AtFlags::empty())?),
    }
}

/// Moves `from` to `to` within the folder (parents of `to` created).
///
/// # Errors
/// `from` is missing, a symlink among the ancestors, or the OS refused.
pub fn rename(root: &Path, from: &WirePath, to: &WirePath) -> Result<(), StoreError> {
    let src = parent_dir(root, from, false)?
        .ok_or_else(|| StoreError::Io(io::Error::from(io::ErrorKind::NotFound)))?;
    let dst = parent_dir(root, to, true)?.ok_or_else(|| StoreError::Symlink(to.clone()))?;
    renameat(&src, split(from).1, &dst, split(to).1)?;
    Ok(())
}

/// Opens the regular file at `path` for reading; `None` when nothing, a
/// directory, a symlink or a special file is there.
///
/// # Errors
/// A symlink among the ancestors; I/O errors other than "not found".
pub fn open_file(root: &Path, path: &WirePath) -> Result<Option<fs::File>, StoreError> {
    let Some(dir) = parent_dir(root, path, false)? else {
        return Ok(None);
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match openat(&dir, split(path).1, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
        Err(e) => return Err(StoreError::Io(e.into())),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    Ok(Some(fs::File::from(fd)))
}

/// Makes a rename or create in the directory `dir` (`None`: the folder
/// itself) durable: fsync of the directory. A directory that is gone since
/// needs nothing.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(root: &Path, dir: Option<&WirePath>) -> Result<(), StoreError> {
    let fd = match dir {
        None => dirfd::open_root(root)?,
        Some(d) => {
            let parts: Vec<&str> = d.components().collect();
            match dirfd::walk(root, &parts, false, d)? {
                Walked::Dir(fd) => fd,
                Walked::Absent => return Ok(()),
            }
        }
    };
    fsync(&fd)?;
    Ok(())
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
            make_dirs(root.path(), &p),
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

    #[test]
    fn a_tree_deeper_than_path_max_is_made_read_and_removed_without_following_links() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        let root = tempfile::tempdir().unwrap();
        // 16 components, 4,080 bytes: with `/f.txt` a legal 4,086-byte
        // wire path, and with the temp folder's own path past PATH_MAX.
        let parts: Vec<String> = (0..16u8)
            .map(|i| {
                ((b'a' + i) as char)
                    .to_string()
                    .repeat(if i < 15 { 255 } else { 240 })
            })
            .collect();
        let deep = WirePath::new(&parts.join("/")).unwrap();
        assert_eq!(deep.as_str().len(), 4080);
        make_dirs(root.path(), &deep).unwrap();
        assert_eq!(inspect(root.path(), &deep).unwrap(), OnDisk::Dir);
        let file = WirePath::new(&format!("{deep}/f.txt")).unwrap();
        assert!(root.path().join(file.as_str()).as_os_str().len() > 4096);
        let temp = root.path().join("temp");
        std::fs::write(&temp, b"content").unwrap();
        place_file(root.path(), &temp, &file).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(
            &mut open_file(root.path(), &file).unwrap().unwrap(),
            &mut read,
        )
        .unwrap();
        assert_eq!(read, "content");
        // A symlink deep inside, to a folder outside.
        let Walked::Dir(dir) = dirfd::walk(root.path(), &split(&file).0, false, &file).unwrap()
        else {
            panic!("walk");
        };
        rustix::fs::symlinkat(outside.path(), &dir, "link").unwrap();
        let link = WirePath::new(&format!("{deep}/link/keep")).unwrap();
        assert!(matches!(
            open_file(root.path(), &link),
            Err(StoreError::Symlink(_))
        ));
        let top = WirePath::new(&parts[0]).unwrap();
        remove(root.path(), &top).unwrap();
        assert_eq!(inspect(root.path(), &top).unwrap(), OnDisk::Absent);
        assert!(outside.path().join("keep").exists());
    }
}
