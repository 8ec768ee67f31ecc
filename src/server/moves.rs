//! Users on the move between shards (PROTOCOL.md §16.3): the markers that
//! make a server refuse a user, the lock that says who holds a user's state,
//! and the thread that tells the reactor when a marker appears or goes.
//!
//! ```text
//! .cloudservice-server/moves/<user>          "moving": an export or import runs (Error Moving)
//!                                            "moved":  exported; this server no longer owns
//!                                                      the user (Error WrongShard)
//! .cloudservice-server/<user>/owner.lock     flock: held by the user's actor while its
//!                                            state is open, and by export/import
//! ```
//!
//! Markers are written by `cloud-server export|import` (the operator's
//! process) and only read by the server, so the two never write the same
//! file. The lock closes the race between them: an actor takes the lock,
//! then looks for a marker; export writes the marker, then waits for the
//! lock. Whichever order they meet in, the user's state is never open in
//! the server while export copies it.

use super::bus::FromActor;
use super::store::DataPaths;
use crate::protocol::{ErrorCode, UserId};
use crossbeam_channel::Sender;
use mio::Waker;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the watcher lists the markers: a move takes effect on the
/// running server within this plus the reactor's next turn.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// Why a server refuses a user it has (or had) in its data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Away {
    /// Being exported or imported: Error `Moving` (27), retry soon.
    Moving,
    /// Exported to another shard: Error `WrongShard` (26).
    Moved,
}

impl Away {
    /// The Error code a connection of the user gets (§4.5, §16.2).
    pub fn code(self) -> ErrorCode {
        match self {
            Away::Moving => ErrorCode::Moving,
            Away::Moved => ErrorCode::WrongShard,
        }
    }

    /// The Error's text (it names no user: R-2.2.2).
    pub fn text(self) -> &'static str {
        match self {
            Away::Moving => "this user is being moved to another server; retry shortly",
            Away::Moved => "this user lives on another server now; retry (the route will follow)",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Away::Moving => "moving",
            Away::Moved => "moved",
        }
    }
}

/// `.cloudservice-server/moves/`.
pub fn moves_dir(paths: &DataPaths) -> PathBuf {
    paths.state_root().join("moves")
}

/// The user's marker, if any. A marker that cannot be read or understood
/// counts as [`Away::Moving`]: refusing for a while is safe, serving a user
/// that may be half moved is not.
pub fn marker(paths: &DataPaths, user: &UserId) -> Option<Away> {
    match std::fs::read_to_string(moves_dir(paths).join(user.to_string())) {
        Ok(text) if text.trim() == Away::Moved.word() => Some(Away::Moved),
        Ok(_) => Some(Away::Moving),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => Some(Away::Moving),
    }
}

/// Sets (atomically: a temporary file renamed over it, then the directory
/// synced) or removes the user's marker.
///
/// # Errors
/// The marker cannot be written or removed.
pub fn set_marker(paths: &DataPaths, user: &UserId, away: Option<Away>) -> io::Result<()> {
    let dir = moves_dir(paths);
    crate::private_dir::create_all(&dir)?;
    let path = dir.join(user.to_string());
    match away {
        Some(away) => {
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
            writeln!(tmp, "{}", away.word())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    File::open(&dir)?.sync_all()
}

/// Every user with a marker (names that are not user IDs are ignored).
///
/// # Errors
/// The directory exists but cannot be listed.
pub fn all_away(paths: &DataPaths) -> io::Result<BTreeMap<UserId, Away>> {
    let mut all = BTreeMap::new();
    let entries = match std::fs::read_dir(moves_dir(paths)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(all),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(user) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<UserId>().ok())
        else {
            continue;
        };
        if let Some(away) = marker(paths, &user) {
            all.insert(user, away);
        }
    }
    Ok(all)
}

/// The exclusive lock on a user's state (released when dropped).
#[derive(Debug)]
pub struct OwnerLock(#[allow(dead_code)] File);

/// Takes the user's owner lock if nobody holds it: `Ok(None)` when
/// another process (an export) or actor holds it. The user's state
/// directory must exist.
///
/// # Errors
/// The lock file cannot be opened or locked for another reason.
pub fn try_own(paths: &DataPaths, user: &UserId) -> io::Result<Option<OwnerLock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.user_state(user).join("owner.lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(OwnerLock(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Takes the user's owner lock, trying every 20 ms for up to `limit`.
///
/// # Errors
/// As [`try_own`]; `TimedOut` when it is still held after `limit`.
pub fn own_within(paths: &DataPaths, user: &UserId, limit: Duration) -> io::Result<OwnerLock> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(lock) = try_own(paths, user)? {
            return Ok(lock);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the user's state is still held (by a server that does not watch \
                 .cloudservice-server/moves/, or another export)",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the watcher thread: it reports every marker already on disk,
/// then each one that appears, changes or goes, as [`FromActor::Away`].
/// It ends when the reactor's inbox is gone.
///
/// # Errors
/// The thread could not be started.
pub fn start(paths: DataPaths, out: Sender<FromActor>, waker: Arc<Waker>) -> io::Result<()> {
    super::dir_watch::start(
        "cloud-server-moves",
        "the users being moved",
        POLL_EVERY,
        move || all_away(&paths),
        |known: &BTreeMap<UserId, Away>, now: &BTreeMap<UserId, Away>| {
            let changed = now
                .iter()
                .filter(|(user, away)| known.get(user) != Some(away))
                .map(|(user, away)| FromActor::Away {
                    user: *user,
                    away: Some(*away),
                });
            let gone = known
                .keys()
                .filter(|user| !now.contains_key(user))
                .map(|user| FromActor::Away {
                    user: *user,
                    away: None,
                });
            changed.chain(gone).collect()
        },
        out,
        waker,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_junk_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let (a, b) = (UserId([1; 16]), UserId([2; 16]));
        assert_eq!(marker(&paths, &a), None);
        assert!(all_away(&paths).unwrap().is_empty());
        set_marker(&paths, &a, Some(Away::Moving)).unwrap();
        set_marker(&paths, &b, Some(Away::Moved)).unwrap();
        std::fs::write(moves_dir(&paths).join("junk"), b"moved").unwrap();
        assert_eq!(marker(&paths, &a), Some(Away::Moving));
        assert_eq!(marker(&paths, &b), Some(Away::Moved));
        let all = all_away(&paths).unwrap();
        assert_eq!(all.len(), 2);
        set_marker(&paths, &a, Some(Away::Moved)).unwrap();
        assert_eq!(marker(&paths, &a), Some(Away::Moved));
        set_marker(&paths, &a, None).unwrap();
        set_marker(&paths, &a, None).unwrap();
        assert_eq!(marker(&paths, &a), None);
        // Unreadable content counts as moving.
        std::fs::write(moves_dir(&paths).join(b.to_string()), b"???").unwrap();
        assert_eq!(marker(&paths, &b), Some(Away::Moving));
    }

    #[test]
    fn the_owner_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let user = UserId([3; 16]);
        std::fs::create_dir_all(paths.user_state(&user)).unwrap();
        let held = try_own(&paths, &user).unwrap().expect("free");
        assert!(try_own(&paths, &user).unwrap().is_none());
        let err = own_within(&paths, &user, Duration::from_millis(60)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(held);
        assert!(own_within(&paths, &user, Duration::from_millis(60)).is_ok());
    }
}
