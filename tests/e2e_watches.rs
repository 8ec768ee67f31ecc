//! End-to-end: the client watches no directory the ignore rules leave out
//! (issue 13, outside tester's finding 10: an ignored `node_modules/` of
//! 500 packages cost 1,001 inotify watches). Watches are counted in the
//! running client's /proc fdinfo; new directories get theirs, and a rule
//! change adds or drops them.

mod common;

use common::{eventually, new_user, write, Client, Server, CONVERGE};
use std::fs;
use std::path::Path;

/// Inotify watches the process `pid` holds (every inotify descriptor's
/// `inotify wd:` lines in /proc/PID/fdinfo).
fn watches(pid: u32) -> usize {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| {
            fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify")
        })
        .map(|fd| {
            let info = fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

fn wait_watches(what: &str, pid: u32, check: impl Fn(usize) -> bool) {
    let ok = eventually(CONVERGE, || check(watches(pid)));
    assert!(
        ok,
        "timed out waiting for: {what}; watches now {}",
        watches(pid)
    );
}

fn packages(root: &Path, from: usize, to: usize) {
    for i in from..to {
        write(root, &format!("node_modules/p{i}/lib/i.js"), "x");
    }
}

#[test]
fn ignored_directories_are_not_watched_and_rule_changes_move_the_watches() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let a = a.path();
    write(a, "k", "k");
    write(a, "src/main.c", "m");
    write(a, ".cloudignore", "node_modules/\n");
    packages(a, 0, 300);
    let user = new_user(server.port, a);
    let client = Client::start(server.port, a, None);
    let pid = client.pid().expect("pid");
    // The folder and src/ (a few more allowed: notify's own), never the
    // 601 directories of node_modules/.
    wait_watches("the client watches the folder", pid, |n| n >= 2);
    let first = watches(pid);
    assert!(first <= 4, "{first} watches for 2 synced directories");

    // A new directory (with one inside) is watched, and works.
    fs::create_dir_all(a.join("src/new/deep")).expect("mkdir");
    wait_watches("the new directories are watched", pid, |n| n == first + 2);
    write(a, "src/new/deep/f.c", "f");
    let srv = server.user_dir(&user);
    assert!(
        eventually(CONVERGE, || fs::read_to_string(
            srv.join("src/new/deep/f.c")
        )
        .is_ok()),
        "a file in the new directory is uploaded"
    );
    // New directories inside the ignored one are not.
    packages(a, 300, 310);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(watches(pid), first + 2, "nothing watched in node_modules/");

    // The rule goes: node_modules/ is synced, so watched (620 directories).
    write(a, ".cloudignore", "# nothing\n");
    wait_watches("node_modules is watched", pid, |n| n >= first + 2 + 621);
    // The rule comes back: its watches go.
    write(a, ".cloudignore", "node_modules/\n");
    wait_watches("node_modules is not watched again", pid, |n| n == first + 2);
}
