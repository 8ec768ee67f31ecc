//! The file a download replaces, vouched for by a stat under a read lease
//! (vouch.rs): not read again when nothing touched it, and every edit,
//! whenever it lands (before the stat, between the stat and the exchange,
//! after the exchange), is kept, never taken for the synced content.

use super::test_folder::{file, p, Folder};
use super::*;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

/// Bytes this thread has read so far (`/proc/thread-self/io`, rchar).
fn read_by_this_thread() -> u64 {
    let io = fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// How a local edit is made.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// Bytes appended.
    Append,
    /// Other bytes of the same size, written in place, the mtime put back.
    SameSizeOldMtime,
    /// Another file of the same size renamed over the path, given the mtime.
    RenamedOver,
}

const EDITS: [Edit; 3] = [Edit::Append, Edit::SameSizeOldMtime, Edit::RenamedOver];

/// The bytes `edit` leaves in a file that held `old`.
fn edited(old: &str, edit: Edit) -> String {
    match edit {
        Edit::Append => format!("{old}edited\n"),
        Edit::SameSizeOldMtime | Edit::RenamedOver => "E".repeat(old.len()),
    }
}

/// Makes `edit` on the file at `at` (through one descriptor).
fn make(at: &Path, old: &str, edit: Edit) {
    let was = fs::metadata(at).unwrap().modified().unwrap();
    let times = fs::FileTimes::new().set_modified(was);
    match edit {
        Edit::Append => {
            let mut f = OpenOptions::new().append(true).open(at).unwrap();
            f.write_all(b"edited\n").unwrap();
        }
        Edit::SameSizeOldMtime => {
            let mut f = OpenOptions::new().write(true).open(at).unwrap();
            f.write_all(edited(old, edit).as_bytes()).unwrap();
            f.set_times(times).unwrap();
        }
        Edit::RenamedOver => {
            let other = at.with_extension("other");
            let mut f = fs::File::create(&other).unwrap();
            f.write_all(edited(old, edit).as_bytes()).unwrap();
            f.set_times(times).unwrap();
            fs::rename(&other, at).unwrap();
        }
    }
}

/// When the edit lands.
#[derive(Debug, Clone, Copy)]
enum When {
    /// Just before the stat that vouches (the race hook's step 0).
    BeforeTheStat,
    /// Between the stat and the exchange, on another thread (this one
    /// holds the lease the edit waits for).
    BetweenStatAndExchange,
    /// On the swapped-out file, after the exchange (the race hook's step 1).
    AfterTheExchange,
}

/// A synced `f.txt` holding `old` (indexed as synced at version 1), and a
/// download of `new` placed over it with `edit` landing `when` (or no
/// edit): returns the folder, the bytes this thread read while placing and
/// what placing it reported.
fn place_over(old: &str, new: &str, edit: Option<(Edit, When)>) -> (Folder, u64, Applied) {
    let mut f = Folder::new();
    f.write("f.txt", old);
    f.sync_all(1);
    let root = f.root.clone();
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
    let out = applier.apply(&[file("f.txt", 2, new)], false).unwrap();
    let job = out.fetches[0].clone();
    let mut step = 0;
    let old_owned = old.to_owned();
    let old_hook = old.to_owned();
    let editor_slot = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = std::rc::Rc::clone(&editor_slot);
    match edit {
        Some((e, When::BeforeTheStat | When::AfterTheExchange)) => {
            let when = edit.map(|(_, w)| w);
            applier.set_race_hook(move |at: &Path| {
                let hit = match when {
                    Some(When::BeforeTheStat) => step == 0,
                    _ => step == 1,
                };
                if hit {
                    make(at, &old_hook, e);
                }
                step += 1;
            });
        }
        Some((e, When::BetweenStatAndExchange)) => {
            applier.set_vouched_hook(move |at: &Path| {
                let at = at.to_owned();
                let old = old_owned.clone();
                let handle = std::thread::spawn(move || make(&at, &old, e));
                // Long enough for the editor to be waiting on the lease (or
                // done, for a rename over the path, which needs no lease).
                std::thread::sleep(Duration::from_millis(150));
                *slot.borrow_mut() = Some(handle);
            });
        }
        None => {}
    }
    let tmp = applier.tmp_name("test");
    fs::write(&tmp, new).unwrap();
    let mut placed = Applied::default();
    let hash = ContentHash::of(new.as_bytes());
    let before = read_by_this_thread();
    applier
        .place(&job, &tmp, (hash, job.version), &mut placed)
        .unwrap();
    let read = read_by_this_thread() - before;
    drop(applier);
    let editor = editor_slot.borrow_mut().take();
    if let Some(handle) = editor {
        handle.join().unwrap();
    }
    let _ = root;
    (f, read, placed)
}

/// The conflict copies' contents.
fn copies(f: &Folder) -> Vec<String> {
    let mut out = Vec::new();
    for item in fs::read_dir(&f.root).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.contains("(conflict ") {
            out.push(fs::read_to_string(item.path()).unwrap());
        }
    }
    out
}

/// The swapped-out synced file is not read: before, every byte of it was
/// hashed after the exchange (a 4 MiB file: 4 MiB read by this thread).
#[test]
fn a_synced_file_replaced_by_a_download_is_not_read_again() {
    let old = "o".repeat(4 << 20);
    let new = "n".repeat(4 << 20);
    let (f, read, _) = place_over(&old, &new, None);
    assert_eq!(f.read("f.txt").as_deref(), Some(new.as_str()), "placed");
    assert!(copies(&f).is_empty(), "no conflict copy of the synced file");
    assert!(read < 1 << 20, "{read} bytes read to settle the old file");
    let left: Vec<_> = fs::read_dir(&f.tmp).unwrap().collect();
    assert!(left.is_empty(), "the old file is deleted: {left:?}");
}

/// Every edit, at every moment around the exchange, is kept as a conflict
/// copy with exactly the edited bytes, and the download is placed; except
/// a program that opens the file for writing between the stat and the
/// exchange (it waits for the lease): it keeps the file at its name with
/// its edit, and the download is held back. Before the
/// download took the name and that program's bytes went into the copy.
#[test]
fn an_edit_at_any_moment_around_the_exchange_is_kept() {
    let old = "synced line\n".repeat(10);
    let new = "the server's\n".repeat(9);
    for when in [
        When::BeforeTheStat,
        When::BetweenStatAndExchange,
        When::AfterTheExchange,
    ] {
        for edit in EDITS {
            let (f, _, placed) = place_over(&old, &new, Some((edit, when)));
            let opened_for_writing =
                matches!(when, When::BetweenStatAndExchange) && !matches!(edit, Edit::RenamedOver);
            if opened_for_writing {
                let here = f.read("f.txt");
                assert_eq!(
                    here,
                    Some(edited(&old, edit)),
                    "{edit:?} {when:?}: kept at its name"
                );
                assert!(copies(&f).is_empty(), "{edit:?} {when:?}: no conflict copy");
                assert!(
                    placed.held_open.contains(&p("f.txt")),
                    "{edit:?}: held back"
                );
                assert!(placed.failed, "{edit:?}: the pull is repeated");
                continue;
            }
            assert_eq!(
                f.read("f.txt").as_deref(),
                Some(new.as_str()),
                "{edit:?} {when:?}"
            );
            assert_eq!(
                copies(&f),
                [edited(&old, edit)],
                "{edit:?} {when:?}: the edit is kept"
            );
        }
    }
}
