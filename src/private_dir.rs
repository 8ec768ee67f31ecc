//! Directories only their owner may enter, made the same way by every part
//! of the server and its operator commands (README "The data directory is
//! private"): the data directory, `AllClients/` and `.cloudservice-server/`
//! with everything the server keeps for a user, `tls/`, and the
//! directories `export --to`, `import` and `restore` write; and by the
//! client, its `FOLDER/.cloudservice/` with `tmp/`, `partial/`,
//! `streaming/` and a drive's staging directory (README "Device keys"). Each directory
//! made here is mode 0700 whatever the umask (a umask of 000 would leave
//! `DirBuilder`'s 0777 default open to all, and one of 0277 would take the
//! owner's own write bit): the mode is asked for at `mkdir` and then set
//! again with `chmod`. A directory that exists already keeps its mode (an
//! operator may have opened one to a backup group on purpose; the server
//! names it at start, [`crate::server::data_dir::warning`]).

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The mode of every directory made here.
pub const MODE: u32 = 0o700;

/// Makes the directory `path` (its parent must exist) with mode 0700.
///
/// # Errors
/// `path` exists ([`io::ErrorKind::AlreadyExists`]); making it or setting
/// its mode.
pub fn create(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(MODE).create(path)?;
    fs::set_permissions(path, Permissions::from_mode(MODE))
}

/// Makes `path` and each missing directory above it, each with mode 0700;
/// directories that exist are left as they are.
///
/// # Errors
/// Something in the way that is not a directory; making one or setting
/// its mode.
pub fn create_all(path: &Path) -> io::Result<()> {
    // The missing part of the path, deepest first. Bounded by the number of
    // components of `path`.
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty()) {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", dir.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(dir),
            Err(e) => return Err(e),
        }
        at = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        match create(dir) {
            // Another thread or process made it meanwhile: its maker set
            // the mode.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn every_directory_made_is_0700_and_existing_ones_keep_their_mode() {
        let base = tempfile::tempdir().expect("tempdir");
        let open = base.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, Permissions::from_mode(0o755)).expect("chmod");
        let deep = open.join("a/b/c");
        create_all(&deep).expect("create_all");
        for dir in [open.join("a"), open.join("a/b"), deep.clone()] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(mode(&open), 0o755, "an existing directory is left alone");
        create_all(&deep).expect("again: nothing to do");
        fs::write(open.join("file"), b"x").expect("file");
        assert!(create_all(&open.join("file/sub")).is_err());
        assert!(create(&deep).is_err(), "create wants a new directory");
    }
}
