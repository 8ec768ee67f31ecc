//! Hand edits in the server's folder while it runs and kept
//! versions that a hand edit reached (breaker24 F4, F9, F10): the decision
//! table, each case the tester found, and seeded random hand operations
//! interleaved with pushes, checked by content: no byte the server held
//! is lost, and no kept object holds bytes other than its hash.

use super::super::{DataPaths, StoreError, UserStore};
use super::{decide, Listed, Seen, Step};
use crate::fsafe::hash_file;
use crate::protocol::{ClientId, ContentHash, PushStatus, UserId, WirePath};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn open(dir: &Path) -> UserStore {
    let paths = DataPaths {
        base: dir.to_path_buf(),
    };
    UserStore::open(&paths, &UserId([7; 16]), true, false)
        .unwrap()
        .0
}

fn upload(
    store: &mut UserStore,
    client: ClientId,
    base: u64,
    path: &str,
    content: &[u8],
) -> Result<crate::protocol::PushAck, StoreError> {
    let staged = store.stage(&p(path), base, content);
    store.commit_file(base, &p(path), staged, client)
}

/// A hand's write: a new inode renamed over `path` (`replace`) or the
/// same inode rewritten (`in place`), with an mtime no earlier write had,
/// newer than the server's (an edit now).
fn hand_write(root: &Path, path: &str, content: &[u8], in_place: bool, tick: u64) {
    let when = SystemTime::now() + Duration::from_secs(1) + Duration::from_micros(tick);
    hand_write_at(root, path, content, in_place, tick, when);
}

/// [`hand_write`] with the mtime `when` (an older one: a backup copied
/// back with its times, R-10.13).
fn hand_write_at(
    root: &Path,
    path: &str,
    content: &[u8],
    in_place: bool,
    tick: u64,
    when: SystemTime,
) {
    let at = root.join(path);
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let file = if in_place {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .create(true)
            .open(&at)
            .unwrap();
        f.write_all(content).unwrap();
        f
    } else {
        let temp = root.with_file_name(format!("hand-{tick}"));
        std::fs::write(&temp, content).unwrap();
        std::fs::rename(&temp, &at).unwrap();
        std::fs::File::options().write(true).open(&at).unwrap()
    };
    file.set_modified(when).unwrap();
}

fn content_of(store: &UserStore, path: &str) -> Vec<u8> {
    std::fs::read(store.root().join(path)).unwrap()
}

/// The paths (and contents) of every regular file below `root` (none when
/// it is not there). Also the family test's (`family_tests.rs`).
pub(super) fn folder(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

fn objects_dir(dir: &Path) -> PathBuf {
    let paths = DataPaths {
        base: dir.to_path_buf(),
    };
    paths.user_state(&UserId([7; 16])).join("versions/objects")
}

/// Every kept object's bytes by its name; panics on one whose bytes are
/// not its name's hash (a kept version holding other bytes, F4/F9).
fn kept_objects(dir: &Path) -> BTreeSet<String> {
    let mut hashes = BTreeSet::new();
    for entry in std::fs::read_dir(objects_dir(dir)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".damaged") || name.starts_with(".tmp") {
            continue;
        }
        let (hash, _) = hash_file(&entry.path()).unwrap();
        assert_eq!(
            hash.to_string(),
            name,
            "a kept object holds bytes other than its hash"
        );
        hashes.insert(name);
    }
    hashes
}

fn hash_of(bytes: &[u8]) -> String {
    ContentHash(*blake3::hash(bytes).as_bytes()).to_string()
}

#[test]
fn the_decision_table() {
    let f = |size, mtime_ns, executable| (size, mtime_ns, executable);
    let listed = |(size, mtime_ns, executable)| Listed::File {
        size,
        mtime_ns,
        executable,
    };
    let seen = |(size, mtime_ns, executable)| Seen::File {
        size,
        mtime_ns,
        executable,
    };
    let cases = [
        (Listed::Nothing, Seen::Nothing, Step::Agree),
        (Listed::Nothing, Seen::Other, Step::Agree),
        (Listed::Nothing, seen(f(1, 2, false)), Step::Hash),
        (Listed::Nothing, Seen::Dir, Step::NewDir),
        (listed(f(1, 2, false)), seen(f(1, 2, false)), Step::Agree),
        (listed(f(1, 2, false)), seen(f(1, 3, false)), Step::Hash),
        (listed(f(1, 2, false)), seen(f(9, 2, false)), Step::Hash),
        (listed(f(1, 2, false)), seen(f(9, 2, true)), Step::Hash),
        (
            listed(f(1, 2, false)),
            seen(f(1, 2, true)),
            Step::Mode(true),
        ),
        (
            listed(f(1, 2, true)),
            seen(f(1, 2, false)),
            Step::Mode(false),
        ),
        (listed(f(1, 2, false)), Seen::Nothing, Step::Lost),
        (listed(f(1, 2, false)), Seen::Dir, Step::Lost),
        (listed(f(1, 2, false)), Seen::Other, Step::Lost),
        (Listed::Dir, Seen::Dir, Step::Below),
        (Listed::Dir, Seen::Nothing, Step::Agree),
        (Listed::Dir, seen(f(1, 2, false)), Step::Agree),
        (Listed::Dir, Seen::Other, Step::Agree),
    ];
    for (listed, seen, step) in cases {
        assert_eq!(decide(listed, seen), step, "{listed:?} / {seen:?}");
    }
}

