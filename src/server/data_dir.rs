//! The data directory's own parts (README "Running a server"): the users'
//! folders (`AllClients/`), the server's state (`.cloudservice-server/`)
//! and `connectionLog.txt` hold every user's files and user ID, and a user
//! ID lets a device join while its user has no join code. [`prepare`] makes
//! the two directories 0700 and the log 0600 whatever the umask; on an
//! existing data directory it changes no mode (an operator may have opened
//! one to a backup group on purpose) but returns, for one warning at start,
//! each part readable by others with the `chmod` that closes it.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the connection log in the data directory.
pub const CONN_LOG: &str = "connectionLog.txt";
/// Mode of the directories [`prepare`] makes.
pub const DIR_MODE: u32 = crate::private_dir::MODE;
/// Mode of `connectionLog.txt` when the server makes it.
pub const LOG_MODE: u32 = 0o600;

/// One part of the data directory that others may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits (`0o755`).
    pub mode: u32,
    /// The mode it should have (`0o700`, `0o600`).
    pub wanted: u32,
}

impl Exposed {
    /// The command that closes it, e.g. `chmod 700 /srv/cloud/AllClients`.
    pub fn chmod(&self) -> String {
        format!("chmod {:o} {}", self.wanted, self.path.display())
    }
}

/// Makes `dir`/AllClients/ and `dir`/.cloudservice-server/ (mode 0700,
/// with `dir` itself when missing) and `dir`/connectionLog.txt (0600) when
/// absent; returns the parts that exist with group or other permission
/// bits (`mode & 0o077 != 0`), in that order, unchanged.
///
/// # Errors
/// Making a directory or the log file, or examining one.
pub fn prepare(dir: &Path, all_clients: &Path, state_root: &Path) -> io::Result<Vec<Exposed>> {
    let mut exposed = Vec::new();
    for sub in [all_clients, state_root] {
        crate::private_dir::create_all(sub)?;
        note(sub, DIR_MODE, &mut exposed)?;
    }
    let log = dir.join(CONN_LOG);
    create_log(&log)?;
    note(&log, LOG_MODE, &mut exposed)?;
    Ok(exposed)
}

/// Creates `path` with mode 0600 unless it exists (then untouched), so the
/// connection log never starts readable by others, at start or after a
/// rotation (the log writer then opens it for appending).
///
/// # Errors
/// Opening or creating it.
pub fn create_log(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_MODE)
        .open(path)
        .map(drop)
}

fn note(path: &Path, wanted: u32, exposed: &mut Vec<Exposed>) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        exposed.push(Exposed {
            path: path.to_path_buf(),
            mode,
            wanted,
        });
    }
    Ok(())
}

/// The one warning for [`prepare`]'s findings, `None` when there are none.
pub fn warning(exposed: &[Exposed]) -> Option<String> {
    if exposed.is_empty() {
        return None;
    }
    let parts: Vec<String> = exposed
        .iter()
        .map(|e| format!("{} ({:o})", e.path.display(), e.mode))
        .collect();
    let fix: Vec<String> = exposed.iter().map(Exposed::chmod).collect();
    Some(format!(
        "other local users can read the data directory's {}: every user's files and IDs; \
         left as they are, to close them run: {}",
        parts.join(", "),
        fix.join(" && ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_directory_is_private_and_an_open_one_is_named_not_changed() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data");
        let (ac, st) = (dir.join("AllClients"), dir.join(".cloudservice-server"));
        // Whatever the umask: the modes are asked for, and 0700/0600 lose nothing to 022 or 077.
        assert_eq!(prepare(&dir, &ac, &st).unwrap(), Vec::new());
        assert_eq!(mode(&ac), 0o700);
        assert_eq!(mode(&st), 0o700);
        assert_eq!(mode(&dir.join(CONN_LOG)), 0o600);
        assert_eq!(warning(&[]), None);
        std::fs::set_permissions(&ac, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(CONN_LOG), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let found = prepare(&dir, &ac, &st).unwrap();
        assert_eq!(
            found,
            vec![
                Exposed {
                    path: ac.clone(),
                    mode: 0o755,
                    wanted: 0o700
                },
                Exposed {
                    path: dir.join(CONN_LOG),
                    mode: 0o640,
                    wanted: 0o600
                },
            ]
        );
        assert_eq!(mode(&ac), 0o755, "an operator's mode is left alone");
        let text = warning(&found).unwrap();
        assert!(
            text.contains(&format!("chmod 700 {}", ac.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("chmod 600 {}", dir.join(CONN_LOG).display())),
            "{text}"
        );
    }
}
