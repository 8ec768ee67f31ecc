//! A directory moved out of the folder between the applier's walk to it
//! and its step there: nothing the applier makes stays in it,
//! and what the user had in it stays there. The [`RaceHook`] seam moves
//! the directory right before the step.

use super::test_folder::{deleted, file, p, snapshot, Folder};
use super::*;

/// An applier on `f` whose first step in `d/` finds `d/` moved to `to`
/// (outside the folder) just before it.
fn moving_out<'a>(f: &'a mut Folder, to: &Path) -> Applier<'a> {
    let (from, to) = (f.root.join("d"), to.to_path_buf());
    let mut moved = false;
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
    applier.set_race_hook(move |at: &Path| {
        if !moved && at.starts_with(&from) {
            moved = true;
            fs::rename(&from, &to).unwrap();
        }
    });
    applier
}

/// Places `data` for `job` with `d/` moved out to `to` right before.
fn place_moving_out(f: &mut Folder, job: &FetchJob, data: &str, to: &Path) -> Applied {
    let mut applier = moving_out(f, to);
    let tmp = applier.tmp_name("test");
    fs::write(&tmp, data).unwrap();
    let mut out = Applied::default();
    let hash = ContentHash::of(data.as_bytes());
    applier
        .place(job, &tmp, (hash, job.version), &mut out)
        .unwrap();
    out
}

fn trash(f: &Folder) -> PathBuf {
    f.root.parent().unwrap().join("trash")
}

#[test]
fn a_new_file_is_taken_back_from_a_directory_moved_out() {
    let mut f = Folder::new();
    f.write("d/keep", "keep\n");
    f.sync_all(1);
    let out = f.apply_entries(&[file("d/new", 2, "new\n")]);
    let job = out.fetches[0].clone();
    let to = trash(&f);
    let placed = place_moving_out(&mut f, &job, "new\n", &to);
    assert!(placed.failed, "the pull is repeated");
    assert_eq!(placed.changed, 0);
    assert_eq!(
        snapshot(&to),
        [("keep".to_owned(), Some(b"keep\n".to_vec()))],
        "only what the user moved"
    );
    assert!(snapshot(&f.root).is_empty(), "nothing made in the folder");
    assert!(
        snapshot(&f.tmp).is_empty(),
        "nothing left in the temporary area"
    );
}

#[test]
fn a_replaced_file_goes_back_to_a_directory_moved_out() {
    let mut f = Folder::new();
    f.write("d/f", "v1\n");
    f.sync_all(1);
    let out = f.apply_entries(&[file("d/f", 2, "v2\n")]);
    let job = out.fetches[0].clone();
    let to = trash(&f);
    let placed = place_moving_out(&mut f, &job, "v2\n", &to);
    assert!(placed.failed, "the pull is repeated");
    assert_eq!(snapshot(&to), [("f".to_owned(), Some(b"v1\n".to_vec()))]);
    assert!(snapshot(&f.root).is_empty());
    assert!(snapshot(&f.tmp).is_empty(), "{:?}", snapshot(&f.tmp));
    assert_eq!(f.index.get(&p("d/f")).map(|e| e.version), Some(1));
}

#[test]
fn a_synced_file_deleted_from_a_directory_moved_out_stays_there() {
    let mut f = Folder::new();
    f.write("d/f", "v1\n");
    f.write("d/g", "g\n");
    f.sync_all(1);
    let to = trash(&f);
    let out = moving_out(&mut f, &to)
        .apply(&[deleted("d/f", 2)], false)
        .unwrap();
    assert!(!out.failed);
    assert_eq!(
        snapshot(&to),
        [
            ("f".to_owned(), Some(b"v1\n".to_vec())),
            ("g".to_owned(), Some(b"g\n".to_vec()))
        ],
        "the user's move took both along"
    );
    assert!(snapshot(&f.tmp).is_empty(), "{:?}", snapshot(&f.tmp));
}