/// F10: a file added by hand while the server runs, then a device's
/// upload to its path: both stay (the hand's at the path, the device's
/// in a conflict copy). Main overwrote the hand file without trace.
#[test]
fn a_file_added_by_hand_meets_an_upload_as_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    hand_write(store.root(), "new.txt", b"by hand", false, 1);
    let ack = upload(&mut store, one, 0, "new.txt", b"from the device").unwrap();
    assert_eq!(ack.status, PushStatus::Conflict, "{ack:?}");
    assert_eq!(content_of(&store, "new.txt"), b"by hand");
    assert_eq!(content_of(&store, ack.path.as_str()), b"from the device");
    assert!(
        store.tree().get(&p("new.txt")).is_some(),
        "the hand file is journaled"
    );
}

/// F4: a file replaced (and one edited in place) by hand while the server
/// runs, then the device's upload on the old version: both stay, and no
/// kept object holds the hand's bytes under the old hash.
#[test]
fn a_file_replaced_or_edited_by_hand_is_kept_and_versions_hold_their_hash() {
    for in_place in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let one = store.add_client().unwrap();
        let v1 = upload(&mut store, one, 0, "a.txt", b"version one")
            .unwrap()
            .version;
        hand_write(store.root(), "a.txt", b"by hand, longer", in_place, 2);
        let ack = upload(&mut store, one, v1, "a.txt", b"device edit").unwrap();
        assert_eq!(
            ack.status,
            PushStatus::Conflict,
            "in place {in_place}: {ack:?}"
        );
        assert_eq!(content_of(&store, "a.txt"), b"by hand, longer");
        assert_eq!(content_of(&store, ack.path.as_str()), b"device edit");
        kept_objects(dir.path());
        // A later overwrite keeps the hand's bytes under their own hash.
        // Once the device pulled the hand's version, its edit replaces it.
        let hand_version = store.tree().get(&p("a.txt")).unwrap().version;
        let head = store.head();
        store.set_cursor(one, head).unwrap();
        let ack = upload(&mut store, one, hand_version, "a.txt", b"third").unwrap();
        assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
        assert!(kept_objects(dir.path()).contains(&hash_of(b"by hand, longer")));
    }
}

/// Delete, Rename (both ends), SetMode and RemoveDir of paths a hand
/// changed: nothing the hand made is removed or replaced.
#[test]
fn removals_and_renames_leave_what_a_hand_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    let va = upload(&mut store, one, 0, "a.txt", b"a").unwrap().version;
    let vb = upload(&mut store, one, 0, "b.txt", b"b").unwrap().version;
    upload(&mut store, one, 0, "d/x.txt", b"x").unwrap();
    hand_write(store.root(), "a.txt", b"a by hand", true, 3);
    hand_write(store.root(), "c.txt", b"c by hand", false, 4);
    hand_write(store.root(), "d/hand.txt", b"in d by hand", false, 5);
    let ack = store.delete_file(va, &p("a.txt"), one).unwrap();
    assert_eq!(ack.status, PushStatus::Stale, "{ack:?}");
    let ack = store.rename(vb, &p("b.txt"), &p("c.txt"), one).unwrap();
    assert_eq!(ack.status, PushStatus::Conflict, "{ack:?}");
    let head = store.head();
    store.remove_dir(head, &p("d"), one).unwrap();
    let files = folder(store.root());
    assert_eq!(
        files.get("a.txt").map(Vec::as_slice),
        Some(&b"a by hand"[..])
    );
    assert_eq!(
        files.get("c.txt").map(Vec::as_slice),
        Some(&b"c by hand"[..])
    );
    assert_eq!(
        files.get("d/hand.txt").map(Vec::as_slice),
        Some(&b"in d by hand"[..])
    );
    assert!(
        !files.contains_key("d/x.txt"),
        "what the device had seen goes"
    );
    assert!(files.values().any(|c| c == b"b"), "{files:?}");
}

