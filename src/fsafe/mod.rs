//! Symlink-safe access to a synced folder, shared by the server's store and
//! the client: one implementation of the security-relevant path walk, so
//! the two ends cannot drift apart.
//!
//! Every path below a folder's root is reached through directory handles
//! (`openat`, `mkdirat`, `renameat`, `unlinkat`, `fstatat`), one component
//! per system call: a legal 4,096-byte wire path never meets the kernel's
//! PATH_MAX, `..` cannot appear (a [`WirePath`] refuses it), and no symlink
//! on the way is ever followed — a component replaced by a symlink between
//! the look and the open is refused too (`O_NOFOLLOW`).
//!
//! - [`walk`]: the walk itself (`walk`, `open_root`, `kind_at`,
//!   `remove_tree`, `scan`).
//! - [`ops`]: operations on one path (`inspect`, `stat`, `make_dirs`,
//!   `place_file`, `remove`, `rename`, `open_file`, `sync_dir`).
//! - [`hash`]: BLAKE3 of a file or a reader (`hash_file`, `hash_reader`).

pub mod hash;
pub mod ops;
pub mod walk;

pub use hash::{hash_file, hash_reader};
pub use ops::{
    inspect, is_executable_mode, link_out, lstat, make_dirs, open_file, open_file_held,
    open_parent, place_file, remove, rename, replacing_mode, set_executable, stat, sync_dir,
    with_executable, OnDisk, Placed,
};

use crate::protocol::WirePath;
use rustix::io::Errno;
use std::fmt;
use std::io;

/// Why a symlink-safe operation failed.
#[derive(Debug)]
pub enum FsError {
    /// A component of the path (named here: the path up to it, or the
    /// whole path when the last component is the symlink) is a symlink:
    /// following it could leave the folder, so nothing was done.
    Unsafe(WirePath),
    /// A component (named here: the path up to it) is a regular file or a
    /// special file where a directory must be: nothing can be below it, so
    /// nothing was done. Not a symlink, and never reported as one.
    NotADirectory(WirePath),
    /// The operating system refused.
    Io(io::Error),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Unsafe(p) => write!(f, "refusing to follow a symlink at {p}"),
            FsError::NotADirectory(p) => write!(f, "{p} is not a directory (a file is there)"),
            FsError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FsError {}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        FsError::Io(e)
    }
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> Self {
        FsError::Io(e.into())
    }
}

#[cfg(test)]
mod tests;
