//! The rule by example and by property, then through its callers against
//! real files: the scanner with no watcher event to help (start-up and the
//! safety-net rescan) and the applier's "still the file we synced?" check.

use super::*;
use crate::client::applier::Applier;
use crate::client::fsutil::hash_file;
use crate::client::index::{Entry, EntryKind, Index};
use crate::client::scanner::{Op, Scanner, Scope};
use crate::protocol::{ChangeEntry, ContentHash, EntryState, WirePath};
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng as _, SeedableRng};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

const HOUR_AGO_NS: i64 = 1_800_000_000_000_000_000;

fn stat() -> Stat {
    Stat {
        size: 4,
        mtime_ns: HOUR_AGO_NS,
        ctime_ns: HOUR_AGO_NS + 5,
        dev: 2049,
        ino: 77,
        exec: false,
        btime_ns: HOUR_AGO_NS - 9,
    }
}

#[test]
fn each_field_of_the_record_has_its_say() {
    let old = stat();
    assert_eq!(judge(&old, &old), Verdict::Unchanged);
    type Case = (&'static str, fn(&mut Stat), Verdict);
    let cases: [Case; 6] = [
        ("size", |s| s.size += 1, Verdict::Changed),
        ("mtime", |s| s.mtime_ns += 1, Verdict::MustHash),
        ("ctime only", |s| s.ctime_ns += 1, Verdict::MustHash),
        ("inode only", |s| s.ino += 1, Verdict::MustHash),
        ("device only", |s| s.dev += 1, Verdict::MustHash),
        (
            "mtime set back",
            |s| s.mtime_ns -= 3_600_000_000_000,
            Verdict::MustHash,
        ),
    ];
    for (what, change, want) in cases {
        let mut now = old;
        change(&mut now);
        assert_eq!(judge(&old, &now), want, "{what}");
    }
    // A record with an unknown field is never taken as proof.
    for unknown in [
        |s: &mut Stat| s.mtime_ns = 0,
        |s: &mut Stat| s.ctime_ns = 0,
        |s: &mut Stat| s.ino = 0,
    ] {
        let mut record = old;
        unknown(&mut record);
        assert_eq!(judge(&record, &record), Verdict::MustHash);
        assert!(!is_trusted(&record));
    }
}

#[test]
fn records_taken_within_a_timestamp_tick_of_a_write_are_racy() {
    let at = HOUR_AGO_NS + 3_600_000_000_000;
    let ms = 1_000_000i64;
    let mut s = stat();
    s.mtime_ns = at - 5 * ms;
    s.ctime_ns = at - 4 * ms;
    assert!(is_racy(&s, at), "written 5 ms before the record");
    assert!(!is_trusted(&seal_at(s, at)));
    s.mtime_ns = at - 10_000 * ms;
    assert!(
        is_racy(&s, at),
        "ctime alone makes it racy (a restored mtime)"
    );
    s.ctime_ns = at - 10_000 * ms + 1;
    assert!(!is_racy(&s, at));
    assert_eq!(seal_at(s, at), s, "a settled record is kept whole");
    s.mtime_ns = at + 3_600_000 * ms;
    assert!(
        is_racy(&s, at),
        "a future mtime is never older than the record"
    );
    // Whole-second stamps: a coarse file system, where 1.5 s is one tick.
    let secs = |t: i64| t / 1_000_000_000 * 1_000_000_000;
    s.mtime_ns = secs(at - 1_500 * ms);
    s.ctime_ns = s.mtime_ns;
    assert!(is_racy(&s, at));
    s.mtime_ns = secs(at - 3_000 * ms);
    s.ctime_ns = s.mtime_ns;
    assert!(!is_racy(&s, at));
}

#[test]
fn a_file_placed_by_our_own_rename_is_trusted_when_its_mtime_is_settled() {
    let at = HOUR_AGO_NS + 3_600_000_000_000;
    let ms = 1_000_000i64;
    // Written 2 s ago, renamed into place 1 ms ago: only the ctime is racy.
    let mut staged = stat();
    staged.mtime_ns = at - 2_000 * ms;
    staged.ctime_ns = at - 1_500 * ms;
    let placed = Stat {
        ctime_ns: at - ms,
        ..staged
    };
    assert!(is_racy(&placed, at), "the plain rule would hash it again");
    assert_eq!(seal_placed_at(placed, Some(staged), at), placed);
    // Anything that is not the staged file, or a racy mtime, falls back to
    // the plain rule (mtime zeroed: hashed at the next look).
    type Case = (&'static str, fn(&mut Stat));
    let cases: [Case; 5] = [
        ("another inode (renamed over in between)", |s| s.ino += 1),
        ("another device", |s| s.dev += 1),
        ("another size (written in between)", |s| s.size += 1),
        ("another mtime (written in between)", |s| s.mtime_ns += 1),
        ("mtime within the window", |s| {
            s.mtime_ns = HOUR_AGO_NS + 3_600_000_000_000 - 5_000_000
        }),
    ];
    for (what, change) in cases {
        let mut now = placed;
        change(&mut now);
        let staged = if what.starts_with("mtime within") {
            now
        } else {
            staged
        };
        let sealed = seal_placed_at(now, Some(staged), at);
        assert!(!is_trusted(&sealed), "{what}: {sealed:?}");
        assert_eq!(sealed, seal_at(now, at), "{what}");
    }
    assert_eq!(seal_placed_at(placed, None, at), seal_at(placed, at));
    // A future mtime is never settled.
    let mut future = placed;
    future.mtime_ns = at + 3_600_000 * ms;
    assert!(!is_trusted(&seal_placed_at(future, Some(future), at)));
}

fn arb_stat() -> impl Strategy<Value = Stat> {
    (0u64..3, 0i64..3, 0i64..3, 0u64..2, 0u64..3, 0i64..3).prop_map(|(size, m, c, dev, ino, b)| {
        Stat {
            size,
            mtime_ns: m * 1_000,
            ctime_ns: c * 1_000,
            dev,
            ino,
            exec: false,
            btime_ns: b * 1_000,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Over small domains (so equal fields are common): "unchanged" only for
    /// an identical, fully known record; "changed" exactly when sizes differ.
    #[test]
    fn judge_trusts_only_an_identical_known_record(old in arb_stat(), now in arb_stat()) {
        let verdict = judge(&old, &now);
        prop_assert_eq!(verdict == Verdict::Changed, old.size != now.size);
        // A record without a birth time (an older index) matches any.
        let same = old == now || (old.btime_ns == 0 && Stat { btime_ns: 0, ..now } == old);
        prop_assert_eq!(verdict == Verdict::Unchanged, same && is_trusted(&old));
    }
}

// ---- through the scanner and the applier, against real files ----

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn an_hour_ago() -> SystemTime {
    SystemTime::now() - std::time::Duration::from_secs(3600)
}

fn write_with_mtime(path: &Path, data: &[u8], mtime: SystemTime) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.set_modified(mtime).unwrap();
}

fn overwrite_in_place(path: &Path, data: &[u8], mtime: SystemTime) {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
    f.set_modified(mtime).unwrap();
}

/// Indexes every file of `root` (a flat folder) as synced now, the way the
/// client records it after an upload or a download (sealed).
fn index_now(root: &Path) -> Index {
    let mut index = Index::new();
    for (path, entry) in Scanner::new(root).scan(None).unwrap() {
        if let crate::client::scanner::DiskEntry::File(stat) = entry {
            let hash = hash_file(&path.to_local(root)).unwrap().0;
            index.insert(path, Entry::synced_file(stat, hash, 1));
        }
    }
    index
}

fn trusted(index: &Index, path: &str) -> bool {
    match index.get(&p(path)).map(|e| e.kind) {
        Some(EntryKind::File { stat, .. }) => is_trusted(&stat),
        _ => false,
    }
}

fn full() -> Scope {
    Scope {
        full: true,
        ..Scope::default()
    }
}

/// The paths a plan uploads.
fn uploads(root: &Path, index: &Index, scope: &Scope) -> Vec<String> {
    let plan = Scanner::new(root).plan(index, scope).unwrap();
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::Upload { path, .. } => Some(path.to_string()),
            _ => None,
        })
        .collect()
}

/// With no event to go by (a start-up or a safety-net scan), every way of
/// changing content while keeping size and mtime is still found, and
/// metadata-only changes upload nothing.
#[test]
fn a_full_scan_finds_content_changes_that_keep_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let old = an_hour_ago();
    for name in ["in-place", "renamed-over", "chmod", "touch-same"] {
        write_with_mtime(&root.join(name), b"aaaa", old);
    }
    std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(50));
    let index = index_now(root);
    assert!(trusted(&index, "in-place"), "settled files are trusted");
    assert!(uploads(root, &index, &full()).is_empty());

    overwrite_in_place(&root.join("in-place"), b"bbbb", old);
    write_with_mtime(&root.join("tmp~"), b"cccc", old);
    fs::rename(root.join("tmp~"), root.join("renamed-over")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root.join("chmod"), fs::Permissions::from_mode(0o600)).unwrap();
    File::options()
        .write(true)
        .open(root.join("touch-same"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let plan = Scanner::new(root).plan(&index, &full()).unwrap();
    let up: Vec<String> = plan.ops.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(up, ["in-place", "renamed-over"]);
    let refreshed: Vec<&str> = plan.refreshed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(refreshed, ["chmod", "touch-same"], "hashed, found the same");
}

/// Two same-size writes within one timestamp tick: the record taken between
/// them is racy, so the second write is found even though every stat field
/// may be what was recorded.
#[test]
fn a_record_taken_right_after_a_write_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("tick");
    write_with_mtime(&f, b"dddd", SystemTime::now());
    let index = index_now(root);
    assert!(!trusted(&index, "tick"), "recorded within the window");
    let tick = fs::metadata(&f).unwrap().modified().unwrap();
    overwrite_in_place(&f, b"eeee", tick);
    // Looked at again once the file has settled (no event to go by).
    std::thread::sleep(crate::client::scanner::SETTLE + std::time::Duration::from_millis(50));
    assert_eq!(uploads(root, &index, &full()), ["tick"]);
}

/// An index from before the stat record grew (format 1: size and mtime
/// only) is trusted for nothing: a same-size, same-mtime change is found.
#[test]
fn an_old_format_index_rehashes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let old = an_hour_ago();
    write_with_mtime(&root.join("a.txt"), b"new!", old);
    write_with_mtime(&root.join("b.txt"), b"same", old);
    std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(50));
    let mtime = |name: &str| {
        let t = fs::metadata(root.join(name)).unwrap().modified().unwrap();
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    };
    let text = format!(
        "cloudservice-index 1\tcursor\t3\nF\t1\t4\t{}\t{}\ta.txt\nF\t2\t4\t{}\t{}\tb.txt\n",
        mtime("a.txt"),
        ContentHash::of(b"old!"),
        mtime("b.txt"),
        ContentHash::of(b"same"),
    );
    let file = root.join("index-v1");
    fs::write(&file, text).unwrap();
    let index = Index::load(&file).unwrap();
    fs::remove_file(&file).unwrap();
    let plan = Scanner::new(root).plan(&index, &full()).unwrap();
    let up: Vec<String> = plan.ops.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(up, ["a.txt"]);
    assert_eq!(plan.refreshed.len(), 1, "b.txt: same content, new record");
    assert!(is_trusted(match &plan.refreshed[0].1.kind {
        EntryKind::File { stat, .. } => stat,
        EntryKind::Dir => unreachable!(),
    }));
}

