//! Moving one user between shards (PROTOCOL.md §16.3): `cloud-server export`
//! copies a user out of a data directory, which a running server then
//! refuses for good, and `cloud-server import` copies it into another.
//!
//! An export directory has the layout of a data directory holding one user:
//!
//! ```text
//! DIR/AllClients/<user>/                      the user's folder
//! DIR/.cloudservice-server/<user>/            journal, versions, devices.json,
//!                                             join_code, invites, chunk index
//! DIR/.cloudservice-server/revoked/<user>.<n> the user's revoked devices
//! ```
//!
//! Both commands work while the servers run: the move markers and the owner
//! lock ([`super::moves`]) keep the user's state closed in the server while
//! it is copied. Every copied file is fsynced, and a directory appears
//! under its final name only once it is whole.

use super::devices;
use super::moves::{self, Away, OwnerLock};
use super::store::DataPaths;
use crate::protocol::UserId;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a move step failed. Nothing was lost: after a failed export the
/// source serves the user again; after a failed import the target does not
/// serve it (run the import again).
#[derive(Debug)]
pub enum MoveError {
    /// The data directory holds no such user.
    UnknownUser(UserId),
    /// The source already exported this user (it is marked moved).
    AlreadyMoved(UserId),
    /// The export directory exists already.
    TargetExists(PathBuf),
    /// The import directory does not hold exactly one user.
    NotAnExport(PathBuf, &'static str),
    /// The target server holds this user and it was not moved away (R-16.3.2).
    AlreadyHere(UserId),
    /// A symbolic link in the user's state (the server never makes one).
    Symlink(PathBuf),
    /// Reading, writing or locking failed.
    Io(&'static str, io::Error),
}

impl fmt::Display for MoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveError::UnknownUser(u) => write!(f, "no user {u} in this data directory"),
            MoveError::AlreadyMoved(u) => write!(
                f,
                "user {u} was already exported from this data directory (marked moved)"
            ),
            MoveError::TargetExists(p) => write!(f, "{} exists already", p.display()),
            MoveError::NotAnExport(p, why) => {
                write!(f, "{} is not an export directory: {why}", p.display())
            }
            MoveError::AlreadyHere(u) => write!(
                f,
                "user {u} is already served by this data directory (not moved away): \
                 refusing to overwrite it"
            ),
            MoveError::Symlink(p) => write!(f, "unexpected symbolic link {}", p.display()),
            MoveError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for MoveError {}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> MoveError {
    move |e| MoveError::Io(what, e)
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Files copied.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Exports `user` from `paths` to the new directory `to` (§16.3 step 1):
/// marks the user moving, waits up to `wait` for the running server to let
/// go of its state, copies it, then marks it moved.
///
/// # Errors
/// [`MoveError`]; on any failure after the marker was written, the marker is
/// removed again so the source serves the user as before.
pub fn export(
    paths: &DataPaths,
    user: &UserId,
    to: &Path,
    wait: Duration,
) -> Result<MoveReport, MoveError> {
    if !paths.user_state(user).is_dir() || !paths.user_root(user).is_dir() {
        return Err(MoveError::UnknownUser(*user));
    }
    match moves::marker(paths, user) {
        Some(Away::Moved) => return Err(MoveError::AlreadyMoved(*user)),
        Some(Away::Moving) | None => {}
    }
    if to.exists() {
        return Err(MoveError::TargetExists(to.to_path_buf()));
    }
    moves::set_marker(paths, user, Some(Away::Moving)).map_err(io_err("writing the marker"))?;
    let result = moves::own_within(paths, user, wait)
        .map_err(io_err("waiting for the server to close the user's state"))
        .and_then(|lock| copy_out(paths, user, to).map(|report| (lock, report)));
    match result {
        Ok((lock, report)) => {
            moves::set_marker(paths, user, Some(Away::Moved))
                .map_err(io_err("marking the user moved"))?;
            drop(lock);
            Ok(report)
        }
        Err(e) => {
            if let Err(undo) = moves::set_marker(paths, user, None) {
                log::error!("cannot remove the move marker of {user}: {undo}");
            }
            Err(e)
        }
    }
}

/// Copies the user into `DIR.partial`, then renames it to `DIR`.
fn copy_out(paths: &DataPaths, user: &UserId, to: &Path) -> Result<MoveReport, MoveError> {
    let stage = with_suffix(to, ".partial");
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io_err("removing an old partial export"))?;
    }
    let out = DataPaths {
        base: stage.clone(),
    };
    let mut report = MoveReport::default();
    copy_tree(&paths.user_root(user), &out.user_root(user), &mut report)?;
    copy_tree_but(
        &paths.user_state(user),
        &out.user_state(user),
        &STATE_LEFT_BEHIND,
        &mut report,
    )?;
    copy_revocations(paths, &out, user, &mut report)?;
    sync_dir(&stage)?;
    fs::rename(&stage, to).map_err(io_err("renaming the export into place"))?;
    if let Some(parent) = to.parent() {
        sync_dir(parent)?;
    }
    Ok(report)
}

/// Imports the one user of the export directory `from` into `paths`
/// (§16.3 step 2). Returns the user and what was copied.
///
/// # Errors
/// [`MoveError`]; the user is then left marked moving on the target (not
/// served) until an import succeeds.
pub fn import(paths: &DataPaths, from: &Path) -> Result<(UserId, MoveReport), MoveError> {
    let src = DataPaths {
        base: from.to_path_buf(),
    };
    let user = only_user(&src)?;
    if !src.user_state(&user).is_dir() {
        return Err(MoveError::NotAnExport(
            from.to_path_buf(),
            "no .cloudservice-server/<user>/",
        ));
    }
    let here = paths.user_state(&user).exists() || paths.user_root(&user).exists();
    if here && moves::marker(paths, &user) != Some(Away::Moved) {
        return Err(MoveError::AlreadyHere(user));
    }
    crate::private_dir::create_all(&paths.all_clients()).map_err(io_err("making AllClients/"))?;
    moves::set_marker(paths, &user, Some(Away::Moving)).map_err(io_err("writing the marker"))?;
    let _lock: Option<OwnerLock> = if paths.user_state(&user).is_dir() {
        Some(
            moves::own_within(paths, &user, Duration::from_secs(30))
                .map_err(io_err("waiting for the server to close the user's state"))?,
        )
    } else {
        None
    };
    let stage = paths.state_root().join(format!("import-{user}.partial"));
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io_err("removing an old partial import"))?;
    }
    let mut report = MoveReport::default();
    let (root, state) = (stage.join("root"), stage.join("state"));
    copy_tree(&src.user_root(&user), &root, &mut report)?;
    copy_tree(&src.user_state(&user), &state, &mut report)?;
    for old in [paths.user_root(&user), paths.user_state(&user)] {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_err("removing the user's old copy"))?;
        }
    }
    fs::rename(&state, paths.user_state(&user)).map_err(io_err("renaming the state in"))?;
    fs::rename(&root, paths.user_root(&user)).map_err(io_err("renaming the folder in"))?;
    let _ = fs::remove_dir(&stage);
    sync_dir(&paths.state_root())?;
    sync_dir(&paths.all_clients())?;
    replace_revocations(paths, &src, &user, &mut report)?;
    moves::set_marker(paths, &user, None).map_err(io_err("removing the marker"))?;
    Ok((user, report))
}

