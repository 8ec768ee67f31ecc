//! Operations on one path inside a folder: every path is resolved component
//! by component through [`super::walk`] and refused if any existing part of
//! it is a symlink. `inspect`/`stat` look, `make_dirs`, `place_file`,
//! `remove` and `rename` change, `open_file` reads, `sync_dir` makes a
//! directory's entries durable.

use super::walk::{self as dirfd, Walked};
use super::FsError;
use crate::protocol::WirePath;
use rustix::fs::{
    fstat, fsync, linkat, openat, renameat, statat, unlinkat, AtFlags, FileType, Mode, OFlags,
    Stat, CWD,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

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
fn parent_dir(root: &Path, path: &WirePath, create: bool) -> Result<Option<OwnedFd>, FsError> {
    let (parents, _) = split(path);
    Ok(match dirfd::walk(root, &parents, create, path)? {
        Walked::Dir(fd) => Some(fd),
        Walked::Absent | Walked::NotDir(_) => None,
    })
}

/// The type and status of what is at `path`, not following a symlink there
/// either, and for a regular file its birth time in nanoseconds since the
/// epoch (0: unknown); `None` when nothing is there. Unlike [`inspect`], an
/// ancestor that is a file is refused like a symlink: the caller must not
/// treat the path as free.
///
/// # Errors
/// [`FsError::Unsafe`] when an ancestor is a symlink,
/// [`FsError::NotADirectory`] when it is a file or a special file; I/O
/// errors other than "not found".
pub fn stat(root: &Path, path: &WirePath) -> Result<Option<(FileType, Stat, i64)>, FsError> {
    let (parents, name) = split(path);
    let dir = match dirfd::walk(root, &parents, false, path)? {
        Walked::Dir(fd) => fd,
        Walked::Absent => return Ok(None),
        Walked::NotDir(file) => return Err(FsError::NotADirectory(file)),
    };
    Ok(dirfd::kind_at(&dir, name)?.map(|(kind, st)| {
        let born = match kind {
            FileType::RegularFile => birth_at(&dir, name, &st),
            _ => 0,
        };
        (kind, st, born)
    }))
}

/// [`stat`] without the birth time: one `fstatat` after the walk, for
/// the server's look at a path before a push changes it, which
/// runs at every push and needs only type, size, mtime, mode and inode.
///
/// # Errors
/// As [`stat`].
pub fn lstat(root: &Path, path: &WirePath) -> Result<Option<(FileType, Stat)>, FsError> {
    let (parents, name) = split(path);
    let dir = match dirfd::walk(root, &parents, false, path)? {
        Walked::Dir(fd) => fd,
        Walked::Absent => return Ok(None),
        Walked::NotDir(file) => return Err(FsError::NotADirectory(file)),
    };
    Ok(dirfd::kind_at(&dir, name)?)
}

/// The birth time (`statx` `stx_btime`, nanoseconds since the epoch) of
/// the file `name` in `dir` if it is still the file `st` describes (same
/// inode: a file renamed over the name in between has its own), else 0,
/// as when the kernel or the file system does not give one.
// The cast is a no-op on x86_64 but not on every target's `stat` layout.
#[allow(clippy::unnecessary_cast)]
fn birth_at(dir: &OwnedFd, name: &str, st: &Stat) -> i64 {
    use rustix::fs::{statx, StatxFlags};
    match statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME) {
        Ok(x) if x.stx_mask & StatxFlags::BTIME.bits() != 0 && x.stx_ino == st.st_ino as u64 => x
            .stx_btime
            .tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(x.stx_btime.tv_nsec)),
        _ => 0,
    }
}

/// Looks at `path` under `root`, checking that no ancestor is a symlink.
///
/// # Errors
/// [`FsError::Unsafe`] when an ancestor is a symlink; I/O errors other
/// than "not found".
pub fn inspect(root: &Path, path: &WirePath) -> Result<OnDisk, FsError> {
    match open_parent(root, path)? {
        Some(parent) => parent.inspect(),
        None => Ok(OnDisk::Absent),
    }
}

/// The directory an existing path's last component is in, walked to once
/// (symlink-safe, like every walk here) to look at the entry and then
/// place a file there: one walk instead of two for a push (the server
/// places thousands of small files in a row).
pub struct Parent<'a> {
    dir: OwnedFd,
    name: &'a str,
}

