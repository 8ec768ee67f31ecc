//! How soon a change written on one device is complete on another: the real
//! server and two real clients on loopback, whatever the file's timestamps
//! say and however it was saved.

mod common;

use common::{converge, write, TwoDevices};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// [`TwoDevices`] with one file in `a` to start from.
fn two_devices() -> TwoDevices {
    TwoDevices::start(|a| write(a, "seed.txt", "s"))
}

/// Waits (at most `limit`) until `path` under `root` holds `want`; returns
/// how long that took.
fn arrival(root: &Path, path: &str, want: &[u8], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fs::read(root.join(path)).is_ok_and(|got| got == want) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Writes `data` to `path` and then dates it `mtime`, as `touch -d`, a
/// restored archive or a device whose clock runs ahead would.
fn write_dated(root: &Path, path: &str, data: &[u8], mtime: SystemTime) {
    fs::write(root.join(path), data).unwrap();
    fs::File::options()
        .write(true)
        .open(root.join(path))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn files_dated_in_the_future_arrive_within_a_second() {
    let d = two_devices();
    let hour_ahead = SystemTime::now() + Duration::from_secs(3600);
    let year_2100 = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
    write_dated(d.a.path(), "ahead.txt", b"an hour ahead", hour_ahead);
    write_dated(d.a.path(), "y2100.txt", b"dated 2100", year_2100);
    for (path, data) in [
        ("ahead.txt", &b"an hour ahead"[..]),
        ("y2100.txt", b"dated 2100"),
    ] {
        let took = arrival(d.b.path(), path, data, Duration::from_secs(1));
        assert!(took.is_some(), "{path} did not arrive within a second");
    }
    // And an edit of such a file travels too (same size, still in the future).
    write_dated(d.a.path(), "ahead.txt", b"AN HOUR AHEAD", hour_ahead);
    let took = arrival(
        d.b.path(),
        "ahead.txt",
        b"AN HOUR AHEAD",
        Duration::from_secs(1),
    );
    assert!(took.is_some(), "the edit of ahead.txt did not arrive");
}

#[test]
fn an_editor_save_arrives_promptly_and_leaves_no_temporary_file() {
    let d = two_devices();
    write(d.a.path(), "doc.txt", "version 1");
    converge("doc v1", &[d.a.path(), d.b.path()]);
    // Write a temporary file, then rename it over the original.
    let tmp = d.a.path().join(".doc.txt.swp");
    fs::write(&tmp, b"version 2, saved by an editor").unwrap();
    fs::rename(&tmp, d.a.path().join("doc.txt")).unwrap();
    let took = arrival(
        d.b.path(),
        "doc.txt",
        b"version 2, saved by an editor",
        Duration::from_secs(1),
    );
    assert!(
        took.is_some(),
        "the editor's save did not arrive within a second"
    );
    let t = converge("after the save", &[d.a.path(), d.b.path()]);
    assert!(!t.contains_key(".doc.txt.swp"), "{:?}", t.keys());
}
