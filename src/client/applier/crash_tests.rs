//! The client killed in the middle of a pull step: a local file the applier
//! had moved into the temporary area (set aside before a deletion, swapped
//! out by a download) must come back at the next start, never be cleared
//! with the temporary area. A crash is simulated by copying the folder, the
//! temporary area and the saved index as they are at a step (what SIGKILL
//! leaves), then starting over on the copy: `clear_tmp` (what
//! `StateDir::open` does) and `recover_leftovers`.

use super::test_folder::{deleted, file, Folder};
use super::*;
use crate::client::state::clear_tmp;
use std::cell::RefCell;
use std::rc::Rc;

/// Copies the regular files below `from` into `to` (same relative paths).
fn copy_tree(from: &Path, to: &Path) {
    for item in walkdir::WalkDir::new(from) {
        let item = item.unwrap();
        let dest = to.join(item.path().strip_prefix(from).unwrap());
        if item.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else if item.file_type().is_file() {
            fs::copy(item.path(), dest).unwrap();
        }
    }
}

/// What a SIGKILL now leaves: a copy of the folder `root`, its temporary
/// area `tmp` (with the removal log, R-5.2.18) and the index as last saved.
fn killed_copy(root: &Path, tmp: &Path, saved: &Index) -> Folder {
    let mut copy = Folder::new();
    copy_tree(root, &copy.root);
    copy_tree(tmp, &copy.tmp);
    let log = removal_log::log_path(tmp);
    if log.exists() {
        fs::copy(&log, removal_log::log_path(&copy.tmp)).unwrap();
    }
    copy.index = saved.clone();
    copy
}

