//! Pushes below a file that lies inside a conflict directory (§7.4.1),
//! against the real server binary: the outside tester's breaker16 F4. One
//! device uploads `a`, then `a/b` (a Conflict, placed at
//! `a (conflict 1 T)/b`), then anything below `a/b`: the server answered
//! Error 9 `Storage` "refusing to follow a symlink at a (conflict 1 T)/b/c"
//! (no symlink existed: `b` is the file the server itself placed there), a
//! retryable error, so a conformant client retried for ever. R-7.4.1.5 says
//! such a push is decided there like a push at that path: below a file, so
//! it goes to that file's own conflict directory (R-7.4.1.1), at every
//! level.

mod common;

use cloudservice::protocol::{
    ChangeEntry, ContentHash, Delete, EntryState, ErrorReport, Message, PushAck, PushStatus,
    RemoveDir, Rename, WirePath,
};
use common::*;
use std::collections::BTreeMap;

/// The last push of a family case: what lands below the nested file.
#[derive(Debug, Clone, Copy)]
enum Last {
    Upload,
    MakeDir,
    RenameTarget,
}

/// `l0/l1/…/lk`.
fn chain(k: usize) -> String {
    (0..=k)
        .map(|i| format!("l{i}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `component` is a conflict name of `name` for client 1 (§7.4:
/// no extension, so the tag ends the name).
fn is_conflict_of(component: &str, name: &str) -> bool {
    component.starts_with(&format!("{name} (conflict 1 ")) && component.ends_with(')')
}

/// A push's answer, which must be a PushAck: an Error here (the old
/// `Storage` about a symlink) fails the test with its text.
fn acked(what: &str, answer: Result<PushAck, ErrorReport>) -> PushAck {
    answer.unwrap_or_else(|e| panic!("{what}: Error {:?} {:?}", e.code, e.message))
}

/// The server's listing (a Pull from 0) as path → `None` for a directory
/// or `Some(hash)` for a file.
fn listing(entries: &[ChangeEntry]) -> BTreeMap<String, Option<ContentHash>> {
    entries
        .iter()
        .filter_map(|e| match e.state {
            EntryState::File { hash, .. } => Some((e.path.as_str().to_owned(), Some(hash))),
            EntryState::Dir => Some((e.path.as_str().to_owned(), None)),
            EntryState::Deleted => None,
        })
        .collect()
}

/// The server's folder on disk in the form of [`listing`].
fn on_disk(server: &Server, client: &WireClient) -> BTreeMap<String, Option<ContentHash>> {
    tree(&server.user_dir(&client.user))
        .into_iter()
        .map(|(path, bytes)| (path, bytes.map(|b| ContentHash::of(&b))))
        .collect()
}

/// The journal (what every device pulls) and the disk agree.
fn assert_listing_is_the_disk(server: &Server, client: &mut WireClient, what: &str) {
    let (_, _, entries) = client.pull(0);
    let listed = listing(&entries);
    let disk = on_disk(server, client);
    assert_eq!(
        listed, disk,
        "{what}: the pull listing is not the server's folder"
    );
}

/// One case of the family: files `l0`, `l0/l1`, …, `l0/…/l{depth-1}`
/// uploaded in turn (each below the one before), then `last` at
/// `l0/…/l{depth-1}/x`. Every push is a PushAck; each lands in the
/// conflict directories the earlier ones made (R-7.4.1.2), one level per
/// file on the way.
fn nested_case(depth: usize, last: Last) {
    let what = format!("depth {depth}, {last:?}");
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut placed: Vec<PushAck> = Vec::new();
    for k in 0..depth {
        let path = chain(k);
        let ack = acked(&what, c.put(&path, path.as_bytes(), 0));
        let want = if k == 0 {
            PushStatus::Applied
        } else {
            PushStatus::Conflict
        };
        assert_eq!(ack.status, want, "{what}: upload {path}: {ack:?}");
        placed.push(ack);
    }
    let asked = format!("{}/x", chain(depth - 1));
    let ack = match last {
        Last::Upload => acked(&what, c.put(&asked, b"x content", 0)),
        Last::MakeDir => acked(&what, c.push(Message::MakeDir { path: p(&asked) })),
        Last::RenameTarget => {
            let source = acked(&what, c.put("moved.txt", b"x content", 0));
            acked(
                &what,
                c.push(Message::Rename(Rename {
                    base_version: source.version,
                    from: p("moved.txt"),
                    to: p(&asked),
                })),
            )
        }
    };
    assert_eq!(ack.status, PushStatus::Conflict, "{what}: {ack:?}");
    // Where it landed: every file on the way replaced by its conflict
    // directory, the last component kept.
    let landed: Vec<&str> = ack.path.components().collect();
    assert_eq!(landed.len(), depth + 1, "{what}: {ack:?}");
    for (i, component) in landed[..depth].iter().enumerate() {
        assert!(
            is_conflict_of(component, &format!("l{i}")),
            "{what}: component {i} of {}",
            ack.path
        );
    }
    assert_eq!(landed[depth], "x", "{what}: {ack:?}");
    // The same conflict directories the earlier pushes made (R-7.4.1.2).
    for earlier in &placed[1..] {
        let dir = earlier.path.parent().expect("placed below a directory");
        assert!(
            ack.path.is_within(&dir),
            "{what}: {} not below {dir}",
            ack.path
        );
    }
    // On disk: every file where its PushAck said, with its content.
    let disk = tree(&server.user_dir(&c.user));
    for (k, earlier) in placed.iter().enumerate() {
        assert_eq!(
            disk.get(earlier.path.as_str()),
            Some(&Some(chain(k).into_bytes())),
            "{what}: {disk:?}"
        );
    }
    let want = match last {
        Last::MakeDir => None,
        Last::Upload | Last::RenameTarget => Some(b"x content".to_vec()),
    };
    assert_eq!(disk.get(ack.path.as_str()), Some(&want), "{what}: {disk:?}");
    assert!(!disk.contains_key("moved.txt"), "{what}: {disk:?}");
    assert_listing_is_the_disk(&server, &mut c, &what);
    // The same push again is decided at that place: already there.
    if !matches!(last, Last::RenameTarget) {
        let again = match last {
            Last::Upload => acked(&what, c.put(&asked, b"x content", 0)),
            _ => acked(&what, c.push(Message::MakeDir { path: p(&asked) })),
        };
        assert_eq!(
            (again.status, again.path.as_str()),
            (PushStatus::Unchanged, ack.path.as_str()),
            "{what}"
        );
    }
}

/// Uploads, MakeDir and Rename targets below 1 to 4 nested files: each a
/// Conflict at the nested conflict path, never an Error. (Main's server
/// before the fix: Error 9 Storage "refusing to follow a symlink" from
/// depth 2 on, for all three.)
///
/// Covers: R-7.4.1.1, R-7.4.1.2
#[test]
fn r_7_4_1_5_a_push_below_a_file_in_a_conflict_directory_goes_to_its_conflict_directory() {
    for depth in 1..=4 {
        for last in [Last::Upload, Last::MakeDir, Last::RenameTarget] {
            nested_case(depth, last);
        }
    }
}

/// The names of the random run: two letters, at most three levels.
const NAMES: [&str; 2] = ["a", "b"];

fn random_path(rng: &mut Rng) -> String {
    let depth = 1 + rng.index(3);
    (0..depth)
        .map(|_| *rng.pick(&NAMES))
        .collect::<Vec<_>>()
        .join("/")
}

/// A random run of two devices on a tiny namespace (uploads, MakeDir,
/// Delete, RemoveDir, Rename, with the base the device last pulled or 0),
/// like the outside tester's `incr_model.py` which hit F4 in 4 of 5 seeds:
/// every push is answered with a PushAck — never an Error — and after every
/// step the pull listing is the server's folder. Replay with
/// `CONFLICT_DIRS_SEED=<seed>`.
///
/// Covers: R-7.4.1.5
#[test]
fn a_random_run_below_files_gets_a_push_ack_for_every_push() {
    let seed = seed("CONFLICT_DIRS_SEED");
    eprintln!("CONFLICT_DIRS_SEED={seed}");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let a = WireClient::new_user(server.addr);
    let b = WireClient::new_client(server.addr, a.user);
    let mut devices = [a, b];
    for step in 0..300 {
        let d = rng.index(2);
        let device = &mut devices[d];
        let (head, _, entries) = device.pull(0);
        let versions: BTreeMap<String, u64> = entries
            .iter()
            .map(|e| (e.path.as_str().to_owned(), e.version))
            .collect();
        let path = random_path(&mut rng);
        let base = if rng.chance(0.5) {
            versions.get(&path).copied().unwrap_or(0)
        } else {
            0
        };
        let what = format!("seed {seed} step {step} device {d}");
        let answer = match rng.index(6) {
            0 | 1 => {
                let content = format!("{step}").into_bytes();
                device.put(&path, &content, base)
            }
            2 => device.push(Message::MakeDir { path: p(&path) }),
            3 => device.push(Message::Delete(Delete {
                base_version: base,
                path: p(&path),
            })),
            4 => device.push(Message::RemoveDir(RemoveDir {
                cursor: if rng.chance(0.5) { head } else { 0 },
                path: p(&path),
            })),
            _ => {
                let to = random_path(&mut rng);
                device.push(Message::Rename(Rename {
                    base_version: versions.get(&path).copied().unwrap_or(0),
                    from: p(&path),
                    to: WirePath::new(&to).expect("legal"),
                }))
            }
        };
        let ack = acked(&what, answer);
        assert!(
            ack.status != PushStatus::Conflict || ack.path.as_str().contains("(conflict "),
            "{what}: a Conflict names a conflict copy: {ack:?}"
        );
        assert_listing_is_the_disk(&server, device, &what);
    }
}