/// The one user ID named in `src`'s `AllClients/`.
fn only_user(src: &DataPaths) -> Result<UserId, MoveError> {
    let not = |why| MoveError::NotAnExport(src.base.clone(), why);
    let entries = fs::read_dir(src.all_clients()).map_err(|_| not("no AllClients/"))?;
    let mut users = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing AllClients/"))?;
        let user = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<UserId>().ok())
            .ok_or_else(|| not("AllClients/ holds something that is not a user ID"))?;
        users.push(user);
    }
    match users.as_slice() {
        [user] => Ok(*user),
        [] => Err(not("AllClients/ is empty")),
        _ => Err(not("AllClients/ holds more than one user")),
    }
}

/// Copies the user's revocation markers from `from` to `to`.
fn copy_revocations(
    from: &DataPaths,
    to: &DataPaths,
    user: &UserId,
    report: &mut MoveReport,
) -> Result<(), MoveError> {
    let revoked = devices::all_revoked(from).map_err(io_err("listing revocations"))?;
    let dir = devices::revoked_dir(to);
    for (u, id) in revoked.into_iter().filter(|(u, _)| u == user) {
        crate::private_dir::create_all(&dir).map_err(io_err("making revoked/"))?;
        let name = format!("{u}.{id}");
        copy_file(
            &devices::revoked_dir(from).join(&name),
            &dir.join(&name),
            report,
        )?;
    }
    Ok(())
}

