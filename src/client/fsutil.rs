//! Careful file-system helpers: hashing, stat snapshots, symlink-proof path
//! checks and atomic writes. Everything that touches the synced folder on the
//! server's behalf goes through [`check_path`] or [`ensure_dirs`] first;
//! both are the shared walk of [`crate::fsafe`] (directory handles, no
//! symlink followed, no PATH_MAX limit) in the client's terms.

use super::error::ClientError;
use crate::fsafe::{self, FsError};
use crate::protocol::{ContentHash, WirePath};
use rustix::fs::FileType;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::fsafe::hash_file;

/// Around the read-buffer sizes of the hashing and copying loops (the
/// tests try lengths on either side of it).
/// Sets (`x` wherever `r`) or clears (every `x`) the executable bit of the
/// regular file at `path` (PROTOCOL.md §15), through a handle opened without
/// following a symlink; other mode bits are kept.
///
/// # Errors
/// The file cannot be opened (a symlink: `ELOOP`) or its mode not changed.
pub fn set_exec(path: &Path, exec: bool) -> io::Result<()> {
    set_exec_of(&open_nofollow(path)?, exec)
}

/// Opens the file at `path` for reading without following a symlink: a
/// handle on that inode, whatever is renamed over or away from the path
/// later (for [`set_exec_of`]).
///
/// # Errors
/// The file cannot be opened (a symlink: `ELOOP`).
pub fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// [`set_exec`] for an open regular file.
///
/// # Errors
/// It is not a regular file, or its mode cannot be changed.
pub fn set_exec_of(file: &fs::File, exec: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    let want = crate::fsafe::with_executable(mode, exec);
    if want != mode {
        file.set_permissions(fs::Permissions::from_mode(want))?;
    }
    Ok(())
}

#[cfg(test)]
const BUF: usize = 64 * 1024;

/// What `stat` says of a regular file: the fields git's index keeps for the
/// same purpose. Together they tell "certainly the same file as before"
/// from "look at the content again" (the rule is [`super::detect::judge`]).
/// A zero `mtime_ns`, `ctime_ns` or `ino` means "unknown" (an index written
/// by an older client, or a record taken too close to a write to be trusted).
/// The birth time tells a file from an unrelated one that got its inode
/// number after it was deleted ([`Stat::same_inode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (0 = unknown: always rehash).
    pub mtime_ns: i64,
    /// Status-change time in nanoseconds since the epoch (0 = unknown). Any
    /// write, `chmod`, `touch -r` or new link moves it, and no unprivileged
    /// program can set it back.
    pub ctime_ns: i64,
    /// Device of the file system holding the file.
    pub dev: u64,
    /// Inode number (0 = unknown). A rename over the path gives a new one.
    pub ino: u64,
    /// The owner's `x` bit: the executable bit that travels (PROTOCOL.md §15).
    pub exec: bool,
    /// Birth (creation) time in nanoseconds since the epoch, `statx`'s
    /// `stx_btime` (0 = unknown: a file system or kernel that does not
    /// give it, or an index written before it was kept). No program can
    /// set it, so an inode number handed to a new file after a deletion
    /// (ext4 does so at once) comes with a new one (PROTOCOL.md R-7.2.4).
    pub btime_ns: i64,
}

