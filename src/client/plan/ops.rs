//! The vocabulary of the planner: what the disk holds at a path, and the
//! pushes that reproduce a local change on the server.

use crate::client::fsutil::Stat;
use crate::protocol::{ContentHash, WirePath};

/// What the disk holds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskEntry {
    /// A real directory.
    Dir,
    /// A regular file.
    File(Stat),
}

/// One push to send. The order of a plan's operations is the order they must
/// be sent in ([`super::order`] makes it so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Move a file or directory on the server.
    Rename {
        /// Old path.
        from: WirePath,
        /// New path.
        to: WirePath,
        /// Index version of `from`.
        base: u64,
    },
    /// Remove a file.
    Delete {
        /// The file.
        path: WirePath,
        /// Its index version.
        base: u64,
    },
    /// Remove a directory tree.
    RemoveDir {
        /// The directory.
        path: WirePath,
    },
    /// Create a directory.
    MakeDir {
        /// The directory.
        path: WirePath,
    },
    /// Upload a file's content.
    Upload {
        /// The file.
        path: WirePath,
        /// Index version it was based on (0: new).
        base: u64,
        /// Size and mtime when hashed.
        stat: Stat,
        /// Its content hash.
        hash: ContentHash,
    },
    /// Upload a new file (no base version) in one read, its hash after
    /// its bytes (protocol version 6, PROTOCOL.md §13.8): planned without
    /// reading it; sent as [`Op::Upload`] is recorded (with the hash of
    /// the bytes sent) once it is sealed.
    Stream {
        /// The file.
        path: WirePath,
        /// Its stat when planned: the file must still have it after the
        /// last byte is read.
        stat: Stat,
    },
    /// Set or clear a file's executable bit, its content unchanged (§15.3).
    SetMode {
        /// The file.
        path: WirePath,
        /// Index version it was based on.
        base: u64,
        /// Its stat now (`stat.exec` is the bit to send).
        stat: Stat,
        /// Its content hash (the indexed one: unchanged).
        hash: ContentHash,
    },
}

impl Op {
    /// The path the operation is about (the new path for a rename).
    pub fn path(&self) -> &WirePath {
        match self {
            Op::Rename { to, .. } => to,
            Op::Delete { path, .. }
            | Op::RemoveDir { path }
            | Op::MakeDir { path }
            | Op::Upload { path, .. }
            | Op::Stream { path, .. }
            | Op::SetMode { path, .. } => path,
        }
    }

    /// True for operations that remove something on the server.
    pub fn removes(&self) -> bool {
        matches!(self, Op::Delete { .. } | Op::RemoveDir { .. })
    }

    /// The path this operation empties on the server (with what is below
    /// it): a rename's source, a deleted file, a removed directory.
    pub fn frees(&self) -> Option<&WirePath> {
        match self {
            Op::Rename { from, .. } => Some(from),
            Op::Delete { path, .. } | Op::RemoveDir { path } => Some(path),
            Op::MakeDir { .. } | Op::Upload { .. } | Op::Stream { .. } | Op::SetMode { .. } => None,
        }
    }

    /// The path this operation fills on the server: a rename's destination,
    /// a made directory, an uploaded file.
    pub fn occupies(&self) -> Option<&WirePath> {
        match self {
            Op::Rename { to, .. } => Some(to),
            Op::MakeDir { path }
            | Op::Upload { path, .. }
            | Op::Stream { path, .. }
            | Op::SetMode { path, .. } => Some(path),
            Op::Delete { .. } | Op::RemoveDir { .. } => None,
        }
    }
}
