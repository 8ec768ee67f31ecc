//! A copy of a directory tree as `cp -a` makes it, for `cloud-server
//! restore` ([`super::restore_backup`]): directories, regular files and
//! symbolic links with their permission bits and modification times, and
//! hard links kept as links (the kept versions are hard links to the
//! files they were, so copying them apart could double the space). Any
//! other kind of file (a device, a FIFO, a socket) is an error: a data
//! directory holds none. Walked with a stack, not recursion, so a deep
//! tree cannot exhaust the thread's stack.

use std::collections::HashMap;
use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a copy copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Regular files (a hard link counted once).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Copies the tree at `from` to `to`, which must not exist yet.
///
/// # Errors
/// Reading the source or writing the copy, naming the path; a special file.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<Copied> {
    let named = |p: &Path| {
        let p = p.to_path_buf();
        move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    let mut copied = Copied::default();
    // (dev, inode) of a source file with several links -> its copy.
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Directories get their times once everything inside them is written.
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        let meta = fs::symlink_metadata(&src).map_err(named(&src))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            // Its own mode comes last: a read-only one would refuse the
            // entries still to be made in it.
            crate::private_dir::create(&dst).map_err(named(&dst))?;
            for entry in fs::read_dir(&src).map_err(named(&src))? {
                let name = entry.map_err(named(&src))?.file_name();
                stack.push((src.join(&name), dst.join(&name)));
            }
            dirs.push((dst, meta));
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(named(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(named(&dst))?;
        } else if kind.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = linked.get(&key) {
                    fs::hard_link(first, &dst).map_err(named(&dst))?;
                    continue;
                }
            }
            fs::copy(&src, &dst).map_err(named(&dst))?;
            // Read-only is enough for the owner to set modes and times, and
            // to sync; the copy may be a read-only file.
            let file = File::open(&dst).map_err(named(&dst))?;
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(named(&dst))?;
            file.set_times(times(&meta)).map_err(named(&dst))?;
            // On disk before the copy replaces the data directory.
            file.sync_all().map_err(named(&dst))?;
            copied.files += 1;
            copied.bytes += meta.len();
            if meta.nlink() > 1 {
                linked.insert(key, dst);
            }
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a file, directory or symbolic link", src.display()),
            ));
        }
    }
    // Deepest first: a directory's mode and times after its children's.
    for (dir, meta) in dirs.iter().rev() {
        File::open(dir)
            .and_then(|d| {
                d.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                d.set_times(times(meta))
            })
            .map_err(named(dir))?;
    }
    Ok(copied)
}

fn times(meta: &fs::Metadata) -> FileTimes {
    let mut times = FileTimes::new();
    if let Ok(t) = meta.modified() {
        times = times.set_modified(t);
    }
    if let Ok(t) = meta.accessed() {
        times = times.set_accessed(t);
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_times_links_and_symlinks_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::write(src.join("a/b/f"), b"hello").unwrap();
        fs::set_permissions(src.join("a/b/f"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::hard_link(src.join("a/b/f"), src.join("a/g")).unwrap();
        std::os::unix::fs::symlink("b/f", src.join("a/link")).unwrap();
        // A read-only directory with entries: its mode is set last.
        fs::set_permissions(src.join("a/b"), fs::Permissions::from_mode(0o500)).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        File::options()
            .write(true)
            .open(src.join("a/b/f"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        File::open(src.join("a"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let dst = dir.path().join("dst");
        let copied = copy_tree(&src, &dst).unwrap();
        assert_eq!(copied, Copied { files: 1, bytes: 5 });
        let f = fs::metadata(dst.join("a/b/f")).unwrap();
        assert_eq!(fs::read(dst.join("a/g")).unwrap(), b"hello");
        assert_eq!(f.nlink(), 2, "the hard link stays a link");
        assert_eq!(f.mode() & 0o777, 0o751);
        assert_eq!(f.modified().unwrap(), old);
        let a = fs::metadata(dst.join("a")).unwrap();
        assert_eq!(a.modified().unwrap(), old);
        let b = fs::metadata(dst.join("a/b")).unwrap();
        assert_eq!(b.mode() & 0o777, 0o500);
        assert_eq!(fs::read_link(dst.join("a/link")).unwrap(), Path::new("b/f"));
        assert!(copy_tree(&src, &dst).is_err(), "the target must not exist");
    }
}
