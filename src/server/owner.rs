//! Who the operator's commands run as. `cloud-server rotate-join`,
//! `invite`, `revoke`, `reinstate`, `export`, `import` … run by root
//! against a data directory that belongs to another user (deploy/systemd
//! runs the server as `cloudservice`) first become that user, as
//! `sudo -u cloudservice cloud-server …` would: every file they make then
//! belongs to the server's user, which can read it (a root-owned 0600
//! `join_code` refused every new join of that user), and root never writes
//! through a path the server's user could have replaced by a symlink.
//! Run by anyone else, nothing changes.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a command could not become the data directory's owner.
#[derive(Debug)]
pub enum OwnerError {
    /// The data directory could not be examined.
    Stat(PathBuf, io::Error),
    /// `setgroups`, `setgid` or `setuid` failed.
    Switch(u32, &'static str, io::Error),
}

impl fmt::Display for OwnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerError::Stat(p, e) => write!(f, "{}: {e}", p.display()),
            OwnerError::Switch(uid, call, e) => write!(
                f,
                "cannot become the data directory's owner (uid {uid}): {call}: {e}; \
                 run the command as that user (sudo -u USER cloud-server ...)"
            ),
        }
    }
}

impl std::error::Error for OwnerError {}

/// Whether this process runs as root (effective user ID 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// When running as root and `data_dir` belongs to another user, becomes
/// that user (its group, no supplementary groups) for the rest of the
/// process; returns the user ID taken. Otherwise does nothing (`None`): a
/// data directory owned by root, or a command run by its owner or anyone
/// else, keeps the caller's identity (and its permissions decide).
///
/// # Errors
/// [`OwnerError::Stat`] when `data_dir` cannot be examined (a missing data
/// directory: the command's own check names it), [`OwnerError::Switch`]
/// when the switch fails (the process is then unchanged or exits).
pub fn become_owner_of(data_dir: &Path) -> Result<Option<u32>, OwnerError> {
    if !is_root() {
        return Ok(None);
    }
    let meta = match std::fs::metadata(data_dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OwnerError::Stat(data_dir.to_path_buf(), e)),
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 {
        return Ok(None);
    }
    let check = |rc: libc::c_int, call: &'static str| {
        if rc == 0 {
            Ok(())
        } else {
            Err(OwnerError::Switch(uid, call, io::Error::last_os_error()))
        }
    };
    // SAFETY: plain system calls on integers; a null list with length 0
    // is setgroups' documented way to drop every supplementary group.
    // Group first: once the user ID is not root, the group cannot change.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setgid(gid), "setgid")?;
        check(libc::setuid(uid), "setuid")?;
    }
    Ok(Some(uid))
}
