//! A local change follows a rename made elsewhere (R-5.2.17; outside
//! tester, session 8, finding 7): an edit or a deletion made here on a file
//! that the reply deletes while it brings the file's indexed content to
//! another path (the server's rename of the file or of a directory above
//! it). Before, the edit stayed at the old name (pushed back as a new file
//! beside the stale renamed one) and the deletion was dropped (the renamed
//! file fetched again).

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;
use rand::{Rng, SeedableRng};

impl Folder {
    fn apply_follow(&mut self, entries: &[ChangeEntry]) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .apply(entries, false)
            .unwrap()
    }

    fn indexed(&self, path: &str) -> Option<(u64, Option<ContentHash>)> {
        self.index.get(&p(path)).map(|e| (e.version, e.hash()))
    }
}

fn h(data: &str) -> Option<ContentHash> {
    Some(ContentHash::of(data.as_bytes()))
}

/// `g0.txt` edited here, renamed to `g1.txt` on the server: the edit is
/// at `g1.txt`, indexed with the server's content and version (so the
/// next look uploads it on that version), `g0.txt` is gone.
#[test]
fn an_edit_follows_a_file_rename() {
    let mut f = Folder::new();
    f.write("g0.txt", "init\n");
    f.sync_all(1);
    f.write("g0.txt", "init\nedit\n");
    let out = f.apply_follow(&[deleted("g0.txt", 2), file("g1.txt", 2, "init\n")]);
    assert_eq!(f.read("g1.txt").as_deref(), Some("init\nedit\n"));
    assert_eq!(f.read("g0.txt"), None);
    assert_eq!(f.indexed("g1.txt"), Some((2, h("init\n"))));
    assert_eq!(f.indexed("g0.txt"), None);
    assert!(out.fetches.is_empty() && !out.must_repeat());
    assert!(out.dirty.contains(&p("g1.txt")) && !out.dirty.contains(&p("g0.txt")));
}

/// `W0/f1` edited here, `W0` renamed to `W1` on the server: the edit is at
/// `W1/f1`, `W1/f2` arrives, `W0` is gone (not left empty to be pushed).
/// `V0/del` deleted here, `V0` renamed to `V1`: `V1/del` is indexed, not
/// fetched, and pushed as deleted; `V1/keep` arrives.
#[test]
fn an_edit_and_a_deletion_follow_a_directory_rename() {
    let mut f = Folder::new();
    f.write("W0/f1", "init\n");
    f.write("W0/f2", "two\n");
    f.write("V0/keep", "keep\n");
    f.write("V0/del", "del\n");
    f.sync_all(1);
    f.write("W0/f1", "init\nedit\n");
    std::fs::remove_file(f.root.join("V0/del")).unwrap();
    let out = f.apply_follow(&[
        deleted("V0", 2),
        deleted("W0", 3),
        dir("V1", 2),
        dir("W1", 3),
        file("V1/del", 2, "del\n"),
        file("V1/keep", 2, "keep\n"),
        file("W1/f1", 3, "init\n"),
        file("W1/f2", 3, "two\n"),
    ]);
    assert_eq!(f.read("W1/f1").as_deref(), Some("init\nedit\n"));
    assert_eq!(f.read("W1/f2").as_deref(), Some("two\n"));
    assert_eq!(f.read("V1/keep").as_deref(), Some("keep\n"));
    assert_eq!(f.read("V1/del"), None);
    assert!(!f.root.join("W0").exists() && !f.root.join("V0").exists());
    assert_eq!(f.indexed("W1/f1"), Some((3, h("init\n"))));
    assert_eq!(f.indexed("V1/del"), Some((2, h("del\n"))));
    assert!(out.fetches.iter().all(|j| j.path != p("V1/del")));
    assert!(out.dirty.contains(&p("W1/f1")) && out.dirty.contains(&p("V1/del")));
    assert!(!out.dirty.contains(&p("W0")), "{:?}", out.dirty);
}

/// The renamed file was also changed on the server (another content at
/// the new name): nothing to follow; the edit stays at the old name, to be
/// pushed, and the server's file arrives (as before).
#[test]
fn an_edit_does_not_follow_a_file_changed_elsewhere() {
    let mut f = Folder::new();
    f.write("g0.txt", "init\n");
    f.sync_all(1);
    f.write("g0.txt", "init\nedit\n");
    let out = f.apply_follow(&[deleted("g0.txt", 2), file("g1.txt", 3, "other\n")]);
    assert_eq!(f.read("g0.txt").as_deref(), Some("init\nedit\n"));
    assert!(out.fetches.iter().any(|j| j.path == p("g1.txt")));
    assert!(out.dirty.contains(&p("g0.txt")));
}

