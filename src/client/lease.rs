//! "Is any program holding this file open for writing right now?", asked
//! before the client deletes a file it judged to be the synced version.
//!
//! Checking the content is not enough: a program that opened the file before
//! the client moved it aside (a logger, an editor mid-save) can still write
//! into it after the check, and those bytes would vanish with the unlink. A
//! read lease (`fcntl(F_SETLEASE, F_RDLCK)`) is refused with `EAGAIN` exactly
//! when the file is open for writing anywhere; while it is held, a new
//! open-for-writing waits for the client to let go (it does so microseconds
//! later, when the file is deleted and the descriptor closed).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use libc::{fcntl, EAGAIN, F_GETLEASE, F_RDLCK, F_SETLEASE};

/// `F_SETSIG` (Linux; a GNU extension the libc crate does not export for glibc).
const F_SETSIG: libc::c_int = 10;

/// The lease-break notice goes to this signal, whose default action is to be
/// ignored (the default notice, SIGIO, would terminate the client).
const NOTICE_SIGNAL: libc::c_int = libc::SIGURG;

/// What [`writers`] found.
#[derive(Debug)]
pub enum Writers {
    /// Nobody has it open for writing, and nobody can start to while this
    /// descriptor is open (the lease is released when it is dropped).
    None(File),
    /// Some program has it open for writing.
    Some,
    /// Leases are not available here (another owner, a file system without
    /// them, `fs.leases-enable = 0`): only the content check protects a
    /// write made through a descriptor opened earlier.
    Unknown,
}

/// Looks for writers of the regular file at `path`.
///
/// # Errors
/// Opening the file.
pub fn writers(path: &Path) -> io::Result<Writers> {
    Ok(lease_on(File::open(path)?))
}

/// [`writers`] for a file this client already opened (for reading): the
/// read lease is taken on that descriptor, so the answer is about the inode
/// it holds whatever its path is now.
pub fn lease_on(file: File) -> Writers {
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is a valid descriptor owned by `file` for both calls;
    // fcntl with these commands takes an integer and retains nothing.
    let notice = unsafe { fcntl(fd, F_SETSIG, NOTICE_SIGNAL) };
    if notice != 0 {
        return Writers::Unknown;
    }
    // SAFETY: as above.
    if unsafe { fcntl(fd, F_SETLEASE, F_RDLCK) } == 0 {
        return Writers::None(file);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(EAGAIN) => Writers::Some,
        _ => Writers::Unknown,
    }
}

/// True while the read lease on `held` (the descriptor of
/// [`Writers::None`]) is whole: since it was taken, nobody opened the file
/// for writing or truncated it (either starts a break, during which
/// `F_GETLEASE` answers `F_UNLCK`; the opener waits for this client).
pub fn unbroken(held: &File) -> bool {
    // SAFETY: `held` owns a valid descriptor; F_GETLEASE takes no argument
    // and retains nothing.
    unsafe { fcntl(held.as_raw_fd(), F_GETLEASE) == F_RDLCK }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};

    #[test]
    fn an_open_writer_is_seen_and_a_reader_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let _reader = File::open(&f).unwrap();
        let free = writers(&f).unwrap();
        assert!(matches!(free, Writers::None(_)), "{free:?}");
        drop(free);
        let _writer = OpenOptions::new().append(true).open(&f).unwrap();
        assert!(matches!(writers(&f).unwrap(), Writers::Some));
    }

    /// A lease stays whole through a rename of its file and a reader, and
    /// is broken by an open for writing (from another thread: the opener
    /// waits until the lease is let go, then writes).
    #[test]
    fn a_lease_is_broken_by_a_writer_and_not_by_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let (f, g) = (dir.path().join("f"), dir.path().join("g"));
        fs::write(&f, "x").unwrap();
        let Writers::None(held) = writers(&f).unwrap() else {
            return; // no leases here: nothing to show
        };
        assert!(unbroken(&held));
        fs::rename(&f, &g).unwrap();
        let _reader = File::open(&g).unwrap();
        assert!(unbroken(&held), "a rename or a reader breaks nothing");
        let path = g.clone();
        let writer = std::thread::spawn(move || {
            let mut w = OpenOptions::new().append(true).open(&path).unwrap();
            std::io::Write::write_all(&mut w, b"y").unwrap();
        });
        let broken = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !unbroken(&held)
        });
        drop(held);
        writer.join().unwrap();
        assert!(broken, "an open for writing breaks the lease");
        assert_eq!(fs::read(&g).unwrap(), b"xy");
    }
}
