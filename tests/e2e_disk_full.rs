//! End-to-end: a full disk, on a device and on the server (outside tester
//! breaker9's findings 5 and 6; PROTOCOL.md ). The real binaries on
//! loopback; the full file system is a small tmpfs mounted for the test
//! (root only: elsewhere the tests print why and skip).
//!
//! - A device whose disk cannot take a download keeps running, holds back
//!   that one file (status: not in sync, the path and "No space left on
//!   device"), keeps uploading its edits and downloading what fits, keeps
//!   no partial build that pins the disk, and gets the file once space is
//!   free.
//! - A server whose disk cannot take an upload: the device holds back that
//!   one path with a growing delay, pushes its other edits meanwhile on the
//!   same connection, and gets it through once space is free.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// The report's "not synced" lines (held-back paths among them).
fn held_back(v: &Value) -> Vec<String> {
    v["not_synced"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Finding 5: B's folder is on an 8 MiB tmpfs holding 3 MiB; A adds a
/// 6 MiB file. Main's client exited with status 1 at the first write
/// ("write download file: No space left on device"), status showed no
/// error, B's edits never reached A, and every restart exited again.
#[test]
fn a_download_that_does_not_fit_is_held_back_and_the_rest_goes_on() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let a = a.path();
    let b = disk.subdir("B");
    write(a, "small.txt", "hello\n");
    std::fs::write(a.join("base.bin"), Rng::new(5).bytes(3 << 20)).expect("write");
    settle();
    let user = new_user(server.port, a);
    let _ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let mut cb = Client::options(server.port, &b)
        .user(Some(&user))
        .log(&logs.path().join("b.err"))
        .start();
    converge("B joined", &[a, &b]);

    let big = Rng::new(6).bytes(6 << 20);
    std::fs::write(a.join("big.bin"), &big).expect("write");
    assert!(
        cb.wait_log("holding it back", Duration::from_secs(30)),
        "B never held the download back:\n{}",
        cb.log_tail(4000)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(cb.is_running(), "B exited:\n{}", cb.log_tail(4000));
    let (code, st) = status_json(&b);
    assert_ne!(code, 0, "status exits non-zero while a file is held back");
    assert_eq!(st["in_sync"], false, "{st}");
    let error = st["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("No space left on device") && error.contains("big.bin"),
        "last error: {st}"
    );
    assert!(
        held_back(&st)
            .iter()
            .any(|l| l.starts_with("big.bin (download held back: ")),
        "{st}"
    );
    // No partial build or temp file keeps the disk full.
    assert!(
        disk.free_bytes() > 4 << 20,
        "{} bytes free; B's state: {:?}",
        disk.free_bytes(),
        walk(&b.join(".cloudservice"))
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    );
    // B's edits go up, and A's small files come down, meanwhile.
    append(&b.join("small.txt"), "B edit\n");
    write(a, "other.txt", "fits\n");
    let both = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(a.join("small.txt")).unwrap_or_default() == "hello\nB edit\n"
            && std::fs::read_to_string(b.join("other.txt")).unwrap_or_default() == "fits\n"
    });
    assert!(
        both,
        "B's edit or A's new file stuck:\n{}",
        cb.log_tail(4000)
    );
    assert!(!b.join("big.bin").exists());
    // Logged once per try (5 s, then 10 s apart), not per chunk or pull.
    let tries = cb.log_tail(1 << 20).matches("holding it back").count();
    assert!(
        (1..=3).contains(&tries),
        "{tries} hold lines:\n{}",
        cb.log_tail(8000)
    );

    // Space is freed (base.bin removed on A, so on B): the next try gets it.
    std::fs::remove_file(a.join("base.bin")).expect("rm");
    let arrived = eventually(Duration::from_secs(60), || {
        std::fs::read(b.join("big.bin")).is_ok_and(|got| got == big)
    });
    assert!(arrived, "big.bin never arrived:\n{}", cb.log_tail(8000));
    converge("after space was freed", &[a, &b]);
    let in_sync = eventually(Duration::from_secs(10), || {
        let (code, st) = status_json(&b);
        code == 0 && held_back(&st).is_empty() && st["in_sync"] == true
    });
    assert!(in_sync, "{}", status_json(&b).1);
}

