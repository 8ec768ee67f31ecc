//! Room kept in reserve on the folder's disk, given up for the steps that
//! free room (PROTOCOL.md; outside tester breaker27 F1).
//!
//! Why: a removal or rename the server asks for writes a little before it
//! frees anything: a record in the removal log and an origin
//! note beside the file set aside in the temporary area (a new file: an
//! inode and a block). On a disk with no free block or no free inode those
//! writes failed, so the deletions that would have freed the disk were never
//! made, at every pull, for good; the disk the sync itself filled stayed full.
//!
//! How: `.cloudservice/spare/` holds [`SPARE_BYTES`] of allocated blocks
//! (`bytes`) and [`SPARE_INODES`] files, made while there is room
//! ([`ensure`], at start and after each index save). A removal step whose
//! note or record meets a full disk gives the spare up ([`with_room`]) and
//! tries once more; the removals then free space as they go (each file
//! removed frees at least the block and inode a note takes), and the spare
//! is made again once the index is saved. A reserve given up whole is
//! simpler and covers every write such a step needs (the log, the note,
//! and the index save that follows), where reserving each file's space
//! in advance (`fallocate` past its end, as the status file does) covers
//! only the bytes of files that already exist, not an inode for a new note.
//! Chosen over "remove without the note when it cannot be written": the
//! note is what keeps a write made in the step's window from being lost
//! (the temporary area is cleared at start of what no note names).
//!
//! Limits: downloads never take the spare (a download that does not fit
//! waits, R-5.6.8), so only removals use it; a disk another program fills
//! again at once takes the freed room too, and the removal waits for the
//! next pull as before.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The spare's directory in the state folder.
pub const SPARE_DIR: &str = "spare";
/// Bytes the spare holds: a removal log record is about 100 bytes and a
/// note one block, so this covers a couple of thousand removals before any
/// of them has freed a block (each removed file frees one).
pub const SPARE_BYTES: u64 = 256 * 1024;
/// Inodes the spare holds (its files, `bytes` and `ready` among them): the
/// log itself, a note, and a few directories a rename may have to make.
pub const SPARE_INODES: usize = 8;
/// The file made last: the spare is whole when it exists.
const READY: &str = "ready";

/// The spare's directory for the state folder `state`.
pub fn dir(state: &Path) -> PathBuf {
    state.join(SPARE_DIR)
}

/// Makes the spare in `state` when it is not there whole; `Ok(true)` when
/// made now. A spare that cannot be made whole (the disk is full) is
/// removed again, so a half-made one never holds room nobody can use.
///
/// # Errors
/// Making it (typically: no room); nothing is left behind then.
pub fn ensure(state: &Path) -> io::Result<bool> {
    let dir = dir(state);
    if dir.join(READY).exists() {
        return Ok(false);
    }
    let made = (|| {
        // 0700 whatever the umask, as every directory of the state folder
        // (README "Device keys"; e2e_tls's umask 000 test).
        match crate::private_dir::create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let bytes = fs::File::create(dir.join("bytes"))?;
        allocate(&bytes, SPARE_BYTES)?;
        for i in 0..SPARE_INODES - 2 {
            fs::File::create(dir.join(format!("i{i}")))?;
        }
        fs::File::create(dir.join(READY))?;
        Ok(())
    })();
    match made {
        Ok(()) => Ok(true),
        Err(e) => {
            release(state);
            Err(e)
        }
    }
}

/// [`ensure`] for the session (at start, after each index save): no room
/// for the spare is not an error, the next index save tries again.
pub fn make(state: &Path) {
    match ensure(state) {
        Ok(true) => log::debug!("made the spare room in {}", dir(state).display()),
        Ok(false) => {}
        Err(e) => log::debug!("no spare room kept in {} yet: {e}", dir(state).display()),
    }
}

/// Allocates `len` bytes of blocks for `file` (written with zeros where
/// the file system has no `fallocate`).
fn allocate(file: &fs::File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            let zeros = vec![0u8; 64 * 1024];
            let mut file = file;
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_data()
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives the spare in `state` up (removes it); true when there was one to
/// free.
pub fn release(state: &Path) -> bool {
    let dir = dir(state);
    let Ok(entries) = fs::read_dir(&dir) else {
        return false;
    };
    let mut freed = false;
    for entry in entries.flatten() {
        freed |= fs::remove_file(entry.path()).is_ok();
    }
    freed |= fs::remove_dir(&dir).is_ok();
    freed
}

/// Runs `step`; when it fails for want of room (`ENOSPC`, `EDQUOT`) and
/// `state` held a spare, gives the spare up and runs it once more. Only for
/// steps that free room (see the module comment).
///
/// # Errors
/// `step`'s error.
pub fn with_room<T, E>(
    state: &Path,
    is_no_space: impl Fn(&E) -> bool,
    mut step: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    match step() {
        Err(e) if is_no_space(&e) && release(state) => {
            log::info!(
                "the disk is full: gave up the space kept in reserve in {} so that the \
                 server's removals can be made (made again once there is room)",
                dir(state).display()
            );
            step()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_whole_released_then_made_again() {
        let state = tempfile::tempdir().expect("temp dir");
        assert!(ensure(state.path()).expect("made"));
        assert!(!ensure(state.path()).expect("there"), "made only once");
        let files = fs::read_dir(dir(state.path())).expect("list").count();
        assert_eq!(files, SPARE_INODES);
        let bytes = fs::metadata(dir(state.path()).join("bytes")).expect("bytes");
        assert_eq!(bytes.len(), SPARE_BYTES);
        assert!(release(state.path()));
        assert!(!dir(state.path()).exists());
        assert!(!release(state.path()), "nothing left to give");
        assert!(ensure(state.path()).expect("made again"));
    }

    #[test]
    fn a_step_short_of_room_is_run_again_once_after_the_spare_is_given_up() {
        let state = tempfile::tempdir().expect("temp dir");
        let full = || io::Error::from(io::ErrorKind::StorageFull);
        let no_space = |e: &io::Error| e.kind() == io::ErrorKind::StorageFull;
        // Without a spare: the step's error, one try.
        let mut tries = 0;
        let r: io::Result<()> = with_room(state.path(), no_space, || {
            tries += 1;
            Err(full())
        });
        assert!(r.is_err());
        assert_eq!(tries, 1);
        // With one: given up, then the second try passes.
        ensure(state.path()).expect("made");
        let mut tries = 0;
        let r = with_room(state.path(), no_space, || {
            tries += 1;
            if tries == 1 {
                Err(full())
            } else {
                Ok(7)
            }
        });
        assert_eq!(r.expect("second try"), 7);
        assert!(!dir(state.path()).exists(), "given up");
        // Another error keeps the spare.
        ensure(state.path()).expect("made");
        let r: io::Result<()> = with_room(state.path(), no_space, || {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        });
        assert!(r.is_err());
        assert!(dir(state.path()).join(READY).exists());
    }
}
