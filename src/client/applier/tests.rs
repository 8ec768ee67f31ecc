//! The applier against temporary folders: every rule of "never lose a local edit".

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;

impl Folder {
    fn apply(&mut self, entries: &[ChangeEntry], full: bool) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .apply(entries, full)
            .unwrap()
    }

    fn apply_under(&mut self, rules: &IgnoreRules, entries: &[ChangeEntry]) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .with_rules(rules)
            .apply(entries, false)
            .unwrap()
    }

    /// Plays the server's part for fetches: writes `data` and places it.
    fn deliver(&mut self, job: &FetchJob, data: &str) {
        let mut applier = Applier::new(&self.root, &self.tmp, &mut self.index, 2);
        let tmp = applier.tmp_name("test");
        fs::write(&tmp, data).unwrap();
        let mut out = Applied::default();
        applier
            .place(
                job,
                &tmp,
                (ContentHash::of(data.as_bytes()), job.version),
                &mut out,
            )
            .unwrap();
    }

    fn conflict_copies(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("(conflict 2 "))
            .collect();
        names.sort();
        names
    }
}

#[test]
fn new_files_are_fetched_and_dirs_created() {
    let mut f = Folder::new();
    let out = f.apply(
        &[
            dir("a", 1),
            dir("a/empty", 2),
            file("a/x", 3, "xx"),
            file("z", 4, ""),
        ],
        true,
    );
    assert!(f.root.join("a/empty").is_dir());
    assert_eq!(
        f.read("z").as_deref(),
        Some(""),
        "empty files need no fetch"
    );
    assert_eq!(out.fetches.len(), 1);
    f.deliver(&out.fetches[0], "xx");
    assert_eq!(f.read("a/x").as_deref(), Some("xx"));
    assert_eq!(f.index.get(&p("a/x")).map(|e| e.version), Some(3));
    assert!(out.dirty.is_empty());
}