/// A write through one name of a hard-linked file: the event names only
/// that one, and the plan uploads every name.
#[test]
fn a_named_hard_link_brings_its_other_names_along() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("x")).unwrap();
    fs::create_dir_all(root.join("y")).unwrap();
    write_with_mtime(&root.join("x/one"), b"v1", an_hour_ago());
    fs::hard_link(root.join("x/one"), root.join("y/two")).unwrap();
    write_with_mtime(&root.join("z"), b"v1", an_hour_ago());
    std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(50));
    let mut index = Index::new();
    for (path, entry) in Scanner::new(root).scan(None).unwrap() {
        let kind = match entry {
            crate::client::scanner::DiskEntry::Dir => EntryKind::Dir,
            crate::client::scanner::DiskEntry::File(stat) => EntryKind::File {
                stat: seal(stat),
                hash: hash_file(&path.to_local(root)).unwrap().0,
            },
        };
        index.insert(path, Entry { kind, version: 1 });
    }
    overwrite_in_place(&root.join("x/one"), b"v2", an_hour_ago());
    let mut scope = Scope::default();
    scope.add(p("x/one"));
    assert_eq!(uploads(root, &index, &scope), ["x/one", "y/two"]);
    // The other name is also found by the full scan alone (shared ctime).
    assert_eq!(uploads(root, &index, &full()), ["x/one", "y/two"]);
}

