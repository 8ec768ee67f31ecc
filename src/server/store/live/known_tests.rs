//! R-14.1.4's cost rule: a file a push displaces is read and hashed only
//! when it is not exactly as the server placed it (`store/known.rs`). The
//! whole family of hand changes that keep size and mtime (they move only
//! the ctime: `dd conv=notrunc` or the same bytes written again, `touch -r`
//! of itself, `truncate` to its size, a `chmod` that keeps the executable
//! bit, a hard link made and removed), while the server runs and while it
//! is stopped, met by every displacement (an upload over it, a Delete, a
//! RemoveDir): each is read and what it holds is kept; a file nobody
//! touched is not read, after a restart too.

use super::super::{DataPaths, UserStore};
use crate::protocol::{ContentHash, UserId, WirePath};
use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const USER: UserId = UserId([6; 16]);

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn open(dir: &Path) -> UserStore {
    let data = DataPaths {
        base: dir.to_path_buf(),
    };
    UserStore::open(&data, &USER, true, false).unwrap().0
}

/// The names of the kept objects (their hashes).
fn kept(dir: &Path) -> BTreeSet<String> {
    let data = DataPaths {
        base: dir.to_path_buf(),
    };
    let objects = data.user_state(&USER).join("versions/objects");
    std::fs::read_dir(objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// How a push takes `d/a` out of the folder.
#[derive(Debug, Clone, Copy)]
enum Displace {
    Overwrite,
    Delete,
    RemoveDir,
}

/// Pushes `d/a` and `d/b`, then displaces `d/a` (and, for a RemoveDir,
/// `d/b`) after `hand` ran on `d/a` (with the server stopped in between
/// when `stopped`). Returns the store, the kept objects and `d/a`'s
/// content right before the displacement.
fn displace(
    dir: &Path,
    how: Displace,
    stopped: bool,
    a: &[u8],
    hand: impl FnOnce(&Path),
) -> (UserStore, BTreeSet<String>, Vec<u8>) {
    let mut store = open(dir);
    let one = store.add_client().unwrap();
    let push = |store: &mut UserStore, path: &str, content: &[u8]| {
        let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
        let staged = store.stage(&p(path), base, content);
        store.commit_file(base, &p(path), staged, one).unwrap();
    };
    push(&mut store, "d/a", a);
    push(&mut store, "d/b", b"b's bytes");
    let at = dir.join("AllClients").join(USER.to_string()).join("d/a");
    let mut store = if stopped {
        store.close().unwrap();
        hand(&at);
        open(dir)
    } else {
        hand(&at);
        store
    };
    let before = std::fs::read(&at).unwrap();
    let base = store.tree().get(&p("d/a")).unwrap().version;
    match how {
        Displace::Overwrite => push(&mut store, "d/a", b"the device's new bytes"),
        Displace::Delete => {
            store.delete_file(base, &p("d/a"), one).unwrap();
        }
        Displace::RemoveDir => {
            let head = store.head();
            store.remove_dir(head, &p("d"), one).unwrap();
        }
    }
    let kept = kept(dir);
    (store, kept, before)
}

/// A hand change that keeps size and mtime, by number.
fn hand(op: usize, at: &Path, rng: &mut u64) {
    let meta = std::fs::metadata(at).unwrap();
    let mtime = meta.modified().unwrap();
    let len = meta.len();
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    // Other bytes of the same length.
    let other = |bytes: Vec<u8>| -> Vec<u8> { bytes.iter().map(|b| b ^ 0x01).collect() };
    match op {
        // `dd conv=notrunc` of other bytes somewhere inside it.
        0 => {
            let mut f = std::fs::OpenOptions::new().write(true).open(at).unwrap();
            let from = *rng % len;
            f.seek(SeekFrom::Start(from)).unwrap();
            let n = (len - from).min(1 + *rng % 7) as usize;
            f.write_all(&b"#######"[..n]).unwrap();
        }
        // Its own bytes written again.
        1 => {
            let bytes = std::fs::read(at).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(at)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
        }
        // `truncate -s` to the size it has.
        2 => std::fs::OpenOptions::new()
            .write(true)
            .open(at)
            .unwrap()
            .set_len(len)
            .unwrap(),
        // `touch -r` of itself: only the times are set.
        3 => {}
        // A `chmod` that keeps the executable bit, and back.
        4 => {
            let mode = meta.permissions().mode();
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode | 0o020)).unwrap();
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // `ln` then `rm` of the second name.
        5 => {
            let twin = at.with_file_name("twin");
            std::fs::hard_link(at, &twin).unwrap();
            std::fs::remove_file(&twin).unwrap();
        }
        // Replaced through a rename by a new file (another inode) of other
        // bytes, given its mode, size and mtime (an editor's save, `rsync`).
        6 => {
            let twin = at.with_file_name("twin");
            std::fs::write(&twin, other(std::fs::read(at).unwrap())).unwrap();
            std::fs::set_permissions(&twin, meta.permissions()).unwrap();
            std::fs::rename(&twin, at).unwrap();
        }
        // Removed and made again with other bytes (its inode number may be
        // given out again).
        _ => {
            let bytes = other(std::fs::read(at).unwrap());
            std::fs::remove_file(at).unwrap();
            std::fs::write(at, bytes).unwrap();
            std::fs::set_permissions(at, meta.permissions()).unwrap();
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(at)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = std::fs::metadata(at).unwrap();
    assert_eq!((after.len(), after.modified().unwrap()), (len, mtime));
}

const OPS: usize = 8;

/// Runs every hand change of [`hand`] against every displacement, with
/// the data directories made in `base` (on the file system `fs`).
fn every_hand_change_in(base: &Path, fs: &str) {
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for op in 0..OPS {
        for how in [Displace::Overwrite, Displace::Delete, Displace::RemoveDir] {
            for stopped in [false, true] {
                let dir = tempfile::tempdir_in(base).unwrap();
                let a = format!("a's bytes {op} {rng}");
                let (store, kept, before) =
                    displace(dir.path(), how, stopped, a.as_bytes(), |at| {
                        hand(op, at, &mut rng)
                    });
                let case = format!("{fs}: op {op}, {how:?}, stopped {stopped}");
                assert!(store.known.hashed >= 1, "{case}: d/a not read");
                assert!(
                    kept.contains(&ContentHash::of(&before).to_string()),
                    "{case}: what d/a held ({:?}) is not kept",
                    String::from_utf8_lossy(&before)
                );
                if op == 0 || op >= 6 {
                    assert_ne!(before, a.as_bytes(), "{case}: the hand changed nothing");
                }
            }
        }
    }
}

#[test]
fn every_hand_change_that_moves_only_the_ctime_is_read_and_kept() {
    every_hand_change_in(&std::env::temp_dir(), "the temp dir's");
}

/// A file system mounted on a temporary directory for one test (root
/// only), unmounted lazily when dropped.
struct Mounted {
    dir: tempfile::TempDir,
}

impl Mounted {
    /// `mount ARGS... [IMAGE/img] DIR`; `None` (and the reason printed)
    /// when it cannot.
    fn new(args: &[&str], image: Option<&tempfile::TempDir>) -> Option<Mounted> {
        let dir = tempfile::tempdir().unwrap();
        let mut mount = std::process::Command::new("mount");
        mount.args(args);
        if let Some(image) = image {
            mount.arg(image.path().join("img"));
        }
        let ok = mount.arg(dir.path()).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount {args:?} here (needs root)");
            return None;
        }
        Some(Mounted { dir })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// An ext4 with 128-byte inodes, whose times are whole seconds.
fn ext4_whole_seconds(image: &tempfile::TempDir) -> Option<Mounted> {
    let img = image.path().join("img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let made = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-I", "128"])
        .arg(&img)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIPPED: no mkfs.ext4 here");
        return None;
    }
    Mounted::new(&["-o", "loop"], Some(image))
}

#[test]
fn where_a_change_can_keep_the_ctime_every_displaced_file_is_read() {
    // A coarse clock (ramfs: no multigrain timestamps) and 1-second
    // times (ext4 with 128-byte inodes): a change right after the
    // server's look keeps the ctime there.
    let image = tempfile::tempdir().unwrap();
    let mounts = [
        ("ramfs", Mounted::new(&["-t", "ramfs", "ramfs"], None)),
        ("ext4 -I 128", ext4_whole_seconds(&image)),
    ];
    for (name, mounted) in mounts {
        let Some(mounted) = mounted else { continue };
        assert!(
            !super::super::known::probe_fine_ctime(mounted.dir.path()),
            "{name}: probed fine"
        );
        every_hand_change_in(mounted.dir.path(), name);
        let dir = tempfile::tempdir_in(mounted.dir.path()).unwrap();
        let (store, _, _) = displace(dir.path(), Displace::Delete, false, b"a", |_| {});
        assert_eq!(
            (store.known.hashed, store.known.vouched),
            (1, 0),
            "{name}: an untouched file is read too"
        );
    }
}

#[test]
fn a_file_as_the_server_placed_it_is_not_read_when_a_push_displaces_it() {
    for how in [Displace::Overwrite, Displace::Delete, Displace::RemoveDir] {
        for stopped in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (store, kept, before) = displace(dir.path(), how, stopped, b"a's bytes", |_| {});
            let case = format!("{how:?}, stopped {stopped}");
            let displaced = match how {
                Displace::RemoveDir => 2,
                _ => 1,
            };
            assert!(
                kept.contains(&ContentHash::of(&before).to_string()),
                "{case}"
            );
            if store.known.fine_ctime() {
                assert_eq!(
                    (store.known.hashed, store.known.vouched),
                    (0, displaced),
                    "{case}: read though unchanged"
                );
            } else {
                // A change in the ctime's tick (or second) could keep it:
                // nothing is trusted there (`probe_fine_ctime`).
                assert_eq!(store.known.hashed, displaced, "{case}");
            }
        }
    }
}

/// What a restore places is remembered as an upload is, a crash included:
/// the files placed before a crash cut the restore off are read at their
/// next displacement (the memory went with the process; the save from
/// before names the same paths and hashes on other inodes and vouches for
/// none of them), those the next open's finish placed are vouched for
/// while untouched, and a hand change to either kind is read and kept.
#[test]
fn files_a_cut_restore_placed_are_read_when_changed_and_trusted_only_as_placed() {
    const N: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("AllClients").join(USER.to_string());
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    for i in 0..N {
        let path = p(&format!("d/f{i}"));
        let staged = store.stage(&path, 0, format!("file {i}").as_bytes());
        store.commit_file(0, &path, staged, one).unwrap();
    }
    // A save naming d/f*, with the hashes the restore brings back.
    store.close().unwrap();
    let mut store = open(dir.path());
    store.remove_dir(store.head(), &p("d"), one).unwrap();
    let seq = store.head();
    store.crash_after = Some(2);
    assert!(store.restore(seq, &p("d")).is_err(), "the test's crash");
    // A crash: no close, no save.
    drop(store);
    let mut store = open(dir.path());
    for i in 0..N {
        let on_disk = std::fs::read(root.join(format!("d/f{i}"))).unwrap();
        assert_eq!(on_disk, format!("file {i}").as_bytes(), "d/f{i} restored");
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut edited = Vec::new();
    for i in [0, N - 1] {
        let at = root.join(format!("d/f{i}"));
        hand(0, &at, &mut rng);
        edited.push(std::fs::read(&at).unwrap());
    }
    let (hashed, vouched) = (store.known.hashed, store.known.vouched);
    store.remove_dir(store.head(), &p("d"), one).unwrap();
    let (hashed, vouched) = (store.known.hashed - hashed, store.known.vouched - vouched);
    let kept = kept(dir.path());
    for bytes in &edited {
        assert!(
            kept.contains(&ContentHash::of(bytes).to_string()),
            "the hand's {:?} is not kept",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(hashed + vouched, N as u64);
    assert!(hashed >= 2, "hashed {hashed}: an edited file was not read");
    if store.known.fine_ctime() {
        assert!(
            vouched >= 1,
            "an untouched file the finish placed was read too"
        );
    }
}
