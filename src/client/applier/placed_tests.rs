//! A download deleted, moved or replaced by a local program in the instant
//! between its placement and the look that indexes it (a "hot folder"
//! consumer, outside tester breaker25 F3; ): the index records it
//! all the same, the path is compared again, and the next look pushes
//! what became of it. Before, the file was left out of the index while
//! the pull was acknowledged, so the next look found nothing to push.

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;
use crate::client::scanner::{Op, Scanner, Scope};

/// What a consumer does to a file the moment it appears.
#[derive(Debug, Clone, Copy)]
enum Consumer {
    Delete,
    MoveToDone,
    /// Writes its own file beside it and renames it over.
    ReplaceByOther,
    /// The same bytes as the download, in another inode.
    ReplaceBySame,
    /// Rewrites it in place, same size.
    Rewrite,
    ReplaceByDir,
}

const ALL: [Consumer; 6] = [
    Consumer::Delete,
    Consumer::MoveToDone,
    Consumer::ReplaceByOther,
    Consumer::ReplaceBySame,
    Consumer::Rewrite,
    Consumer::ReplaceByDir,
];

const JOB: &str = "job 1\n";
const USERS: &str = "user 1\n";

/// The consumer's action on `at`, a file of the folder `root`.
fn consume(how: Consumer, root: &Path, at: &Path) {
    let name = at.file_name().unwrap();
    match how {
        Consumer::Delete => fs::remove_file(at).unwrap(),
        Consumer::MoveToDone => fs::rename(at, root.join("done").join(name)).unwrap(),
        Consumer::ReplaceByOther | Consumer::ReplaceBySame => {
            let new = at.with_extension("new");
            let data = match how {
                Consumer::ReplaceByOther => USERS,
                _ => JOB,
            };
            fs::write(&new, data).unwrap();
            fs::rename(&new, at).unwrap();
        }
        Consumer::Rewrite => fs::write(at, USERS).unwrap(),
        Consumer::ReplaceByDir => {
            fs::remove_file(at).unwrap();
            fs::create_dir(at).unwrap();
            fs::write(at.join("x"), "x\n").unwrap();
        }
    }
}

/// What the next look must push for `job` (indexed at `version`) after
/// `how`.
fn expected(how: Consumer, job: &WirePath, version: u64) -> Vec<Op> {
    let done = WirePath::new(&format!("done/{}", job.file_name())).unwrap();
    let upload = |data: &str| {
        vec![Op::Upload {
            path: job.clone(),
            base: version,
            stat: Stat::default(),
            hash: ContentHash::of(data.as_bytes()),
        }]
    };
    match how {
        Consumer::Delete => vec![Op::Delete {
            path: job.clone(),
            base: version,
        }],
        Consumer::MoveToDone => vec![Op::Rename {
            from: job.clone(),
            to: done,
            base: version,
        }],
        Consumer::ReplaceByOther | Consumer::Rewrite => upload(USERS),
        // The same content under another inode: nothing to push.
        Consumer::ReplaceBySame => vec![],
        Consumer::ReplaceByDir => vec![
            Op::Delete {
                path: job.clone(),
                base: version,
            },
            Op::MakeDir { path: job.clone() },
        ],
    }
}

/// The plan's operations, an upload's stat left out (not compared).
fn planned(f: &Folder, dirty: &BTreeSet<WirePath>) -> Vec<Op> {
    let scope = Scope {
        paths: dirty.clone(),
        settled: Scanner::new(&f.root)
            .scan(None)
            .unwrap()
            .into_keys()
            .collect(),
        full: true,
    };
    let plan = Scanner::new(&f.root).plan(&f.index, &scope).unwrap();
    plan.ops
        .into_iter()
        .filter(|op| !matches!(op, Op::Upload { path, .. } | Op::Stream { path, .. } if path.as_str().ends_with("/x")))
        .map(|op| match op {
            Op::Upload {
                path, base, hash, ..
            } => Op::Upload {
                path,
                base,
                hash,
                stat: Stat::default(),
            },
            other => other,
        })
        .collect()
}

