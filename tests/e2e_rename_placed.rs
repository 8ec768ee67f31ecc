//! Another device's rename is placed here by rename, not by copying every
//! byte (outside tester breaker21, F6; PROTOCOL.md ). Real binaries
//! on loopback: A renames a directory of 8 x 8 MiB files; B must end with
//! the same tree by content, having written far less than the 64 MiB the
//! directory holds (`/proc/<pid>/io` `write_bytes` of B's client: the bytes
//! it dirtied in the page cache, counted when it writes them). Before, B
//! moved each old file into its temporary area and copied it to the new
//! name: 64 MiB written (and on a full disk the file was downloaded whole).

mod common;

use common::{converge, eventually, settle, status_text, Rng, TwoDevices, CONVERGE};
use std::fs;
use std::path::Path;

const MIB: u64 = 1 << 20;
const FILES: u64 = 8;
const SIZE: u64 = 8 * MIB;

/// `write_bytes` of process `pid` (bytes it caused to be written to disk).
fn write_bytes(pid: u32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/PID/io")
}

/// Waits until `cloud-client status` says the folder is in sync.
fn in_sync(what: &str, folder: &Path) {
    assert!(
        eventually(CONVERGE, || status_text(folder, false).0 == 0),
        "{what}: {} not in sync: {}",
        folder.display(),
        status_text(folder, false).1
    );
}

#[test]
fn a_directory_renamed_elsewhere_is_renamed_here_not_copied() {
    let mut rng = Rng::new(22);
    let d = TwoDevices::start(|a| {
        fs::create_dir(a.join("d")).expect("mkdir");
        for i in 0..FILES {
            fs::write(a.join(format!("d/f{i}.bin")), rng.bytes(SIZE as usize)).expect("write");
        }
        fs::write(a.join("keep.txt"), "keep\n").expect("write");
    });
    let (a, b) = (d.a.path(), d.b.path());
    in_sync("initial", a);
    in_sync("initial", b);
    let pid = d.cb.pid().expect("B runs");
    let before = write_bytes(pid);
    if before < FILES * SIZE {
        // This file system does not account writes (tmpfs): nothing to
        // measure here.
        eprintln!(
            "SKIPPED: B's first sync wrote {before} bytes for {} (no write accounting)",
            FILES * SIZE
        );
        return;
    }
    fs::rename(a.join("d"), a.join("e")).expect("mv d e");
    settle();
    let tree = converge("the rename reaches B", &[a, b]);
    assert!(tree.contains_key("e/f0.bin") && !tree.contains_key("d/f0.bin"));
    in_sync("after the rename", b);
    in_sync("after the rename", a);
    let written = write_bytes(pid) - before;
    eprintln!(
        "B wrote {written} bytes to follow the rename of {} bytes",
        FILES * SIZE
    );
    assert!(
        written < SIZE,
        "B wrote {written} bytes to follow a rename of {} bytes (a copy, not a rename)",
        FILES * SIZE
    );
    converge("after the rename", &[a, b]);
}
