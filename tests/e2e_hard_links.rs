//! End-to-end: an edit made through a hard link that lives outside the
//! folder makes no inotify event in it; it reached the other device only
//! with the 60 s comparison of the whole folder, while `status` said "in
//! sync" (outside tester breaker21, F2). The client now looks again every
//! 2 s at the files that have more than one name, so the edit arrives in
//! seconds. (A link made while the client runs is followed from the next
//! look at that file: the 60 s comparison, or an event on it.)

mod common;

use common::{eventually, new_user, status_json, watching_pair, Server, CONVERGE};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Well under the 60 s safety comparison: a pass every 2 s, then the
/// round and the other device's pull.
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Overwrites the start of `path` in place (no truncation: same size).
fn overwrite(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the outside name");
    f.write_all(bytes).expect("write");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn an_edit_through_a_hard_link_outside_the_folder_reaches_the_other_device_in_seconds() {
    let server = Server::start();
    let base = tempfile::tempdir().expect("tempdir");
    let (a, b) = (base.path().join("A"), base.path().join("B"));
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    let (log_a, log_b) = (base.path().join("a.log"), base.path().join("b.log"));
    std::fs::write(a.join("out.txt"), "orig out\n").expect("write");
    std::fs::write(a.join("later.txt"), "orig later\n").expect("write");
    let outside = base.path().join("outside_link");
    std::fs::hard_link(a.join("out.txt"), &outside).expect("link");
    let user = new_user(server.port, &a);
    let _clients = watching_pair(server.port, (&a, &log_a), (&b, &log_b), &user);
    let synced = eventually(CONVERGE, || {
        read(&b.join("out.txt")) == "orig out\n"
            && read(&b.join("later.txt")) == "orig later\n"
            && status_json(&a).0 == 0
            && status_json(&b).0 == 0
    });
    assert!(synced, "{}", common::log_tail(&log_b, 3000));

    // A link made before the client started.
    overwrite(&outside, b"CHANGED!\n");
    let t = Instant::now();
    let ok = eventually(SEEN_WITHIN, || read(&b.join("out.txt")) == "CHANGED!\n");
    assert!(
        ok,
        "B still has {:?} after {:?}; A's status: {:#}",
        read(&b.join("out.txt")),
        t.elapsed(),
        status_json(&a).1
    );
    println!(
        "edit through a link made before start: on B after {:?}",
        t.elapsed()
    );

    assert!(eventually(CONVERGE, || status_json(&a).0 == 0
        && status_json(&b).0 == 0));
}
