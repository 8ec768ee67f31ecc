//! The client killed at any instant of a pull that places files (new
//! files, new content over a synced file, a directory it makes, a
//! directory renamed whole) and started again: what it had placed is
//! recorded as received, so another device's later deletion of
//! it is applied here, never undone as a file added here (outside tester
//! breaker27, F0), and an edit the user made to a placed file before the
//! restart is kept and pushed.
//!
//! Unlike `crash_tests.rs`, which copies the folder at each step (new
//! inodes), the crash here stops the run where it is: a hook before each
//! step and right after each placement unwinds out of the applier, so the
//! folder, the temporary area and the log are what SIGKILL leaves, inodes
//! included, and the index is the one saved before the pull.

use super::test_folder::{deleted, dir, file, snapshot, Folder};
use super::*;
use crate::client::state::clear_tmp;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// The unwinding payload of a simulated crash.
struct Killed;

/// The synced folder (version 1) and the pull's reply (version 2) cut off
/// by the crash: new files in a directory it makes, new content over a
/// synced file, and a directory renamed whole.
fn setup(f: &mut Folder) -> Vec<ChangeEntry> {
    f.write("keep.txt", "k\n");
    f.write("f.txt", "v1\n");
    f.write("d/x.txt", "x\n");
    f.write("d/y.txt", "y\n");
    f.sync_all(1);
    vec![
        dir("new", 2),
        file("new/a.txt", 2, "a\n"),
        file("new/b.txt", 2, "b\n"),
        file("new/c.txt", 2, "c\n"),
        file("f.txt", 2, "v2\n"),
        deleted("d", 2),
        dir("e", 2),
        file("e/x.txt", 2, "x\n"),
        file("e/y.txt", 2, "y\n"),
    ]
}

/// The content of each file of [`setup`]'s reply.
fn content(path: &str) -> String {
    match path {
        "f.txt" => "v2\n".to_owned(),
        other => format!("{}\n", &other[other.len() - 5..other.len() - 4]),
    }
}

/// Runs [`setup`]'s pull (apply, then place each download) with a crash
/// at step `nth` (a step: the instant before each step of the applier, and
/// right after each rename that places a file); then starts again as the
/// client does (index as saved, temporary area cleared but for noted
/// files, leftovers put back, the log settled), `meanwhile` run on the
/// folder before that. `None`: the run has fewer steps.
fn crashed_at(nth: usize, meanwhile: impl FnOnce(&Folder)) -> Option<Folder> {
    let mut f = Folder::new();
    let entries = setup(&mut f);
    let saved = f.index.clone();
    let steps = Rc::new(Cell::new(0usize));
    let crash = {
        let steps = Rc::clone(&steps);
        move |_: &Path| {
            let step = steps.get();
            steps.set(step + 1);
            if step == nth {
                resume_unwind(Box::new(Killed));
            }
        }
    };
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
        applier.set_race_hook(crash.clone());
        applier.set_placed_hook(crash.clone());
        let out = applier.apply(&entries, false).expect("apply");
        for job in &out.fetches {
            let at = applier.tmp_name("test");
            fs::write(&at, content(job.path.as_str())).expect("write download");
            applier
                .place(job, &at, (job.hash, job.version), &mut Applied::default())
                .expect("place");
        }
    }));
    match ran {
        Ok(()) => return None,
        Err(payload) if payload.is::<Killed>() => {}
        Err(payload) => resume_unwind(payload),
    }
    f.index = saved;
    meanwhile(&f);
    clear_tmp(&f.tmp).expect("clear tmp");
    Applier::new(&f.root, &f.tmp, &mut f.index, 2)
        .recover_leftovers(&mut Applied::default())
        .expect("leftovers");
    let log = removal_log::log_path(&f.tmp);
    removal_log::settle(&log, &f.root, &mut f.index);
    removal_log::clear(&log);
    Some(f)
}

/// Another device deleted everything the pull brought: the repeated pull,
/// from the old cursor, lists each of it deleted.
fn all_deleted() -> Vec<ChangeEntry> {
    ["d", "e", "f.txt", "new"]
        .into_iter()
        .map(|p| deleted(p, 3))
        .collect()
}

/// Every file below the folder with its content, sorted.
fn files(f: &Folder) -> Vec<(String, String)> {
    snapshot(&f.root)
        .into_iter()
        .filter_map(|(p, c)| Some((p, String::from_utf8(c?).ok()?)))
        .collect()
}

#[test]
fn a_crash_at_any_step_of_placing_leaves_nothing_the_other_devices_deletion_keeps() {
    let mut tried = 0;
    for nth in 0.. {
        let Some(mut f) = crashed_at(nth, |_| {}) else {
            break;
        };
        tried += 1;
        let out = Applier::new(&f.root, &f.tmp, &mut f.index, 2)
            .apply(&all_deleted(), false)
            .expect("apply the deletion");
        assert!(
            out.dirty.is_empty(),
            "crash at step {nth}: kept as changed here (pushed back to every device): {:?}",
            out.dirty
        );
        assert!(!out.failed, "crash at step {nth}: {:?}", out.failures);
        assert_eq!(
            files(&f),
            [("keep.txt".to_owned(), "k\n".to_owned())],
            "crash at step {nth}"
        );
    }
    // Before and after each of the 4 placements, the whole rename, and
    // the exchange's own step.
    assert!(tried >= 10, "only {tried} crash points tried");
}

#[test]
fn an_edit_made_to_a_placed_file_before_the_restart_is_kept_and_pushed() {
    let mut tried = 0;
    for nth in 0.. {
        let text: RefCell<Option<String>> = RefCell::new(None);
        let edit = |f: &Folder| {
            // The user's in-place edit of the placed file, if it is there.
            let at = f.root.join("new/a.txt");
            if let Ok(mut was) = fs::read_to_string(&at) {
                was.push_str("the user's line\n");
                let mut file = fs::OpenOptions::new().write(true).open(&at).expect("open");
                std::io::Write::write_all(&mut file, was.as_bytes()).expect("edit");
                *text.borrow_mut() = Some(was);
            }
        };
        let Some(mut f) = crashed_at(nth, edit) else {
            break;
        };
        let Some(text) = text.take() else {
            continue;
        };
        tried += 1;
        let out = Applier::new(&f.root, &f.tmp, &mut f.index, 2)
            .apply(&all_deleted(), false)
            .expect("apply the deletion");
        assert!(
            out.dirty
                .contains(&WirePath::new("new/a.txt").expect("path")),
            "crash at step {nth}: the edit is pushed: {:?}",
            out.dirty
        );
        let others: Vec<&WirePath> = out
            .dirty
            .iter()
            .filter(|p| !["new", "new/a.txt"].contains(&p.as_str()))
            .collect();
        assert!(others.is_empty(), "crash at step {nth}: {others:?}");
        assert_eq!(
            files(&f),
            [
                ("keep.txt".to_owned(), "k\n".to_owned()),
                ("new/a.txt".to_owned(), text.clone()),
            ],
            "crash at step {nth}"
        );
    }
    assert!(tried >= 3, "only {tried} crash points tried");
}
