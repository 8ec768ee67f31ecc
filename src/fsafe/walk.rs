//! Walking a folder through directory handles (`openat`, `mkdirat`,
//! `renameat`, `unlinkat`, `fstatat`): every system call gets one component
//! relative to an open directory, so a legal 4,096-byte path never meets the
//! kernel's PATH_MAX (4,096 bytes for the *whole* absolute path, data
//! directory or client folder included), and no symlink on the way is ever
//! followed. `walk` opens a directory, `remove_tree` removes one, `scan`
//! lists a whole folder (the server's re-scan after a crash), `scan_below`
//! one directory in it (the server's look before a push, R-10.14).

use super::FsError;
use crate::protocol::WirePath;
use rustix::fs::{
    fstat, mkdirat, openat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, Stat,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Flags for opening a directory we walk into: never through a symlink.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the folder itself (its root: a short absolute path). The root is
/// configuration, not input (the server's data directory, the folder a
/// user chose for the client), so it is resolved as the OS resolves any
/// path — a folder that is itself a symlink to elsewhere works — while
/// nothing *below* it is ever followed.
///
/// # Errors
/// The folder cannot be opened.
pub fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(openat(rustix::fs::CWD, root, flags, Mode::empty())?)
}

/// The type of `name` in `dir`, not following a symlink; `None` if absent.
///
/// # Errors
/// Any error but "not found".
pub fn kind_at(dir: impl AsFd, name: &str) -> std::io::Result<Option<(FileType, Stat)>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode), st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Modification time of a stat in nanoseconds since the epoch (the value
/// `std::fs::Metadata::modified` gives, so journals stay comparable).
// The casts are no-ops on x86_64 but not on every target's `stat` layout.
#[allow(clippy::unnecessary_cast)]
pub fn stat_mtime_ns(st: &Stat) -> i64 {
    (st.st_mtime as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

/// Where a walk ended.
pub enum Walked {
    /// Every component is a real directory: its handle.
    Dir(OwnedFd),
    /// A component is missing (only without `create`).
    Absent,
    /// A component is a file or special file (only without `create`): the
    /// path up to it.
    NotDir(WirePath),
}

/// Opens the directory `components` (empty: the root) below `root`,
/// creating missing ones when `create` is set.
///
/// # Errors
/// [`FsError::Unsafe`] (naming the path up to it) when a component is a
/// symlink;
/// [`FsError::NotADirectory`] (naming the path up to that component) when
/// — with `create` — one is a file or special file; I/O errors.
pub fn walk(
    root: &Path,
    components: &[&str],
    create: bool,
    path: &WirePath,
) -> Result<Walked, FsError> {
    let mut dir = open_root(root)?;
    for (at, part) in components.iter().enumerate() {
        match kind_at(&dir, part)? {
            None if create => {
                pause_for_tests();
                match mkdirat(&dir, *part, Mode::from_raw_mode(0o777)) {
                    Ok(()) => made_in_place(root, &components[..at], &dir, part, path)?,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(FsError::Io(e.into())),
                }
            }
            None => return Ok(Walked::Absent),
            Some((FileType::Directory, _)) => {}
            Some((FileType::Symlink, _)) => {
                return Err(FsError::Unsafe(prefix(components, at, path)))
            }
            Some(_) if create => return Err(not_a_directory(components, at, path)),
            Some(_) => return Ok(Walked::NotDir(prefix(components, at, path))),
        }
        dir = match openat(&dir, *part, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            // Replaced by a symlink or a file since the look: refuse.
            Err(Errno::LOOP) => return Err(FsError::Unsafe(prefix(components, at, path))),
            Err(Errno::NOTDIR) => return Err(not_a_directory(components, at, path)),
            Err(e) => return Err(FsError::Io(e.into())),
        };
    }
    Ok(Walked::Dir(dir))
}

/// After `mkdirat(dir, name)` made a directory: `dir` (walked to at
/// `parents`) must still be the directory at that path, or the new one was
/// made where the folder no longer is (a user moved `dir` out of it, to the
/// trash or another project, between the walk and the `mkdirat`): it is
/// taken back (removed, while still empty) and the walk fails with
/// [`moved_out`].
///
/// # Errors
/// [`moved_out`]; I/O errors of the second walk.
fn made_in_place(
    root: &Path,
    parents: &[&str],
    dir: &OwnedFd,
    name: &str,
    path: &WirePath,
) -> Result<(), FsError> {
    if still_at(root, parents, dir, path)? {
        return Ok(());
    }
    // Not empty: someone else put something into it since; it is theirs.
    let _ = unlinkat(dir, name, AtFlags::REMOVEDIR);
    Err(moved_out(parents, path))
}

/// The error of a change taken back because the directory it was made in
/// (`parents` of `path`) left the folder meanwhile: `NotFound`, as if the
/// directory had been gone before the change — what the folder shows.
pub fn moved_out(parents: &[&str], path: &WirePath) -> FsError {
    let dir = match parents {
        [] => "the folder".to_owned(),
        _ => parents.join("/"),
    };
    FsError::Io(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{dir} was moved out of the folder while {path} was being made in it"),
    ))
}

/// Whether `dir`, a handle once walked to at `components` below `root`, is
/// still the directory there: walked to again from the root (symlink-safe,
/// as every walk) and compared by device and inode. False when the path is
/// gone, is no directory or passes a symlink now: `dir` was moved (out of
/// the folder, or elsewhere in it) or removed, and what is made through it
/// is not at `path`. A change made through a handle and then confirmed
/// here was, at the confirmation, inside the folder at its path: a move
/// after that is the user's own and takes the change along, as it would
/// have a minute later.
///
/// # Errors
/// I/O errors of the walk other than "not found".
pub fn still_at(
    root: &Path,
    components: &[&str],
    dir: impl AsFd,
    path: &WirePath,
) -> Result<bool, FsError> {
    let held = fstat(dir)?;
    let now = match walk(root, components, false, path) {
        Ok(Walked::Dir(fd)) => fd,
        Ok(Walked::Absent | Walked::NotDir(_))
        | Err(FsError::Unsafe(_) | FsError::NotADirectory(_)) => return Ok(false),
        Err(FsError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let now = fstat(&now)?;
    Ok(now.st_dev == held.st_dev && now.st_ino == held.st_ino)
}

/// Test knob: with `CLOUD_TEST_HANDLE_DELAY_MS=N` in the environment, each
/// change made in a directory through a handle walked to beforehand (a
/// `mkdirat` of [`walk`] with `create`, a client's placement through its
/// parent's handle) waits N milliseconds (at most 10 s) first, so that an
/// end-to-end test can move the directory out of the folder in that window
/// every time (tests/e2e_moved_out.rs). Read once; never set outside tests.
pub fn pause_for_tests() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    crate::test_knob::pause(&DELAY, "CLOUD_TEST_HANDLE_DELAY_MS");
}

/// [`FsError::NotADirectory`] naming `components[..=at]`, the part of
/// `path` that ends at the file in the way (`path` itself if that prefix is
/// somehow not a legal path).
fn not_a_directory(components: &[&str], at: usize, path: &WirePath) -> FsError {
    FsError::NotADirectory(prefix(components, at, path))
}

/// `components[..=at]` as a path (`path` itself if that is somehow not a
/// legal path).
fn prefix(components: &[&str], at: usize, path: &WirePath) -> WirePath {
    let upto = components.get(..=at).unwrap_or(components).join("/");
    WirePath::new(&upto).unwrap_or_else(|_| path.clone())
}

/// Removes the directory `name` in `dir` with everything below it, never
/// following a symlink (a symlink inside is removed, not its target).
///
/// # Errors
/// The first failure; what was removed before it stays removed.
pub fn remove_tree(dir: impl AsFd, name: &OsStr) -> std::io::Result<()> {
    let sub = openat(&dir, name, dir_flags(), Mode::empty())?;
    let mut names: Vec<(Vec<u8>, bool)> = Vec::new();
    for entry in Dir::read_from(&sub)? {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            // Some file systems leave the type out of directory entries.
            FileType::Unknown => {
                let st = statat(&sub, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            kind => kind == FileType::Directory,
        };
        names.push((bytes.to_vec(), is_dir));
    }
    for (bytes, is_dir) in names {
        let child = OsStr::from_bytes(&bytes);
        if is_dir {
            remove_tree(&sub, child)?;
        } else {
            unlinkat(&sub, child, AtFlags::empty())?;
        }
    }
    unlinkat(&dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// One entry a re-scan found.
pub struct Found {
    /// Its path (valid on the wire).
    pub path: WirePath,
    /// `None` for a directory; `(size, mtime_ns)` for a regular file.
    pub file: Option<(u64, i64)>,
    /// A regular file with its owner's `x` bit (PROTOCOL.md §15).
    pub executable: bool,
}

/// Lists every directory and regular file below `root` whose path is valid
/// on the wire (others are logged and skipped, with what is below them),
/// parents before children. Symlinks and special files are skipped.
///
/// # Errors
/// The root cannot be opened; unreadable directories are logged and skipped.
pub fn scan(root: &Path) -> std::io::Result<Vec<Found>> {
    let fd = open_root(root)?;
    let mut found = Vec::new();
    scan_dir(&fd, None, &mut found);
    Ok(found)
}

/// [`scan`] of the directory at `path` below `root` only (the paths found
/// start with `path`); empty when nothing or no directory is there.
///
/// # Errors
/// A symlink on the way to `path`; the directory cannot be opened.
pub fn scan_below(root: &Path, path: &WirePath) -> Result<Vec<Found>, FsError> {
    let parts: Vec<&str> = path.components().collect();
    let mut found = Vec::new();
    if let Walked::Dir(fd) = walk(root, &parts, false, path)? {
        scan_dir(&fd, Some(path), &mut found);
    }
    Ok(found)
}

fn scan_dir(dir: &OwnedFd, prefix: Option<&WirePath>, found: &mut Vec<Found>) {
    let entries = match Dir::read_from(dir) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("re-scan: cannot list {}: {e}", display(prefix));
            return;
        }
    };
    let mut children: Vec<(String, FileType)> = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        match std::str::from_utf8(bytes) {
            Ok(name) => children.push((name.to_owned(), entry.file_type())),
            Err(_) => log::warn!(
                "re-scan: skipping unsyncable name {} in {}",
                String::from_utf8_lossy(bytes),
                display(prefix)
            ),
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, _) in children {
        let joined = match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name.clone(),
        };
        let Ok(path) = WirePath::new(&joined) else {
            log::warn!("re-scan: skipping unsyncable name {joined}");
            continue;
        };
        // The d_type of some file systems is "unknown": look properly.
        match kind_at(dir, &name) {
            Ok(Some((FileType::Directory, _))) => {
                found.push(Found {
                    path: path.clone(),
                    file: None,
                    executable: false,
                });
                match openat(dir, name.as_str(), dir_flags(), Mode::empty()) {
                    Ok(sub) => scan_dir(&sub, Some(&path), found),
                    Err(e) => log::warn!("re-scan: cannot open {path}: {e}"),
                }
            }
            Ok(Some((FileType::RegularFile, st))) => found.push(Found {
                path,
                file: Some((st.st_size as u64, stat_mtime_ns(&st))),
                executable: super::ops::is_executable_mode(st.st_mode),
            }),
            Ok(_) => {}
            Err(e) => log::warn!("re-scan: {path}: {e}"),
        }
    }
}

fn display(prefix: Option<&WirePath>) -> String {
    prefix.map_or_else(|| "the folder".to_owned(), |p| p.to_string())
}
