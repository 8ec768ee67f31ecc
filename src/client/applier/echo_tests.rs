//! Entries older than what the index holds: the echo of this
//! device's own acknowledged pushes, in a reply the server made before
//! them, never undoes them here (outside tester, session 8, findings 1-4:
//! a pull applied a device's own Delete of file `n3.txt` to the directory
//! `n3.txt` it had made since, deleting or re-creating what the user had
//! just renamed or removed).

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;
use rand::{Rng, SeedableRng};

impl Folder {
    fn apply_reply(&mut self, entries: &[ChangeEntry], full: bool, head: u64) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .with_head(head)
            .apply(entries, full)
            .unwrap()
    }

    fn set_version(&mut self, path: &str, version: u64) {
        let mut entry = *self.index.get(&p(path)).unwrap();
        entry.version = version;
        self.index.insert(p(path), entry);
    }
}

/// File `n3.txt` deleted (v5552), directory `n3.txt` made (v5558) and
/// `n3.txt/r15.txt` uploaded (v5559) by this device, all acknowledged: the
/// reply listing them changes nothing and defers nothing.
#[test]
fn the_echo_of_own_pushes_changes_nothing() {
    let mut f = Folder::new();
    f.write("n3.txt/r15.txt", "mine, newer");
    f.sync_all(0);
    f.set_version("n3.txt", 5558);
    f.set_version("n3.txt/r15.txt", 5559);
    let reply = [
        deleted("n3.txt", 5552),
        dir("n3.txt", 5558),
        file("n3.txt/r15.txt", 5559, "mine, newer"),
    ];
    let out = f.apply_reply(&reply, false, 5559);
    assert_eq!(f.read("n3.txt/r15.txt").as_deref(), Some("mine, newer"));
    assert!(out.fetches.is_empty() && out.dirty.is_empty() && !out.must_repeat());
    assert_eq!(
        f.index.get(&p("n3.txt/r15.txt")).map(|e| e.version),
        Some(5559)
    );
}

/// A directory deleted elsewhere (v10) loses what it held before, but
/// keeps what this device pushed into it after (v12), with its index entry.
#[test]
fn a_deleted_directory_keeps_what_was_pushed_into_it_after() {
    let mut f = Folder::new();
    f.write("d/old", "old");
    f.write("d/new", "new");
    f.sync_all(5);
    f.set_version("d/new", 12);
    let out = f.apply_reply(&[deleted("d", 10)], false, 12);
    assert_eq!(f.read("d/old"), None);
    assert_eq!(f.read("d/new").as_deref(), Some("new"));
    assert_eq!(f.index.get(&p("d/new")).map(|e| e.version), Some(12));
    assert!(f.index.get(&p("d/old")).is_none());
    assert!(out.dirty.is_empty(), "{:?}", out.dirty);
}

/// A file entry older than the indexed version (the server's state before
/// this device's acknowledged upload) does not replace the newer content.
#[test]
fn an_older_file_entry_does_not_replace_newer_content() {
    let mut f = Folder::new();
    f.write("f", "v10 content");
    f.sync_all(10);
    let out = f.apply_reply(&[file("f", 8, "v8 content")], false, 9);
    assert_eq!(f.read("f").as_deref(), Some("v10 content"));
    assert!(out.fetches.is_empty() && out.dirty.is_empty());
}

/// A full listing made at head 9 does not name a path pushed at v11: it is
/// not gone; a path at v7 it does not name is.
#[test]
fn a_full_listing_does_not_remove_what_was_pushed_after_it() {
    let mut f = Folder::new();
    f.write("pushed-after", "x");
    f.write("deleted-before", "y");
    f.sync_all(7);
    f.set_version("pushed-after", 11);
    f.apply_reply(&[], true, 9);
    assert_eq!(f.read("pushed-after").as_deref(), Some("x"));
    assert_eq!(f.read("deleted-before"), None);
}

/// Randomized: a folder indexed at random versions, and a reply of random
/// entries (file, directory, deletion; any path of the folder or below it)
/// each older than the version indexed at its path or at the path of any
/// of its indexed ancestors' newer entries: the folder is unchanged, no
/// download, nothing to push.
#[test]
fn replies_older_than_the_index_change_nothing() {
    let names = ["a", "b", "a/x", "a/y", "b/z", "a/sub/w"];
    for seed in 0..200u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut f = Folder::new();
        for name in ["a/x", "a/y", "b/z", "a/sub/w"] {
            if rng.random_bool(0.7) {
                f.write(name, &format!("{name} {seed}"));
            }
        }
        f.sync_all(0);
        let indexed: Vec<(WirePath, u64)> =
            f.index.iter().map(|(path, _)| (path.clone(), 0)).collect();
        let mut floor = 100u64;
        for (path, _) in &indexed {
            let v = rng.random_range(100..200);
            floor = floor.min(v);
            f.set_version(path.as_str(), v);
        }
        let before = crate::client::applier::test_folder::snapshot(&f.root);
        let mut reply = Vec::new();
        for name in names {
            // Older than every indexed version: superseded wherever it lands.
            let v = rng.random_range(1..floor);
            let entry = match rng.random_range(0..3) {
                0 => deleted(name, v),
                1 => dir(name, v),
                _ => file(name, v, "stale"),
            };
            if f.index.get(&p(name)).is_some() {
                reply.push(entry);
            }
        }
        reply.sort_by_key(|e| match e.state {
            EntryState::Deleted => 0,
            EntryState::Dir => 1,
            EntryState::File { .. } => 2,
        });
        let out = f.apply_reply(&reply, false, floor);
        assert_eq!(
            crate::client::applier::test_folder::snapshot(&f.root),
            before,
            "seed {seed}: {reply:?}"
        );
        assert!(
            out.fetches.is_empty() && out.dirty.is_empty(),
            "seed {seed}"
        );
    }
}