/// Places `job` (new content `content`) while the user moves `d/` out of
/// the folder just before the rename into it, then, just before the client
/// takes the download back or swaps the replaced file back, writes `name`
/// there: in place, or (`rename_over`) through a swap file renamed over
/// it. Returns what the placing reported and where `d/` went.
fn place_while_moved_out_and_written(
    f: &mut Folder,
    job: &FetchJob,
    content: &str,
    name: &str,
    rename_over: bool,
) -> (Applied, PathBuf) {
    let to = trash(f);
    let (from, moved) = (f.root.join("d"), to.clone());
    let (target, swap) = (moved.join(name), moved.join(format!(".{name}.swp")));
    let mut step = 0;
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
    applier.set_race_hook(move |_: &Path| {
        step += 1;
        match (step, rename_over) {
            // Before the rename (or exchange) into d/: d/ goes.
            (1, _) => fs::rename(&from, &moved).unwrap(),
            // Before the take-back (or exchange back): the user writes.
            (2, false) => fs::write(&target, "user's\n").unwrap(),
            (2, true) => {
                fs::write(&swap, "user's\n").unwrap();
                fs::rename(&swap, &target).unwrap();
            }
            _ => {}
        }
    });
    let tmp = applier.tmp_name("test");
    fs::write(&tmp, content).unwrap();
    let mut placed = Applied::default();
    applier
        .place(job, &tmp, (job.hash, 2), &mut placed)
        .unwrap();
    (placed, to)
}

/// A file the user writes where the download was placed in the directory
/// moved out, before the client takes the download back (in place, or
/// renamed over it): it is the user's and stays there; before, the
/// take-back moved it into the temporary area and deleted it.
#[test]
fn a_file_written_over_the_download_in_a_directory_moved_out_stays_there() {
    for rename_over in [false, true] {
        let mut f = Folder::new();
        f.write("d/keep", "keep\n");
        f.sync_all(1);
        let out = f.apply_entries(&[file("d/new", 2, "new\n")]);
        let job = out.fetches[0].clone();
        let (placed, to) =
            place_while_moved_out_and_written(&mut f, &job, "new\n", "new", rename_over);
        assert!(placed.failed, "the pull is repeated");
        assert_eq!(
            snapshot(&to),
            [
                ("keep".to_owned(), Some(b"keep\n".to_vec())),
                ("new".to_owned(), Some(b"user's\n".to_vec()))
            ],
            "rename over: {rename_over}"
        );
        assert!(snapshot(&f.root).is_empty());
        assert!(snapshot(&f.tmp).is_empty(), "{:?}", snapshot(&f.tmp));
    }
}

/// A file the user writes where a download replaced their file in the
/// directory moved out, before the client swaps the replaced file back
/// (in place, or renamed over it): it stays, and the replaced file goes
/// back beside it under a conflict-copy name. Before, the swap
/// back put the replaced file at the path and the user's write went to
/// the temporary area, where it was deleted with the download.
#[test]
fn a_file_written_over_a_swapped_in_download_in_a_directory_moved_out_stays_there() {
    for rename_over in [false, true] {
        let mut f = Folder::new();
        f.write("d/f", "v1\n");
        f.sync_all(1);
        let out = f.apply_entries(&[file("d/f", 2, "v2\n")]);
        let job = out.fetches[0].clone();
        let (placed, to) =
            place_while_moved_out_and_written(&mut f, &job, "v2\n", "f", rename_over);
        assert!(placed.failed, "the pull is repeated");
        let kept = snapshot(&to);
        assert_eq!(kept.len(), 2, "rename over: {rename_over}: {kept:?}");
        assert_eq!(
            kept[0],
            ("f".to_owned(), Some(b"user's\n".to_vec())),
            "rename over: {rename_over}"
        );
        assert!(kept[1].0.starts_with("f (conflict 2 "), "{kept:?}");
        assert_eq!(kept[1].1.as_deref(), Some(&b"v1\n"[..]), "{kept:?}");
        assert!(snapshot(&f.root).is_empty());
        assert!(snapshot(&f.tmp).is_empty(), "{:?}", snapshot(&f.tmp));
    }
}

impl Folder {
    fn apply_entries(&mut self, entries: &[ChangeEntry]) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .apply(entries, false)
            .unwrap()
    }
}