/// F9: a file renamed away shares its inode with its kept object; an edit
/// in place while the server is stopped reached that object. The start's
/// comparison sets the object aside, a restore of that version is refused
/// (never the hand's bytes), and the next keep of the content stores it
/// anew.
#[test]
fn an_edit_in_place_never_passes_for_a_kept_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    let v = upload(&mut store, one, 0, "a.txt", b"original")
        .unwrap()
        .version;
    let moved = store.rename(v, &p("a.txt"), &p("b.txt"), one).unwrap();
    store.close().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    hand_write(
        &paths.user_root(&UserId([7; 16])),
        "b.txt",
        b"edited by hand",
        true,
        6,
    );
    let mut store = open(dir.path());
    assert_eq!(content_of(&store, "b.txt"), b"edited by hand");
    assert!(!kept_objects(dir.path()).contains(&hash_of(b"original")));
    match store.restore(moved.version, &p("a.txt")) {
        Err(StoreError::KeptDamaged(path)) => assert_eq!(path, p("a.txt")),
        other => panic!("restore of a damaged kept version: {other:?}"),
    }
    // The content comes back from a device and is kept again when replaced.
    let head = store.head();
    upload(&mut store, one, head, "a.txt", b"original").unwrap();
    let va = store.tree().get(&p("a.txt")).unwrap().version;
    upload(&mut store, one, va, "a.txt", b"newer").unwrap();
    assert!(kept_objects(dir.path()).contains(&hash_of(b"original")));
    let ack = store.restore(store.head(), &p("a.txt")).unwrap();
    assert_eq!(content_of(&store, ack.path.as_str()), b"original");
}

/// A tiny seeded generator (xorshift), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PATHS: [&str; 6] = ["a", "b", "d/x", "d/y", "e/z", "e/f/g"];
const DIRS: [&str; 3] = ["d", "e", "e/f"];

/// The whole family: seeded random hand operations (add, replace, edit
/// in place, an older copy put back, remove, chmod) interleaved with two
/// devices' pushes (uploads, deletes, renames, directory removals, mode
/// changes; bases up to date or stale). Whatever the folder held that no
/// hand later overwrote or removed is, at the end, in the folder or in a
/// kept object; every kept object holds its hash.
#[test]
fn random_hand_operations_interleaved_with_pushes_lose_no_byte() {
    for seed in 1..=24u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let clients = [store.add_client().unwrap(), store.add_client().unwrap()];
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        // Contents written by anyone, and those a hand destroyed itself.
        let mut written: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut destroyed: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut trail = Vec::new();
        for step in 0..40u64 {
            let path = PATHS[rng.below(PATHS.len())];
            let content =
                format!("seed {seed} step {step} {}", "x".repeat(rng.below(40))).into_bytes();
            let root = store.root().to_path_buf();
            let at = root.join(path);
            let op = rng.below(11);
            trail.push(format!("{op} {path}"));
            let mut hand_destroys = |at: &Path| {
                if let Ok(old) = std::fs::read(at) {
                    destroyed.insert(old);
                }
            };
            match op {
                0 | 1 => {
                    // A hand writes a file (new inode, or in place).
                    if at.is_dir() {
                        continue;
                    }
                    hand_destroys(&at);
                    if at.parent().is_some_and(|d| d.is_file()) {
                        continue;
                    }
                    let tick = seed * 1000 + step;
                    if rng.below(4) == 0 {
                        // An older copy put back with its times.
                        let old = SystemTime::UNIX_EPOCH + Duration::from_micros(tick);
                        hand_write_at(&root, path, &content, op == 1, tick, old);
                    } else {
                        hand_write(&root, path, &content, op == 1, tick);
                    }
                    written.insert(content);
                }
                2 => {
                    if at.is_file() {
                        hand_destroys(&at);
                        std::fs::remove_file(&at).unwrap();
                    }
                }
                3 => {
                    if at.is_file() {
                        use std::os::unix::fs::PermissionsExt;
                        let mode = std::fs::metadata(&at).unwrap().permissions().mode();
                        std::fs::set_permissions(
                            &at,
                            std::fs::Permissions::from_mode(mode ^ 0o100),
                        )
                        .unwrap();
                    }
                }
                4..=6 => {
                    let client = clients[rng.below(2)];
                    let node = store.tree().get(&p(path)).copied();
                    let base = match (node, rng.below(3)) {
                        (_, 0) => 0,
                        (Some(n), _) => n.version,
                        (None, _) => 0,
                    };
                    if upload(&mut store, client, base, path, &content).is_ok() {
                        written.insert(content);
                    }
                }
                7 => {
                    let client = clients[rng.below(2)];
                    let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
                    let _ = store.delete_file(base, &p(path), client);
                }
                8 => {
                    let client = clients[rng.below(2)];
                    let to = PATHS[rng.below(PATHS.len())];
                    let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
                    let _ = store.rename(base, &p(path), &p(to), client);
                }
                9 => {
                    let client = clients[rng.below(2)];
                    let d = DIRS[rng.below(DIRS.len())];
                    let head = store.head();
                    let _ = store.remove_dir(head, &p(d), client);
                }
                _ => {
                    let client = clients[rng.below(2)];
                    let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
                    let on = rng.below(2) == 0;
                    let _ = store.set_mode(base, &p(path), on, client);
                }
            }
        }
        let live: BTreeSet<Vec<u8>> = folder(store.root()).into_values().collect();
        let kept = kept_objects(dir.path());
        for content in written.difference(&destroyed) {
            assert!(
                live.contains(content) || kept.contains(&hash_of(content)),
                "seed {seed}: {:?} is neither in the folder nor kept\nsteps: {trail:?}",
                String::from_utf8_lossy(content)
            );
        }
    }
}