/// The parent directory of `path`, or `None` when it is missing or not a
/// directory (nothing is created).
///
/// # Errors
/// [`FsError::Unsafe`] when an ancestor is a symlink; I/O errors other
/// than "not found".
pub fn open_parent<'a>(root: &Path, path: &'a WirePath) -> Result<Option<Parent<'a>>, FsError> {
    Ok(parent_dir(root, path, false)?.map(|dir| Parent {
        dir,
        name: split(path).1,
    }))
}

impl Parent<'_> {
    /// What is at the path (as [`inspect`]).
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn inspect(&self) -> Result<OnDisk, FsError> {
        Ok(match dirfd::kind_at(&self.dir, self.name)? {
            None => OnDisk::Absent,
            Some((FileType::Directory, _)) => OnDisk::Dir,
            Some((FileType::RegularFile, _)) => OnDisk::File,
            Some(_) => OnDisk::Other,
        })
    }

    /// Moves the complete temporary file `temp` (outside the folder) to the
    /// path (as [`place_file`], whose parents exist).
    ///
    /// # Errors
    /// The OS refused.
    pub fn place_file(&self, temp: &Path) -> Result<Placed, FsError> {
        let before = statat(CWD, temp, AtFlags::SYMLINK_NOFOLLOW)?;
        renameat(CWD, temp, &self.dir, self.name)?;
        let st = statat(&self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW)?;
        let same = (before.st_dev, before.st_ino, before.st_size)
            == (st.st_dev, st.st_ino, st.st_size)
            && dirfd::stat_mtime_ns(&before) == dirfd::stat_mtime_ns(&st);
        Ok(Placed {
            mtime_ns: dirfd::stat_mtime_ns(&st),
            stat: same.then_some(st),
        })
    }
}

/// What [`place_file`] placed.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    /// The placed file's mtime in nanoseconds.
    pub mtime_ns: i64,
    /// Its `stat` right after the rename, when the name then held the
    /// temporary file's inode at its size and mtime (nothing but the
    /// rename changed it, as far as a look tells; `None` if a hand was
    /// quicker), for the store to remember what it wrote.
    pub stat: Option<Stat>,
}

/// Creates every missing directory of `path` (itself included), refusing to
/// walk through symlinks.
///
/// # Errors
/// A symlink or a file in the way, or the OS refused.
pub fn make_dirs(root: &Path, path: &WirePath) -> Result<(), FsError> {
    let parts: Vec<&str> = path.components().collect();
    dirfd::walk(root, &parts, true, path)?;
    Ok(())
}

/// Moves the complete temporary file `temp` (outside the folder) to `path`,
/// creating its parents.
///
/// # Errors
/// A symlink or a file in the way of the parents, or the OS refused.
pub fn place_file(root: &Path, temp: &Path, path: &WirePath) -> Result<Placed, FsError> {
    let dir = parent_dir(root, path, true)?.ok_or_else(|| FsError::NotADirectory(path.clone()))?;
    let parent = Parent {
        dir,
        name: split(path).1,
    };
    parent.place_file(temp)
}

