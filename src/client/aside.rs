//! Giving this device's entry the name the server chose for it in a conflict,
//! without ever replacing what the folder already holds under that name.
//!
//! Why this needs care: the server names a conflict copy after the device and
//! the second (`f (conflict 3 2026-11-30 211356).txt`), and so does the
//! applier when a pull meets a local edit. Within one second both can pick
//! the same name, and the applier's copy is not on the server yet, so the
//! server sees the name as free. A plain `rename(2)` of the acknowledged file
//! onto that name would silently destroy the unpushed copy (found by the
//! soak, seed 1795672392086381154, once pushes went out within milliseconds).
//! Here the occupant is first moved to a free name of its own (and reported,
//! so it gets pushed), then the entry is moved without replacing anything.

use super::error::ClientError;
use super::fsutil::{check_path, ensure_parent, hash_file, reach, Local};
use super::index::Index;
use super::rename::rename_noreplace;
use crate::protocol::conflict::free_conflict_path;
use crate::protocol::{ClientId, WirePath};
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// Moves the local `from` to `to` (the server's conflict name for it). When
/// `to` is taken locally, what is there is first moved to a free conflict
/// name of `to` for device `me`; that name is returned, to be pushed.
///
/// # Errors
/// [`ClientError::UnsafePath`] when `to` is behind a symlink or special file,
/// or no free name is found; I/O errors from linking or renaming. Nothing is
/// replaced or removed on error.
pub fn move_to_server_name(
    root: &Path,
    index: &Index,
    from: &WirePath,
    to: &WirePath,
    me: ClientId,
) -> Result<Option<WirePath>, ClientError> {
    if !matches!(check_path(root, from)?, Local::File(_) | Local::Dir) {
        return Err(ClientError::UnsafePath(format!(
            "{from} is not there to move"
        )));
    }
    let set_aside = match check_path(root, to)? {
        Local::Absent => None,
        Local::File(_) if same_content(root, from, to) => {
            // The server's copy of this very content, placed by a pull that
            // overtook the acknowledgement: replacing it loses nothing.
            let (src, dst) = (reach(root, from), reach(root, to));
            return fs::rename(&src, &dst)
                .map(|()| None)
                .map_err(|e| ClientError::io(format!("move {from} to {to}"), e));
        }
        Local::File(_) | Local::Dir => {
            let free = free_name(root, index, to, me)?;
            move_no_replace(root, to, &free)?;
            log::warn!("{to} was taken here by an unpushed entry; it is now {free}");
            Some(free)
        }
        Local::Foreign => return Err(ClientError::UnsafePath(to.to_string())),
    };
    ensure_parent(root, to)?;
    move_no_replace(root, from, to)?;
    Ok(set_aside)
}

/// Moves the local file `path` to a free conflict name next to it for
/// device `me` (the same directory, so the same file system: a rename),
/// replacing nothing; returns that name. For a file that is another file
/// system's copy ([`crate::client::mounts::joined`]), whose place the
/// server's version takes.
///
/// # Errors
/// As [`move_to_server_name`].
pub fn set_aside_as_copy(
    root: &Path,
    index: &Index,
    path: &WirePath,
    me: ClientId,
) -> Result<WirePath, ClientError> {
    let free = free_name(root, index, path, me)?;
    move_no_replace(root, path, &free)?;
    Ok(free)
}

/// True when `a` and `b` are regular files with the same content.
fn same_content(root: &Path, a: &WirePath, b: &WirePath) -> bool {
    match (hash_file(&reach(root, a)), hash_file(&reach(root, b))) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A conflict name next to `path` that neither the folder nor the index uses.
fn free_name(
    root: &Path,
    index: &Index,
    path: &WirePath,
    me: ClientId,
) -> Result<WirePath, ClientError> {
    let taken = |name: &WirePath| -> Result<bool, ClientError> {
        Ok(index.get(name).is_some() || check_path(root, name)? != Local::Absent)
    };
    free_conflict_path(path, me, SystemTime::now(), taken)?
        .ok_or_else(|| ClientError::UnsafePath(format!("no free conflict name for {path}")))
}

/// Renames `from` to `to` only if nothing is at `to`: a file by linking the
/// new name (which fails on an existing one) and then unlinking the old; a
/// directory by `rename(2)`, which cannot replace a file or a non-empty
/// directory.
fn move_no_replace(root: &Path, from: &WirePath, to: &WirePath) -> Result<(), ClientError> {
    let (src, dst) = (reach(root, from), reach(root, to));
    let what = |e: io::Error| ClientError::io(format!("move {from} to {to}"), e);
    match check_path(root, from)? {
        // renameat2(RENAME_NOREPLACE): atomic for files and directories alike.
        Local::File(_) | Local::Dir => rename_noreplace(&src, &dst).map_err(what),
        Local::Absent => Err(what(io::Error::from(io::ErrorKind::NotFound))),
        Local::Foreign => Err(ClientError::UnsafePath(from.to_string())),
    }
}

#[cfg(test)]
mod tests;