/// Makes `paths`' revocations of `user` those of `src`.
fn replace_revocations(
    paths: &DataPaths,
    src: &DataPaths,
    user: &UserId,
    report: &mut MoveReport,
) -> Result<(), MoveError> {
    let old = devices::all_revoked(paths).map_err(io_err("listing revocations"))?;
    for (u, id) in old.into_iter().filter(|(u, _)| u == user) {
        fs::remove_file(devices::revoked_dir(paths).join(format!("{u}.{id}")))
            .map_err(io_err("removing an old revocation"))?;
    }
    copy_revocations(src, paths, user, report)
}

/// Copies the directory `from` to the new directory `to`: files with their
/// permissions and modification times, each fsynced.
fn copy_tree(from: &Path, to: &Path, report: &mut MoveReport) -> Result<(), MoveError> {
    copy_tree_but(from, to, &[], report)
}

/// The state directory's entries that stay behind: the owner lock (a new
/// one is made where the state lands) and uploads in progress.
const STATE_LEFT_BEHIND: [&str; 2] = ["owner.lock", "tmp"];

/// [`copy_tree`] leaving out the entries of `from` named in `skip`.
fn copy_tree_but(
    from: &Path,
    to: &Path,
    skip: &[&str],
    report: &mut MoveReport,
) -> Result<(), MoveError> {
    let walk = walkdir::WalkDir::new(from)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() != 1 || !e.file_name().to_str().is_some_and(|n| skip.contains(&n))
        });
    let mut dirs = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|e| {
            MoveError::Io(
                "walking the user's files",
                e.into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop")),
            )
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let dest = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            crate::private_dir::create_all(&dest).map_err(io_err("making a directory"))?;
            let mode = entry
                .metadata()
                .map_err(|e| io_err("reading a directory")(e.into()))?
                .permissions();
            fs::set_permissions(&dest, mode).map_err(io_err("setting a directory's mode"))?;
            dirs.push(dest);
        } else if kind.is_file() {
            copy_file(entry.path(), &dest, report)?;
        } else {
            return Err(MoveError::Symlink(entry.path().to_path_buf()));
        }
    }
    for dir in dirs.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Copies one file (content, permissions, modification time) and fsyncs it.
fn copy_file(from: &Path, to: &Path, report: &mut MoveReport) -> Result<(), MoveError> {
    let bytes = fs::copy(from, to).map_err(io_err("copying a file"))?;
    let modified = fs::metadata(from)
        .and_then(|m| m.modified())
        .map_err(io_err("reading a file's time"))?;
    // Read-only is enough for both (the owner may set the times).
    let file = File::open(to).map_err(io_err("opening a copied file"))?;
    file.set_modified(modified)
        .map_err(io_err("setting a file's time"))?;
    file.sync_all().map_err(io_err("syncing a copied file"))?;
    report.files += 1;
    report.bytes += bytes;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), MoveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing a directory"))
}

/// `path` with `suffix` added to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
