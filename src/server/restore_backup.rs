//! `cloud-server restore DATA_DIR --from BACKUP` (PROTOCOL.md R-4.6.17,
//! README "Backups"): puts a backup of a stopped server's data directory in
//! place, but keeps every door closed that was closed after the backup was
//! taken: revocations, join-code rotations, used and retired invites
//! (merged by [`security_state::merge`]), the TLS certificate and key now
//! served, and the connection log (the record of what happened since).
//! Copying the backup back by hand (`cp -a`) brings back the backup's: a
//! device revoked since gets in again (outside tester breaker18, F11); the
//! server then warns once it sees a device that saw changes it lacks
//! ([`note_restore_found`]).
//!
//! ```text
//! DATA_DIR/.cloudservice-server/server.lock   flock: held by the running server, and by
//!                                             this command (each refuses the other)
//! DATA_DIR/.cloudservice-restore/             the backup's copy, made whole first
//! DATA_DIR/.cloudservice-restore-old/         what it replaces, while they swap
//! .cloudservice-server/<user>/restore_found   written by the server when a device
//!                                             shows it was restored; `devices` says so
//! ```
//!
//! Nothing is written outside the data directory; the directory being
//! replaced is read whole before anything of it changes, and replaced only
//! once the copy is whole and merged, by renames.

use super::devices::{self, DevicesError};
use super::moves;
use super::security_state::{self, Carried, UserSecurity};
use super::store::DataPaths;
use super::tree_copy::{self, Copied};
use crate::protocol::UserId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The data directory's lock file, under `.cloudservice-server/`.
pub const LOCK_FILE: &str = "server.lock";
/// Where the backup is copied before it replaces the data.
const STAGING: &str = ".cloudservice-restore";
/// Where the replaced entries wait while the two swap.
const REPLACED: &str = ".cloudservice-restore-old";
/// A user's marker: the server found it was restored (what it saw, when).
pub const RESTORE_FOUND_FILE: &str = "restore_found";
/// Left in `.cloudservice-server/` by `cloud-server restore` (when, from
/// where), so that a restore the server finds later is told apart from a
/// backup copied back by hand: only the latter undid revocations and
/// rotations (R-4.6.17; breaker22 F7).
pub const BY_COMMAND_FILE: &str = "restored_by_command";
/// Kept from the replaced directory as they are (the certificate served
/// now, the log of what happened since the backup).
const KEPT: [&str; 2] = ["tls", super::data_dir::CONN_LOG];

