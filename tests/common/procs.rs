//! Process and folder primitives shared by every end-to-end test crate:
//! signals by PID, bounded waits, free ports, and folders read by content.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for a server).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Sends a signal by PID.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Signals a child by its PID, unless it has already been reaped (its PID
/// could then belong to another process; an exited but unreaped child keeps it).
pub fn signal_unreaped(child: &mut Child, name: &str) {
    if matches!(child.try_wait(), Ok(None)) {
        signal(child.id(), name);
    }
}

/// Waits for a process with a deadline.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A folder by content: path → `None` for a directory, the bytes for a file.
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// Reads a folder as a [`Tree`]: directories and regular files (symlinks and
/// special files are not synced, so they are left out), and not the client's
/// top-level state folder.
pub fn tree(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(root).min_depth(1).into_iter();
    for item in walk.filter_entry(|e| e.file_name() != ".cloudservice" || e.depth() != 1) {
        let Ok(item) = item else { continue };
        let rel = item
            .path()
            .strip_prefix(root)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        if item.file_type().is_dir() {
            out.insert(rel, None);
        } else if item.file_type().is_file() {
            if let Ok(bytes) = std::fs::read(item.path()) {
                out.insert(rel, Some(bytes));
            }
        }
    }
    out
}

/// Writes `data` at `path` below `root`, creating parent directories.
pub fn write(root: &Path, path: &str, data: impl AsRef<[u8]>) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
    std::fs::write(full, data).expect("write");
}
