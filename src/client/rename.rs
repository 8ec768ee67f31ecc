//! Atomic renames for placing and removing files while the user may be
//! writing: `renameat2` with `RENAME_NOREPLACE` (never clobber what appeared)
//! and `RENAME_EXCHANGE` (swap, then look at what was swapped out).
//!
//! A plain `rename(2)` over a path silently destroys whatever a concurrent
//! writer put there between our check and the rename; these two flags close
//! that window. Some file systems (older NFS, FUSE, overlay on old kernels)
//! answer `EINVAL` or `ENOSYS`; the fallbacks below are documented with the
//! guarantee they lose.

use rustix::fs::{renameat_with, RenameFlags, CWD};
use rustix::io::Errno;
use std::fs;
use std::io;
use std::path::Path;

/// True for the answers meaning "this file system or kernel cannot do it".
fn unsupported(e: Errno) -> bool {
    e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP
}

/// Moves `from` to `to` only if `to` does not exist.
///
/// # Errors
/// [`io::ErrorKind::AlreadyExists`] when something is at `to` (it is left
/// untouched, and so is `from`); any other rename error.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if unsupported(e) => noreplace_fallback(from, to),
        Err(e) => Err(e.into()),
    }
}

/// Without `RENAME_NOREPLACE`: for a regular file, `link(2)` + `unlink(2)`,
/// which is just as safe against clobbering (`link` fails atomically when
/// `to` exists) but leaves both names for an instant (and after a crash in
/// between: the one in the state folder's temporary area is cleaned at the
/// next start). For anything else, or where hard links are refused too, a
/// check then a plain rename: a file created at `to` between the two is
/// replaced, the one guarantee that is weaker there.
fn noreplace_fallback(from: &Path, to: &Path) -> io::Result<()> {
    if fs::symlink_metadata(from)?.file_type().is_file() {
        match fs::hard_link(from, to) {
            Ok(()) => return fs::remove_file(from),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {}
        }
    }
    match fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(from, to),
        Err(e) => Err(e),
    }
}

/// Swaps `a` and `b` atomically (both must exist). Returns `false` when the
/// file system cannot exchange; the caller then moves `b` aside and uses
/// [`rename_noreplace`] instead, which is as safe for the user's data but
/// leaves the path empty for an instant (a reader may see it missing).
///
/// # Errors
/// Any rename error other than "not supported" (`NotFound` when either side
/// vanished).
pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if unsupported(e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreplace_never_clobbers_and_exchange_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&b).unwrap(), "B");
        assert_eq!(fs::read_to_string(&a).unwrap(), "A");
        assert!(exchange(&a, &b).unwrap());
        assert_eq!(fs::read_to_string(&a).unwrap(), "B");
        assert_eq!(fs::read_to_string(&b).unwrap(), "A");
        rename_noreplace(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&c).unwrap(), "B");
        assert!(exchange(&a, &b).is_err());
    }

    #[test]
    fn fallback_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        let err = noreplace_fallback(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&b).unwrap(), "B");
        noreplace_fallback(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&c).unwrap(), "A");
    }
}