/// The data directory's lock (released when dropped).
#[derive(Debug)]
pub struct DataLock(#[allow(dead_code)] File);

/// Takes the data directory's lock if nobody holds it (`Ok(None)`: a
/// server runs on it, or a restore). `.cloudservice-server/` must exist.
///
/// # Errors
/// The lock file cannot be opened or locked for another reason.
pub fn try_lock(paths: &DataPaths) -> io::Result<Option<DataLock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(paths.state_root().join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(DataLock(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Why a restore did not happen (nothing changed in the data directory),
/// or stopped half-way ([`RestoreError::Interrupted`] says where things are).
#[derive(Debug)]
pub enum RestoreError {
    /// The backup is not a copy of a data directory.
    NotABackup(PathBuf),
    /// The backup and the data directory are one, or one holds the other.
    Overlap,
    /// A server runs on the data directory.
    Running(PathBuf),
    /// An earlier restore stopped while swapping: its leftovers are here.
    Interrupted(PathBuf),
    /// Reading or writing a device file.
    Devices(DevicesError),
    /// Reading, copying or renaming.
    Io(String, io::Error),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::NotABackup(p) => write!(
                f,
                "{} is not a backup of a data directory (it has no AllClients/ and \
                 .cloudservice-server/)",
                p.display()
            ),
            RestoreError::Overlap => write!(
                f,
                "the backup and the data directory must be two separate directories"
            ),
            RestoreError::Running(p) => write!(
                f,
                "a server is running on this data directory (it holds {}): stop it first",
                p.display()
            ),
            RestoreError::Interrupted(p) => write!(
                f,
                "an earlier restore stopped half-way: the directory it replaced is in {}; \
                 move back what the data directory lacks, remove it, and restore again",
                p.display()
            ),
            RestoreError::Devices(e) => write!(f, "{e}"),
            RestoreError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl From<DevicesError> for RestoreError {
    fn from(e: DevicesError) -> Self {
        RestoreError::Devices(e)
    }
}

fn io_err(what: impl fmt::Display) -> impl FnOnce(io::Error) -> RestoreError {
    let what = what.to_string();
    move |e| RestoreError::Io(what, e)
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The backup's files copied.
    pub copied: Copied,
    /// What of the security state and the directory was kept from the
    /// replaced one, one line each, for the operator.
    pub notes: Vec<String>,
}

/// Puts `backup` in place of the data directory `data` (which must not be
/// served), keeping what [`security_state::merge`] keeps.
///
/// # Errors
/// [`RestoreError`]; before the swap nothing of `data` has changed.
pub fn restore(data: &Path, backup: &Path) -> Result<Restored, RestoreError> {
    if !backup.join("AllClients").is_dir() || !backup.join(".cloudservice-server").is_dir() {
        return Err(RestoreError::NotABackup(backup.to_path_buf()));
    }
    let canon = |p: &Path| fs::canonicalize(p).map_err(io_err(p.display()));
    let (data_c, backup_c) = (canon(data)?, canon(backup)?);
    if data_c.starts_with(&backup_c) || backup_c.starts_with(&data_c) {
        return Err(RestoreError::Overlap);
    }
    let replaced = data.join(REPLACED);
    if replaced.exists() {
        return Err(RestoreError::Interrupted(replaced));
    }
    let paths = DataPaths {
        base: data.to_path_buf(),
    };
    crate::private_dir::create_all(&paths.state_root())
        .map_err(io_err(paths.state_root().display()))?;
    let _lock = not_served(&paths)?;
    let current = read_all(&paths)?;
    let staging = data.join(STAGING);
    if staging.exists() {
        // A copy an earlier, stopped restore left: ours, never served.
        fs::remove_dir_all(&staging).map_err(io_err(staging.display()))?;
    }
    let copied = tree_copy::copy_tree(backup, &staging).map_err(io_err("copying the backup"))?;
    let staged = DataPaths {
        base: staging.clone(),
    };
    let mut notes = carry_security(&staged, &current)?;
    for name in KEPT {
        if keep_current(data, &staging, name)? {
            notes.push(format!("kept {name} of the replaced data directory"));
        }
    }
    let mark = format!("{} {}\n", devices::unix_now(), backup.display());
    devices::write_private(&staged.state_root().join(BY_COMMAND_FILE), mark.as_bytes()).map_err(
        |e| {
            RestoreError::Io(
                "recording the restore".into(),
                io::Error::other(e.to_string()),
            )
        },
    )?;
    // A starting server must not slip in between the swap's renames.
    let _staged_lock = try_lock(&staged).map_err(io_err("locking the copy"))?;
    swap(data, &staging, &replaced)?;
    Ok(Restored { copied, notes })
}

/// The data directory's lock, once no server holds it nor any user's
/// state (a server older than the lock holds only those).
fn not_served(paths: &DataPaths) -> Result<DataLock, RestoreError> {
    let lock_file = paths.state_root().join(LOCK_FILE);
    let lock = try_lock(paths)
        .map_err(io_err(lock_file.display()))?
        .ok_or(RestoreError::Running(lock_file))?;
    for user in users_in(paths)? {
        if moves::try_own(paths, &user)
            .map_err(io_err("locking a user's state"))?
            .is_none()
        {
            return Err(RestoreError::Running(
                paths.user_state(&user).join("owner.lock"),
            ));
        }
    }
    Ok(lock)
}

/// The users with a state directory under `.cloudservice-server/`.
fn users_in(paths: &DataPaths) -> Result<BTreeSet<UserId>, RestoreError> {
    let root = paths.state_root();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(RestoreError::Io(root.display().to_string(), e)),
    };
    let mut users = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(io_err(root.display()))?;
        if let Some(user) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            if entry.path().is_dir() {
                users.insert(user);
            }
        }
    }
    Ok(users)
}

/// Every user's security state in a data directory.
fn read_all(paths: &DataPaths) -> Result<BTreeMap<UserId, UserSecurity>, RestoreError> {
    let mut all: BTreeMap<UserId, UserSecurity> = BTreeMap::new();
    for user in users_in(paths)? {
        let mut state = UserSecurity {
            join: devices::join_code(paths, &user)?,
            ..UserSecurity::default()
        };
        let dir = devices::invites_dir(paths, &user);
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry.map_err(io_err(dir.display()))?.file_name();
                    if let Some(digest) = name.to_str().and_then(devices::parse_hex32) {
                        state.invites.insert(digest);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RestoreError::Io(dir.display().to_string(), e)),
        }
        all.insert(user, state);
    }
    let revoked_dir = devices::revoked_dir(paths);
    for (user, id) in devices::all_revoked(paths).map_err(io_err(revoked_dir.display()))? {
        all.entry(user).or_default().revoked.insert(id);
    }
    Ok(all)
}

/// Writes into the staged copy the merge of its state with `current`'s;
/// returns a line for each thing kept from `current`.
fn carry_security(
    staged: &DataPaths,
    current: &BTreeMap<UserId, UserSecurity>,
) -> Result<Vec<String>, RestoreError> {
    let backup = read_all(staged)?;
    let mut notes = Vec::new();
    let users: BTreeSet<&UserId> = backup.keys().chain(current.keys()).collect();
    for user in users {
        let empty = UserSecurity::default();
        let bak = backup.get(user).unwrap_or(&empty);
        // A user the replaced directory did not hold (lost with it) keeps
        // the backup's state; otherwise the two merge.
        let cur = current.get(user).unwrap_or(bak);
        let merged = security_state::merge(bak, cur);
        let here = staged.user_state(user).is_dir();
        for id in merged.revoked.difference(&bak.revoked) {
            devices::mark_revoked(
                staged,
                user,
                *id,
                "(carried forward by cloud-server restore)",
            )?;
        }
        if here {
            if let Some(code) = merged.join.filter(|_| merged.join != bak.join) {
                devices::set_join_code(staged, user, &code)?;
            }
            let dir = devices::invites_dir(staged, user);
            for digest in bak.invites.difference(&merged.invites) {
                let file = dir.join(devices::hex32(digest));
                fs::remove_file(&file).map_err(io_err(file.display()))?;
            }
            let found = staged.user_state(user).join(RESTORE_FOUND_FILE);
            match fs::remove_file(&found) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(RestoreError::Io(found.display().to_string(), e));
                }
                _ => {}
            }
        }
        if here {
            for change in security_state::carried(bak, cur, &merged) {
                notes.push(note(user, &change));
            }
        } else if current.contains_key(user) {
            notes.push(format!(
                "user {user}: not in the backup (made after it): the server no longer \
                 holds it; its devices keep their files"
            ));
        }
    }
    Ok(notes)
}

