//! End-to-end: a path that one device reads through directory handles and
//! uploads is placed by a device whose folder's path is as long (outside
//! tester breaker21, F3). Two folders of equal length; a file whose path
//! inside the folder is 4,064 bytes in 16 components (4,115 with the
//! folder's): its directory is reachable by its whole path, the file only
//! through a handle on it. Before, A uploaded it and B never placed it
//! ("path too long here: ... bytes with the folder's path"), retried at
//! every pull. Placed, edited, renamed and deleted, both ways.
//!
//! A directory whose own whole path is too long is still not synced (the
//! scanner and the watcher take whole paths): A lists it under "not
//! synced" with why, and B does not get it (README "Long paths").

mod common;

use common::{eventually, new_user, status_json, watching_pair, Server, CONVERGE};
use rustix::fs::{mkdirat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The 15 directories (253 bytes each, told apart by their last two
/// characters), 3,810 bytes with their slashes.
fn long_dir() -> String {
    (1..=15)
        .map(|i| format!("{}{i:02}", "c".repeat(251)))
        .collect::<Vec<_>>()
        .join("/")
}

/// A file of `long_dir`: a 254-byte name starting with `tag`.
fn long_file(tag: &str) -> String {
    format!("{}/{tag}{}", long_dir(), "n".repeat(254 - tag.len()))
}

/// The directory handle of `dir` below `root` (created when `create`).
fn open_dir(root: &Path, dir: &str, create: bool) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut fd = openat(CWD, root, flags, Mode::empty()).ok()?;
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        if create {
            let _ = mkdirat(&fd, part, Mode::from_raw_mode(0o755));
        }
        fd = openat(&fd, part, flags, Mode::empty()).ok()?;
    }
    Some(fd)
}

fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// Reads `rel` below `root` through directory handles (no PATH_MAX).
fn read_deep(root: &Path, rel: &str) -> Option<Vec<u8>> {
    let (dir, name) = split(rel);
    let dir = open_dir(root, dir, false)?;
    let fd = openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut out = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Writes `bytes` over `rel` (created, with its directories) as an editor
/// that saves in place would.
fn write_deep(root: &Path, rel: &str, bytes: &[u8]) {
    let (dir, name) = split(rel);
    let dir = open_dir(root, dir, true).expect("open the directory");
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = openat(&dir, name, flags, Mode::from_raw_mode(0o644)).expect("open for writing");
    std::fs::File::from(fd).write_all(bytes).expect("write");
}

fn rename_deep(root: &Path, from: &str, to: &str) {
    let (dir, a) = split(from);
    let b = split(to).1;
    let dir = open_dir(root, dir, false).expect("open the directory");
    renameat(&dir, a, &dir, b).expect("rename");
}

fn unlink_deep(root: &Path, rel: &str) {
    let (dir, name) = split(rel);
    let dir = open_dir(root, dir, false).expect("open the directory");
    unlinkat(&dir, name, AtFlags::empty()).expect("unlink");
}

/// Waits until `folder` holds `want` at `rel` (`None`: nothing there).
fn arrives(folder: &Path, rel: &str, want: Option<&[u8]>, what: &str, log: &Path) {
    let ok = eventually(CONVERGE, || read_deep(folder, rel).as_deref() == want);
    assert!(
        ok,
        "{what}: {} has {:?} at the long path; its log:\n{}",
        folder.display(),
        read_deep(folder, rel).map(|b| String::from_utf8_lossy(&b).into_owned()),
        common::log_tail(log, 3000).replace(&"c".repeat(251), "C")
    );
}

/// Both folders in sync, nothing listed as not synced.
fn both_in_sync(a: &Path, b: &Path) {
    for folder in [a, b] {
        let ok = eventually(CONVERGE, || status_json(folder).0 == 0);
        let (code, v) = status_json(folder);
        assert!(ok, "{} not in sync: exit {code} {v:#}", folder.display());
    }
}

#[test]
fn long_paths_one_device_uploads_are_placed_by_another_as_long() {
    let server = Server::start();
    let base = tempfile::tempdir().expect("tempdir");
    // Two folder paths of 50 bytes.
    let pad = 50 - (base.path().as_os_str().len() + 1);
    let (a, b) = (
        base.path().join("A".repeat(pad)),
        base.path().join("B".repeat(pad)),
    );
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    let (log_a, log_b) = (base.path().join("a.log"), base.path().join("b.log"));
    let f1 = long_file("one");
    let f2 = long_file("two");
    assert_eq!(f1.split('/').count(), 16);
    let whole = a.as_os_str().len() + 1 + f1.len();
    let dir_whole = a.as_os_str().len() + 1 + long_dir().len();
    assert!(whole >= 4096 && dir_whole < 4096, "{whole} {dir_whole}");
    println!(
        "path inside the folder: {} bytes, {whole} with the folder's",
        f1.len()
    );

    write_deep(&a, &f1, b"one from A");
    let user = new_user(server.port, &a);
    let _clients = watching_pair(server.port, (&a, &log_a), (&b, &log_b), &user);

    // Placed: A → B (breaker21 F3: never, "path too long here"), B → A.
    arrives(&b, &f1, Some(b"one from A"), "A's file placed on B", &log_b);
    write_deep(&b, &f2, b"two from B");
    arrives(&a, &f2, Some(b"two from B"), "B's file placed on A", &log_a);
    both_in_sync(&a, &b);

    // Edited, each on the other device.
    write_deep(&b, &f1, b"one edited on B");
    arrives(&a, &f1, Some(b"one edited on B"), "B's edit on A", &log_a);
    write_deep(&a, &f2, b"two edited on A");
    arrives(&b, &f2, Some(b"two edited on A"), "A's edit on B", &log_b);

    // Renamed.
    let (r1, r2) = (long_file("one-renamed"), long_file("two-renamed"));
    rename_deep(&a, &f1, &r1);
    arrives(&b, &r1, Some(b"one edited on B"), "A's rename on B", &log_b);
    arrives(&b, &f1, None, "A's rename on B (old name)", &log_b);
    rename_deep(&b, &f2, &r2);
    arrives(&a, &r2, Some(b"two edited on A"), "B's rename on A", &log_a);
    arrives(&a, &f2, None, "B's rename on A (old name)", &log_a);
    both_in_sync(&a, &b);

    // Deleted.
    unlink_deep(&b, &r1);
    arrives(&a, &r1, None, "B's deletion on A", &log_a);
    unlink_deep(&a, &r2);
    arrives(&b, &r2, None, "A's deletion on B", &log_b);
    both_in_sync(&a, &b);
    for log in [&log_a, &log_b] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("could not apply"),
            "{}",
            common::log_tail(log, 3000)
        );
    }

    // A directory whose own path with the folder's is too long (breaker21
    // KLEN=240): not synced, said on A, absent on B.
    let deep_dir = format!("{}/{}", long_dir(), "k".repeat(240));
    assert!(a.as_os_str().len() + 1 + deep_dir.len() >= 4096);
    write_deep(&a, &format!("{deep_dir}/note.txt"), b"beyond");
    let ok = eventually(CONVERGE, || {
        let v = status_json(&a).1;
        v["not_synced"].as_array().is_some_and(|l| {
            l.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.starts_with(&format!("{deep_dir} (path too long here: ")))
            })
        })
    });
    let (code, v) = status_json(&a);
    assert!(ok, "A must list the directory: exit {code} {v:#}");
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(read_deep(&b, &format!("{deep_dir}/note.txt")), None);
    assert!(open_dir(&b, &deep_dir, false).is_none());
}
