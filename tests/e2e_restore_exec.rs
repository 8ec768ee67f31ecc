//! End-to-end: a restore brings back content and executable bit as ONE
//! change (PROTOCOL.md §14.3, R-14.3.6; outside tester breaker10's finding
//! 4: restoring a deleted executable file made two changes, the content
//! without the bit and then the bit, and kept the intermediate
//! non-executable state as an "overwritten" version the file never had).
//! With the real binaries: the restore's change number is the one right
//! after the restored number (nothing else changes meanwhile), `versions`
//! lists exactly what it listed before plus the state the restore
//! replaced, and a second device ends with the restored content and bit
//! and never shows the restored content with the other bit.

mod common;

use common::{chmod, cli, eventually, new_user, write, Client, Server, CONVERGE};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Waits until `check` holds, failing with `what`.
fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

/// `versions FOLDER PATH` as (number, cause, size, path) rows.
fn versions(port: u16, folder: &Path, under: &str) -> Vec<(u64, String, String, String)> {
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(port, &["versions", dir, under]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 5).then(|| {
                let n = w[0].parse().expect("number");
                (n, w[2].to_owned(), w[3].to_owned(), w[4].to_owned())
            })
        })
        .collect()
}

/// The number of the last `cause` row for `path`.
fn last_number(rows: &[(u64, String, String, String)], cause: &str, path: &str) -> u64 {
    rows.iter()
        .rev()
        .find(|r| r.1 == cause && r.3 == path)
        .map(|r| r.0)
        .unwrap_or_else(|| panic!("no {cause} {path} in {rows:?}"))
}

/// Restores and returns the change number the answer names
/// (`… at PATH as change M (Applied)`).
fn restore(port: u16, folder: &Path, path: &str, n: u64) -> u64 {
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(port, &["restore", dir, path, "--version", &n.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(Applied)"), "{out}");
    let after = out.split(" as change ").nth(1).expect("a change number");
    after
        .split_whitespace()
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no change number in {out}"))
}

/// (content, executable) of a file, if it is there.
fn state(path: &Path) -> Option<(String, bool)> {
    let content = std::fs::read_to_string(path).ok()?;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    Some((content, mode & 0o100 != 0))
}

/// Polls `path` on a device until it has `want`, failing if it ever shows
/// the wanted content with the other bit (an intermediate state).
fn arrives_without_intermediate(path: &Path, want: (&str, bool)) {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        match state(path) {
            Some((c, x)) if c == want.0 && x == want.1 => return,
            Some((c, x)) if c == want.0 => {
                panic!("{} showed the restored content with x={x}", path.display())
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never became {want:?}: {:?}",
            path.display(),
            state(path)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_restore_brings_content_and_bit_back_as_one_change() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "keep.txt", "anchor");
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let on_server = server.user_dir(&user);
    let port = server.port;
    let folder = a.path();

    // 1. The tester's steps: an executable file, deleted, restored.
    write(folder, "s.sh", "#!/bin/sh\necho s\n");
    chmod(&folder.join("s.sh"), 0o755);
    wait_for("s.sh executable on B", || {
        state(&b.path().join("s.sh")) == Some(("#!/bin/sh\necho s\n".into(), true))
    });
    std::fs::remove_file(folder.join("s.sh")).expect("rm");
    wait_for("s.sh deleted on B", || !b.path().join("s.sh").exists());
    let before = versions(port, folder, "s.sh");
    let n = last_number(&before, "deleted", "s.sh");
    let m = restore(port, folder, "s.sh", n);
    assert_eq!(m, n + 1, "one change: {:?}", versions(port, folder, "s.sh"));
    arrives_without_intermediate(&b.path().join("s.sh"), ("#!/bin/sh\necho s\n", true));
    wait_for("s.sh back on A", || {
        state(&folder.join("s.sh")) == Some(("#!/bin/sh\necho s\n".into(), true))
    });
    // Nothing was at s.sh: nothing new is kept (no phantom version).
    assert_eq!(versions(port, folder, "s.sh"), before);

    // 2. The reverse: a non-executable version over an executable file.
    write(folder, "t.sh", "one\n");
    wait_for("t.sh one on B", || {
        state(&b.path().join("t.sh")) == Some(("one\n".into(), false))
    });
    write(folder, "t.sh", "two\n");
    wait_for("t.sh two on B", || {
        state(&b.path().join("t.sh")).is_some_and(|s| s.0 == "two\n")
    });
    chmod(&folder.join("t.sh"), 0o755);
    wait_for("t.sh two executable on B", || {
        state(&b.path().join("t.sh")) == Some(("two\n".into(), true))
    });
    let before = versions(port, folder, "t.sh");
    let k = before
        .iter()
        .find(|r| r.1 == "overwritten" && r.2 == "4")
        .map(|r| r.0)
        .unwrap_or_else(|| panic!("no kept 'one' in {before:?}"));
    let m = restore(port, folder, "t.sh", k);
    arrives_without_intermediate(&b.path().join("t.sh"), ("one\n", false));
    let after = versions(port, folder, "t.sh");
    // One change, keeping exactly what was there: 'two', executable.
    let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    assert_eq!(
        (new[0].0, new[0].1.as_str()),
        (m, "overwritten"),
        "{after:?}"
    );
    assert_eq!(new[0].2, "4");
    assert_eq!(
        state(&on_server.join("t.sh")),
        Some(("one\n".into(), false))
    );

    // 3. A directory of executables removed whole, and restored: one
    // change for the directory, one per file, nothing kept.
    write(folder, "bin/a.sh", "a\n");
    write(folder, "bin/b.txt", "b\n");
    write(folder, "bin/sub/c.sh", "c\n");
    chmod(&folder.join("bin/a.sh"), 0o755);
    chmod(&folder.join("bin/sub/c.sh"), 0o700);
    wait_for("bin on B", || {
        state(&b.path().join("bin/a.sh")).is_some_and(|s| s.1)
            && state(&b.path().join("bin/sub/c.sh")).is_some_and(|s| s.1)
            && b.path().join("bin/b.txt").is_file()
    });
    std::fs::remove_dir_all(folder.join("bin")).expect("rm -rf");
    wait_for("bin gone on B", || !b.path().join("bin").exists());
    let before = versions(port, folder, "bin");
    let n = last_number(&before, "deleted", "bin/");
    let m = restore(port, folder, "bin", n);
    // bin, bin/sub, a.sh, b.txt, c.sh: five changes.
    assert_eq!(m, n + 5, "{:?}", versions(port, folder, "bin"));
    arrives_without_intermediate(&b.path().join("bin/a.sh"), ("a\n", true));
    arrives_without_intermediate(&b.path().join("bin/sub/c.sh"), ("c\n", true));
    wait_for("b.txt on B", || {
        state(&b.path().join("bin/b.txt")) == Some(("b\n".into(), false))
    });
    assert_eq!(versions(port, folder, "bin"), before, "no phantom versions");
}
