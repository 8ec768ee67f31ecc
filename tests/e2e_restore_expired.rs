//! End-to-end: `restore DIR --version N` / `--at TIME` after the files
//! that DIR held at N expired (outside tester breaker10's finding 6; with
//! the real binaries and the tester's steps, timed down: age limit
//! 0.0002 days, 17.28 s, reaper every second). The files are deleted one
//! by one, the directory removed later; once the deletions' records pass
//! the age limit only the directory's removal is kept. Restoring by the
//! first deletion's number said "restored e6 … (Applied)", exit 0, and an
//! empty e6 appeared on every device. Now: exit 1, nothing changes, and
//! the answer says how many entries expired (PROTOCOL.md ).

mod common;

use common::{cli, eventually, new_user, write, Client, Server, CONVERGE};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until `check` holds, failing with `what`.
fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

/// `versions FOLDER PATH` as (number, cause, path) rows.
fn versions(port: u16, folder: &Path, under: &str) -> Vec<(u64, String, String)> {
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(port, &["versions", dir, under]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 5).then(|| (w[0].parse().expect("n"), w[2].to_owned(), w[4].to_owned()))
        })
        .collect()
}

#[test]
fn a_directory_whose_files_expired_is_not_restored_empty() {
    let server = Server::start_with(&["--keep-versions", "0.0002", "--reap-every", "1"]);
    let w = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(w.path(), "keep.txt", "anchor");
    let user = new_user(server.port, w.path());
    let _cw = Client::start(server.port, w.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let on_server = server.user_dir(&user);
    let port = server.port;
    let folder = w.path();
    for i in 1..=3 {
        write(folder, &format!("e6/f{i}"), format!("e{i}\n"));
    }
    wait_for("e6 on B", || {
        (1..=3).all(|i| b.path().join(format!("e6/f{i}")).is_file())
    });
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(20));
    let deleted_at = Instant::now();
    for i in 1..=3 {
        std::fs::remove_file(folder.join(format!("e6/f{i}"))).expect("rm");
    }
    wait_for("the files deleted on the server", || {
        (1..=3).all(|i| !on_server.join(format!("e6/f{i}")).exists())
    });
    let listed = versions(port, folder, "e6");
    let first = listed
        .iter()
        .filter(|r| r.1 == "deleted")
        .map(|r| r.0)
        .min()
        .unwrap_or_else(|| panic!("no deletion in {listed:?}"));
    std::thread::sleep(Duration::from_secs(9).saturating_sub(deleted_at.elapsed()));
    std::fs::remove_dir(folder.join("e6")).expect("rmdir");
    wait_for("e6 removed on the server", || {
        !on_server.join("e6").exists()
    });
    // The deletions pass the age limit; the removal does not yet.
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let left = versions(port, folder, "e6");
        if left.iter().all(|r| r.2 == "e6/") && !left.is_empty() {
            break;
        }
        assert!(Instant::now() < limit, "never reaped: {left:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(
        port,
        &["restore", dir, "e6", "--version", &first.to_string()],
    );
    assert_eq!(code, 1, "a restore of what expired succeeded: {out}{err}");
    assert!(
        err.contains(&format!(
            "no version of e6 number {first}: 3 entries under e6"
        )) && err.contains("expired"),
        "{err}"
    );
    let (code, out, err) = cli(port, &["restore", dir, "e6", "--at", &before]);
    assert_eq!(code, 1, "a restore at {before} succeeded: {out}{err}");
    assert!(
        err.contains(&format!(
            "no version of e6 at {before}: 3 entries under it then expired"
        )),
        "{err}"
    );
    // Nothing came back anywhere.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!on_server.join("e6").exists());
    assert!(!folder.join("e6").exists());
    assert!(!b.path().join("e6").exists());
}