/// Removes whatever is at `path` (a file, a symlink itself, or a directory
/// tree, whose symlinks are removed and never followed).
///
/// # Errors
/// A symlink among the ancestors, or the OS refused.
pub fn remove(root: &Path, path: &WirePath) -> Result<(), FsError> {
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

/// Makes `dest` (outside the folder) a hard link to the regular file at
/// `path`, never following a symlink there or among its ancestors.
///
/// # Errors
/// `AlreadyExists` when `dest` exists; nothing or no regular file at
/// `path`; `ResourceBusy` when the file has another name already (a hard
/// link made by hand, or a kept object: a write into it through that name
/// would change `dest` too; the caller copies instead); a symlink among
/// the ancestors; the OS refused (another file system: `EXDEV`).
pub fn link_out(root: &Path, path: &WirePath, dest: &Path) -> Result<(), FsError> {
    let dir = parent_dir(root, path, false)?
        .ok_or_else(|| FsError::Io(io::Error::from(io::ErrorKind::NotFound)))?;
    let name = split(path).1;
    match dirfd::kind_at(&dir, name)? {
        Some((FileType::RegularFile, st)) if st.st_nlink <= 1 => {}
        Some((FileType::RegularFile, _)) => {
            return Err(FsError::Io(io::Error::from(io::ErrorKind::ResourceBusy)))
        }
        _ => return Err(FsError::Io(io::Error::from(io::ErrorKind::NotFound))),
    }
    linkat(&dir, name, CWD, dest, AtFlags::empty())?;
    Ok(())
}

/// Moves `from` to `to` within the folder (parents of `to` created).
///
/// # Errors
/// `from` is missing, a symlink among the ancestors, or the OS refused.
pub fn rename(root: &Path, from: &WirePath, to: &WirePath) -> Result<(), FsError> {
    let src = parent_dir(root, from, false)?
        .ok_or_else(|| FsError::Io(io::Error::from(io::ErrorKind::NotFound)))?;
    let dst = parent_dir(root, to, true)?.ok_or_else(|| FsError::NotADirectory(to.clone()))?;
    renameat(&src, split(from).1, &dst, split(to).1)?;
    Ok(())
}

/// Opens the regular file at `path` for reading; `None` when nothing, a
/// directory, a symlink or a special file is there.
///
/// # Errors
/// A symlink among the ancestors; I/O errors other than "not found".
pub fn open_file(root: &Path, path: &WirePath) -> Result<Option<fs::File>, FsError> {
    Ok(open_file_held(root, path)?.map(|(_, file)| file))
}

/// [`open_file`], with the handle on the file's directory it was opened
/// through: a change made through the file's handle can then be confirmed
/// to have been made inside the folder ([`dirfd::still_at`]).
///
/// # Errors
/// As [`open_file`].
pub fn open_file_held(
    root: &Path,
    path: &WirePath,
) -> Result<Option<(OwnedFd, fs::File)>, FsError> {
    let Some(dir) = parent_dir(root, path, false)? else {
        return Ok(None);
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match openat(&dir, split(path).1, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
        Err(e) => return Err(FsError::Io(e.into())),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    Ok(Some((dir, fs::File::from(fd))))
}

/// Permission bits `mode` with the executable bit of PROTOCOL.md §15 set
/// (`x` for whoever may read: 0644 → 0755, 0640 → 0750) or cleared (every
/// `x` dropped: 0755 → 0644). Other bits (setuid, sticky, write) are kept.
pub fn with_executable(mode: u32, executable: bool) -> u32 {
    if executable {
        mode | ((mode & 0o444) >> 2)
    } else {
        mode & !0o111
    }
}

/// The permission bits for new content placed over a file whose mode was
/// `replaced`: its read and write bits (each device keeps its own, §15:
/// a file made private with `chmod 600` stays private when another device
/// edits it), with the executable bit `executable` ([`with_executable`]).
/// Setuid, setgid and sticky are not carried; the owner keeps read, so
/// the client can still hash what it placed.
pub fn replacing_mode(replaced: u32, executable: bool) -> u32 {
    with_executable((replaced & 0o666) | 0o400, executable)
}

/// Whether permission bits `mode` count as executable (§15): the owner's `x`.
pub fn is_executable_mode(mode: u32) -> bool {
    mode & 0o100 != 0
}

/// Sets or clears the executable bit ([`with_executable`]) of the regular
/// file at `path`, through a handle opened without following a symlink.
/// `Ok(false)` when no regular file is there.
///
/// # Errors
/// A symlink among the ancestors; the OS refused.
pub fn set_executable(root: &Path, path: &WirePath, executable: bool) -> Result<bool, FsError> {
    let Some(file) = open_file(root, path)? else {
        return Ok(false);
    };
    let mode = fstat(&file)?.st_mode;
    let wanted = with_executable(mode & 0o7777, executable);
    if wanted != mode & 0o7777 {
        rustix::fs::fchmod(&file, Mode::from_raw_mode(wanted))?;
    }
    Ok(true)
}

/// Makes a rename or create in the directory `dir` (`None`: the folder
/// itself) durable: fsync of the directory. A directory that is gone since
/// needs nothing.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(root: &Path, dir: Option<&WirePath>) -> Result<(), FsError> {
    let fd = match dir {
        None => dirfd::open_root(root)?,
        Some(d) => {
            let parts: Vec<&str> = d.components().collect();
            match dirfd::walk(root, &parts, false, d)? {
                Walked::Dir(fd) => fd,
                Walked::Absent | Walked::NotDir(_) => return Ok(()),
            }
        }
    };
    fsync(&fd)?;
    Ok(())
}