/// A download renamed into place is recorded as trusted when its content
/// was written before the racy window (a large file's write and fsync), so
/// the next look does not read it again; one written just now is hashed
/// again at the next look, and a scan after a real edit still finds it.
#[test]
fn a_placed_download_is_not_read_again_unless_it_may_have_changed() {
    use crate::client::detect::{is_trusted, judge, Verdict};
    use crate::client::fsutil::{check_path, Local};
    let mut f = Folder::new();
    let out = f.apply(&[file("old", 1, "aaaa"), file("new", 2, "bbbb")], true);
    assert_eq!(out.fetches.len(), 2);
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for job in &out.fetches {
        let data = if job.path == p("old") { "aaaa" } else { "bbbb" };
        let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
        let tmp = applier.tmp_name("test");
        fs::write(&tmp, data).unwrap();
        if job.path == p("old") {
            fs::File::options()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        let mut placed = Applied::default();
        let hash = ContentHash::of(data.as_bytes());
        applier
            .place(job, &tmp, (hash, job.version), &mut placed)
            .unwrap();
    }
    let record = |f: &Folder, path: &str| match f.index.get(&p(path)).map(|e| e.kind) {
        Some(EntryKind::File { stat, .. }) => stat,
        other => panic!("{path}: {other:?}"),
    };
    let now = |f: &Folder, path: &str| match check_path(&f.root, &p(path)).unwrap() {
        Local::File(stat) => stat,
        other => panic!("{path}: {other:?}"),
    };
    assert!(is_trusted(&record(&f, "old")), "{:?}", record(&f, "old"));
    assert_eq!(
        judge(&record(&f, "old"), &now(&f, "old")),
        Verdict::Unchanged
    );
    assert!(
        !is_trusted(&record(&f, "new")),
        "written just now: hashed again"
    );
    // An edit after the placement is seen (mtime and ctime move).
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(f.root.join("old"), "cccc").unwrap();
    assert_ne!(
        judge(&record(&f, "old"), &now(&f, "old")),
        Verdict::Unchanged
    );
}

#[test]
fn identical_local_file_is_adopted_without_download() {
    let mut f = Folder::new();
    f.write("same", "content");
    let out = f.apply(&[file("same", 5, "content")], true);
    assert!(out.fetches.is_empty());
    assert_eq!(f.index.get(&p("same")).map(|e| e.version), Some(5));
}

#[test]
fn differing_local_file_of_a_new_client_is_pushed_before_the_pull_passes_it() {
    // The server decides (a Conflict names the copy): the file may be this
    // device's own unacknowledged push (PROTOCOL.md §7.2).
    let mut f = Folder::new();
    f.write("doc.txt", "mine");
    let out = f.apply(&[file("doc.txt", 5, "theirs")], true);
    assert!(out.fetches.is_empty());
    assert!(out.must_repeat(), "the cursor must not pass the entry");
    assert!(out.dirty.contains(&p("doc.txt")));
    assert_eq!(f.read("doc.txt").as_deref(), Some("mine"));
    assert!(f.conflict_copies(".").is_empty());
    assert!(
        f.index.get(&p("doc.txt")).is_none(),
        "the push's base stays 0"
    );
}

#[test]
fn remote_update_of_an_unchanged_file_overwrites_it() {
    let mut f = Folder::new();
    f.write("r", "v1");
    f.sync_all(1);
    let out = f.apply(&[file("r", 2, "v2")], false);
    f.deliver(&out.fetches[0], "v2");
    assert_eq!(f.read("r").as_deref(), Some("v2"));
    assert!(f.conflict_copies(".").is_empty());
}

#[test]
fn remote_update_of_a_locally_edited_file_keeps_it_and_its_base() {
    // The newer server version may be this device's own push that was
    // applied but never acknowledged (a kill -9): the client must not make a
    // conflict copy itself; it pushes with the old base and lets the server
    // decide (§7.2), and the pull is repeated.
    let mut f = Folder::new();
    f.write("r", "v1");
    f.sync_all(1);
    f.write("r", "local edit");
    let out = f.apply(&[file("r", 2, "remote edit")], false);
    assert!(out.fetches.is_empty());
    assert!(out.must_repeat(), "the cursor must not pass the entry");
    assert!(out.dirty.contains(&p("r")));
    assert_eq!(f.read("r").as_deref(), Some("local edit"));
    assert!(f.conflict_copies(".").is_empty());
    assert_eq!(f.index.get(&p("r")).map(|e| e.version), Some(1));
    // The pull repeated before the PushAck decides the same, and changes
    // nothing (no copy, no download, the base kept).
    let again = f.apply(&[file("r", 2, "remote edit")], false);
    assert!(again.fetches.is_empty() && again.must_repeat());
    assert_eq!(f.read("r").as_deref(), Some("local edit"));
    assert!(f.conflict_copies(".").is_empty());
    assert_eq!(f.index.get(&p("r")).map(|e| e.version), Some(1));
    // The server answered Conflict (another device's version): the push's
    // ack moved the file to the server's conflict name and dropped the
    // entry (plan::ack); the repeated pull now downloads the other version.
    let copy = "r (conflict 2 2026-11-30 120000)";
    fs::rename(f.root.join("r"), f.root.join(copy)).unwrap();
    f.index.remove(&p("r"));
    let after = f.apply(&[file("r", 2, "remote edit")], false);
    assert_eq!(after.fetches.len(), 1);
    f.deliver(&after.fetches[0], "remote edit");
    assert_eq!(f.read("r").as_deref(), Some("remote edit"));
    assert_eq!(f.read(copy).as_deref(), Some("local edit"));
}

#[test]
fn remote_update_of_a_locally_deleted_file_does_not_bring_it_back() {
    let mut f = Folder::new();
    f.write("h", "v1");
    f.sync_all(1);
    fs::remove_file(f.root.join("h")).unwrap();
    let out = f.apply(&[file("h", 2, "")], false);
    assert!(out.fetches.is_empty());
    assert!(out.must_repeat(), "the cursor must not pass the entry");
    assert!(out.dirty.contains(&p("h")));
    assert!(!f.root.join("h").exists());
    assert_eq!(f.index.get(&p("h")).map(|e| e.version), Some(1));
}

#[test]
fn local_edit_survives_when_the_server_did_not_change_the_file() {
    let mut f = Folder::new();
    f.write("r", "v1");
    f.sync_all(1);
    f.write("r", "local edit");
    let out = f.apply(&[file("r", 1, "v1")], true);
    assert!(out.fetches.is_empty());
    assert_eq!(f.read("r").as_deref(), Some("local edit"));
    assert!(out.dirty.contains(&p("r")));
}

#[test]
fn remote_delete_removes_synced_files_but_keeps_local_edits() {
    let mut f = Folder::new();
    f.write("d/synced", "s");
    f.write("d/edited", "e1");
    f.write("gone", "g");
    f.sync_all(1);
    f.write("d/edited", "e2 changed");
    f.write("d/new", "n");
    let out = f.apply(&[deleted("d", 5), deleted("gone", 6)], false);
    assert!(f.read("gone").is_none());
    assert!(f.read("d/synced").is_none());
    assert_eq!(f.read("d/edited").as_deref(), Some("e2 changed"));
    assert_eq!(f.read("d/new").as_deref(), Some("n"));
    assert!(out.dirty.contains(&p("d/edited")));
    assert!(
        f.index.get(&p("d")).is_none(),
        "the kept files are pushed as new"
    );
}

#[test]
fn full_listing_deletes_what_it_does_not_list() {
    let mut f = Folder::new();
    f.write("keep", "k");
    f.write("old/x", "x");
    f.sync_all(1);
    f.write("local-only", "l");
    f.apply(&[file("keep", 1, "k")], true);
    assert!(!f.root.join("old").exists());
    assert_eq!(f.read("local-only").as_deref(), Some("l"));
    assert_eq!(f.read("keep").as_deref(), Some("k"));
}

#[test]
fn remote_rename_reuses_local_content() {
    let mut f = Folder::new();
    f.write("a/big.bin", "0123456789");
    f.sync_all(1);
    let out = f.apply(
        &[
            deleted("a", 7),
            dir("b", 7),
            file("b/big.bin", 7, "0123456789"),
        ],
        false,
    );
    assert!(out.fetches.is_empty(), "no download for a rename");
    assert_eq!(f.read("b/big.bin").as_deref(), Some("0123456789"));
    assert!(!f.root.join("a").exists());
    assert!(
        fs::read_dir(&f.tmp).unwrap().next().is_none(),
        "stash cleaned"
    );
}

#[test]
fn locally_deleted_file_is_not_resurrected_by_an_old_listing() {
    let mut f = Folder::new();
    f.write("x", "x");
    f.sync_all(3);
    fs::remove_file(f.root.join("x")).unwrap();
    let out = f.apply(&[file("x", 3, "x")], true);
    assert!(out.fetches.is_empty());
    assert!(f.read("x").is_none());
    // A newer server version: the Delete (old base) is pushed first, and the
    // server decides (Stale for another device's edit, which the repeated
    // pull then brings; Applied for this device's own, §7.2).
    let out = f.apply(&[file("x", 4, "x2")], true);
    assert!(out.fetches.is_empty());
    assert!(out.must_repeat() && out.dirty.contains(&p("x")));
    assert!(f.read("x").is_none());
}

#[test]
fn symlinked_directories_are_never_written_through() {
    let mut f = Folder::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), f.root.join("link")).unwrap();
    let out = f.apply(
        &[
            file("link/evil", 1, "x"),
            dir("link/d", 1),
            deleted("link", 2),
        ],
        false,
    );
    assert!(out.fetches.is_empty());
    assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    // Held back (R-5.6.10), not skipped: listed, and pulled again later.
    let held: Vec<(String, u64)> = f
        .index
        .held_back()
        .map(|(p, v)| (p.to_string(), v))
        .collect();
    assert_eq!(held, [("link/d".into(), 1), ("link/evil".into(), 1)]);
    assert!(!out.must_repeat(), "the cursor passes held-back entries");
    assert!(f
        .root
        .join("link")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn edit_during_download_is_kept_aside() {
    let mut f = Folder::new();
    f.write("r", "v1");
    f.sync_all(1);
    let out = f.apply(&[file("r", 2, "v2")], false);
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.write("r", "typed while downloading");
    f.deliver(&out.fetches[0], "v2");
    assert_eq!(f.read("r").as_deref(), Some("v2"));
    let copies = f.conflict_copies(".");
    assert_eq!(
        f.read(&copies[0]).as_deref(),
        Some("typed while downloading")
    );
}

#[test]
fn a_local_file_in_place_of_a_directory_does_not_hide_server_entries_below_it() {
    // Synced: directory d with d/old. Here: d replaced by a file (not pushed
    // yet). Server: a new file d/new. Skipping d/new would let the cursor pass
    // it and the RemoveDir of d (cursor-based) delete it on the server.
    let mut f = Folder::new();
    f.write("d/old", "old");
    f.sync_all(1);
    fs::remove_dir_all(f.root.join("d")).unwrap();
    f.write("d", "a file now");
    let out = f.apply(&[dir("d/sub", 5), file("d/new", 6, "new")], false);
    assert!(!out.must_repeat());
    assert_eq!(out.fetches.len(), 1, "the server's file is fetched");
    f.deliver(&out.fetches[0], "new");
    assert_eq!(f.read("d/new").as_deref(), Some("new"));
    assert!(f.root.join("d/sub").is_dir());
    let copies = f.conflict_copies(".");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(f.read(&copies[0]).as_deref(), Some("a file now"));
    assert!(
        out.dirty.contains(&p(&copies[0])),
        "the local file is pushed"
    );
}

#[test]
fn a_new_local_directory_where_the_server_has_a_file_holds_the_cursor() {
    // The file cannot be placed until the directory is pushed (and becomes a
    // conflict copy): the pull must be repeated, or the file is skipped for good.
    let mut f = Folder::new();
    f.write("p/mine", "mine");
    let out = f.apply(&[file("p", 3, "theirs")], false);
    assert!(out.fetches.is_empty());
    assert!(
        out.must_repeat(),
        "the cursor must not pass the skipped file"
    );
    assert!(out.dirty.contains(&p("p")));
    assert_eq!(f.read("p/mine").as_deref(), Some("mine"));
}

#[test]
fn a_server_file_where_an_ignored_directory_is_is_held_back_not_waited_for() {
    // R-5.6.5: the directory is never pushed, so waiting for its push would
    // hold the cursor for good (outside tester's findings 3 and 3b).
    let (rules, _) = IgnoreRules::from_text("build/\n*.tmp\n");
    let mut f = Folder::new();
    f.write("build/out.o", "precious");
    f.write("proj/deep/cache.tmp", "cache");
    f.write("mine/new.c", "mine");
    let entries = [
        file("build", 3, "theirs"),
        file("proj", 4, "theirs too"),
        file("mine", 5, "a file"),
    ];
    let out = f.apply_under(&rules, &entries);
    assert!(
        out.fetches.is_empty(),
        "nothing is placed: {:?}",
        out.fetches
    );
    assert_eq!(
        out.deferred
            .iter()
            .map(WirePath::as_str)
            .collect::<Vec<_>>(),
        ["mine"],
        "only the directory that will be pushed holds the cursor"
    );
    assert!(!out.dirty.contains(&p("build")) && !out.dirty.contains(&p("proj")));
    assert_eq!(f.read("build/out.o").as_deref(), Some("precious"));
    assert_eq!(f.read("proj/deep/cache.tmp").as_deref(), Some("cache"));
    let held: Vec<(String, u64)> = f
        .index
        .held_back()
        .map(|(p, v)| (p.to_string(), v))
        .collect();
    assert_eq!(held, [("build".into(), 3), ("proj".into(), 4)]);
    // Listed again (the way is free now): decided afresh.
    fs::remove_dir_all(f.root.join("build")).unwrap();
    let out = f.apply_under(&rules, &[file("build", 3, "theirs")]);
    assert_eq!(out.fetches.len(), 1);
    let held: Vec<&WirePath> = f.index.held_back().map(|(p, _)| p).collect();
    assert_eq!(held, [&p("proj")]);
}
