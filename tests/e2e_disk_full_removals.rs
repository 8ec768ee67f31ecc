//! End-to-end: a device whose disk is full (no free block, or no free
//! inode) still applies the other devices' deletions and renames, which
//! free that disk; its in-place edits still go up; `status` stays readable
//! meanwhile (outside tester breaker27 F1, F2; PROTOCOL.md,
//! The real binaries on loopback; B's folder is on a small tmpfs
//! the test mounts and fills from outside the folder (root only: elsewhere
//! the tests print why and skip).
//!
//! Before: every removal first appended a record to
//! `.cloudservice/removing` and wrote an origin note, which failed with
//! `No space left on device`, so no deletion or rename was ever applied
//! and the disk stayed full for good; `status` said "status.json is
//! damaged" once its rewrite in place outgrew the file's blocks.

mod common;

use common::*;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What runs out on B's disk.
#[derive(Clone, Copy, Debug)]
enum Full {
    /// No free inode (plenty of bytes).
    Inodes,
    /// No free byte.
    Bytes,
}

/// Fills the file system of `dir` (a directory outside B's folder) until
/// nothing more fits: empty files until no inode is left, or one file
/// until no block is left; then gives back `spare` inodes or blocks of 4
/// KiB (for B's own downloads to fill).
fn fill(dir: &Path, full: Full, spare: usize) {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("filler dir");
    match full {
        Full::Inodes => {
            // Bounded: the tmpfs has a few hundred inodes.
            let made = (0..100_000)
                .take_while(|i| std::fs::File::create(dir.join(format!("f{i}"))).is_ok())
                .count();
            assert!(made < 100_000, "the disk never ran out of inodes");
            for i in made.saturating_sub(spare)..made {
                std::fs::remove_file(dir.join(format!("f{i}"))).expect("give back");
            }
        }
        Full::Bytes => {
            let mut f = std::fs::File::create(dir.join("fill")).expect("filler");
            while f.write_all(&[0x5a; 64 << 10]).is_ok() {}
            while f.write_all(&[0x5a; 512]).is_ok() {}
            let len = f.metadata().expect("filler").len();
            f.set_len(len.saturating_sub(spare as u64 * 4096))
                .expect("give back");
        }
    }
}

/// True when nothing new fits in `dir`: a new file of one block fails.
fn is_full(dir: &Path) -> bool {
    use std::io::Write;
    let probe = dir.join(".probe");
    let fits = std::fs::File::create(&probe).and_then(|mut f| f.write_all(&[1; 4096]));
    let _ = std::fs::remove_file(&probe);
    fits.is_err()
}

/// B synced with A; B's disk is then nearly filled from outside, and A's
/// 120 new files fill the rest (B places what fits and holds the rest back:
/// the state a disk the sync itself filled ends in). A then deletes most
/// of `t/` and all of `u/`, renames a directory and a file; B edits a file
/// in place (no new block). B must end as A, with its edit on A, and
/// `status` must never be unreadable.
fn removals_on_a_full_disk(full: Full) {
    let options = match full {
        Full::Inodes => "size=64m,nr_inodes=400",
        Full::Bytes => "size=4m",
    };
    let Some(disk) = Tmpfs::mount_with(options) else {
        return;
    };
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let a = a.path();
    let b = disk.subdir("B");
    let mut rng = Rng::new(seed("DISK_FULL_SEED"));
    for i in 1..=30 {
        write(a, &format!("proj/p{i}.txt"), format!("p{i}\n"));
    }
    write(a, "solo.txt", "solo\n");
    write(a, "keep.txt", "keep-A000\n");
    let size = match full {
        Full::Inodes => 8,
        Full::Bytes => 16 << 10,
    };
    for i in 1..=150 {
        write(a, &format!("t/t{i}"), rng.bytes(size));
    }
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
    assert!(
        eventually(CONVERGE, || status_json(&b).0 == 0),
        "B in sync before its disk fills"
    );

    // Room for about 20 of A's 120 new files (of one block each at most),
    // which B's downloads fill.
    fill(&disk.path().join("other"), full, 20);
    for i in 1..=120 {
        write(a, &format!("u/u{i}"), rng.bytes(size.min(3000)));
    }
    assert!(
        cb.wait_log("holding it back", Duration::from_secs(30)),
        "{full:?}: B never held a download back:\n{}",
        cb.log_tail(4000)
    );
    let mut damaged = Vec::new();
    let status_seen = |damaged: &mut Vec<String>| {
        let (code, text) = status_text(&b, false);
        if code == 2 {
            damaged.push(text);
        }
    };
    // B keeps trying what it holds back (and rewriting its status) until
    // its downloads have taken every block or inode left.
    let filled = eventually(Duration::from_secs(40), || {
        std::thread::sleep(Duration::from_millis(300));
        status_seen(&mut damaged);
        is_full(&b)
    });
    assert!(filled, "{full:?}: B's disk never filled");
    let placed = std::fs::read_dir(b.join("u")).map_or(0, Iterator::count);
    assert!(placed < 120, "{full:?}: all of u/ fit");

    for i in 11..=150 {
        std::fs::remove_file(a.join(format!("t/t{i}"))).expect("rm on A");
    }
    std::fs::remove_dir_all(a.join("u")).expect("rm -r on A");
    std::fs::rename(a.join("proj"), a.join("project")).expect("mv on A");
    std::fs::rename(a.join("solo.txt"), a.join("solo2.txt")).expect("mv on A");
    // An edit in place on B: same length, no new block needed.
    std::fs::OpenOptions::new()
        .write(true)
        .open(b.join("keep.txt"))
        .and_then(|f| f.write_all_at(b"keep-B111\n", 0))
        .expect("edit in place on B");

    let start = Instant::now();
    let mut last_status = Instant::now();
    let done = eventually(Duration::from_secs(60), || {
        if last_status.elapsed() >= Duration::from_millis(300) {
            last_status = Instant::now();
            status_seen(&mut damaged);
        }
        let edited = std::fs::read(a.join("keep.txt")).is_ok_and(|t| t == b"keep-B111\n");
        edited && tree(a) == tree(&b)
    });
    let took = start.elapsed();
    let b_t = std::fs::read_dir(b.join("t")).map_or(0, Iterator::count);
    assert!(
        damaged.is_empty(),
        "{full:?}: status unreadable {} time(s): {:?}",
        damaged.len(),
        damaged.first()
    );
    assert!(
        done,
        "{full:?}: B did not apply A's deletions and renames, or its edit did not go up, on its \
         full disk ({took:?}; B holds {b_t} files in t/, A 10; A's keep.txt {:?}): {}\n{}",
        std::fs::read_to_string(a.join("keep.txt")),
        common::tree::tree_diff(&tree(a), &tree(&b)),
        cb.log_tail(6000)
    );
    eprintln!("{full:?}: B caught up {took:?} after A's changes");
    assert_eq!(b_t, 10, "A's deletions stand");
    assert!(!b.join("proj").exists() && b.join("project/p30.txt").is_file());
    let in_sync = eventually(Duration::from_secs(20), || status_json(&b).0 == 0);
    assert!(
        in_sync,
        "{full:?}: B never said in sync: {:#}\n{}",
        status_json(&b).1,
        cb.log_tail(4000)
    );
    converge("at the end", &[a, &b]);
}

#[test]
fn deletions_renames_and_edits_go_on_a_disk_without_free_inodes() {
    removals_on_a_full_disk(Full::Inodes);
}

#[test]
fn deletions_renames_and_edits_go_on_a_disk_without_free_bytes() {
    removals_on_a_full_disk(Full::Bytes);
}
