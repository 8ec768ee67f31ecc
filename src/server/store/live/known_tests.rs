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
    let mut f = std::fs::OpenOptions::new().write(true).open(at).unwrap();
    match op {
        // `dd conv=notrunc` of other bytes somewhere inside it.
        0 => {
            let from = *rng % len;
            f.seek(SeekFrom::Start(from)).unwrap();
            let n = (len - from).min(1 + *rng % 7) as usize;
            f.write_all(&b"#######"[..n]).unwrap();
        }
        // Its own bytes written again.
        1 => f.write_all(&std::fs::read(at).unwrap()).unwrap(),
        // `truncate -s` to the size it has.
        2 => f.set_len(len).unwrap(),
        // `touch -r` of itself: only the times are set.
        3 => {}
        // A `chmod` that keeps the executable bit, and back.
        4 => {
            let mode = meta.permissions().mode();
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode | 0o020)).unwrap();
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // `ln` then `rm` of the second name.
        _ => {
            let twin = at.with_file_name("twin");
            std::fs::hard_link(at, &twin).unwrap();
            std::fs::remove_file(&twin).unwrap();
        }
    }
    f.set_modified(mtime).unwrap();
    let after = std::fs::metadata(at).unwrap();
    assert_eq!((after.len(), after.modified().unwrap()), (len, mtime));
}

const OPS: usize = 6;

#[test]
fn every_hand_change_that_moves_only_the_ctime_is_read_and_kept() {
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for op in 0..OPS {
        for how in [Displace::Overwrite, Displace::Delete, Displace::RemoveDir] {
            for stopped in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let a = format!("a's bytes {op} {rng}");
                let (store, kept, before) =
                    displace(dir.path(), how, stopped, a.as_bytes(), |at| {
                        hand(op, at, &mut rng)
                    });
                let case = format!("op {op}, {how:?}, stopped {stopped}");
                assert!(store.known.hashed >= 1, "{case}: d/a not read");
                assert!(
                    kept.contains(&ContentHash::of(&before).to_string()),
                    "{case}: what d/a held ({:?}) is not kept",
                    String::from_utf8_lossy(&before)
                );
                if op == 0 {
                    assert_ne!(before, a.as_bytes(), "{case}: the hand changed nothing");
                }
            }
        }
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
                // A coarse clock: an identity taken in its ctime's tick
                // cannot tell a change in that tick apart (`vouches_later`).
                assert_eq!(store.known.hashed, displaced, "{case}");
            }
        }
    }
}
