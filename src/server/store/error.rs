//! `StoreError`: every way a store operation can fail, and — in one place,
//! [`StoreError::code`] — the wire error code each one is answered with.

use crate::fsafe::FsError;
use crate::protocol::{ErrorCode, WirePath};
use rustix::io::Errno;
use std::fmt;
use std::io;

/// Why an operation on a user's state failed.
#[derive(Debug)]
pub enum StoreError {
    /// The user has no folder or no state on this server.
    UnknownUser,
    /// A component of the path is a symlink (planted on the server side):
    /// following it could leave the user's folder, so nothing is done.
    Symlink(WirePath),
    /// A component of a path (named here: the path up to it) is a file on
    /// disk where the journal's tree needs a directory (the store never
    /// places an entry below a file of its tree, §7.4.1: the disk was
    /// changed outside the server). Not a symlink.
    NotADirectory(WirePath),
    /// A fetched path is not a file in the tree, or not a regular file on
    /// disk (a symlink or special file planted there included).
    NotFound(WirePath),
    /// `path` would go below the conflict directory `dir` (§7.4), but the
    /// result breaks the path limits of §6: retrying can never succeed.
    ConflictPathTooLong {
        /// The pushed path.
        path: WirePath,
        /// The conflict directory standing in for a file among its ancestors.
        dir: WirePath,
    },
    /// Every conflict name tried for the path is taken.
    NoFreeConflictName(WirePath),
    /// A directory on disk (not in the journal) is where a file must go.
    DirectoryInTheWay(WirePath),
    /// An upload carried more bytes than its `FileBegin` announced.
    TooManyBytes {
        /// The upload's path.
        path: WirePath,
        /// Bytes announced.
        announced: u64,
    },
    /// An upload ended with another size than announced.
    SizeMismatch {
        /// The upload's path.
        path: WirePath,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        announced: u64,
    },
    /// An upload's content does not match its announced BLAKE3 hash.
    HashMismatch(WirePath),
    /// The upload's temp file could not be created.
    TempFile(io::Error),
    /// Writing an upload's temp file failed (disk full, …).
    Write {
        /// The upload's path.
        path: WirePath,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a fetched file failed.
    Read {
        /// The fetched path.
        path: WirePath,
        /// The OS error.
        source: io::Error,
    },
    /// No version of `path` displaced by change `seq` is kept (never
    /// kept, or reaped since): §14.3.
    NoSuchVersion {
        /// The path asked for.
        path: WirePath,
        /// The change asked for.
        seq: u64,
        /// Entries in place then whose kept record was reaped (§14.4).
        expired: usize,
    },
    /// `path` did not exist at the moment `time_ms` (or what it was then
    /// is no longer kept): §14.3, R-14.3.5.
    NotAtTime {
        /// The path asked for.
        path: WirePath,
        /// The moment asked for, ms since the epoch.
        time_ms: u64,
        /// Entries in place then whose kept record was reaped (§14.4).
        expired: usize,
    },
    /// A kept version's stored content is missing or no longer matches
    /// its hash (changed or removed outside the server).
    KeptDamaged(WirePath),
    /// A fetched file is not what the journal recorded: its size or
    /// modification time on disk differ (it is gone, edited or replaced
    /// outside the server), or the bytes read do not give the journaled
    /// hash. The fetch fails and the actor examines the file again
    /// (PROTOCOL.md ).
    ChangedOnDisk(WirePath),
    /// The server's copy of a file the journal lists is missing from the
    /// folder (removed outside the server while it was stopped): never
    /// propagated as a deletion; the devices keep theirs. A
    /// damaged copy (same size and mtime, other bytes) fails R-10.6's
    /// check instead.
    Lost {
        /// The file.
        path: WirePath,
        /// Damaged (bytes changed in place) rather than missing.
        damaged: bool,
    },
    /// A restore's intent record cannot hold what the restore
    /// made (more conflict directories than its count says): the restore
    /// stops there rather than record a part of it. Retrying cannot help.
    RestoreTooBig(super::IntentTooBig),
    /// The operating system refused (journal, folder, directories).
    Io(io::Error),
}

impl StoreError {
    /// The wire error code that answers this failure (PROTOCOL.md §4.5): a
    /// failure that retrying cannot fix is `Unstorable`, never `Storage`, or
    /// a client retries it for ever — an explicit path-limit failure, or the
    /// file system refusing a name (too long for it, bytes it cannot hold).
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::UnknownUser => ErrorCode::UnknownUser,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::NoSuchVersion { .. } | StoreError::NotAtTime { .. } => {
                ErrorCode::NoSuchVersion
            }
            StoreError::TooManyBytes { .. } | StoreError::SizeMismatch { .. } => {
                ErrorCode::SizeMismatch
            }
            StoreError::HashMismatch(_) => ErrorCode::HashMismatch,
            StoreError::TempFile(e) | StoreError::Write { source: e, .. } | StoreError::Io(e)
                if no_space(e) =>
            {
                ErrorCode::NoSpace
            }
            StoreError::ConflictPathTooLong { .. } | StoreError::RestoreTooBig(_) => {
                ErrorCode::Unstorable
            }
            StoreError::Io(e) if refused_name(e) => ErrorCode::Unstorable,
            StoreError::Symlink(_)
            | StoreError::NotADirectory(_)
            | StoreError::NoFreeConflictName(_)
            | StoreError::DirectoryInTheWay(_)
            | StoreError::TempFile(_)
            | StoreError::Write { .. }
            | StoreError::Read { .. }
            | StoreError::KeptDamaged(_)
            | StoreError::ChangedOnDisk(_)
            | StoreError::Lost { .. }
            | StoreError::Io(_) => ErrorCode::Storage,
        }
    }
}