/// Finding 6: the server's data directory is on a 12 MiB tmpfs with 5 MiB
/// taken by a filler file; A adds an 8 MiB file, then edits a small one.
/// Main's binaries: every refusal closed the connection, A reconnected every
/// 0.5 s and its small edit never reached the server.
#[test]
fn an_upload_the_server_has_no_room_for_waits_and_the_other_edits_go() {
    let Some(disk) = Tmpfs::mount("12m") else {
        return;
    };
    let logs = tempfile::tempdir().expect("temp dir");
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![7u8; 5 << 20]).expect("filler");
    let server = Server::start_in(&disk.subdir("data"), &[]);
    let (a, b, user) = new_user_of_two_folders(server.port);
    let (a, b) = (a.path(), b.path());
    let ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let _cb = Client::options(server.port, b)
        .user(Some(&user))
        .log(&logs.path().join("b.err"))
        .start();
    converge("B joined", &[a, b]);
    let resumes_before = server.conn_log().matches("request=resume").count();

    let big = Rng::new(8).bytes(8 << 20);
    std::fs::write(a.join("big.bin"), &big).expect("write");
    assert!(
        ca.wait_log("holding it back", Duration::from_secs(30)),
        "A never held the upload back:\n{}",
        ca.log_tail(4000)
    );
    append(&a.join("small.txt"), "A2\n");
    let edited = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(b.join("small.txt")).unwrap_or_default() == "hello\nA2\n"
    });
    assert!(edited, "A's small edit never went:\n{}", ca.log_tail(8000));
    // The status file is written at most every 200 ms (status throttle):
    // the hold shows within a moment of the refusal, not at the same instant.
    let mut last = (0, Value::Null);
    let shown = eventually(Duration::from_secs(5), || {
        last = status_json(a);
        held_back(&last.1)
            .iter()
            .any(|l| l.starts_with("big.bin (upload held back: "))
    });
    let (code, st) = last;
    assert!(shown, "{st}\n{}", ca.log_tail(8000));
    assert_ne!(code, 0);
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("big.bin")
                && e.contains("No space left")
                && e.contains("the server's disk is full")),
        "{st}"
    );
    // The connection stayed: no reconnection loop.
    let resumes = server.conn_log().matches("request=resume").count() - resumes_before;
    assert!(
        resumes <= 1,
        "{resumes} reconnections:\n{}",
        ca.log_tail(8000)
    );
    let refused = server
        .conn_log()
        .lines()
        .filter(|l| l.contains("outcome=error") && l.contains("big.bin"))
        .count();
    assert!((1..=3).contains(&refused), "{refused} refusals logged");

    // Space comes back: the next try (5, 10, 20 s apart) goes through.
    std::fs::remove_file(&filler).expect("rm filler");
    let arrived = eventually(Duration::from_secs(60), || {
        std::fs::read(b.join("big.bin")).is_ok_and(|got| got == big)
    });
    assert!(arrived, "big.bin never arrived:\n{}", ca.log_tail(8000));
    let in_sync = eventually(Duration::from_secs(10), || {
        let (code, st) = status_json(a);
        code == 0 && held_back(&st).is_empty()
    });
    assert!(in_sync, "{}", status_json(a).1);
}

/// Appends to `path` until the disk is full (a write fails: ENOSPC), and
/// again every 5 ms (whatever the client frees, a page here and there, is
/// taken again: a disk another program keeps full) until `stop`.
fn keep_disk_full(
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(&path).expect("create the filler");
    std::thread::spawn(move || {
        let big = vec![0x5a_u8; 64 << 10];
        let small = vec![0x5a_u8; 4 << 10];
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            while f.write_all(&big).is_ok() {}
            while f.write_all(&small).is_ok() {}
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Outside tester breaker15 F4: another program fills B's own disk (and
/// keeps it full), then A edits a file. Main's client could write neither its index nor its status
/// file: `status` kept an old, error-free state ("to upload: 1", no error)
/// while the index-write failure dropped the connection again and again
/// (backoff up to 30 s), and recovery after space was freed waited for that
/// backoff. Now the status says why (rewritten in the space the file holds),
/// the connection stays, and the edit arrives soon after space is freed.
#[test]
fn a_full_disk_here_shows_in_status_and_keeps_the_connection() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let a = a.path();
    let b = disk.subdir("B");
    write(a, "a.txt", "one\n");
    write(a, "b.txt", "B makes it executable\n");
    settle();
    let user = new_user(server.port, a);
    let _ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let cb = Client::options(server.port, &b)
        .user(Some(&user))
        .log(&logs.path().join("b.err"))
        .start();
    converge("B joined", &[a, &b]);
    let in_sync = |folder: &std::path::Path| status_json(folder).0 == 0;
    assert!(eventually(CONVERGE, || in_sync(&b)), "B in sync");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Outside B's folder, on its disk: another program's file.
    let filler = keep_disk_full(disk.path().join("fill"), stop.clone());
    settle();
    // A chmod here (its push changes the index, which cannot be saved
    // now; it frees no space a save could take) and an edit there (its
    // download does not fit).
    chmod(&b.join("b.txt"), 0o755);
    write(a, "a.txt", "two\n");
    let says_full = eventually(Duration::from_secs(30), || {
        let (code, v) = status_json(&b);
        let full = |field: &str| {
            v[field]
                .as_str()
                .is_some_and(|e| e.contains("No space left on device"))
        };
        code == 1 && full("last_error") && full("pending")
    });
    assert!(
        says_full,
        "B's status does not show its full disk: {:#}\n{}",
        status_json(&b).1,
        cb.log_tail(4000)
    );
    let (_, text) = status_text(&b, false);
    assert!(text.contains("cannot save the index"), "{text}");
    let log = cb.log_tail(1 << 20);
    assert!(
        !log.contains("reconnecting"),
        "an index-write failure dropped the connection:\n{log}"
    );

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    filler.join().expect("filler");
    std::fs::remove_file(disk.path().join("fill")).expect("free the space");
    let freed = std::time::Instant::now();
    let back = eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(b.join("a.txt")).unwrap_or_default() == "two\n" && in_sync(&b)
    });
    assert!(
        back,
        "B did not recover: {:#}\n{}",
        status_json(&b).1,
        cb.log_tail(4000)
    );
    eprintln!("in sync {:?} after the space was freed", freed.elapsed());
    // The held-back download's own wait (5, 10, 20 s…) bounds this.
    assert!(
        freed.elapsed() < Duration::from_secs(60),
        "{:?}",
        freed.elapsed()
    );
    converge("after the space was freed", &[a, &b]);
}