// ---- the applier: a same-size, same-mtime local edit is never lost ----

fn server_file(path: &str, version: u64, data: &[u8]) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::File {
            size: data.len() as u64,
            hash: ContentHash::of(data),
        },
        executable: false,
    }
}

#[test]
fn a_pull_never_replaces_or_deletes_a_same_size_same_mtime_local_edit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sync");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    let old = an_hour_ago();
    for name in ["updated", "deleted"] {
        write_with_mtime(&root.join(name), b"v1v1", old);
    }
    std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(50));
    let mut index = index_now(&root);
    assert!(trusted(&index, "updated") && trusted(&index, "deleted"));
    for name in ["updated", "deleted"] {
        overwrite_in_place(&root.join(name), b"mine", old);
    }

    let entries = [
        server_file("updated", 2, b"srv!"),
        ChangeEntry {
            path: p("deleted"),
            version: 3,
            state: EntryState::Deleted,
            executable: false,
        },
    ];
    let out = Applier::new(&root, &tmp, &mut index, 2)
        .apply(&entries, false)
        .unwrap();
    assert_eq!(
        fs::read(root.join("deleted")).unwrap(),
        b"mine",
        "not deleted"
    );
    assert!(out.dirty.contains(&p("deleted")), "and pushed again");
    // The newer server version is not fetched over the edit: the edit stays
    // in place and is pushed with its old base (the server decides, §7.2),
    // and the pull is repeated.
    assert!(out.fetches.is_empty(), "{:?}", out.fetches);
    assert!(out.must_repeat(), "the cursor must not pass the entry");
    assert_eq!(fs::read(root.join("updated")).unwrap(), b"mine");
    assert!(out.dirty.contains(&p("updated")), "and pushed");
}

