//! End-to-end: paths the protocol allows (a relative path of up to 4,096
//! bytes) whose whole path, with the folder's own in front, passes the
//! system's PATH_MAX (outside tester's finding 9). They were never uploaded
//! while `status` said "in sync, not synced: 0". Now the client reads them
//! through directory handles and uploads them, and a device that cannot
//! place the server's copy of one says so once and lists it under "not
//! synced" (the folder is then not in sync) instead of failing silently at
//! every pull. A file whose directory it reaches by its whole path is
//! placed through a handle on that directory (breaker21 F3); what it
//! cannot place is below a directory too long here. What it lists is one answer, at every run: each file whose
//! parent it can reach, or the top-most directory too long here, once, for
//! everything below it (README: "a directory once, with why"), whether its
//! pull or its scan saw that directory first. A file it cannot place is
//! not downloaded (breaker15 F12: it was, whole, at every pull).
//!
//! The tree is made by the tester's own Python generator (directories of
//! 250 bytes, opened relative to each other, then a file that brings the
//! relative path to 4,000 ... 4,096 bytes).

mod common;

use common::{eventually, new_user, status_json, Client, Server, CONVERGE};
use rustix::fs::{openat, Mode, OFlags, CWD};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Relative path lengths the tester tried.
const TARGETS: [usize; 6] = [4000, 4050, 4080, 4090, 4095, 4096];

/// The tester's generator (finding 9), verbatim but for the content
/// (`x` + the target, so each file is told apart).
const GENERATOR: &str = r#"
import os, sys
os.chdir(sys.argv[1])
def mk(top, target):
    fd=os.open('.',os.O_RDONLY); os.mkdir(top,dir_fd=fd); fd=os.open(top,os.O_RDONLY,dir_fd=fd); total=len(top)+1
    while target-total > 256:
        os.mkdir('d'*250,dir_fd=fd); fd=os.open('d'*250,os.O_RDONLY,dir_fd=fd); total+=251
    f=os.open('f'*(target-total),os.O_WRONLY|os.O_CREAT,0o644,dir_fd=fd); os.write(f,('x%d' % target).encode()); os.close(f)
for t in (4000,4050,4080,4090,4095,4096): mk(f"p{t}", t)
"#;

/// The relative path the generator makes for `target` bytes.
fn generated_path(target: usize) -> String {
    let top = format!("p{target}");
    let mut total = top.len() + 1;
    let mut path = top;
    while target - total > 256 {
        path.push('/');
        path.push_str(&"d".repeat(250));
        total += 251;
    }
    path.push('/');
    path.push_str(&"f".repeat(target - total));
    assert_eq!(path.len(), target);
    path
}

/// Reads `rel` below `root` through directory handles (no PATH_MAX).
fn read_deep(root: &Path, rel: &str) -> Option<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, root, flags, Mode::empty()).ok()?;
    let parts: Vec<&str> = rel.split('/').collect();
    let (name, dirs) = parts.split_last()?;
    for part in dirs {
        dir = openat(&dir, *part, flags, Mode::empty()).ok()?;
    }
    let fd = openat(&dir, *name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut out = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Runs the generator in `folder`; false (with the reason printed) when
/// there is no python3 (a failure when `CI` is set).
fn generate(folder: &Path) -> bool {
    match Command::new("python3")
        .arg("-c")
        .arg(GENERATOR)
        .arg(folder)
        .status()
    {
        Ok(status) => {
            assert!(status.success(), "the generator failed: {status}");
            true
        }
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "python3 is needed: {e}");
            println!("SKIPPED: no python3 to run the tester's generator ({e})");
            false
        }
    }
}

/// A folder whose own path is `len` bytes long (below a temporary
/// directory that is removed with the returned guard).
fn folder_of_length(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let base = tempfile::tempdir().expect("tempdir");
    let have = base.path().as_os_str().len() + 1;
    assert!(len > have + 1, "the temporary directory's path is too long");
    let folder = base.path().join("F".repeat(len - have));
    std::fs::create_dir(&folder).expect("mkdir");
    assert_eq!(folder.as_os_str().len(), len);
    (base, folder)
}

