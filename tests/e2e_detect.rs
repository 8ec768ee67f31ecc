//! End-to-end tests of change detection (issue 9, items 1 and 3): edits that
//! leave size and mtime as they were, and writes through one name of a file
//! with several hard links. Two real clients (PULLING_RATE 0.5) and the real
//! server on loopback; trees compared by content.

mod common;

use common::{converge, eventually, write, TwoDevices, CONVERGE};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// Overwrites `path` in place (same inode), as `cp -p` or an editor writing
/// through the file does, then puts `keep` back as its mtime.
fn overwrite_in_place(path: &Path, data: &[u8], keep: SystemTime) {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
    f.set_modified(keep).unwrap();
}

/// Writes a new file beside `path` with `keep` as its mtime and renames it
/// over `path` (a new inode), as `rsync -t` or an archive extraction does.
fn replace_keeping_mtime(path: &Path, data: &[u8], keep: SystemTime) {
    let tmp = path.with_extension("partial~");
    {
        let mut f = File::create(&tmp).unwrap();
        f.write_all(data).unwrap();
        f.set_modified(keep).unwrap();
    }
    fs::rename(&tmp, path).unwrap();
}

fn read(root: &Path, path: &str) -> Option<Vec<u8>> {
    fs::read(root.join(path)).ok()
}

/// Issue 9 item 1: content changes, size and mtime do not. Each file is one
/// way of getting there; every one must reach the server and the other device.
#[test]
fn same_size_edits_with_the_old_mtime_are_synced() {
    // The clients must be bound: `..` would drop (and kill) them here.
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: _ca,
        cb: _cb,
    } = TwoDevices::start(|a| {
        for name in ["touch-r.txt", "rsync-t.txt", "tick.txt"] {
            write(a, name, "aaaa");
        }
    });
    let a = a.path();

    // In place, then `touch -r` with the old time.
    let f = a.join("touch-r.txt");
    overwrite_in_place(&f, b"bbbb", mtime(&f));
    // A new inode renamed over it, carrying the old time.
    let f = a.join("rsync-t.txt");
    replace_keeping_mtime(&f, b"cccc", mtime(&f));
    // Two same-size writes in one timestamp tick: the second leaves the
    // first one's mtime (forced here, as a coarse clock would).
    let f = a.join("tick.txt");
    overwrite_in_place(&f, b"dddd", SystemTime::now());
    let tick = mtime(&f);
    overwrite_in_place(&f, b"eeee", tick);

    let want = [
        ("touch-r.txt", b"bbbb"),
        ("rsync-t.txt", b"cccc"),
        ("tick.txt", b"eeee"),
    ];
    let srv = server.user_dir(&user);
    for (name, data) in want {
        assert!(
            eventually(CONVERGE, || {
                read(b.path(), name).as_deref() == Some(&data[..])
            }),
            "timed out waiting for: {name} reaches the other device"
        );
        assert_eq!(
            read(&srv, name).as_deref(),
            Some(&data[..]),
            "server {name}"
        );
    }
    let tree = converge("after the edits", &[a, b.path()]);
    assert_eq!(tree.len(), 3, "no conflict copies: {:?}", tree.keys());
}

/// Issue 9 item 3: a write through one name of a hard-linked file changes
/// every name; both must reach the server and the other device.
#[test]
fn a_write_through_one_hard_link_syncs_every_name() {
    // The clients must be bound: `..` would drop (and kill) them here.
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: _ca,
        cb: _cb,
    } = TwoDevices::start(|a| {
        write(a, "x/one", "v1");
        fs::create_dir_all(a.join("y")).unwrap();
        fs::hard_link(a.join("x/one"), a.join("y/two")).unwrap();
        write(a, "z/three", "other");
    });
    assert_eq!(read(b.path(), "y/two").as_deref(), Some(&b"v1"[..]));

    // Same size, fresh mtime: written through the first name only.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(a.path().join("x/one"))
        .unwrap();
    f.write_all(b"v2").unwrap();
    drop(f);
    assert_eq!(read(a.path(), "y/two").as_deref(), Some(&b"v2"[..]));

    let srv = server.user_dir(&user);
    for name in ["x/one", "y/two"] {
        assert!(
            eventually(CONVERGE, || {
                read(b.path(), name).as_deref() == Some(&b"v2"[..])
            }),
            "timed out waiting for: {name} holds v2 on the other device"
        );
        assert_eq!(
            read(&srv, name).as_deref(),
            Some(&b"v2"[..]),
            "server {name}"
        );
    }
    converge("after the write", &[a.path(), b.path()]);
}