/// A RestoreAt moment (`u64` ms since 1970, §14.3) for a message: its UTC
/// date, or — past the last date the calendar library can show (year
/// 262143; every value from 2^63 on included, which must never read as a
/// date before 1970) — the number itself.
fn moment(time_ms: u64) -> String {
    i64::try_from(time_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| format!("{time_ms} ms after 1970-01-01T00:00:00Z"))
}

/// Why an expired entry is not restored (§14.4), after "… expired".
const EXPIRED_WHY: &str =
    " (older than --keep-versions, or dropped past --versions-space): no longer kept";

/// "1 entry", "3 entries".
fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// Whether the disk, or the quota of the user the server runs as, is full
/// (`ENOSPC`, `EDQUOT`): answered `NoSpace`, not `Storage` (§4.5), so a
/// client says a full disk only when it is one.
fn no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// What an I/O error says, without any path of the server's it carries:
/// the text goes to the client in an Error frame (and from there to its
/// log and status), and neither a user nor a hostile peer may learn the
/// server's own paths (its data directory, `.cloudservice-server/tmp/…`).
/// An OS error gives its system text (`No space left on device (os error
/// 28)`); tempfile adds ` at path "…"` to the errors of its temp files'
/// writes, creation and persisting, which is cut off; the texts the
/// server makes itself name no path (a user's path is added by the caller).
pub fn reason(e: &io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        return io::Error::from_raw_os_error(code).to_string();
    }
    let text = e.to_string();
    match text.find(" at path ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Whether the file system refused a name as such (too long, or bytes it
/// cannot represent): the same name fails the same way every time.
fn refused_name(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NAMETOOLONG | Errno::ILSEQ)
    )
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownUser => f.write_str("unknown user"),
            StoreError::Symlink(p) => write!(f, "refusing to follow a symlink at {p}"),
            StoreError::NotADirectory(p) => write!(
                f,
                "{p} is a file on the server's disk where a directory must be (the disk and the journal disagree)"
            ),
            StoreError::NotFound(p) => write!(f, "no file at {p}"),
            StoreError::NoSuchVersion {
                path,
                seq,
                expired: 0,
            } => {
                write!(f, "no kept version of {path} displaced by change {seq}")
            }
            StoreError::NoSuchVersion { path, seq, expired } => write!(
                f,
                "{} under {path} just before change {seq} expired{}",
                entries(*expired),
                EXPIRED_WHY
            ),
            StoreError::NotAtTime {
                path,
                time_ms,
                expired,
            } => {
                let when = moment(*time_ms);
                if *expired == 0 {
                    write!(
                        f,
                        "no version of {path} at {when}: it did not exist then (or what it was is no longer kept)"
                    )
                } else {
                    write!(
                        f,
                        "no version of {path} at {when}: {} under it then expired{}",
                        entries(*expired),
                        EXPIRED_WHY
                    )
                }
            }
            StoreError::KeptDamaged(p) => {
                write!(f, "storage error: the kept content of {p} is missing or damaged")
            }
            StoreError::ConflictPathTooLong { path, dir } => write!(
                f,
                "cannot be stored: {path} below the conflict directory {dir} would break the path limits"
            ),
            StoreError::NoFreeConflictName(p) => {
                write!(f, "storage error: no free conflict name for {p}")
            }
            StoreError::DirectoryInTheWay(p) => {
                write!(f, "storage error: a directory on disk is in the way at {p}")
            }
            StoreError::TooManyBytes { path, announced } => {
                write!(f, "{path}: more bytes than the announced {announced}")
            }
            StoreError::SizeMismatch {
                path,
                received,
                announced,
            } => write!(f, "{path}: {received} bytes received, {announced} announced"),
            StoreError::HashMismatch(p) => write!(f, "{p}: content does not match its hash"),
            StoreError::TempFile(e) => write!(f, "cannot create a temp file: {}", reason(e)),
            StoreError::Write { path, source } => write!(f, "writing {path}: {}", reason(source)),
            StoreError::Read { path, source } => write!(f, "reading {path}: {}", reason(source)),
            StoreError::ChangedOnDisk(p) => write!(
                f,
                "{p}: the server's copy changed on its disk since it was journaled (edited \
                 outside the server, or damaged); the server examines it again (the next \
                 pull says what it found)"
            ),
            StoreError::Lost { path, damaged } => write!(
                f,
                "{path}: the server's copy is {}; devices that hold it keep it, and a new \
                 version pushed from one replaces it",
                if *damaged {
                    "damaged (its bytes no longer match the hash journaled for it)"
                } else {
                    "missing from its disk (removed outside the server)"
                }
            ),
            StoreError::RestoreTooBig(e) => write!(
                f,
                "cannot record the restore (R-14.3.7): {e}; what it placed stays"
            ),
            StoreError::Io(e) => write!(f, "storage error: {}", reason(e)),
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