/// this device renamed `a.txt` onto `a` (a directory it had
/// removed there at v3) and edited it; the rename was acknowledged (v4)
/// behind unpulled changes, so `a` is indexed with the moved file's older
/// version (v1) and content. The reply lists `a` deleted (v3) and again as
/// a file with that indexed content (v4): the deletion is not applied to
/// it. The edit stays and is pushed on v4, never a conflict copy (the
/// planner property test's case regression_long_1); a synced `a` is left
/// in place, not deleted and fetched again. A file listed again with
/// another content is deleted and replaced as before.
#[test]
fn a_path_deleted_then_remade_with_the_indexed_content_keeps_its_file() {
    for (local, server, kept) in [
        ("one, edited here", "one", true),
        ("one", "one", true),
        ("one", "two, elsewhere", false),
    ] {
        let mut f = Folder::new();
        f.write("a", "one");
        f.sync_all(1);
        f.write("a", local);
        let reply = [deleted("a", 3), file("a", 4, server)];
        let out = f.apply_reply(&reply, false, 4);
        let indexed = f.index.get(&p("a")).copied();
        if kept {
            assert_eq!(f.read("a").as_deref(), Some(local), "{local} / {server}");
            assert!(out.fetches.is_empty(), "{local} / {server}");
            assert_eq!(indexed.map(|e| e.version), Some(4), "{local} / {server}");
            assert_eq!(
                indexed.and_then(|e| e.hash()),
                Some(ContentHash::of(server.as_bytes()))
            );
            assert!(!out.must_repeat(), "{local} / {server}");
        } else {
            assert_eq!(out.fetches.len(), 1, "the server's new content is fetched");
            assert_eq!(out.fetches[0].path, p("a"));
        }
    }
}

/// breaker27 F5: another device renamed `proj` away (v16) while this device
/// could not apply that (a read-only directory); this device's edit of one
/// of its files was pushed meanwhile and re-made `proj` on the server (v17),
/// and the index took `proj` at v17 from the reply that failed. The next
/// reply lists `proj` Deleted v16, then `proj` and the edited files at v17:
/// the deletion is superseded at `proj` itself, but what the index holds
/// below it from before v16 still goes (unless changed here: kept, to
/// push), and what was pushed after it stays. Randomized over where the
/// directory is, how many files (in a subdirectory or not), which are edited
/// and pushed, and which changed here and not pushed; before the fix every
/// old file stayed here for good.
#[test]
fn a_deletion_superseded_at_its_directory_still_removes_what_was_below_it() {
    for seed in 0..300u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let top = ["proj", "a/proj", "a/b/proj"][rng.random_range(0..3)];
        let count = rng.random_range(1..=12);
        // Each file: where it is, and 0 = pushed after the deletion (v17),
        // 1 = edited here and not pushed, else untouched since synced.
        let files: Vec<(String, u32)> = (0..count)
            .map(|i| {
                let name = match rng.random_bool(0.3) {
                    true => format!("{top}/sub/p{i}.txt"),
                    false => format!("{top}/p{i}.txt"),
                };
                (name, rng.random_range(0..4))
            })
            .collect();
        let content = |name: &str, fate: u32| match fate {
            0 => format!("{name} pushed after"),
            _ => format!("{name} synced"),
        };
        let mut f = Folder::new();
        f.write("keep.txt", "outside");
        for (name, fate) in &files {
            f.write(name, &content(name, *fate));
        }
        f.sync_all(0);
        let paths: Vec<WirePath> = f.index.iter().map(|(path, _)| path.clone()).collect();
        for path in &paths {
            f.set_version(path.as_str(), rng.random_range(1..16));
        }
        f.set_version(top, 17);
        let mut reply = vec![deleted(top, 16), dir(top, 17)];
        for (name, fate) in &files {
            match fate {
                0 => {
                    f.set_version(name, 17);
                    reply.push(file(name, 17, &content(name, 0)));
                }
                1 => f.write(name, &format!("{name} edited here, not pushed")),
                _ => {}
            }
        }
        let out = f.apply_reply(&reply, false, 17);
        for (name, fate) in &files {
            let here = f.read(name);
            let indexed = f.index.get(&p(name)).map(|e| e.version);
            match fate {
                0 => {
                    assert_eq!(here, Some(content(name, 0)), "seed {seed}");
                    assert_eq!(indexed, Some(17), "seed {seed}");
                }
                1 => {
                    let edit = format!("{name} edited here, not pushed");
                    assert_eq!(here, Some(edit), "seed {seed}");
                    assert!(
                        out.dirty.contains(&p(name)),
                        "seed {seed}: {name} not to push"
                    );
                }
                _ => {
                    assert_eq!(here, None, "seed {seed}: {name} stayed");
                    assert_eq!(indexed, None, "seed {seed}: {name} still indexed");
                }
            }
        }
        assert_eq!(
            f.read("keep.txt").as_deref(),
            Some("outside"),
            "seed {seed}"
        );
        assert!(f.root.join(top).is_dir(), "seed {seed}");
        assert_eq!(
            f.index.get(&p(top)).map(|e| e.version),
            Some(17),
            "seed {seed}"
        );
        assert!(out.fetches.is_empty() && !out.must_repeat(), "seed {seed}");
    }
}