impl Stat {
    /// The stat of a metadata record.
    pub fn of(meta: &Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
            exec: meta.mode() & 0o100 != 0,
            btime_ns: birth_ns(meta),
        }
    }

    /// True when `self` and `other` are known to name the same file: the
    /// same device and inode number (not 0, unknown), and birth times that
    /// do not differ where both are known. Without birth times this is
    /// "same inode", which an inode number reused for a new file after a
    /// deletion also passes (PROTOCOL.md R-7.2.4).
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.ino != 0
            && self.ino == other.ino
            && self.dev == other.dev
            && (self.btime_ns == 0 || other.btime_ns == 0 || self.btime_ns == other.btime_ns)
    }

    /// True when `self` and `other` are known to be two files: on one
    /// device, with both inode numbers known and different, or the same
    /// number with both birth times known and different (the number was
    /// reused).
    pub fn other_file(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino != 0 && other.ino != 0 && !self.same_inode(other)
    }

    /// The stat of a raw `fstatat` record and the file's birth time
    /// (`btime_ns`, 0 = unknown): the same values [`Stat::of`] gives for
    /// the same file (an mtime before the epoch is 0, unknown).
    // The casts are no-ops on x86_64 but not on every target's `stat` layout.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_raw(st: &rustix::fs::Stat, btime_ns: i64) -> Stat {
        let nanos = |s: i64, ns: i64| s.saturating_mul(1_000_000_000).saturating_add(ns);
        let mtime = st.st_mtime as i64;
        Stat {
            size: st.st_size as u64,
            mtime_ns: if mtime < 0 {
                0
            } else {
                nanos(mtime, st.st_mtime_nsec as i64)
            },
            ctime_ns: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            exec: st.st_mode & 0o100 != 0,
            btime_ns,
        }
    }

    /// True when the file was modified so recently that a later write within
    /// the clock's granularity could leave size and mtime unchanged.
    pub fn is_racy(&self, window: Duration) -> bool {
        let now = now_ns();
        now.saturating_sub(self.mtime_ns) < window.as_nanos() as i64
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Modification time in nanoseconds since the epoch (0 when unavailable).
pub fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Birth time in nanoseconds since the epoch (0 when the file system or
/// the kernel does not give it: `Metadata::created` comes from `statx`).
pub fn birth_ns(meta: &Metadata) -> i64 {
    meta.created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Copies `from` to `to` (a new file), returning the hash of what was copied,
/// so a reused local file is verified exactly like a downloaded one, its
/// length, and the copy (flushed, not synced: the caller makes it durable
/// before placing it).
///
/// # Errors
/// Reading or writing.
pub fn copy_hashed(from: &Path, to: &Path) -> io::Result<(ContentHash, u64, File)> {
    let src = File::open(from)?;
    let mut dst = File::create(to)?;
    let mut tee = Tee {
        from: src,
        to: &mut dst,
        total: 0,
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut tee)?;
    let total = tee.total;
    dst.flush()?;
    Ok((ContentHash(*hasher.finalize().as_bytes()), total, dst))
}

/// A reader that also writes every byte it reads to `to`, so one pass of
/// blake3's reader loop both hashes and copies.
struct Tee<'a> {
    from: File,
    to: &'a mut File,
    /// Bytes read (and written) so far.
    total: u64,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        self.total += n as u64;
        Ok(n)
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, so a
/// crash leaves either the old or the new content, never half of it.
///
/// # Errors
/// Writing, syncing or renaming.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    // Owner-only (0600): the state files hold the user ID, a bearer
    // secret (PROTOCOL.md R-2.2.3). A leftover temp file would keep its
    // old mode, so it goes first.
    let _ = fs::remove_file(&tmp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk: the old file stays whole, and the half-written
        // copy does not keep the space.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// What is at a path inside the folder, without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Nothing there (and every existing ancestor is a real directory).
    Absent,
    /// A real directory.
    Dir,
    /// A regular file.
    File(Stat),
    /// A symlink, device, socket, or an ancestor that is not a directory:
    /// the client never touches it.
    Foreign,
}

/// Looks at `path` under `root` without following any symlink on the way.
///
/// # Errors
/// An I/O error other than "not found".
pub fn check_path(root: &Path, path: &WirePath) -> Result<Local, ClientError> {
    check_path_counted(root, path).map(|(local, _)| local)
}

/// [`check_path`] with the file's link count (`st_nlink`; 1 for anything
/// but a regular file), from the same look: the scanner follows a file
/// with another name, which may be outside the folder ([`super::hardlinks`]),
/// without a second look by whole path (that one would follow a symlink
/// put in place of a directory above it, and fail past [`PATH_MAX`]).
///
/// # Errors
/// As [`check_path`].
// The cast is a no-op on x86_64 but not on every target's `stat` layout.
#[allow(clippy::unnecessary_cast)]
pub fn check_path_counted(root: &Path, path: &WirePath) -> Result<(Local, u64), ClientError> {
    let local = match fsafe::stat(root, path) {
        Ok(None) => Local::Absent,
        Ok(Some((FileType::Directory, _, _))) => Local::Dir,
        Ok(Some((FileType::RegularFile, st, btime_ns))) => {
            return Ok((Local::File(Stat::of_raw(&st, btime_ns)), st.st_nlink as u64));
        }
        Ok(Some(_)) => Local::Foreign,
        // An ancestor is a symlink, or a file (Absent would be a lie).
        Err(FsError::Unsafe(_) | FsError::NotADirectory(_)) => Local::Foreign,
        // Gone since a look (or the folder itself is gone): nothing there.
        Err(FsError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Local::Absent,
        Err(FsError::Io(e)) => {
            let at = path.to_local(root);
            return Err(ClientError::io(format!("stat {}", at.display()), e));
        }
    };
    Ok((local, 1))
}

/// The longest path the system calls that take a whole path accept, NUL
/// included (Linux `PATH_MAX`): a path string must be shorter.
pub const PATH_MAX: usize = 4096;

/// True when `e` is the system's "path too long" (`ENAMETOOLONG`): the
/// folder's own path plus the path inside it passed [`PATH_MAX`].
pub fn is_too_long(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
}

/// Why a path inside the folder cannot be reached through a whole path:
/// `path too long here: N bytes with the folder's path (this system takes
/// at most 4,095)`.
pub fn too_long_why(root: &Path, path: &WirePath) -> String {
    let whole = root.as_os_str().len() + 1 + path.as_str().len();
    format!(
        "path too long here: {whole} bytes with the folder's path (this system takes at most {})",
        PATH_MAX - 1
    )
}

/// The top-most of `path` and its directories whose whole path (the
/// folder's in front) is too long for this system ([`PATH_MAX`]), if any.
/// What "not synced" lists for a change the client cannot apply there:
/// a directory once, with why (README "cloud-client status"), however many
/// of the server's files are below it and whichever of the pull (which
/// fails on those files) and the scan (which cannot walk into that
/// directory) told it first.
pub fn too_long_top(root: &Path, path: &WirePath) -> Option<WirePath> {
    let base = root.as_os_str().len() + 1;
    let text = path.as_str();
    let cut = text
        .match_indices('/')
        .map(|(at, _)| at)
        .chain(std::iter::once(text.len()))
        .find(|&at| base + at >= PATH_MAX)?;
    if cut == text.len() {
        return Some(path.clone());
    }
    WirePath::new(&text[..cut]).ok()
}

/// What an I/O error says, without std's ` (os error N)` tail:
/// `Permission denied`.
pub fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// Opens the file at `path` inside `root` for reading: by its whole path,
/// or, when that is longer than the system takes ([`is_too_long`]), through
/// directory handles ([`fsafe::open_file`], no symlink followed), so a path
/// the protocol allows is read wherever the folder is.
///
/// # Errors
/// The OS refused (`PermissionDenied` for a file this user may not read);
/// `NotFound` when nothing, or no regular file, is there on the second way.
pub fn open_in(root: &Path, path: &WirePath) -> io::Result<File> {
    match File::open(path.to_local(root)) {
        Err(e) if is_too_long(&e) => match fsafe::open_file(root, path) {
            Ok(Some(file)) => Ok(file),
            Ok(None) | Err(FsError::Unsafe(_) | FsError::NotADirectory(_)) => {
                Err(io::ErrorKind::NotFound.into())
            }
            Err(FsError::Io(e)) => Err(e),
        },
        other => other,
    }
}

/// A path inside the folder in the form the system calls that take a whole
/// path (`rename`, `open`, `lstat`, `unlink`) accept: the whole path when
/// it is shorter than [`PATH_MAX`]; else `/proc/self/fd/N/<name>`, where
/// `N` is a handle on the path's parent directory opened through
/// directory handles ([`fsafe::walk::walk`]: no symlink followed, no
/// PATH_MAX limit), held as long as this value lives. So the applier's
/// steps — each an atomic rename, exchange or unlink with its own checks —
/// work unchanged on a path that one device read through handles and
/// uploaded (paths up to 4,096 bytes, PROTOCOL.md §6.1; README "Long
/// paths", breaker21 F3), and the kernel never
/// resolves more than the last component by name. When the parent cannot
/// be reached that way (missing, a symlink or file in the way) it is the
/// whole path, and the step fails as it did (`path too long here`).
#[derive(Debug)]
pub struct Reach {
    path: std::path::PathBuf,
    /// The parent's handle `path` names, kept open while `path` is used.
    dir: Option<std::os::fd::OwnedFd>,
}

impl std::ops::Deref for Reach {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Reach {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Reach {
    /// A path outside the folder (the temporary area), used as it is.
    pub fn plain(path: std::path::PathBuf) -> Reach {
        Reach { path, dir: None }
    }
}

/// `path` inside `root` as [`Reach`] says.
pub fn reach(root: &Path, path: &WirePath) -> Reach {
    let whole = path.to_local(root);
    if whole.as_os_str().len() < PATH_MAX {
        return Reach::plain(whole);
    }
    through_parent(root, path).unwrap_or_else(|| Reach::plain(whole))
}

/// `path` as `/proc/self/fd/N/<name>`, `N` a handle on its parent
/// directory walked to from `root` (no symlink followed); `None` when that
/// directory cannot be reached so. The one form of [`reach`] and
/// [`reach_held`].
fn through_parent(root: &Path, path: &WirePath) -> Option<Reach> {
    use std::os::fd::AsRawFd;
    let mut parts: Vec<&str> = path.components().collect();
    let name = parts.pop()?;
    match fsafe::walk::walk(root, &parts, false, path) {
        Ok(fsafe::walk::Walked::Dir(dir)) => Some(Reach {
            path: Path::new("/proc/self/fd")
                .join(dir.as_raw_fd().to_string())
                .join(name),
            dir: Some(dir),
        }),
        _ => None,
    }
}

/// Whether `/proc/self/fd/N` names an open directory here (Linux with
/// procfs mounted): what [`reach`] and [`reach_held`] need to hold a
/// directory's handle behind a path. Looked at once.
fn proc_fd() -> bool {
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// `path` inside `root` always through a handle on its parent directory
/// (`/proc/self/fd/N/<name>`, the handle walked to as [`reach`] does:
/// no symlink followed), whatever the path's length: a step through it
/// acts in that directory even if the directory was moved since, so
/// [`Reach::still_in`] can then tell whether that directory is still the
/// folder's, and the step can be undone where it was made. A whole path
/// cannot: `rename(2)` resolves it to a directory, which a user can move
/// out of the folder before the rename lands in it (soak seed
/// 1796385349871990865). When the parent cannot be reached that way, as
/// [`reach`].
pub fn reach_held(root: &Path, path: &WirePath) -> Reach {
    if !proc_fd() {
        return reach(root, path);
    }
    through_parent(root, path).unwrap_or_else(|| reach(root, path))
}

impl Reach {
    /// Whether what a step made through this value is inside the folder at
    /// `path` (the path it was made for): the directory handle it holds is
    /// still the one at `path`'s parent, walked to again from `root`
    /// ([`fsafe::walk::still_at`]). A whole path (no handle) says true: the
    /// step's own resolution is all there is to know.
    ///
    /// # Errors
    /// I/O errors of the walk other than "not found".
    pub fn still_in(&self, root: &Path, path: &WirePath) -> Result<bool, ClientError> {
        let Some(dir) = self.dir.as_ref() else {
            return Ok(true);
        };
        let mut parts: Vec<&str> = path.components().collect();
        parts.pop();
        fsafe::walk::still_at(root, &parts, dir, path).map_err(|e| {
            let at = path.to_local(root);
            ClientError::io(
                format!("look again at the directory of {}", at.display()),
                match e {
                    FsError::Io(e) => e,
                    other => io::Error::other(other.to_string()),
                },
            )
        })
    }
}

/// Creates the directory `path` and its missing ancestors, one component at a
/// time, refusing to pass through a symlink or a file.
///
/// # Errors
/// [`ClientError::UnsafePath`] when a component exists and is not a real
/// directory; I/O errors from `mkdir`.
pub fn ensure_dirs(root: &Path, path: &WirePath) -> Result<(), ClientError> {
    fsafe::make_dirs(root, path).map_err(|e| match e {
        FsError::Unsafe(_) | FsError::NotADirectory(_) => ClientError::UnsafePath(path.to_string()),
        FsError::Io(e) => {
            let at = path.to_local(root);
            ClientError::io(format!("mkdir {}", at.display()), e)
        }
    })
}

/// Creates the parent directories of `path` (see [`ensure_dirs`]).
///
/// # Errors
/// As [`ensure_dirs`].
pub fn ensure_parent(root: &Path, path: &WirePath) -> Result<(), ClientError> {
    match path.parent() {
        Some(parent) => ensure_dirs(root, &parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    #[test]
    fn a_file_past_path_max_with_the_folders_path_is_opened_through_handles() {
        let dir = tempfile::tempdir().unwrap();
        // 4,091 bytes: legal on the wire, too long with the folder's path.
        let deep = format!("{}/{}", vec!["d".repeat(250); 16].join("/"), "f".repeat(74));
        let wire = p(&deep);
        assert!(dir.path().as_os_str().len() + 1 + deep.len() >= PATH_MAX);
        ensure_parent(dir.path(), &wire).unwrap();
        let parent = fsafe::open_parent(dir.path(), &wire).unwrap().unwrap();
        let tmp = dir.path().join("tmp");
        fs::write(&tmp, b"deep").unwrap();
        parent.place_file(&tmp).unwrap();
        let whole = File::open(wire.to_local(dir.path())).unwrap_err();
        assert!(is_too_long(&whole), "{whole}");
        let mut text = String::new();
        open_in(dir.path(), &wire)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "deep");
        let absent = open_in(dir.path(), &p(&format!("{deep}.none"))).unwrap_err();
        assert_eq!(absent.kind(), io::ErrorKind::NotFound);
        let why = too_long_why(dir.path(), &wire);
        let whole_len = dir.path().as_os_str().len() + 1 + deep.len();
        assert_eq!(
            why,
            format!(
                "path too long here: {whole_len} bytes with the folder's path (this system takes at most 4095)"
            )
        );
    }

    #[test]
    fn a_path_past_path_max_is_reached_through_its_directorys_handle_never_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // 4,086 bytes: legal on the wire, too long with the folder's path.
        let deep_dir = vec!["d".repeat(240); 16].join("/");
        let deep = format!("{deep_dir}/{}", "f".repeat(230));
        let wire = p(&deep);
        assert!(root.as_os_str().len() + 1 + deep.len() >= PATH_MAX);
        // Short: the whole path, unchanged.
        let short = p("a/b.txt");
        assert_eq!(&*reach(root, &short), short.to_local(root).as_path());
        // Long: renamed into, renamed away and removed by its reach.
        ensure_parent(root, &wire).unwrap();
        let tmp = root.join("tmp");
        fs::write(&tmp, b"deep").unwrap();
        let at = reach(root, &wire);
        assert!(at.starts_with("/proc/self/fd"), "{}", at.display());
        fs::rename(&tmp, &at).unwrap();
        let mut text = String::new();
        open_in(root, &wire)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "deep");
        assert!(fs::symlink_metadata(reach(root, &wire)).unwrap().is_file());
        fs::rename(reach(root, &wire), &tmp).unwrap();
        assert_eq!(check_path(root, &wire).unwrap(), Local::Absent);
        // A symlink in the way: not walked through; the whole path, which
        // the system refuses (too long), as before.
        let first = "d".repeat(240);
        let out = tempfile::tempdir().unwrap();
        fs::rename(root.join(&first), out.path().join(&first)).unwrap();
        std::os::unix::fs::symlink(out.path().join(&first), root.join(&first)).unwrap();
        let refused = fs::rename(&tmp, reach(root, &wire)).unwrap_err();
        assert!(is_too_long(&refused), "{refused}");
        assert!(tmp.exists());
    }

    #[test]
    fn the_top_most_too_long_entry_stands_for_what_is_below_it() {
        let root = Path::new("/r");
        // "/r/" is 3 bytes: a path of 4,093 bytes inside is the first too long.
        let d = "d".repeat(250);
        let dirs = |n: usize| vec![d.as_str(); n].join("/");
        for n in 1..=17 {
            let dir = dirs(n);
            for file_len in [1, 30, 200, 255] {
                let text = format!("{dir}/{}", "f".repeat(file_len));
                if text.len() > 4096 {
                    continue;
                }
                let path = p(&text);
                let got = too_long_top(root, &path);
                // The model: the shortest prefix ending at a '/' or at the
                // end whose whole path reaches PATH_MAX.
                let text = path.as_str();
                let want = (1..=text.len())
                    .filter(|&i| i == text.len() || text.as_bytes()[i] == b'/')
                    .find(|&i| 3 + i >= PATH_MAX)
                    .map(|i| p(&text[..i]));
                assert_eq!(got, want, "{n} dirs, file of {file_len}");
                if let Some(top) = got {
                    assert!(3 + top.as_str().len() >= PATH_MAX);
                    let parent_ok = top
                        .parent()
                        .is_none_or(|up| 3 + up.as_str().len() < PATH_MAX);
                    assert!(parent_ok, "top-most");
                    assert!(
                        path == top || path.as_str().starts_with(&format!("{}/", top.as_str()))
                    );
                }
            }
        }
    }

    #[test]
    fn os_reasons_drop_the_error_number() {
        let denied = io::Error::from_raw_os_error(13);
        assert_eq!(os_reason(&denied), "Permission denied");
        assert_eq!(os_reason(&io::Error::other("plain")), "plain");
        assert!(is_too_long(&io::Error::from_raw_os_error(36)));
        assert!(!is_too_long(&denied));
    }

    #[test]
    fn check_path_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        fs::write(dir.path().join("file"), b"abc").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        assert_eq!(check_path(dir.path(), &p("link")).unwrap(), Local::Foreign);
        assert_eq!(
            check_path(dir.path(), &p("link/secret")).unwrap(),
            Local::Foreign
        );
        assert_eq!(
            check_path(dir.path(), &p("file/x")).unwrap(),
            Local::Foreign
        );
        assert_eq!(check_path(dir.path(), &p("d")).unwrap(), Local::Dir);
        assert_eq!(check_path(dir.path(), &p("d/none")).unwrap(), Local::Absent);
        assert!(matches!(
            check_path(dir.path(), &p("file")).unwrap(),
            Local::File(Stat { size: 3, .. })
        ));
        assert!(matches!(
            ensure_dirs(dir.path(), &p("link/sub")),
            Err(ClientError::UnsafePath(_))
        ));
        assert!(!outside.path().join("sub").exists());
        ensure_dirs(dir.path(), &p("a/b/c")).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
    }

    /// The stat `check_path` takes through a directory handle is the one
    /// the scanner takes by path (`Stat::of`): the index compares the two.
    #[test]
    fn check_path_stat_equals_the_metadata_stat() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let f = dir.path().join("d/f");
        fs::write(&f, b"abc").unwrap();
        let by_path = Stat::of(&fs::symlink_metadata(&f).unwrap());
        assert_eq!(
            check_path(dir.path(), &p("d/f")).unwrap(),
            Local::File(by_path)
        );
        // A missing folder holds nothing (the scanner decides what that means).
        let gone = dir.path().join("gone");
        assert_eq!(check_path(&gone, &p("d/f")).unwrap(), Local::Absent);
    }

    #[test]
    fn hashing_matches_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let data = vec![7u8; 200_000];
        fs::write(&f, &data).unwrap();
        assert_eq!(hash_file(&f).unwrap(), (ContentHash::of(&data), 200_000));
        let (h, n, _) = copy_hashed(&f, &dir.path().join("g")).unwrap();
        assert_eq!((h, n), (ContentHash::of(&data), 200_000));
        assert_eq!(fs::read(dir.path().join("g")).unwrap(), data);
    }

    #[test]
    fn a_copy_is_byte_exact_and_hashed_at_every_buffer_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        for size in [0, 1, BUF - 1, BUF, BUF + 1, 3 * BUF + 17] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            fs::write(&f, &data).unwrap();
            let g = dir.path().join(format!("g{size}"));
            let (hash, n, _) = copy_hashed(&f, &g).unwrap();
            assert_eq!((hash, n), (ContentHash::of(&data), size as u64), "{size}");
            assert_eq!(fs::read(&g).unwrap(), data, "{size}");
        }
        let missing = copy_hashed(&dir.path().join("none"), &dir.path().join("h"));
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!dir.path().join("h").exists(), "no copy without a source");
    }
}