impl From<FsError> for StoreError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Unsafe(p) => StoreError::Symlink(p),
            FsError::NotADirectory(p) => StoreError::NotADirectory(p),
            FsError::Io(e) => StoreError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RestoreAt moment is a `u64` (§14.3): every value from 2^63 on
    /// was read as a negative i64, a date before 1970 (the outside tester's
    /// breaker16 F6.6: 2^64 − 1 said `1969-12-31T23:59:59.999Z`).
    #[test]
    fn a_restore_at_moment_is_never_before_1970() {
        let said = |time_ms: u64| {
            StoreError::NotAtTime {
                path: WirePath::new("x").unwrap(),
                time_ms,
                expired: 0,
            }
            .to_string()
        };
        assert!(
            said(0).contains(" at 1970-01-01T00:00:00.000Z:"),
            "{}",
            said(0)
        );
        let dec_2025 = said(1_764_583_200_000);
        assert!(
            dec_2025.contains(" at 2025-12-01T10:00:00.000Z:"),
            "{dec_2025}"
        );
        for time_ms in [u64::MAX, 1 << 63, (1 << 63) - 1, 1 << 60] {
            let text = said(time_ms);
            assert!(!text.contains("1969"), "{time_ms}: {text}");
            assert!(
                text.contains(&format!(" at {time_ms} ms after 1970-01-01T00:00:00Z:")),
                "{time_ms}: {text}"
            );
        }
    }

    /// The text of every failure built from an I/O error names no path of
    /// the server's: tempfile's ` at path "…"` (its temp files' creation,
    /// writes and persisting) is cut off, OS errors keep their system text.
    #[test]
    fn io_failures_name_no_server_path() {
        let dir = tempfile::tempdir().unwrap();
        let hidden = dir.path().join("server-only/.cloudservice-server/tmp");
        let created = tempfile::Builder::new().tempfile_in(&hidden);
        let Err(tempfile_error) = created else {
            panic!("no such directory")
        };
        assert!(
            tempfile_error.to_string().contains("server-only"),
            "the case"
        );
        let p = WirePath::new("docs/a.txt").unwrap();
        let full = || io::Error::from(Errno::NOSPC);
        let said = tempfile_error.to_string();
        let wrapped = || io::Error::new(io::ErrorKind::StorageFull, said.clone());
        for e in [
            StoreError::TempFile(tempfile_error),
            StoreError::Write {
                path: p.clone(),
                source: wrapped(),
            },
            StoreError::Read {
                path: p.clone(),
                source: full(),
            },
            StoreError::Io(wrapped()),
        ] {
            let text = e.to_string();
            assert!(!text.contains("server-only"), "{text}");
            assert!(!text.contains(" at path "), "{text}");
        }
        let write = StoreError::Write {
            path: p,
            source: full(),
        };
        assert_eq!(
            write.to_string(),
            "writing docs/a.txt: No space left on device (os error 28)"
        );
    }

    #[test]
    fn permanent_failures_are_unstorable_and_the_rest_storage() {
        let p = WirePath::new("a").unwrap();
        let too_long = StoreError::Io(Errno::NAMETOOLONG.into());
        assert_eq!(too_long.code(), ErrorCode::Unstorable);
        assert_eq!(
            StoreError::Io(Errno::ILSEQ.into()).code(),
            ErrorCode::Unstorable
        );
        // A full disk or quota is NoSpace, whichever step met it; every
        // other failure that may pass stays Storage (§4.5).
        for full in [Errno::NOSPC, Errno::DQUOT] {
            let write = StoreError::Write {
                path: p.clone(),
                source: full.into(),
            };
            for e in [
                StoreError::Io(full.into()),
                StoreError::TempFile(full.into()),
                write,
            ] {
                assert_eq!(e.code(), ErrorCode::NoSpace, "{e}");
            }
        }
        for other in [Errno::ACCESS, Errno::IO, Errno::ISDIR, Errno::NOTEMPTY] {
            assert_eq!(StoreError::Io(other.into()).code(), ErrorCode::Storage);
        }
        assert_eq!(
            StoreError::DirectoryInTheWay(p.clone()).code(),
            ErrorCode::Storage
        );
        let conflict = StoreError::ConflictPathTooLong {
            path: p.clone(),
            dir: p.clone(),
        };
        assert_eq!(conflict.code(), ErrorCode::Unstorable);
        assert_eq!(StoreError::Symlink(p.clone()).code(), ErrorCode::Storage);
        assert_eq!(StoreError::NotFound(p.clone()).code(), ErrorCode::NotFound);
        assert_eq!(
            StoreError::ChangedOnDisk(p.clone()).code(),
            ErrorCode::Storage
        );
        let lost = StoreError::Lost {
            path: p.clone(),
            damaged: false,
        };
        assert_eq!(lost.code(), ErrorCode::Storage);
        assert_eq!(StoreError::HashMismatch(p).code(), ErrorCode::HashMismatch);
    }
}