/// The folder as a SIGKILL at step `nth` leaves it (`None`: the run had
/// fewer steps): the writer appended `line` to the file at its path just
/// before step 0 (so the file is an edit the decision did not see).
fn crash_at(
    setup: fn(&mut Folder) -> (Vec<ChangeEntry>, Option<&'static str>),
    nth: usize,
    line: &str,
) -> Option<Folder> {
    crash_with(setup, nth, Some(line))
}

/// [`crash_at`], with the writer's `line` optional (`None`: nobody edits).
fn crash_with(
    setup: fn(&mut Folder) -> (Vec<ChangeEntry>, Option<&'static str>),
    nth: usize,
    line: Option<&str>,
) -> Option<Folder> {
    let mut f = Folder::new();
    let (entries, download) = setup(&mut f);
    let saved = f.index.clone();
    let crashed: Rc<RefCell<Option<Folder>>> = Rc::new(RefCell::new(None));
    let (root, tmp) = (f.root.clone(), f.tmp.clone());
    let line = line.map(str::to_owned);
    let snapshot = Rc::clone(&crashed);
    let mut step = 0;
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
    applier.set_race_hook(move |_at: &Path| {
        if let (0, Some(line)) = (step, line.as_deref()) {
            let mut out = fs::OpenOptions::new()
                .append(true)
                .open(root.join("f.txt"))
                .unwrap();
            std::io::Write::write_all(&mut out, line.as_bytes()).unwrap();
        }
        if step == nth {
            *snapshot.borrow_mut() = Some(killed_copy(&root, &tmp, &saved));
        }
        step += 1;
    });
    let out = applier.apply(&entries, false).unwrap();
    for job in &out.fetches {
        let data = download.unwrap_or("v2\n");
        let at = applier.tmp_name("test");
        fs::write(&at, data).unwrap();
        let hash = ContentHash::of(data.as_bytes());
        applier
            .place(job, &at, (hash, job.version), &mut Applied::default())
            .unwrap();
    }
    drop(applier);
    let taken = crashed.borrow_mut().take();
    taken
}

/// What the client's start does after a crash (`session::start`): the
/// temporary area cleared but for noted files, those settled, and the
/// pull's logged removals dropped from the record. Returns the paths put
/// back (to compare and push).
fn restart(copy: &mut Folder) -> Applied {
    clear_tmp(&copy.tmp).unwrap();
    let mut out = Applied::default();
    Applier::new(&copy.root, &copy.tmp, &mut copy.index, 2)
        .recover_leftovers(&mut out)
        .unwrap();
    let log = removal_log::log_path(&copy.tmp);
    removal_log::settle(&log, &copy.root, &mut copy.index);
    removal_log::clear(&log);
    out
}

#[test]
fn a_crash_at_any_step_of_a_pull_loses_no_local_edit() {
    type Setup = fn(&mut Folder) -> (Vec<ChangeEntry>, Option<&'static str>);
    let cases: [(&str, Setup); 3] = [
        ("download over a file edited at the last moment", |f| {
            f.write("f.txt", "v1\n");
            f.sync_all(1);
            (vec![file("f.txt", 2, "v2\n")], Some("v2\n"))
        }),
        ("delete of a file edited at the last moment", |f| {
            f.write("f.txt", "v1\n");
            f.sync_all(1);
            (vec![deleted("f.txt", 2)], None)
        }),
        ("rename away of a file edited at the last moment", |f| {
            f.write("f.txt", "v1\n");
            f.sync_all(1);
            (vec![deleted("f.txt", 2), file("g.txt", 2, "v1\n")], None)
        }),
    ];
    let mut tried = 0;
    for (name, setup) in cases {
        for nth in 0.. {
            let line = format!("EDIT {name} {nth}\n");
            let Some(mut copy) = crash_at(setup, nth, &line) else {
                break;
            };
            tried += 1;
            restart(&mut copy);
            let all = copy_contents(&copy);
            assert!(
                all.iter().any(|(_, text)| text.contains(&line)),
                "{name}, crash at step {nth}: the edit was lost; the folder holds {all:?}"
            );
            let notes = fs::read_dir(&copy.tmp).unwrap().count();
            assert_eq!(
                notes, 0,
                "{name}, step {nth}: the temporary area is empty again"
            );
        }
    }
    assert!(tried >= 6, "only {tried} crash points tried");
}

/// Nobody edits: a crash at any step of a download over the synced file
/// (including just before the exchange, when the temporary area holds the
/// server's version with its note) leaves no conflict copy: the folder
/// holds the old or the new version at the path, never a copy.
#[test]
fn a_crash_during_a_plain_download_makes_no_conflict_copy() {
    let setup: fn(&mut Folder) -> (Vec<ChangeEntry>, Option<&'static str>) = |f| {
        f.write("f.txt", "v1\n");
        f.sync_all(1);
        (vec![file("f.txt", 2, "v2\n")], Some("v2\n"))
    };
    let mut tried = 0;
    for nth in 0.. {
        let Some(mut copy) = crash_with(setup, nth, None) else {
            break;
        };
        tried += 1;
        restart(&mut copy);
        let all = copy_contents(&copy);
        assert_eq!(all.len(), 1, "crash at step {nth}: {all:?}");
        assert_eq!(all[0].0, "f.txt", "crash at step {nth}: {all:?}");
        assert!(
            all[0].1 == "v1\n" || all[0].1 == "v2\n",
            "crash at step {nth}: {all:?}"
        );
    }
    assert!(tried >= 2, "only {tried} crash points tried");
}

fn copy_contents(f: &Folder) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for item in walkdir::WalkDir::new(&f.root) {
        let item = item.unwrap();
        if item.file_type().is_file() {
            let rel = item.path().strip_prefix(&f.root).unwrap();
            all.push((
                rel.to_string_lossy().into_owned(),
                fs::read_to_string(item.path()).unwrap(),
            ));
        }
    }
    all.sort();
    all
}

/// The rules of recovery, one leftover each: an edit goes back to its free
/// path, or beside it when the path is taken; the synced version goes back
/// to its free path (the repeated pull renames it where the server has it,
/// breaker23 F2) and is deleted when the path is taken; a note whose file
/// is gone is dropped; an unnoted file (a partial download) is cleared.
#[test]
fn leftovers_are_put_back_kept_or_dropped() {
    let mut f = Folder::new();
    f.write("free.txt", "synced\n");
    f.write("taken.txt", "synced\n");
    f.write("same.txt", "synced\n");
    f.sync_all(1);
    fs::remove_file(f.root.join("free.txt")).unwrap();
    fs::remove_file(f.root.join("same.txt")).unwrap();
    fs::write(f.root.join("taken.txt"), "someone else's\n").unwrap();
    let leftover = |name: &str, path: &str, data: &str| {
        let at = f.tmp.join(name);
        fs::write(&at, data).unwrap();
        fs::write(origin_note(&at), path).unwrap();
    };
    leftover("aside-1-1", "free.txt", "edited 1\n");
    leftover("aside-1-2", "taken.txt", "edited 2\n");
    leftover("aside-1-3", "same.txt", "synced\n");
    leftover("aside-1-4", "sub/new.txt", "edited 4\n");
    leftover("aside-1-7", "taken.txt", "synced\n");
    fs::write(origin_note(&f.tmp.join("aside-1-5")), "gone.txt").unwrap();
    fs::write(f.tmp.join("download-1-6"), "partial").unwrap();
    clear_tmp(&f.tmp).unwrap();
    assert!(!f.tmp.join("download-1-6").exists());
    let mut out = Applied::default();
    Applier::new(&f.root, &f.tmp, &mut f.index, 2)
        .recover_leftovers(&mut out)
        .unwrap();
    assert_eq!(f.read("free.txt").as_deref(), Some("edited 1\n"));
    assert_eq!(f.read("taken.txt").as_deref(), Some("someone else's\n"));
    assert_eq!(
        f.read("same.txt").as_deref(),
        Some("synced\n"),
        "the synced version is back where the index has it"
    );
    assert_eq!(f.read("sub/new.txt").as_deref(), Some("edited 4\n"));
    let copies: Vec<_> = copy_contents(&f)
        .into_iter()
        .filter(|(name, _)| name.starts_with("taken (conflict 2 "))
        .map(|(_, text)| text)
        .collect();
    assert_eq!(copies, ["edited 2\n"]);
    assert_eq!(out.dirty.len(), 3, "{:?}", out.dirty);
    assert_eq!(fs::read_dir(&f.tmp).unwrap().count(), 0);
}

/// Nobody edits; another device moved `x.txt` to `y.txt` (or its directory)
/// and this client is killed at any step of applying that: at the next
/// start the removal of `x.txt` is the pull's, not a deletion made here, so
/// the repeated reply downloads `y.txt` instead of taking `x.txt`'s absence
/// for a deletion that follows the move and deleting `y.txt` on
/// every device (outside tester breaker21, F1: 100 of 3,000 files lost).
#[test]
fn a_crash_while_a_move_is_applied_deletes_nothing_at_the_next_start() {
    type Setup = fn(&mut Folder) -> (Vec<ChangeEntry>, Option<&'static str>);
    let cases: [(&str, Setup); 2] = [
        ("a file renamed", |f| {
            f.write("x.txt", "x\n");
            f.sync_all(1);
            (
                vec![deleted("x.txt", 2), file("y.txt", 2, "x\n")],
                Some("x\n"),
            )
        }),
        ("its directory renamed", |f| {
            f.write("d/x.txt", "x\n");
            f.sync_all(1);
            (
                vec![
                    deleted("d/x.txt", 2),
                    deleted("d", 2),
                    super::test_folder::dir("e", 2),
                    file("e/x.txt", 2, "x\n"),
                ],
                Some("x\n"),
            )
        }),
    ];
    let mut tried = 0;
    for (name, setup) in cases {
        for nth in 0.. {
            let Some(mut copy) = crash_with(setup, nth, None) else {
                break;
            };
            tried += 1;
            restart(&mut copy);
            // The repeated pull: the same reply.
            let mut f = Folder::new();
            let (entries, _) = setup(&mut f);
            let mut applier = Applier::new(&copy.root, &copy.tmp, &mut copy.index, 2);
            let out = applier.apply(&entries, false).unwrap();
            for job in &out.fetches {
                let at = applier.tmp_name("test");
                fs::write(&at, "x\n").unwrap();
                let hash = ContentHash::of(b"x\n");
                applier
                    .place(job, &at, (hash, job.version), &mut Applied::default())
                    .unwrap();
            }
            drop(applier);
            let new_names: Vec<&str> = entries
                .iter()
                .filter(|e| {
                    !matches!(e.state, EntryState::Deleted) && e.path.as_str().ends_with(".txt")
                })
                .map(|e| e.path.as_str())
                .collect();
            for path in new_names {
                assert_eq!(
                    copy.read(path).as_deref(),
                    Some("x\n"),
                    "{name}, crash at step {nth}: {path} is not in the folder (its move was taken for a deletion made here)"
                );
            }
        }
    }
    assert!(tried >= 2, "only {tried} crash points tried");
}

/// A setup for [`every_crash`]: the synced folder, then the reply.
type MoveSetup = fn(&mut Folder) -> Vec<ChangeEntry>;

/// Every state a SIGKILL can leave while `setup`'s reply is applied (the
/// folder, the temporary area and the removal log as they are just before
/// each step, and after the last step), each with the index as saved before
/// the pull (the reference client saves it when the pull ends); then the
/// folder as the run left it, and how many files the run placed by
/// renaming a file the folder held (its inode at a new path).
fn every_crash(setup: MoveSetup) -> (Vec<Folder>, Folder, usize) {
    let mut f = Folder::new();
    let entries = setup(&mut f);
    let saved = f.index.clone();
    let inodes: HashSet<u64> = f
        .index
        .iter()
        .filter_map(|(_, e)| match e.kind {
            EntryKind::File { stat, .. } => Some(stat.ino),
            EntryKind::Dir => None,
        })
        .collect();
    let snapshots: Rc<RefCell<Vec<Folder>>> = Rc::new(RefCell::new(Vec::new()));
    let take = {
        let (root, tmp) = (f.root.clone(), f.tmp.clone());
        move || killed_copy(&root, &tmp, &saved)
    };
    let hooked = Rc::clone(&snapshots);
    let each = take.clone();
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
    applier.set_race_hook(move |_at: &Path| hooked.borrow_mut().push(each()));
    let out = applier.apply(&entries, false).unwrap();
    drop(applier);
    assert!(out.fetches.is_empty(), "a rename here downloads nothing");
    assert!(!out.failed, "{:?}", out.failures);
    snapshots.borrow_mut().push(take());
    let renamed = entries
        .iter()
        .filter(|e| matches!(e.state, EntryState::File { .. }))
        .filter(|e| inodes.contains(&inode(&f.root, e.path.as_str())))
        .count();
    let all = std::mem::take(&mut *snapshots.borrow_mut());
    (all, f, renamed)
}

/// The inode of the file at `path` below `root`.
fn inode(root: &Path, path: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata(root.join(path)).unwrap())
}

/// Another device renamed files (or their directory); this client places
/// them by rename, not by copying (breaker21 F6). A SIGKILL at any step of
/// that (the old file set aside, judged, placed at the new path, before the
/// index is saved) loses nothing and deletes nothing at the next start:
/// the repeated pull ends with exactly the renamed tree, all of it
/// recorded, nothing to push (no deletion made here), nothing downloaded
/// (a file the crash left set aside goes back to its path, then is renamed
/// again: breaker23 F2), the temporary area empty. The same content wanted
/// at two new paths is one rename and one copy.
#[test]
fn a_crash_at_any_step_of_a_rename_placed_by_rename_loses_nothing() {
    type Case = (
        &'static str,
        MoveSetup,
        &'static [(&'static str, &'static str)],
        usize,
    );
    let cases: [Case; 3] = [
        (
            "a file renamed",
            |f| {
                f.write("x.txt", "x\n");
                f.sync_all(1);
                vec![deleted("x.txt", 2), file("y.txt", 2, "x\n")]
            },
            &[("y.txt", "x\n")],
            1,
        ),
        (
            "a directory of two renamed",
            |f| {
                f.write("d/a.txt", "a\n");
                f.write("d/b.txt", "b\n");
                f.write("keep.txt", "k\n");
                f.sync_all(1);
                vec![
                    deleted("d", 2),
                    super::test_folder::dir("e", 2),
                    file("e/a.txt", 2, "a\n"),
                    file("e/b.txt", 2, "b\n"),
                ]
            },
            &[("e/a.txt", "a\n"), ("e/b.txt", "b\n"), ("keep.txt", "k\n")],
            2,
        ),
        (
            "one content wanted at two new paths",
            |f| {
                f.write("x.txt", "x\n");
                f.sync_all(1);
                vec![
                    deleted("x.txt", 2),
                    file("y.txt", 2, "x\n"),
                    file("z.txt", 2, "x\n"),
                ]
            },
            &[("y.txt", "x\n"), ("z.txt", "x\n")],
            1,
        ),
    ];
    let mut tried = 0;
    for (name, setup, want, renames) in cases {
        let (crashes, done, renamed) = every_crash(setup);
        assert_eq!(renamed, renames, "{name}: files placed by rename");
        assert_eq!(fs::read_dir(&done.tmp).unwrap().count(), 0, "{name}");
        let expected: Vec<(String, String)> = want
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        assert_eq!(copy_contents(&done), expected, "{name}: without a crash");
        let mut f = Folder::new();
        let entries = setup(&mut f);
        for (nth, mut copy) in crashes.into_iter().enumerate() {
            tried += 1;
            restart(&mut copy);
            let mut applier = Applier::new(&copy.root, &copy.tmp, &mut copy.index, 2);
            let out = applier.apply(&entries, false).unwrap();
            // breaker23 F2: a file set aside for the move was put back by
            // the start and is renamed again, not downloaded.
            assert!(
                out.fetches.is_empty(),
                "{name}, crash at step {nth}: downloads {:?}",
                out.fetches
                    .iter()
                    .map(|j| j.path.as_str())
                    .collect::<Vec<_>>()
            );
            for job in &out.fetches {
                let text = want
                    .iter()
                    .find(|(p, _)| *p == job.path.as_str())
                    .unwrap()
                    .1;
                let at = applier.tmp_name("test");
                fs::write(&at, text).unwrap();
                applier
                    .place(job, &at, (job.hash, job.version), &mut Applied::default())
                    .unwrap();
            }
            drop(applier);
            assert!(
                out.dirty.is_empty(),
                "{name}, crash at step {nth}: nothing to push (no deletion made here), got {:?}",
                out.dirty
            );
            assert_eq!(
                copy_contents(&copy),
                expected,
                "{name}, crash at step {nth}"
            );
            for (path, _) in want {
                let recorded = WirePath::new(path).unwrap();
                assert!(
                    copy.index.get(&recorded).is_some(),
                    "{name}, crash at step {nth}: {path} is not recorded"
                );
            }
            clear_tmp(&copy.tmp).unwrap();
            assert_eq!(
                fs::read_dir(&copy.tmp).unwrap().count(),
                0,
                "{name}, step {nth}"
            );
        }
    }
    // The directory of two is renamed whole: one step, before
    // and after which a crash is tried, where its files took three each.
    assert!(tried >= 11, "only {tried} crash points tried");
}