/// Random sequences of edits, metadata changes and renames over a synced
/// file, each followed by a full scan with no event to help: the scan
/// uploads exactly when the content differs from the indexed content.
#[test]
fn random_edits_are_found_by_stat_alone_exactly_when_content_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("f");
    let old = an_hour_ago();
    write_with_mtime(&f, b"0000", old);
    std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(50));
    let mut index = index_now(root);
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut next = move |n: u64| rng.random_range(0..n);
    for round in 0..40 {
        let content = format!("{:04}", next(3));
        let keep = fs::metadata(&f).unwrap().modified().unwrap();
        let what = next(4);
        match what {
            0 => overwrite_in_place(&f, content.as_bytes(), keep),
            1 => {
                write_with_mtime(&root.join("t~"), content.as_bytes(), keep);
                fs::rename(root.join("t~"), &f).unwrap();
            }
            2 => {
                use std::os::unix::fs::PermissionsExt;
                let mode = 0o600 | ((next(2) as u32) * 0o044);
                fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
            }
            _ => File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(keep)
                .unwrap(),
        }
        let now = fs::read(&f).unwrap();
        let indexed = index.get(&p("f")).and_then(|e| e.hash());
        let changed = indexed != Some(ContentHash::of(&now));
        // Let the change settle past the racy window sometimes, not always.
        if next(2) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let plan = Scanner::new(root).plan(&index, &full()).unwrap();
        let uploaded = plan.ops.iter().any(|op| matches!(op, Op::Upload { .. }));
        let unstable = !plan.unstable.is_empty();
        assert!(
            uploaded == changed || (unstable && changed),
            "round {round} (op {what}): changed {changed}, plan {:?}",
            plan.ops
        );
        // Record what the scan found, as the session does after the ack.
        for op in &plan.ops {
            if let Op::Upload { stat, hash, .. } = op {
                index.insert(p("f"), Entry::synced_file(*stat, *hash, round + 2));
            }
        }
        for (path, entry) in plan.refreshed {
            index.insert(path, entry);
        }
        if unstable {
            let hash = hash_file(&f).unwrap().0;
            let stat = match crate::client::fsutil::check_path(root, &p("f")).unwrap() {
                crate::client::fsutil::Local::File(stat) => stat,
                other => panic!("{other:?}"),
            };
            index.insert(p("f"), Entry::synced_file(stat, hash, round + 2));
        }
    }
}
