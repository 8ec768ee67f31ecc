//! End-to-end: another device's rename of a directory of many small files
//! is applied here under a low open-file limit without fetching anything
//! (outside tester breaker22, F3; PROTOCOL.md ). B runs with
//! `RLIMIT_NOFILE` = 256 and applies A's `mv big big2` of 2,000 files.
//! Before, every file placed by renaming the file set aside kept a
//! descriptor open until the whole reply was applied: B's descriptors
//! climbed to the limit, the rest failed with EMFILE ("Too many open
//! files") and were downloaded again from the server. Now none is held
//! between a file's check and its fsync, and the fsync queue takes at
//! most a quarter of the limit: the rename costs no fetch.

mod common;

use common::{converge, new_user, status_json, Client, Server, CONVERGE};
use std::fs;
use std::path::Path;

const FILES: usize = 2_000;
const NOFILE: u64 = 256;

/// B's fetches in the server's connection log (B is the user's device 2).
fn fetches_of_b(server: &Server) -> usize {
    server
        .conn_log()
        .lines()
        .filter(|l| l.contains(" client=2 request=fetch"))
        .count()
}

fn in_sync(folder: &Path) -> bool {
    common::eventually(CONVERGE, || status_json(folder).0 == 0)
}

#[test]
fn a_rename_of_2000_files_elsewhere_is_applied_under_256_descriptors_without_a_fetch() {
    let server = Server::start();
    let base = tempfile::tempdir().expect("tempdir");
    let (a, b) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(a.join("big")).expect("mkdir");
    fs::create_dir(&b).expect("mkdir");
    for i in 0..FILES {
        fs::write(a.join(format!("big/f{i}.txt")), format!("file {i}\n")).expect("write");
    }
    let (log_a, log_b) = (base.path().join("a.log"), base.path().join("b.log"));
    let user = new_user(server.port, &a);
    let _ca = Client::options(server.port, &a).log(&log_a).start();
    let cb = Client::options(server.port, &b)
        .user(Some(&user))
        .log(&log_b)
        .open_files(NOFILE)
        .start();
    converge("initial", &[&a, &b]);
    assert!(
        in_sync(&a) && in_sync(&b),
        "{}",
        common::log_tail(&log_b, 3000)
    );
    let limits = fs::read_to_string(format!("/proc/{}/limits", cb.pid().expect("B runs")))
        .unwrap_or_default();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&format!(" {NOFILE} "))),
        "B does not run under the limit:\n{limits}"
    );
    let before = fetches_of_b(&server);

    fs::rename(a.join("big"), a.join("big2")).expect("mv big big2");
    let tree = converge("the rename reaches B", &[&a, &b]);
    assert!(tree.contains_key("big2/f0.txt") && !tree.contains_key("big/f0.txt"));
    assert!(in_sync(&b), "{}", common::log_tail(&log_b, 3000));
    let tree = converge("after the rename", &[&a, &b]);
    assert_eq!(
        tree.keys().filter(|k| k.starts_with("big2/")).count(),
        FILES
    );

    let fetched = fetches_of_b(&server) - before;
    let text = fs::read_to_string(&log_b).unwrap_or_default();
    let emfile = text.matches("Too many open files").count();
    eprintln!(
        "B fetched {fetched} file(s) to follow the rename of {FILES}; {emfile} EMFILE line(s)"
    );
    assert_eq!(
        (fetched, emfile),
        (0, 0),
        "B fetched {fetched} file(s) it held (and logged {emfile} EMFILE)"
    );
}
