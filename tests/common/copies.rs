//! A synced folder and copies of it made with its `.cloudservice` state
//! (PROTOCOL.md a copy is a new device, R-4.6.13 one live
//! connection per device): `cp -a`, as a user copies a folder.

use super::{new_user, write};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A new user's folder `TOP/D` (through `TOP`'s canonical path, as the
/// origin record holds it) with `files` (path, content), uploaded once to
/// the server on `port`: (the folder, the user ID). The files are written
/// 350 ms before the upload, out of the racy-timestamp window.
pub fn synced_folder(top: &Path, port: u16, files: &[(&str, &str)]) -> (PathBuf, String) {
    let d = top.canonicalize().expect("canonical temp dir").join("D");
    fs::create_dir(&d).expect("mkdir D");
    for (path, content) in files {
        write(&d, path, content);
    }
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(port, &d);
    (d, user)
}

/// `cp -a FROM TO`: the folder with its state, inode numbers new.
pub fn copy_folder(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// The client ID in `FOLDER/.cloudservice/identity`.
pub fn device_of(folder: &Path) -> u64 {
    let text = fs::read_to_string(folder.join(".cloudservice/identity")).expect("identity");
    text.lines()
        .find_map(|l| l.strip_prefix("client "))
        .and_then(|n| n.parse().ok())
        .expect("client line")
}