/// The operator's line for one thing kept from the replaced directory.
fn note(user: &UserId, change: &Carried) -> String {
    match change {
        Carried::Revoked(id) => {
            format!("user {user}: device {id} was revoked after the backup: stays revoked")
        }
        Carried::StillRevoked(id) => format!(
            "user {user}: device {id} was reinstated after the backup: revoked again, as \
             in the backup (cloud-server reinstate lifts it)"
        ),
        Carried::JoinCode => format!(
            "user {user}: the join code made after the backup stays; the backup's no \
             longer lets a device join"
        ),
        Carried::InvitesRetired(n) => format!(
            "user {user}: {n} unused invite(s) of the backup, used or retired since, stay \
             retired"
        ),
        Carried::InvitesDropped(n) => format!(
            "user {user}: {n} unused invite(s) made after the backup are retired \
             (cloud-server invite makes new ones)"
        ),
    }
}

/// Replaces the copy's `name` with the data directory's own, if it has
/// one; true if it did.
fn keep_current(data: &Path, staging: &Path, name: &str) -> Result<bool, RestoreError> {
    let (ours, theirs) = (data.join(name), staging.join(name));
    if fs::symlink_metadata(&ours).is_err() {
        return Ok(false);
    }
    match fs::symlink_metadata(&theirs) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&theirs),
        Ok(_) => fs::remove_file(&theirs),
        Err(_) => Ok(()),
    }
    .map_err(io_err(theirs.display()))?;
    tree_copy::copy_tree(&ours, &theirs).map_err(io_err(ours.display()))?;
    Ok(true)
}

