//! A local writer acting between the applier's decision and its step: every
//! byte it wrote must survive (issue 9, item 5). The [`RaceHook`] seam runs
//! the writer at an exact point; the exhaustive test tries every point of
//! every kind of step.

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;

/// Appends `line` to `at`, creating it if needed: one open-append-close.
fn append(at: &Path, line: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(at)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

/// When the writer acts: at the `nth` step (counted from 0) whose path
/// `matches`, it appends its line to the step's own path (`at_step`) or to
/// the user's `target` path.
#[derive(Clone)]
struct Writer {
    nth: usize,
    at_step: bool,
    target: PathBuf,
    line: String,
}

impl Folder {
    /// An applier whose steps run `writer` (once); returns how many steps ran.
    fn with_writer<T>(
        &mut self,
        writer: Option<Writer>,
        act: impl FnOnce(&mut Applier<'_>) -> T,
    ) -> (T, usize) {
        let steps = Rc::new(Cell::new(0usize));
        let mut applier = Applier::new(&self.root, &self.tmp, &mut self.index, 2);
        let counter = Rc::clone(&steps);
        applier.set_race_hook(move |at: &Path| {
            let n = counter.get();
            counter.set(n + 1);
            if let Some(w) = writer.as_ref().filter(|w| w.nth == n) {
                append(if w.at_step { at } else { &w.target }, &w.line);
            }
        });
        let result = act(&mut applier);
        (result, steps.get())
    }

    fn apply_racing(
        &mut self,
        entries: &[ChangeEntry],
        writer: Option<Writer>,
    ) -> (Applied, usize) {
        self.with_writer(writer, |a| a.apply(entries, false).unwrap())
    }

    /// Plays the server's part for a fetch: writes `data` and places it.
    fn deliver_racing(
        &mut self,
        job: &FetchJob,
        data: &str,
        writer: Option<Writer>,
    ) -> (Applied, usize) {
        self.with_writer(writer, |a| {
            let tmp = a.tmp_name("test");
            fs::write(&tmp, data).unwrap();
            let mut out = Applied::default();
            let hash = ContentHash::of(data.as_bytes());
            a.place(job, &tmp, (hash, job.version), &mut out).unwrap();
            out
        })
    }

    /// Every file's content in the folder, by path.
    fn contents(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for item in walkdir::WalkDir::new(&self.root) {
            let item = item.unwrap();
            if item.file_type().is_file() {
                let rel = item.path().strip_prefix(&self.root).unwrap();
                let text = fs::read_to_string(item.path()).unwrap();
                all.push((rel.to_string_lossy().into_owned(), text));
            }
        }
        all.sort();
        all
    }

    fn assert_kept(&self, line: &str, case: &str) {
        let all = self.contents();
        assert!(
            all.iter().any(|(_, text)| text.contains(line)),
            "{case}: {line:?} was lost; the folder holds {all:?}"
        );
    }

    fn copies(&self) -> Vec<String> {
        self.contents()
            .into_iter()
            .filter(|(name, _)| name.contains("(conflict 2 "))
            .map(|(_, text)| text)
            .collect()
    }
}

fn writer(nth: usize, at_step: bool, f: &Folder, path: &str, line: &str) -> Option<Writer> {
    Some(Writer {
        nth,
        at_step,
        target: f.root.join(path),
        line: line.to_owned(),
    })
}

#[test]
fn download_over_a_file_edited_at_the_last_moment_keeps_the_edit() {
    let mut f = Folder::new();
    f.write("f.txt", "v1\n");
    f.sync_all(1);
    let (out, _) = f.apply_racing(&[file("f.txt", 2, "v2\n")], None);
    assert_eq!(
        out.fetches[0].expect,
        check_path(&f.root, &p("f.txt")).unwrap()
    );
    // Step 0 is the exchange into f.txt: the user appends just before it.
    let late = writer(0, false, &f, "f.txt", "B line\n");
    let (placed, _) = f.deliver_racing(&out.fetches[0], "v2\n", late);
    assert_eq!(f.read("f.txt").as_deref(), Some("v2\n"));
    assert_eq!(f.copies(), ["v1\nB line\n"]);
    assert_eq!(placed.dirty.len(), 1, "the copy is pushed");
}

#[test]
fn delete_of_a_file_edited_after_the_decision_keeps_it() {
    for (nth, at_step) in [(0, false), (1, true)] {
        let mut f = Folder::new();
        f.write("f.txt", "v1\n");
        f.sync_all(1);
        // Step 0: before the move aside (a writer at the path); step 1: the
        // set-aside file, written by someone still holding it open.
        let edit = writer(nth, at_step, &f, "f.txt", "edit\n");
        let (out, _) = f.apply_racing(&[deleted("f.txt", 2)], edit);
        assert_eq!(f.read("f.txt").as_deref(), Some("v1\nedit\n"), "step {nth}");
        assert!(out.dirty.contains(&p("f.txt")), "pushed again");
    }
}

#[test]
fn delete_whose_path_is_recreated_while_the_edit_is_set_aside() {
    let mut f = Folder::new();
    f.write("f.txt", "v1\n");
    f.sync_all(1);
    let root = f.root.clone();
    // Step 1 is the set-aside file: an open writer appends to it and another
    // program creates f.txt again before it can be put back.
    let (out, _) = f.with_writer(None, |a| {
        a.set_race_hook(move |at: &Path| {
            if at.starts_with(&root) {
                return;
            }
            append(at, "late\n");
            append(&root.join("f.txt"), "new file\n");
        });
        a.apply(&[deleted("f.txt", 2)], false).unwrap()
    });
    assert_eq!(f.read("f.txt").as_deref(), Some("new file\n"));
    assert_eq!(f.copies(), ["v1\nlate\n"]);
    assert_eq!(out.dirty.len(), 2, "{:?}", out.dirty);
}

#[test]
fn remote_rename_with_an_edited_source_or_target_keeps_the_edits() {
    // Source edited just before it is moved aside: it stays, and the renamed
    // content is downloaded instead of taken from it.
    let mut f = Folder::new();
    f.write("a.txt", "content\n");
    f.sync_all(1);
    let rename = [deleted("a.txt", 2), file("b.txt", 2, "content\n")];
    let edit = writer(0, false, &f, "a.txt", "edit\n");
    let (out, _) = f.apply_racing(&rename, edit);
    assert_eq!(f.read("a.txt").as_deref(), Some("content\nedit\n"));
    assert!(out.dirty.contains(&p("a.txt")));
    assert_eq!(out.fetches.len(), 1, "b.txt must be fetched");
    // Target created here just before the stashed content is placed there
    // (steps: a.txt moved aside, judged, then b.txt placed).
    let mut f = Folder::new();
    f.write("a.txt", "content\n");
    f.sync_all(1);
    let mine = writer(2, false, &f, "b.txt", "mine\n");
    let (out, _) = f.apply_racing(&rename, mine);
    assert_eq!(f.read("a.txt"), None);
    assert_eq!(f.read("b.txt").as_deref(), Some("content\n"));
    assert_eq!(f.copies(), ["mine\n"]);
    assert_eq!(out.dirty.len(), 1);
}

#[test]
fn conflict_copy_skips_a_name_taken_at_the_last_moment() {
    let mut f = Folder::new();
    f.write("f.txt", "v1\n");
    f.sync_all(1);
    f.write("f.txt", "mine\n");
    // Step 0 is the first conflict name: another program takes it first.
    let other = writer(0, true, &f, "f.txt", "other\n");
    // A directory where the edited file is: the file becomes a conflict copy.
    let (out, _) = f.apply_racing(&[dir("f.txt", 2)], other);
    let mut copies = f.copies();
    copies.sort();
    assert_eq!(copies, ["mine\n", "other\n"]);
    assert!(f.root.join("f.txt").is_dir());
    assert!(out.fetches.is_empty());
}

/// Every kind of step × every step of it × the writer at the step's path or
/// at the user's path: the writer's line is always found in the folder, and
/// a download still ends up in place.
#[test]
fn a_writer_at_any_step_loses_nothing() {
    type Setup = fn(&mut Folder) -> Vec<ChangeEntry>;
    let cases: [(&str, Setup, Option<&str>); 5] = [
        (
            "download over synced",
            |f| {
                f.write("f.txt", "v1\n");
                f.sync_all(1);
                vec![file("f.txt", 2, "v2\n")]
            },
            Some("v2\n"),
        ),
        (
            "newer on the server over an edit (kept, pushed first)",
            |f| {
                f.write("f.txt", "v1\n");
                f.sync_all(1);
                f.write("f.txt", "v1\nmine\n");
                vec![file("f.txt", 2, "v2\n")]
            },
            None,
        ),
        (
            "download of a new file",
            |_| vec![file("f.txt", 2, "v2\n")],
            Some("v2\n"),
        ),
        (
            "delete",
            |f| {
                f.write("f.txt", "v1\n");
                f.sync_all(1);
                vec![deleted("f.txt", 2)]
            },
            None,
        ),
        (
            "rename away",
            |f| {
                f.write("f.txt", "v1\n");
                f.sync_all(1);
                vec![deleted("f.txt", 2), file("g.txt", 2, "v1\n")]
            },
            None,
        ),
    ];
    let mut tried = 0;
    for (name, setup, placed) in cases {
        for at_step in [false, true] {
            for nth in 0.. {
                let mut f = Folder::new();
                let entries = setup(&mut f);
                let line = format!("LINE {name} {nth} {at_step}\n");
                let w = writer(nth, at_step, &f, "f.txt", &line);
                let (out, mut steps) = f.apply_racing(&entries, w.clone());
                for job in &out.fetches {
                    let w = w.clone().map(|w| Writer {
                        nth: nth.wrapping_sub(steps),
                        ..w
                    });
                    steps += f.deliver_racing(job, placed.unwrap_or("v1\n"), w).1;
                }
                if nth >= steps {
                    break;
                }
                tried += 1;
                let case = format!("{name}, step {nth}, at the step's path: {at_step}");
                f.assert_kept(&line, &case);
                if let Some(server) = placed {
                    // The server's version is in place (a line appended
                    // after the placement is the user's next edit).
                    let now = f.read("f.txt").unwrap_or_default();
                    assert!(now.starts_with(server), "{case}: f.txt holds {now:?}");
                }
            }
        }
    }
    assert!(tried >= 16, "only {tried} interleavings tried");
}

/// A program that opened the file before the step and writes after it (a
/// logger keeping its file open): its bytes must not go into a deleted file,
/// and a download does not take its name: it is held back, listed
/// with the reason, and the program's file stays at the name.
#[test]
fn a_writer_holding_the_file_open_across_the_step_loses_nothing() {
    for server_deletes in [false, true] {
        let mut f = Folder::new();
        f.write("f.txt", "v1\n");
        f.sync_all(1);
        let mut held = fs::OpenOptions::new()
            .append(true)
            .open(f.root.join("f.txt"))
            .unwrap();
        if server_deletes {
            let (out, _) = f.apply_racing(&[deleted("f.txt", 2)], None);
            assert!(out.dirty.contains(&p("f.txt")), "kept and pushed");
        } else {
            let (out, _) = f.apply_racing(&[file("f.txt", 2, "v2\n")], None);
            assert!(out.fetches.is_empty(), "not downloaded: {:?}", out.fetches);
            assert!(out.failed && out.held_open.contains(&p("f.txt")));
            let why = &out.failures[&p("f.txt")];
            assert!(why.contains("f.txt open for writing"), "{why}");
        }
        held.write_all(b"written later\n").unwrap();
        drop(held);
        if !server_deletes {
            let here = f.read("f.txt");
            assert_eq!(here.as_deref(), Some("v1\nwritten later\n"), "at its name");
        }
        let case = format!("server deletes: {server_deletes}");
        f.assert_kept("v1\nwritten later\n", &case);
    }
}

/// A program that opens the file for writing after the pull decided to
/// replace it and before the download is placed: the placement sees it,
/// nothing is placed, the program's file keeps its name and the path is
/// held back; a reader alone holds nothing back.
#[test]
fn a_writer_opening_before_the_placement_keeps_the_name() {
    for writes in [true, false] {
        let mut f = Folder::new();
        f.write("f.txt", "v1\n");
        f.sync_all(1);
        let (out, _) = f.apply_racing(&[file("f.txt", 2, "v2\n")], None);
        assert_eq!(out.fetches.len(), 1, "nobody had it open: downloaded");
        let mut opened = fs::OpenOptions::new();
        match writes {
            true => opened.append(true),
            false => opened.read(true),
        };
        let mut held = opened.open(f.root.join("f.txt")).unwrap();
        let (placed, _) = f.deliver_racing(&out.fetches[0], "v2\n", None);
        if !writes {
            assert_eq!(f.read("f.txt").as_deref(), Some("v2\n"), "a reader");
            assert!(placed.held_open.is_empty() && !placed.failed);
            continue;
        }
        assert!(placed.failed && placed.held_open.contains(&p("f.txt")));
        held.write_all(b"written later\n").unwrap();
        drop(held);
        assert_eq!(f.read("f.txt").as_deref(), Some("v1\nwritten later\n"));
        let all = f.contents();
        assert_eq!(all.len(), 1, "no conflict copy, nothing left: {all:?}");
    }
}