#[test]
fn paths_too_long_with_the_folders_prefix_are_uploaded_or_reported() {
    let server = Server::start();
    // Device A: a 40-byte folder path, so 4,080-byte paths and longer pass
    // PATH_MAX (4,096 with its NUL) only with the prefix.
    let (_a_base, a) = folder_of_length(40);
    if !generate(&a) {
        return;
    }
    let paths: Vec<String> = TARGETS.iter().map(|&t| generated_path(t)).collect();
    for (t, rel) in TARGETS.iter().zip(&paths) {
        assert_eq!(read_deep(&a, rel), Some(format!("x{t}").into_bytes()));
    }
    let user = new_user(server.port, &a);
    let log_a = a.parent().expect("base").join("a.log");
    let _ca = Client::options(server.port, &a).log(&log_a).start();

    // Every file reaches the server (finding 9: only p4000 and p4050 did).
    let on_server = server.user_dir(&user);
    let all_there = eventually(CONVERGE, || {
        TARGETS
            .iter()
            .zip(&paths)
            .all(|(t, rel)| read_deep(&on_server, rel) == Some(format!("x{t}").into_bytes()))
    });
    let missing: Vec<usize> = TARGETS
        .iter()
        .zip(&paths)
        .filter(|(_, rel)| read_deep(&on_server, rel).is_none())
        .map(|(t, _)| *t)
        .collect();
    assert!(
        all_there,
        "not on the server: {missing:?}; A's log:\n{}",
        common::log_tail(&log_a, 4000)
    );
    assert!(eventually(CONVERGE, || status_json(&a).0 == 0), "A in sync");

    // Device B: a 100-byte folder path. Files it can place arrive; those
    // it cannot are listed under "not synced" with why, said once in its
    // log, and the folder is not in sync.
    let (_b_base, b) = folder_of_length(100);
    let log_b = b.parent().expect("base").join("b.log");
    let _cb = Client::options(server.port, &b)
        .user(Some(&user))
        .log(&log_b)
        .start();
    // B places a file whose directory it reaches by its whole path: the
    // file itself through a handle on that directory (breaker21 F3).
    let placeable = |rel: &str| {
        let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
        b.as_os_str().len() + 1 + dir.len() < 4096
    };
    // What B must list for each file it cannot place: the top-most of the
    // file and its directories whose path with B's folder in front is too
    // long (README: "a directory once, with why"), with that entry's own
    // length. One answer, whatever the order of B's pull and scans.
    let whole = |rel: &str| b.as_os_str().len() + 1 + rel.len();
    let top_too_long = |rel: &str| -> String {
        let cut = rel
            .match_indices('/')
            .map(|(i, _)| i)
            .find(|&i| whole(&rel[..i]) >= 4096)
            .unwrap_or(rel.len());
        rel[..cut].to_owned()
    };
    let mut want: Vec<String> = paths
        .iter()
        .filter(|rel| !placeable(rel))
        .map(|rel| top_too_long(rel))
        .collect();
    want.sort();
    want.dedup();
    let listed_paths = |v: &serde_json::Value| -> Vec<String> {
        let mut got: Vec<String> = v["not_synced"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                e.as_str()
                    .map(|e| e.split_once(" (").map_or(e, |(p, _)| p).to_owned())
            })
            .collect();
        got.sort();
        got
    };
    let settled = eventually(CONVERGE, || {
        let (_, v) = status_json(&b);
        let all_placed = TARGETS
            .iter()
            .zip(&paths)
            .filter(|(_, rel)| placeable(rel))
            .all(|(t, rel)| read_deep(&b, rel) == Some(format!("x{t}").into_bytes()));
        all_placed && listed_paths(&v) == want
    });
    let (code, v) = status_json(&b);
    let short = |p: &str| p.replace(&"d".repeat(250), "D");
    assert!(
        settled,
        "B must list exactly {:?}, lists {:?}",
        want.iter().map(|p| short(p)).collect::<Vec<_>>(),
        listed_paths(&v)
            .iter()
            .map(|p| short(p))
            .collect::<Vec<_>>()
    );
    let listed = v["not_synced"].as_array().cloned().unwrap_or_default();
    for entry in &listed {
        let e = entry.as_str().unwrap_or_default();
        let (path, why) = e.split_once(" (").unwrap_or((e, ""));
        let bytes = format!(
            "path too long here: {} bytes with the folder's path",
            whole(path)
        );
        assert!(why.starts_with(&bytes), "{}: {why}", short(path));
    }
    // Stays so: the next pulls and scans (every 2 s) give the same answer,
    // and a file B cannot place is not downloaded again at each of them
    // (outside tester breaker15 F12: fetched whole at every pull, only to
    // fail at the rename): B's fetches do not grow while nothing changes.
    let fetches = || {
        server
            .conn_log()
            .lines()
            .filter(|l| l.contains(" client=2 request=fetch"))
            .count()
    };
    // The connection log is written asynchronously: what B fetched to
    // get here is in it after a moment.
    std::thread::sleep(Duration::from_secs(2));
    let before = fetches();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(listed_paths(&status_json(&b).1), want);
    assert_eq!(
        fetches(),
        before,
        "B fetched again what it cannot place:\n{}",
        common::log_tail(&log_b, 3000)
    );
    for (t, rel) in TARGETS.iter().zip(&paths) {
        if placeable(rel) {
            assert_eq!(
                read_deep(&b, rel),
                Some(format!("x{t}").into_bytes()),
                "p{t}"
            );
        }
    }
    if !listed.is_empty() {
        assert_eq!(code, 1, "something is not synced: not in sync: {v:#}");
        assert_eq!(v["in_sync"], false);
        // Said once, not at every repeated pull (every 2 s).
        std::thread::sleep(Duration::from_secs(5));
        let log = std::fs::read_to_string(&log_b).unwrap_or_default();
        for (t, rel) in TARGETS.iter().zip(&paths) {
            let said = log
                .lines()
                .filter(|l| l.contains("could not apply") && l.contains(rel.as_str()))
                .count();
            assert!(said <= 1, "p{t} reported {said} times:\n{log}");
        }
        let (text_code, text) = {
            let out = Command::new(env!("CARGO_BIN_EXE_cloud-client"))
                .arg("status")
                .arg(&b)
                .output()
                .expect("status");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        assert_eq!(text_code, 1, "{text}");
        assert!(text.contains("state:         not in sync"), "{text}");
        assert!(!text.contains("not synced:    0"), "{text}");
    }
    let log = std::fs::read_to_string(&log_b).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("could not")) {
        println!("B: {}", line.replace(&"d".repeat(250), "D"));
    }
    for entry in &listed {
        let e = entry.as_str().unwrap_or_default();
        println!("B lists: {}... ({} bytes)", &e[..e.len().min(12)], e.len());
        println!("   why: {}", e.split_once(" (").map_or("", |w| w.1));
    }
}