/// Moves the data directory's entries aside, the copy's in, and removes
/// what was moved aside.
fn swap(data: &Path, staging: &Path, replaced: &Path) -> Result<(), RestoreError> {
    crate::private_dir::create(replaced).map_err(io_err(replaced.display()))?;
    let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>, RestoreError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir.display()))? {
            names.push(entry.map_err(io_err(dir.display()))?.file_name());
        }
        Ok(names)
    };
    for name in names(data)? {
        if name == STAGING || name == REPLACED {
            continue;
        }
        fs::rename(data.join(&name), replaced.join(&name))
            .map_err(io_err(data.join(&name).display()))?;
    }
    for name in names(staging)? {
        fs::rename(staging.join(&name), data.join(&name))
            .map_err(io_err(staging.join(&name).display()))?;
    }
    fs::remove_dir(staging).map_err(io_err(staging.display()))?;
    fs::remove_dir_all(replaced).map_err(io_err(replaced.display()))
}

/// Records, once, that a device of `user` showed the server was restored
/// from a backup (`what`: when and what it saw), for `cloud-server devices`.
///
/// # Errors
/// Writing the marker.
pub fn note_restore_found(
    paths: &DataPaths,
    user: &UserId,
    what: &str,
) -> Result<(), DevicesError> {
    let file = paths.user_state(user).join(RESTORE_FOUND_FILE);
    if file.exists() {
        return Ok(());
    }
    devices::write_private(&file, what.as_bytes())
}

/// What [`note_restore_found`] recorded, if anything.
pub fn restore_found(paths: &DataPaths, user: &UserId) -> Option<String> {
    fs::read_to_string(paths.user_state(user).join(RESTORE_FOUND_FILE)).ok()
}

/// When (unix seconds) and from which backup `cloud-server restore` last
/// put the data directory back, as [`BY_COMMAND_FILE`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByCommand {
    /// Unix seconds.
    pub at: u64,
    /// The backup's path as given.
    pub from: String,
}

/// What [`BY_COMMAND_FILE`] says, if it is there and readable.
pub fn restored_by_command(paths: &DataPaths) -> Option<ByCommand> {
    parse_by_command(&fs::read_to_string(paths.state_root().join(BY_COMMAND_FILE)).ok()?)
}

fn parse_by_command(text: &str) -> Option<ByCommand> {
    let (at, from) = text.trim_end_matches('\n').split_once(' ')?;
    Some(ByCommand {
        at: at.parse().ok()?,
        from: from.to_owned(),
    })
}

/// The operator's advice once a device showed that `user`'s data was
/// restored (`found_at`: when, unix seconds). After `cloud-server restore`
/// (recorded at or before `found_at`) revocations, rotations and invites
/// made after the backup were kept (R-4.6.17): nothing to redo, unless the
/// directory was copied back by hand since, which no marker can tell.
/// Otherwise the backup was copied back by hand and they are undone.
/// `stamp` formats unix seconds.
pub fn restore_advice(
    found_at: u64,
    by_command: Option<&ByCommand>,
    data_dir: &Path,
    user: &UserId,
    stamp: impl Fn(u64) -> String,
) -> String {
    let rotate = format!("cloud-server rotate-join {} {user}", data_dir.display());
    match by_command {
        Some(b) if b.at <= found_at => format!(
            "it was put back with `cloud-server restore` at {} from {}, which kept the \
             revocations, join-code rotations and invites made after the backup: nothing to \
             redo (only a backup copied back by hand since would have undone them: then check \
             the devices, revoke again and run: {rotate})",
            stamp(b.at),
            b.from
        ),
        _ => format!(
            "it was not put back with `cloud-server restore` (which leaves {BY_COMMAND_FILE} in \
             .cloudservice-server/), so revocations, join-code rotations and invites made after \
             the backup are undone: check the devices, revoke again, and run: {rotate}"
        ),
    }
}

/// Forgets the marker (`rotate-join`: the operator acted on it).
///
/// # Errors
/// Removing it for a reason other than its absence.
pub fn forget_restore_found(paths: &DataPaths, user: &UserId) -> Result<(), DevicesError> {
    let file = paths.user_state(user).join(RESTORE_FOUND_FILE);
    match fs::remove_file(&file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DevicesError::Io(file, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "restore_backup_tests.rs"]
mod tests;