/// Randomized: files `d/f0..f5` synced at v1; each one edited here,
/// deleted here or left; the server renames `d` to `e` (v2), and each
/// file is there with its content, or changed there (another content) or
/// gone. After the reply: no file at the old path unless its edit had
/// nowhere to go (its content changed or deleted on the server); an edit
/// whose content moved unchanged is at the new path and indexed there at
/// v2; a deletion whose file moved unchanged is indexed at the new path
/// and absent; nothing else of the new path is missing (fetched or made).
#[test]
fn local_changes_follow_a_directory_rename_whatever_the_mix() {
    for seed in 0..300u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut f = Folder::new();
        let n = 6;
        for i in 0..n {
            f.write(&format!("d/f{i}"), &format!("orig {i}\n"));
        }
        f.sync_all(1);
        let mut local = Vec::new();
        let mut server = Vec::new();
        let mut reply = vec![deleted("d", 2), dir("e", 2)];
        for i in 0..n {
            let here = rng.random_range(0..3); // 0 left, 1 edited, 2 deleted
            match here {
                1 => f.write(&format!("d/f{i}"), &format!("orig {i}\nedit\n")),
                2 => std::fs::remove_file(f.root.join(format!("d/f{i}"))).unwrap(),
                _ => {}
            }
            let there = rng.random_range(0..3); // 0 moved, 1 changed, 2 gone
            match there {
                0 => reply.push(file(&format!("e/f{i}"), 2, &format!("orig {i}\n"))),
                1 => reply.push(file(&format!("e/f{i}"), 3, &format!("theirs {i}\n"))),
                _ => {}
            }
            local.push(here);
            server.push(there);
        }
        let out = f.apply_follow(&reply);
        // Whether d/ moved whole to e/ (R-5.2.20): more than half of its
        // files are listed unchanged there, at least half of e/'s files,
        // and one of them is still the file synced here.
        let moved = (0..n).filter(|&i| server[i] == 0).count();
        let listed = (0..n).filter(|&i| server[i] != 2).count();
        let there = (0..n).any(|i| local[i] != 2);
        let whole = 2 * moved > n && 2 * moved >= listed && there;
        for i in 0..n {
            let (old, new) = (format!("d/f{i}"), format!("e/f{i}"));
            let why = format!(
                "seed {seed} file {i}: here {} there {}",
                local[i], server[i]
            );
            match (local[i], server[i]) {
                // Moved whole, the edit went along; it meets the server's
                // change (a conflict, pushed first) or deletion (kept, a
                // new file) there.
                (1, 1 | 2) if whole => {
                    assert_eq!(f.read(&new), Some(format!("orig {i}\nedit\n")), "{why}");
                    assert_eq!(f.read(&old), None, "{why}");
                    assert!(out.dirty.contains(&p(&new)), "{why}");
                }
                // Deleted here, changed there: the deletion is pushed first
                // on its old base; the server decides.
                (2, 1) if whole => {
                    assert_eq!(f.read(&new), None, "{why}");
                    assert!(out.deferred.contains(&p(&new)), "{why}");
                }
                (1, 0) => {
                    assert_eq!(f.read(&new), Some(format!("orig {i}\nedit\n")), "{why}");
                    assert_eq!(f.read(&old), None, "{why}");
                    assert_eq!(
                        f.indexed(&new),
                        Some((2, h(&format!("orig {i}\n")))),
                        "{why}"
                    );
                }
                (1, _) => {
                    assert_eq!(f.read(&old), Some(format!("orig {i}\nedit\n")), "{why}");
                }
                (2, 0) => {
                    assert_eq!(f.read(&new), None, "{why}");
                    assert_eq!(
                        f.indexed(&new),
                        Some((2, h(&format!("orig {i}\n")))),
                        "{why}"
                    );
                    assert!(out.dirty.contains(&p(&new)), "{why}");
                }
                (_, 1) => {
                    assert!(out.fetches.iter().any(|j| j.path == p(&new)), "{why}");
                }
                (0, 0) => {
                    assert_eq!(f.read(&new), Some(format!("orig {i}\n")), "{why}");
                    assert_eq!(f.read(&old), None, "{why}");
                }
                _ => assert_eq!(f.read(&new), None, "{why}"),
            }
        }
        let edits_left = !whole && (0..n).any(|i| local[i] == 1 && server[i] != 0);
        assert_eq!(f.root.join("d").exists(), edits_left, "seed {seed}");
    }
}