/// Two empty temp folders, the first with one small file and made a new
/// user (its ID returned) on the server at `port`; no client runs yet.
fn new_user_of_two_folders(port: u16) -> (tempfile::TempDir, tempfile::TempDir, String) {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    write(a.path(), "small.txt", "hello\n");
    settle();
    let user = new_user(port, a.path());
    (a, b, user)
}

/// Fills the file system of `path` until a write fails (ENOSPC); the file
/// is left in place (remove it to free the space).
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create the filler");
    let big = vec![0x5a_u8; 64 << 10];
    let small = vec![0x5a_u8; 4 << 10];
    while f.write_all(&big).is_ok() {}
    while f.write_all(&small).is_ok() {}
}

/// Outside tester breaker22 F1: a server whose stderr cannot be written
/// (here /dev/full, whose every write fails with ENOSPC; in the report, a
/// log file on the disk that filled up). Main's server panicked at its
/// first log line (flexi_logger panics when it cannot report its own
/// failed write) and exited with status 101 before its first connection.
/// A log line that cannot be written is lost, never fatal: the server
/// serves, and stops cleanly when asked.
#[test]
fn a_server_whose_stderr_cannot_be_written_keeps_serving() {
    let mut server = Server::options()
        .log(std::path::Path::new("/dev/full"))
        .verbosity(Verbosity::Verbose)
        .start();
    let (a, b, user) = new_user_of_two_folders(server.port);
    let (a, b) = (a.path(), b.path());
    let _ca = Client::options(server.port, a).start();
    let _cb = Client::options(server.port, b).user(Some(&user)).start();
    converge("B joined", &[a, b]);
    for i in 0..10 {
        write(b, &format!("d/f{i}.txt"), format!("from B {i}\n"));
    }
    converge("B's files reached A", &[a, b]);
    assert!(server.is_running(), "the server exited");
    let status = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not stop cleanly: {status:?}"
    );
}

/// breaker22 F1 as reported: the server's data directory and its stderr
/// (a log file, as `cloud-server 9000 > log 2>&1` next to the data makes)
/// both on a disk that fills up. Uploads are refused with NoSpace and no
/// connectionLog.txt line can be written, so flexi_logger reports each
/// failed line on stderr, which fails too. Main's server exited with
/// status 101 (a panic in the reactor) or hung with a user's actor gone
/// (a panic while the actor's own panic was logged). Now it stays up, and
/// everything arrives once space is free.
#[test]
fn a_server_whose_disk_and_stderr_are_full_stays_up_and_catches_up() {
    let Some(disk) = Tmpfs::mount("12m") else {
        return;
    };
    let mut server = Server::options()
        .data(&disk.subdir("data"))
        .log(&disk.path().join("server.log"))
        .start();
    let (a, b, user) = new_user_of_two_folders(server.port);
    let (a, b) = (a.path(), b.path());
    let logs = tempfile::tempdir().expect("temp dir");
    let ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let _cb = Client::options(server.port, b).user(Some(&user)).start();
    converge("B joined", &[a, b]);

    let filler = disk.path().join("filler");
    fill(&filler);
    for i in 0..10 {
        write(
            a,
            &format!("new/f{i}.txt"),
            format!("made on A while the disk is full {i}\n"),
        );
    }
    assert!(
        ca.wait_log("holding it back", Duration::from_secs(30)),
        "A was never told the server's disk is full:\n{}",
        ca.log_tail(4000)
    );
    // breaker22 saw the server gone about 3 s after the first refusal.
    std::thread::sleep(Duration::from_secs(5));
    assert!(server.is_running(), "the server exited on a full disk");

    std::fs::remove_file(&filler).expect("rm filler");
    // The held-back pushes are tried again 5, 10, 20 s apart.
    converge_stable(&[a, b], Duration::from_secs(60), Duration::ZERO)
        .unwrap_or_else(|diff| panic!("A's files never reached B once space was free:\n{diff}"));
    assert!(server.is_running(), "the server exited");
    let status = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not stop cleanly: {status:?}"
    );
}