impl Folder {
    /// A folder synced at version 1 with `done/`, and `inbox/job.txt` when
    /// `inbox` (else the download's content is nowhere here: fetched).
    fn hot(inbox: bool) -> Folder {
        let mut f = Folder::new();
        fs::create_dir_all(f.root.join("done")).unwrap();
        if inbox {
            f.write("inbox/job.txt", JOB);
        }
        f.sync_all(1);
        f
    }
}

/// A download (another device's new file), consumed at once: recorded
/// and marked, and the next look pushes exactly the consumer's change.
#[test]
fn a_download_consumed_right_after_its_placement_is_pushed() {
    for how in ALL {
        let mut f = Folder::hot(false);
        let out = Applier::new(&f.root, &f.tmp, &mut f.index, 2)
            .apply(&[file("job.txt", 2, JOB)], false)
            .unwrap();
        let job = out.fetches[0].clone();
        let root = f.root.clone();
        let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
        applier.set_placed_hook(|at: &Path| consume(how, &root, at));
        let tmp = applier.tmp_name("test");
        fs::write(&tmp, JOB).unwrap();
        let mut placed = Applied::default();
        applier
            .place(&job, &tmp, (job.hash, 2), &mut placed)
            .unwrap();
        drop(applier);
        let path = p("job.txt");
        let entry = f.index.get(&path).copied();
        assert_eq!(
            entry.map(|e| (e.hash(), e.version)),
            Some((Some(job.hash), 2)),
            "{how:?}: indexed as placed"
        );
        if !matches!(how, Consumer::ReplaceBySame) {
            assert!(placed.dirty.contains(&path), "{how:?}: compared again");
        }
        assert!(!placed.failed, "{how:?}: the pull is done");
        assert_eq!(
            planned(&f, &placed.dirty),
            expected(how, &path, 2),
            "{how:?}"
        );
    }
}

/// Another device's rename, placed here by renaming the file the same
/// reply deleted, consumed at once: the same.
#[test]
fn a_remote_rename_consumed_right_after_its_placement_is_pushed() {
    for how in ALL {
        let mut f = Folder::hot(true);
        let root = f.root.clone();
        let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2);
        applier.set_placed_hook(|at: &Path| consume(how, &root, at));
        let reply = [
            deleted("inbox/job.txt", 2),
            dir("outbox", 2),
            file("outbox/job.txt", 2, JOB),
        ];
        let out = applier.apply(&reply, false).unwrap();
        drop(applier);
        assert!(out.fetches.is_empty(), "{how:?}: nothing downloaded");
        let path = p("outbox/job.txt");
        let entry = f.index.get(&path).copied();
        assert_eq!(
            entry.map(|e| e.version),
            Some(2),
            "{how:?}: indexed as placed"
        );
        assert!(f.index.get(&p("inbox/job.txt")).is_none(), "{how:?}");
        assert_eq!(planned(&f, &out.dirty), expected(how, &path, 2), "{how:?}");
    }
}

/// The server's chmod of a synced file, which a consumer deletes between
/// the decision and the chmod: the server's state is recorded and the
/// deletion pushed, instead of the step failing and the pull repeating.
#[test]
fn a_mode_change_of_a_file_deleted_meanwhile_pushes_the_deletion() {
    let mut f = Folder::hot(true);
    let root = f.root.clone();
    let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2).with_modes(true);
    applier.set_race_hook(|at: &Path| {
        if at.starts_with(&root) {
            let _ = fs::remove_file(at);
        }
    });
    let entry = ChangeEntry {
        executable: true,
        ..file("inbox/job.txt", 2, JOB)
    };
    let out = applier.apply(&[entry], false).unwrap();
    drop(applier);
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let path = p("inbox/job.txt");
    assert_eq!(f.index.get(&path).map(|e| e.version), Some(2));
    assert!(out.dirty.contains(&path));
    assert_eq!(
        planned(&f, &out.dirty),
        expected(Consumer::Delete, &path, 2)
    );
}
