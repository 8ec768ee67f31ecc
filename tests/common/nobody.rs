//! Running a client as the unprivileged user `nobody` (through `setpriv`),
//! for tests of what a permission stops: root reads and writes anywhere, so
//! only another user meets a read-only directory or an unreadable file.

use std::path::Path;
use std::process::Command;

/// Why a client cannot be run as `nobody` here, if it cannot (not root, or
/// no `setpriv`): the test prints it and skips.
pub fn cannot_run_as_nobody() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    if !uid.is_ok_and(|u| u.trim_ascii() == b"0") {
        return Some("not root: cannot run the client as another user".into());
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("no setpriv".into()),
    }
}

/// `chown -R nobody:nogroup path`.
pub fn give_to_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(
        status.success(),
        "chown -R nobody:nogroup {}",
        path.display()
    );
}

/// `plain` (a client's command line) run as `nobody:nogroup` with no
/// supplementary groups.
pub fn as_nobody(plain: &Command) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(plain.get_program())
        .args(plain.get_args());
    cmd
}