/// The same class with no watcher event to go by: edited while the client
/// was stopped, found by the start-up comparison (stat rule alone).
#[test]
fn an_offline_same_size_edit_with_the_old_mtime_is_pushed_at_start_up() {
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: mut _ca,
        cb: _cb,
    } = TwoDevices::start(|a| write(a, "x.txt", "aaaa"));
    _ca.stop();
    let f = a.path().join("x.txt");
    overwrite_in_place(&f, b"bbbb", mtime(&f));
    _ca.restart();
    assert!(
        eventually(CONVERGE, || {
            read(b.path(), "x.txt").as_deref() == Some(&b"bbbb"[..])
        }),
        "timed out waiting for: x.txt reaches the other device"
    );
    let srv = server.user_dir(&user);
    assert_eq!(read(&srv, "x.txt").as_deref(), Some(&b"bbbb"[..]));
}

/// The applier's side: a local same-size edit that kept the old mtime, not
/// yet pushed, meets the other device's edit of the same file in a pull.
/// Before: taken for the synced file and overwritten (the edit lost
/// everywhere). Now: kept as a conflict copy and pushed.
#[test]
fn a_pull_never_overwrites_a_same_size_edit_that_kept_its_mtime() {
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: mut _ca,
        cb: _cb,
    } = TwoDevices::start(|a| write(a, "x.txt", "aaaa"));
    _ca.stop();
    let f = a.path().join("x.txt");
    overwrite_in_place(&f, b"bbbb", mtime(&f));
    write(b.path(), "x.txt", "cccc");
    let srv = server.user_dir(&user);
    assert!(
        eventually(CONVERGE, || {
            read(&srv, "x.txt").as_deref() == Some(&b"cccc"[..])
        }),
        "timed out waiting for: the other edit reaches the server"
    );
    // Started again, A pulls first (its edit is not pushed yet).
    _ca.restart();
    let holds = |root: &Path, data: &[u8]| {
        common::tree(root)
            .values()
            .any(|v| v.as_deref() == Some(data))
    };
    for (what, root) in [("A", a.path()), ("B", b.path()), ("server", &srv)] {
        assert!(
            eventually(CONVERGE, || {
                holds(root, b"bbbb") && holds(root, b"cccc")
            }),
            "timed out waiting for: {what} holds both edits"
        );
    }
    let tree = converge("after the conflict", &[a.path(), b.path()]);
    assert_eq!(
        tree.len(),
        2,
        "x.txt and one conflict copy: {:?}",
        tree.keys()
    );
}

/// Outside tester breaker15, L1: a log written every 0.2 s through a
/// descriptor held open never paused for the 0.3 s a file must be seen
/// unchanged, so nothing of it reached the server while it grew. Now a
/// file seen changing for 10 s is read anyway (a read with no write in
/// between): B holds a state the log really had, well before the writer
/// stops; and all of it once the writer stops.
#[test]
fn a_log_that_never_pauses_still_goes_out_while_it_grows() {
    let two = TwoDevices::start(|a| write(a, "seed.txt", "s\n"));
    let log_a = two.a.path().join("app.log");
    let mut file = std::fs::File::create(&log_a).expect("create log");
    let start = std::time::Instant::now();
    let mut written = Vec::new();
    let mut seen_while_writing: Option<(Duration, usize)> = None;
    // 30 s of a line every 200 ms, bounded.
    for i in 0..150u32 {
        let line = format!("line {i} at {:?}\n", start.elapsed());
        file.write_all(line.as_bytes()).expect("write");
        written.extend_from_slice(line.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
        if seen_while_writing.is_none() {
            if let Some(on_b) = read(two.b.path(), "app.log").filter(|b| !b.is_empty()) {
                assert!(
                    written.starts_with(&on_b),
                    "B holds a state the log had (a prefix), not a torn read"
                );
                seen_while_writing = Some((start.elapsed(), on_b.len()));
            }
        }
        if seen_while_writing.is_some() && i >= 100 {
            break;
        }
    }
    drop(file);
    let (when, bytes) = seen_while_writing.expect("the log reached B while it was written");
    eprintln!("B first held {bytes} bytes of the log after {when:?}");
    assert!(when < Duration::from_secs(25), "in time: {when:?}");
    converge("after the writer stopped", &[two.a.path(), two.b.path()]);
    assert_eq!(read(two.b.path(), "app.log"), Some(written));
}
