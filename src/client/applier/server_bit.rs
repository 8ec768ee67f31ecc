//! The server's executable bit given to a local file (a mode change made
//! on another device, §15.2, [`crate::client::conflict::ModeDecision::Apply`]):
//! only to the file the decision was about, and only inside the folder
//!
//!
//! Why not `chmod(path)`: between the look that decided it and the chmod, a
//! program here can rename another file over the path, put a symlink where
//! a directory above it was, or move that directory out of the folder. A
//! chmod by path then gave the user's new file a bit nobody chose (pushed
//! with it at the next look) or changed a file outside the folder. So the
//! file is opened through its directory's handle, walked to without
//! following a symlink ([`fsafe::open_file_held`]), the handle's stat is
//! compared with the judged one ([`is_judged`]), the chmod is made through
//! the handle, and the directory is confirmed to be still in the folder.

use super::{Applied, Applier};
use crate::client::detect::same_file;
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, set_exec_of, Local, Stat};
use crate::fsafe::{self, FsError};
use crate::protocol::WirePath;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;

/// True when `now` (the stat of the file opened at the path) is the file
/// judged with `judged`: the same file ([`same_file`]: device, inode,
/// birth time, size, mtime) with the bit it had then. A bit changed here
/// since is the user's chmod: recorded against, and pushed.
pub(super) fn is_judged(judged: &Stat, now: &Stat) -> bool {
    same_file(judged, now) && judged.exec == now.exec
}

impl Applier<'_> {
    /// Gives the local file at `path`, judged with `stat`, the server's
    /// bit `exec`, through a handle on that very file; returns the stat to
    /// index. When the file is not the one judged any more (gone, replaced,
    /// behind a symlink, chmodded here, moved out of the folder with its
    /// directory), nothing is changed: the server's state is recorded (the
    /// judged stat with the server's bit) and the path marked, so the next
    /// look pushes what is there — its deletion, its content, its bit
    ///
    ///
    /// # Errors
    /// Opening, or changing the mode of, the file for another reason than
    /// its absence; looking at its directory again.
    pub(super) fn give_server_bit(
        &mut self,
        path: &WirePath,
        stat: Stat,
        exec: bool,
        out: &mut Applied,
    ) -> Result<Stat, ClientError> {
        let recorded = Stat { exec, ..stat };
        let root = self.root;
        let what = |e: FsError| {
            let at = path.to_local(root);
            let e = match e {
                FsError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            };
            ClientError::io(format!("set the mode of {}", at.display()), e)
        };
        self.before_step_at(path);
        let Some((dir, file)) = open_held(root, path).map_err(what)? else {
            out.dirty.insert(path.clone());
            return Ok(recorded);
        };
        let judged = file
            .metadata()
            .is_ok_and(|m| is_judged(&stat, &Stat::of(&m)));
        if !judged {
            log::info!("{path}: changed here since the mode change from elsewhere was decided; left as it is (compared and pushed)");
            out.dirty.insert(path.clone());
            return Ok(recorded);
        }
        // The tests' writer, with the file opened.
        self.before_step_at(path);
        set_exec_of(&file, exec).map_err(|e| what(FsError::Io(e)))?;
        let parents: Vec<&str> = path.components().collect();
        let parents = &parents[..parents.len().saturating_sub(1)];
        if !fsafe::walk::still_at(root, parents, &dir, path).map_err(what)? {
            // Moved out of the folder with its directory meanwhile
            // nothing changed outside the folder.
            if let Err(e) = set_exec_of(&file, stat.exec) {
                log::warn!("{path}: could not give the bit back in the directory moved out of the folder: {e}");
            }
            out.dirty.insert(path.clone());
            return Ok(recorded);
        }
        out.changed += 1;
        let now = file.metadata().map(|m| Stat::of(&m));
        match (now, check_path(root, path)?) {
            (Ok(now), Local::File(at)) if same_file(&now, &at) => Ok(at),
            _ => {
                out.dirty.insert(path.clone());
                Ok(recorded)
            }
        }
    }
}

/// [`fsafe::open_file_held`], with every way of the file not being
/// reachable as a regular file at `path` (nothing, a symlink at or above
/// it, a file where a directory above it was) as `None`.
fn open_held(
    root: &std::path::Path,
    path: &WirePath,
) -> Result<Option<(OwnedFd, fs::File)>, FsError> {
    match fsafe::open_file_held(root, path) {
        Ok(opened) => Ok(opened),
        Err(FsError::Unsafe(_) | FsError::NotADirectory(_)) => Ok(None),
        Err(FsError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, mtime_ns: i64, exec: bool) -> Stat {
        Stat {
            size: 3,
            mtime_ns,
            dev: 1,
            ino,
            exec,
            btime_ns: 7,
            ..Stat::default()
        }
    }

    #[test]
    fn only_the_file_judged_with_its_bit_takes_the_servers() {
        let judged = stat(5, 100, false);
        assert!(is_judged(&judged, &judged));
        let ctime = Stat {
            ctime_ns: 9,
            ..judged
        };
        assert!(is_judged(&judged, &ctime), "the ctime alone says nothing");
        assert!(!is_judged(&judged, &stat(6, 100, false)), "renamed over");
        assert!(!is_judged(&judged, &stat(5, 101, false)), "written");
        assert!(!is_judged(&judged, &stat(5, 100, true)), "chmodded here");
        let reborn = Stat {
            btime_ns: 8,
            ..judged
        };
        assert!(!is_judged(&judged, &reborn), "a new file, same inode");
    }
}
