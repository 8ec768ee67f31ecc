//! The mount rule: fixed cases, a randomized model of mounts
//! (nested, unmounted, missing, mounted anew) and files removed on purpose,
//! and the judge against a real folder.

use super::*;
use crate::client::fsutil::Stat;
use crate::client::index::Entry;
use crate::protocol::ContentHash;
use proptest::prelude::*;

fn p(text: &str) -> WirePath {
    WirePath::new(text).expect("path")
}

fn file(dev: u64) -> Entry {
    let stat = Stat {
        size: 1,
        mtime_ns: 1,
        ctime_ns: 1,
        dev,
        ino: 1,
        exec: false,
        btime_ns: 0,
    };
    Entry::synced_file(stat, ContentHash([1; 32]), 1)
}

fn dir() -> Entry {
    Entry {
        kind: EntryKind::Dir,
        version: 1,
    }
}

const ROOT: u64 = 1;
const SEC: i64 = 1_000_000_000;
/// No identities recorded (an index from before the sidecar).
static NONE: BTreeMap<u64, ident::FsIdent> = BTreeMap::new();
const PHOTOS: u64 = 2;

#[test]
fn only_a_file_missing_from_its_own_file_system_is_removed() {
    use Missing::*;
    const NEW: u64 = 7;
    let table = [
        // (recorded, nearest, same, mounted, outside, verdict)
        // Unmounted: the mount point is a directory of the outer device.
        (PHOTOS, ROOT, false, false, Some(ROOT), Gone),
        // ... and no mount point known (every file was on the drive).
        (PHOTOS, ROOT, false, false, None, Gone),
        // Still mounted: the user removed the file.
        (PHOTOS, PHOTOS, true, true, Some(ROOT), Removed),
        // Another file system given the same number (a tmpfs re-created,
        // another image on the same loop device: breaker19 G1), told by
        // its file system ID.
        (PHOTOS, PHOTOS, false, true, Some(ROOT), Replaced),
        // Mounted again under another number (the same file system ID, or
        // evidence found): removed.
        (PHOTOS, NEW, true, true, Some(ROOT), Removed),
        // Another (or an empty re-created) drive at the mount point:
        // breaker18 F6, once a removal.
        (PHOTOS, NEW, false, true, Some(ROOT), Replaced),
        (PHOTOS, NEW, false, true, None, Replaced),
        // A file of the outer device under a drive mounted over its
        // directory (breaker16 F1).
        (ROOT, PHOTOS, false, true, None, Replaced),
        // A nested mount point gone, its directory on the outer drive.
        (NEW, PHOTOS, false, true, Some(PHOTOS), Gone),
        // A file of the outer device removed.
        (ROOT, ROOT, true, false, Some(ROOT), Removed),
        // The folder itself on another number, evidence found.
        (ROOT, NEW, true, false, None, Removed),
        // ... none found: not there right now.
        (ROOT, NEW, false, false, None, Gone),
        // The folder's own file system, another one there (the folder is
        // itself a drive swapped): not there right now.
        (ROOT, ROOT, false, false, None, Gone),
        // Device unknown (an index from before format 2).
        (0, ROOT, false, false, Some(ROOT), Removed),
        (0, PHOTOS, false, true, None, Removed),
    ];
    for (recorded, nearest, same, mounted, outside, verdict) in table {
        for older in [false, true] {
            let place = Place {
                nearest,
                same,
                older,
                mounted,
                outside,
            };
            // An older state of the recorded file system (or of an
            // unknown one) is never a removal (breaker19 G2); the device
            // rules come first (a gone drive stays gone: nothing is
            // downloaded into its empty mount point).
            let expect = match verdict {
                Removed if older => Older,
                v => v,
            };
            assert_eq!(missing(recorded, place), expect, "{recorded} {place:?}");
        }
    }
}

#[test]
fn a_directory_unchanged_since_the_file_was_synced_is_an_older_state() {
    let table = [
        // (recorded ctime, ctime now, older)
        (100, 200, false),
        (100, 101, false),
        // Equal: a change in the same tick as the recorded one (coarse
        // timestamps, the multigrain floor) is a change, not an older state.
        (100, 100, false),
        (100, 99, true),
        (100, 1, true),
        // Unknown on either side proves nothing.
        (0, 50, false),
        (100, 0, false),
        (0, 0, false),
        // Before 1970 (a clock badly set) compares as numbers.
        (-5, -10, true),
        (-10, -5, false),
    ];
    for (recorded, now, expect) in table {
        assert_eq!(older_state(recorded, now), expect, "{recorded} {now}");
    }
}

#[test]
fn a_different_file_on_another_file_system_is_a_copy_not_an_edit() {
    let table = [
        // (recorded dev, same fs, recorded ctime, ctime now, verdict)
        (PHOTOS, true, 100, 200, None),
        (PHOTOS, false, 100, 200, Some(Why::Other)),
        (ROOT, false, 100, 200, Some(Why::Other)),
        (0, false, 100, 200, None),
        // The recorded file system, an older file (a block image of the
        // drive, breaker19 G2): a stale copy, not an edit.
        (PHOTOS, true, 200, 100, Some(Why::Older)),
        // Written again within the tick the record saw: an edit.
        (PHOTOS, true, 200, 200, None),
        (0, false, 200, 100, Some(Why::Older)),
        (PHOTOS, true, 0, 100, None),
    ];
    for (recorded, same, was, now, expect) in table {
        assert_eq!(
            joined(recorded, same, was, now),
            expect,
            "{recorded} {same} {was} {now}"
        );
    }
}

#[test]
fn file_systems_are_told_apart_by_mount_and_file_system_id() {
    use ident::{same_fs, FsIdent, Sameness::*};
    let id = |fsid, kind, mount| FsIdent {
        fsid,
        kind,
        mount,
        point: None,
    };
    let table = [
        // (recorded, now, verdict)
        // The very mount (unique IDs are never reused).
        (id(1, 9, 5), id(1, 9, 5), Same),
        (id(0, 9, 5), id(0, 9, 5), Same),
        // The same drive mounted again: a new mount, the same UUID.
        (id(1, 9, 5), id(1, 9, 6), Same),
        (id(1, 9, 0), id(1, 9, 0), Same),
        // Another drive or a tmpfs re-created (another random ID).
        (id(1, 9, 5), id(2, 9, 6), Other),
        (id(1, 9, 0), id(2, 9, 0), Other),
        // Another kind of file system.
        (id(0, 9, 0), id(0, 8, 0), Other),
        (id(1, 9, 5), id(1, 8, 6), Other),
        // No file system ID (older tmpfs, FUSE): evidence needed.
        (id(0, 9, 5), id(0, 9, 6), Unsure),
        (id(0, 9, 0), id(0, 9, 0), Unsure),
        (id(1, 9, 5), id(0, 9, 6), Unsure),
    ];
    for (recorded, now, expect) in table {
        assert_eq!(same_fs(&recorded, &now), expect, "{recorded:?} {now:?}");
    }
}

#[test]
fn the_mounts_sidecar_reads_back_and_refuses_damage() {
    use ident::{parse, render, FsIdent, ParseError};
    let mut idents = BTreeMap::new();
    assert_eq!(parse(&render(&idents)), Ok(idents.clone()));
    idents.insert(
        0x28,
        FsIdent {
            fsid: u64::MAX,
            kind: 0x0102_1994,
            mount: 0x8000_0001,
            point: Some(p("Photos/with space/é")),
        },
    );
    idents.insert(
        0x700,
        FsIdent {
            fsid: 0,
            kind: 0xef53,
            mount: 0,
            point: None,
        },
    );
    assert_eq!(parse(&render(&idents)), Ok(idents.clone()));
    assert_eq!(parse(""), Err(ParseError::Header));
    assert_eq!(parse("cloudservice-mounts 3\n"), Err(ParseError::Header));
    assert_eq!(
        parse("cloudservice-mounts 1\n28 1 2 3\n28 1 2\n"),
        Err(ParseError::Line(3))
    );
    // Version 1 (no mount points) is still read.
    assert_eq!(
        parse("cloudservice-mounts 1\n28 1 2 3\n"),
        Ok(BTreeMap::from([(
            0x28,
            FsIdent {
                fsid: 1,
                kind: 2,
                mount: 3,
                point: None,
            }
        )]))
    );
    // Version 2 needs the point (hex of a valid path, or -).
    assert_eq!(
        parse("cloudservice-mounts 2\n28 1 2 3\n"),
        Err(ParseError::Line(2))
    );
    assert_eq!(
        parse("cloudservice-mounts 2\n28 1 2 3 2f6574\n"),
        Err(ParseError::Line(2)),
        "/et is not a folder path"
    );
    assert_eq!(
        parse("cloudservice-mounts 2\n28 1 2 3 5068\n")
            .ok()
            .and_then(|m| m.get(&0x28).and_then(|i| i.point.clone())),
        Some(p("Ph"))
    );
    assert_eq!(
        parse("cloudservice-mounts 1\n28 1 2 x\n"),
        Err(ParseError::Line(2))
    );
}

proptest! {
    /// Any records read back as written.
    #[test]
    fn sidecar_round_trip(records in proptest::collection::btree_map(
        any::<u64>(), (any::<u64>(), any::<u64>(), any::<u64>(), "[a-z é]{1,8}(/[a-z]{1,3})?", any::<bool>()), 0..8)
    ) {
        let idents: BTreeMap<u64, ident::FsIdent> = records
            .into_iter()
            .map(|(dev, (fsid, kind, mount, point, has))| {
                let point = WirePath::new(point.trim()).ok().filter(|_| has);
                (dev, ident::FsIdent { fsid, kind, mount, point })
            })
            .collect();
        prop_assert_eq!(ident::parse(&ident::render(&idents)), Ok(idents));
    }
}

#[test]
fn device_numbers_are_named_as_the_kernel_does() {
    assert_eq!(dev_name(0xfe00), "254:0");
    assert_eq!(dev_name(0x3a), "0:58");
    assert_eq!(dev_name(0x1000_0010_012c), "4097:300");
}

#[test]
fn untouched_needs_the_same_inode_ctime_and_size() {
    let stat = |ino, ctime_ns, size, dev| Stat {
        size,
        mtime_ns: 5,
        ctime_ns,
        dev,
        ino,
        exec: false,
        btime_ns: 0,
    };
    assert!(untouched(&stat(9, 100, 3, 1), &stat(9, 100, 3, 2)));
    assert!(!untouched(&stat(9, 100, 3, 1), &stat(9, 101, 3, 2)));
    assert!(!untouched(&stat(9, 100, 3, 1), &stat(8, 100, 3, 2)));
    assert!(!untouched(&stat(9, 100, 3, 1), &stat(9, 100, 4, 2)));
    assert!(!untouched(&stat(0, 100, 3, 1), &stat(0, 100, 3, 2)));
    assert!(!untouched(&stat(9, 0, 3, 1), &stat(9, 0, 3, 2)));
}

#[test]
fn the_mount_point_is_the_top_directory_of_the_device() {
    let mut index = Index::new();
    index.insert(p("notes.txt"), file(ROOT));
    index.insert(p("Photos"), dir());
    index.insert(p("Photos/2024"), dir());
    index.insert(p("Photos/2024/a.jpg"), file(PHOTOS));
    index.insert(p("Photos/b.jpg"), file(PHOTOS));
    assert_eq!(mount_point(&index, PHOTOS), Some(p("Photos")));
    assert_eq!(mount_point(&index, ROOT), None);
    // Files in one subdirectory only: that one (on the mount too).
    index.remove(&p("Photos/b.jpg"));
    assert_eq!(mount_point(&index, PHOTOS), Some(p("Photos/2024")));
    // A folder on one device (moved to another disk as a whole): none.
    let mut one = Index::new();
    one.insert(p("a/b.txt"), file(PHOTOS));
    one.insert(p("a/c.txt"), file(PHOTOS));
    assert_eq!(mount_point(&one, PHOTOS), None);
}

/// What became of one mountable directory of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// As before (mounted or not).
    Same,
    /// Another file system mounted there now (replacing the one mounted
    /// before, or over the plain directory): another drive, an empty one
    /// mounted anew.
    New,
    /// Another file system mounted there now that got the device number
    /// the one mounted before had (a tmpfs re-created, another image on
    /// the same loop device: breaker19 G1); over a plain directory, like
    /// `New`.
    Reused,
    /// The same file system mounted again under another device number
    /// (no effect on a plain directory).
    Renumbered,
    /// Unmounted: an empty directory of the outer file system (no effect
    /// on a plain directory).
    Unmounted,
    /// The directory is gone (unmounted first if it was a mount point; a
    /// plain one removed by the user with what it held).
    Missing,
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Same),
        Just(State::New),
        Just(State::Reused),
        Just(State::Renumbered),
        Just(State::Unmounted),
        Just(State::Missing),
    ]
}

/// Directories of the model; the first three may be mount points ("A/x"
/// inside "A").
const DIRS: [&str; 7] = ["A", "B", "A/x", "A/y", "B/z", "C", "C/w"];
const MOUNTABLE: [&str; 3] = ["A", "B", "A/x"];

/// A file system of the model: its identity (the root, the drive mounted
/// before at mountable `i`, or the new one at `i`) and its device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fs {
    id: u64,
    dev: u64,
}

const ROOT_FS: Fs = Fs { id: 0, dev: ROOT };

/// The file system holding `dir` before the change, with the mount points
/// `mounted` (identity and device 10 + their index in MOUNTABLE).
fn fs_before(dir: &str, mounted: &[bool; 3]) -> Fs {
    let mut fs = ROOT_FS;
    for i in mountables(dir).into_iter().flatten() {
        if mounted[i] {
            fs = Fs {
                id: 10 + i as u64,
                dev: 10 + i as u64,
            };
        }
    }
    fs
}

/// For each prefix of `dir` ("A", "A/x"), its index in MOUNTABLE.
fn mountables(dir: &str) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut at = String::new();
    for part in dir.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        out.push(MOUNTABLE.iter().position(|m| *m == at));
    }
    out
}

/// The file system holding `dir` after the change; `None` when `dir` is
/// not there (missing, or below a mount point now empty or replaced: a new
/// drive holds none of the old directories).
fn fs_after(dir: &str, mounted: &[bool; 3], states: &[State; 3]) -> Option<Fs> {
    let mut fs = ROOT_FS;
    // A directory below a mount point that changed is not there.
    let mut fresh = false;
    for i in mountables(dir) {
        if fresh {
            return None;
        }
        let Some(i) = i else { continue };
        let before = Fs {
            id: 10 + i as u64,
            dev: 10 + i as u64,
        };
        match (states[i], mounted[i]) {
            (State::Same, true) => fs = before,
            (State::Same | State::Renumbered | State::Unmounted, false) => {}
            (State::New, _) => {
                fs = Fs {
                    id: 20 + i as u64,
                    dev: 20 + i as u64,
                };
                fresh = true;
            }
            (State::Reused, true) => {
                fs = Fs {
                    id: 40 + i as u64,
                    dev: before.dev,
                };
                fresh = true;
            }
            (State::Reused, false) => {
                fs = Fs {
                    id: 40 + i as u64,
                    dev: 40 + i as u64,
                };
                fresh = true;
            }
            (State::Renumbered, true) => {
                fs = Fs {
                    id: before.id,
                    dev: 30 + i as u64,
                }
            }
            // An empty directory of the outer file system.
            (State::Unmounted, true) => fresh = true,
            (State::Missing, _) => return None,
        }
    }
    Some(fs)
}

proptest! {
    /// Whatever the mounts and their fate, a missing file is a removal
    /// exactly when the place where it was is on the very file system it
    /// was recorded on (under its number or, with evidence, another): a
    /// file system gone, replaced by another drive, mounted anew, or
    /// mounted over its directory never makes a removal (R-5.6.9,
    /// breaker18 F6), and a file removed on purpose from its own file
    /// system always does. Gone (nothing there but the outer file system)
    /// and replaced (another one there) are told apart as the model says,
    /// where the index knows the mount point.
    #[test]
    fn removed_exactly_when_missing_from_its_own_file_system(
        mounted in proptest::array::uniform3(any::<bool>()),
        states in proptest::array::uniform3(state()),
        files in proptest::collection::vec((0..DIRS.len() + 1, 0u8..4), 1..20),
        removed in any::<proptest::sample::Index>(),
        older in any::<bool>(),
    ) {
        let mut index = Index::new();
        for (d, name) in &files {
            let (path, dev) = match DIRS.get(*d) {
                Some(dir) => (format!("{dir}/f{name}"), fs_before(dir, &mounted).dev),
                None => (format!("f{name}"), ROOT),
            };
            index.insert(p(&path), file(dev));
        }
        let paths: Vec<WirePath> = index.iter().map(|(p, _)| p.clone()).collect();
        let path = removed.get(&paths).clone();
        let dir = path.parent();
        let recorded_fs = dir.as_ref().map_or(ROOT_FS, |d| fs_before(d.as_str(), &mounted));
        let recorded = recorded_fs.dev;
        // The file system of a directory, or of the nearest existing one
        // above.
        let existing = |from: Option<WirePath>| {
            let mut at = from;
            while let Some(d) = at {
                if let Some(fs) = fs_after(d.as_str(), &mounted, &states) {
                    return fs;
                }
                at = d.parent();
            }
            ROOT_FS
        };
        let nearest = existing(dir.clone());
        let point = mount_point(&index, recorded);
        let outside = point.as_ref().map(|m| existing(m.parent()).dev);
        let place = Place {
            nearest: nearest.dev,
            // What the judge finds from the identities (the file system
            // ID, the mount) and the renumbering evidence.
            same: nearest.id == recorded_fs.id,
            older,
            mounted: nearest.id != ROOT_FS.id,
            outside,
        };
        let verdict = missing(recorded, place);
        prop_assert_eq!(
            verdict == Missing::Removed,
            nearest.id == recorded_fs.id && !older,
            "{} {:?} point {:?}", path, place, point
        );
        // An older state of the very file system: held, never gone.
        prop_assert_eq!(
            verdict == Missing::Older,
            nearest.id == recorded_fs.id && older,
            "{} {:?} point {:?}", path, place, point
        );
        // A place on the folder's own file system, the file recorded on
        // another: that one went away (never "replaced": nothing to
        // download into an empty mount point).
        if nearest.id == ROOT_FS.id && recorded_fs.id != ROOT_FS.id {
            prop_assert_eq!(verdict, Missing::Gone);
        }
        // A new drive at the recorded drive's own mount point (the mount
        // point known, F6): replaced, its files downloaded onto it.
        let own_point = MOUNTABLE.iter().position(|m| {
            point.as_ref().is_some_and(|p| p.as_str() == *m)
        });
        if let Some(i) = own_point {
            if mounted[i] && states[i] == State::New && nearest.dev == 20 + i as u64 {
                prop_assert_eq!(verdict, Missing::Replaced);
            }
            // ... also when it has the number the recorded one had (G1).
            if mounted[i] && states[i] == State::Reused && nearest.id == 40 + i as u64 {
                prop_assert_eq!(nearest.dev, recorded);
                prop_assert_eq!(verdict, Missing::Replaced);
            }
        }
    }
}

/// The judge against a real folder: the index records `Photos`' files on
/// another device than the folder's (as a mount would have), and the disk
/// has `Photos` as a plain directory (unmounted) or not at all.
#[test]
fn the_judge_reads_the_disk() {
    let root = tempfile::tempdir().expect("temp dir");
    let here = std::fs::metadata(root.path()).expect("stat").dev();
    let other = here.wrapping_add(1);
    let mut index = Index::new();
    index.insert(p("notes.txt"), file(here));
    index.insert(p("gone.txt"), file(here));
    index.insert(p("Photos"), dir());
    index.insert(p("Photos/sub"), dir());
    index.insert(p("Photos/a.jpg"), file(other));
    index.insert(p("Photos/sub/b.jpg"), file(other));
    std::fs::write(root.path().join("notes.txt"), "notes").expect("write");
    std::fs::create_dir(root.path().join("Photos")).expect("mkdir");
    let gone = |point: &str| {
        Some(Parked {
            point: p(point),
            why: Why::Gone,
            now: here,
            was: other,
        })
    };
    let mut judge = Judge::new(root.path(), &index, &NONE);
    assert_eq!(judge.gone_file(&p("Photos/a.jpg")), gone("Photos"));
    assert_eq!(judge.gone_dir(&p("Photos/sub")), gone("Photos"));
    assert_eq!(judge.gone_file(&p("gone.txt")), None);
    assert_eq!(
        judge.gone_mounts().into_iter().collect::<Vec<_>>(),
        vec![(gone("Photos").expect("parked"), 2)]
    );
    // The mount point missing too.
    std::fs::remove_dir(root.path().join("Photos")).expect("rmdir");
    let mut judge = Judge::new(root.path(), &index, &NONE);
    assert_eq!(judge.gone_dir(&p("Photos")), gone("Photos"));
    // The same files recorded on the folder's device: removed on purpose.
    let mut plain = Index::new();
    plain.insert(p("notes.txt"), file(here));
    plain.insert(p("Photos/a.jpg"), file(here));
    let mut judge = Judge::new(root.path(), &plain, &NONE);
    assert_eq!(judge.gone_dir(&p("Photos")), None);
    assert!(judge.gone_mounts().is_empty());
}

/// The renumbering evidence against a real folder: files recorded on a
/// device number the folder no longer has (as after a drive came back
/// under another number) are the same file system when one of them is at
/// its path untouched; a copy (a new ctime) proves nothing. A file
/// missing there is then a removal; without the evidence it is not, and
/// a different file there is another file system's copy.
#[test]
fn a_file_system_mounted_again_under_another_number_is_still_its_own() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("kept.txt"), "kept").expect("write");
    std::fs::write(root.path().join("edited.txt"), "edited").expect("write");
    let meta = std::fs::metadata(root.path().join("kept.txt")).expect("stat");
    let here = meta.dev();
    let before = here.wrapping_add(1);
    let recorded = |stat: Stat| {
        Entry::synced_file(
            Stat {
                dev: before,
                ..stat
            },
            ContentHash([1; 32]),
            1,
        )
    };
    let kept = Stat::of(&meta);
    // Synced a second before (not an older state: the ctime rule is
    // tested apart).
    let earlier = Stat {
        ctime_ns: kept.ctime_ns - SEC,
        ..kept
    };
    let mut index = Index::new();
    index.insert(p("kept.txt"), recorded(kept));
    index.insert(p("edited.txt"), recorded(Stat { ino: 1, ..earlier }));
    index.insert(p("removed.txt"), recorded(Stat { ino: 2, ..earlier }));
    let edited = Stat::of(&std::fs::metadata(root.path().join("edited.txt")).expect("stat"));
    let mut judge = Judge::new(root.path(), &index, &NONE);
    assert!(judge.is_renumbered(before, here));
    assert_eq!(judge.gone_file(&p("removed.txt")), None, "a removal");
    assert_eq!(
        judge.joined_file(&p("edited.txt"), &edited),
        None,
        "an edit"
    );
    assert_eq!(
        judge.renumbering().collect::<Vec<_>>(),
        vec![(before, here)]
    );

    // The untouched file's ctime moved (a copy of it on another drive
    // would have its own): no evidence.
    let mut copied = Index::new();
    let touched = Stat {
        ctime_ns: kept.ctime_ns - 1,
        ..kept
    };
    copied.insert(p("kept.txt"), recorded(touched));
    copied.insert(p("edited.txt"), recorded(Stat { ino: 1, ..earlier }));
    copied.insert(p("removed.txt"), recorded(Stat { ino: 2, ..earlier }));
    let mut judge = Judge::new(root.path(), &copied, &NONE);
    assert!(!judge.is_renumbered(before, here));
    assert_eq!(
        judge.joined_file(&p("edited.txt"), &edited),
        Some(Why::Other),
        "another's copy"
    );
    let parked = judge.gone_file(&p("removed.txt")).expect("not a removal");
    assert_eq!((parked.now, parked.was), (here, before));
    // Evidence kept by the session from an earlier round decides too.
    let mut judge = Judge::with_renumbered(root.path(), &copied, &NONE, [(before, here)]);
    assert_eq!(judge.gone_file(&p("removed.txt")), None);
}

/// The file-level rule against a real folder (breaker19 G2): a file
/// removed from its directory is a removal; one missing from a directory
/// whose ctime is before the file's recorded one (as in an older image
/// of the drive) is an older state; a different file whose ctime is not
/// after the recorded one is a stale copy, not an edit.
#[test]
fn the_judge_reads_ctimes() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("a.txt"), "a").expect("write");
    std::fs::write(root.path().join("b.txt"), "b, edited").expect("write");
    let stat = |name: &str| Stat::of(&std::fs::metadata(root.path().join(name)).expect("stat"));
    let (a, b) = (stat("a.txt"), stat("b.txt"));
    let here = a.dev;
    let record = |stat: Stat| Entry::synced_file(stat, ContentHash([1; 32]), 1);
    let mut index = Index::new();
    index.insert(p("a.txt"), record(a));
    index.insert(
        p("b.txt"),
        record(Stat {
            ctime_ns: b.ctime_ns - SEC,
            ..b
        }),
    );
    // Synced after everything the folder's directory shows.
    let later = Stat {
        ctime_ns: b.ctime_ns + 3600 * SEC,
        ino: 99,
        ..a
    };
    index.insert(p("c.txt"), record(later));
    index.insert(p("d.txt"), record(Stat { ino: 98, ..later }));
    // Past the kernel tick of coarse timestamps (a sync takes longer).
    std::thread::sleep(std::time::Duration::from_millis(30));
    std::fs::remove_file(root.path().join("a.txt")).expect("rm");
    // Without c.txt and d.txt nothing here is older than its record.
    let mut live = index.clone();
    live.remove(&p("c.txt"));
    live.remove(&p("d.txt"));
    let mut judge = Judge::new(root.path(), &live, &NONE);
    assert_eq!(judge.gone_file(&p("a.txt")), None, "removed by the user");
    assert_eq!(judge.joined_file(&p("b.txt"), &b), None, "an edit");
    assert_eq!(
        judge.older_now(),
        vec![((here, now_mount(root.path())), false)]
    );
    // With them the folder is an older state than the records (c.txt is
    // missing from a directory older than its record): the whole file
    // system is held (breaker20 F1), a.txt's removal and b.txt's edit too.
    let mut judge = Judge::new(root.path(), &index, &NONE);
    let older = |point: &str| {
        Some(Parked {
            point: p(point),
            why: Why::Older,
            now: here,
            was: here,
        })
    };
    assert_eq!(judge.gone_file(&p("c.txt")), older("c.txt"));
    assert_eq!(judge.gone_file(&p("a.txt")), older("a.txt"));
    assert_eq!(judge.joined_file(&p("b.txt"), &b), Some(Why::Older));
    let mut stale = Index::new();
    stale.insert(p("b.txt"), record(later));
    let mut judge = Judge::new(root.path(), &stale, &NONE);
    assert_eq!(judge.joined_file(&p("b.txt"), &b), Some(Why::Older));
    // status: one mount point, three files.
    let mut judge = Judge::new(root.path(), &index, &NONE);
    let gone: Vec<usize> = judge.gone_mounts().into_values().collect();
    assert_eq!(gone, vec![1, 1, 1], "a, c and d.txt, each its own top");
}

/// The unique mount ID of the file system at `path` (0: none).
fn now_mount(path: &Path) -> u64 {
    ident::FsIdent::of(path).map_or(0, |id| id.mount)
}

/// One piece of evidence holds the recorded file system as a whole.
#[test]
fn evidence_holds_the_recorded_file_system() {
    assert!(held_as_older(true, true));
    assert!(!held_as_older(false, true), "another file system: not ours");
    assert!(!held_as_older(true, false));
}

/// breaker20 F1: an image whose directory was written to before the client
/// looked (a file made in it, or the client's own tidying of a staging
/// directory at its top) no longer shows that its missing file is older;
/// the verdict taken before (at start, before anything is touched; in an
/// earlier round) holds the file system for the run. A verdict of a mount
/// without a unique ID is kept only when it is "older".
#[test]
fn an_older_state_found_once_is_held_for_the_run() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("d")).expect("mkdir");
    let dir = Stat::of(&std::fs::metadata(root.path().join("d")).expect("stat"));
    let here = dir.dev;
    let key = (here, now_mount(root.path()));
    // z.txt synced after the image was taken (10 ms after d last changed).
    let mut index = Index::new();
    let z = Stat {
        ctime_ns: dir.ctime_ns + SEC / 100,
        ino: 77,
        size: 5,
        ..dir
    };
    index.insert(p("d/z.txt"), Entry::synced_file(z, ContentHash([1; 32]), 1));
    let mut judge = Judge::new(root.path(), &index, &NONE);
    let before = judge.older_now();
    assert_eq!(before, vec![(key, true)]);
    // Written to since (and past the tick of coarse timestamps).
    std::thread::sleep(std::time::Duration::from_millis(40));
    std::fs::write(root.path().join("d/note.txt"), "new").expect("write");
    let mut judge = Judge::new(root.path(), &index, &NONE);
    assert_eq!(
        judge.gone_file(&p("d/z.txt")),
        None,
        "alone, it looks removed"
    );
    let mut judge = Judge::new(root.path(), &index, &NONE).with_older(before.clone());
    let parked = judge.gone_file(&p("d/z.txt")).expect("held");
    assert_eq!((parked.why, parked.point), (Why::Older, p("d")));
    assert_eq!(judge.older_verdicts().collect::<Vec<_>>(), before);
    // Kept: "older" always; "live" only for a mount with a unique ID.
    let judge = Judge::new(root.path(), &index, &NONE).with_older([
        ((1, 0), true),
        ((2, 0), false),
        ((3, 9), false),
    ]);
    let mut kept: Vec<_> = judge.older_verdicts().collect();
    kept.sort_unstable();
    assert_eq!(kept, vec![((1, 0), true), ((3, 9), false)]);
}

/// The recorded identities against a real folder: the very file system
/// is the recorded one (a removal is a removal); another one at the same
/// device number (here: another kind recorded) is not, whatever the
/// numbers say (breaker19 G1), and the survey says so.
#[test]
fn the_judge_compares_identities() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("b.txt"), "b, edited").expect("write");
    let b = Stat::of(&std::fs::metadata(root.path().join("b.txt")).expect("stat"));
    let here = b.dev;
    let now = ident::FsIdent::of(root.path()).expect("statfs");
    let record = |stat: Stat| Entry::synced_file(stat, ContentHash([1; 32]), 1);
    let mut index = Index::new();
    let earlier = Stat {
        ctime_ns: b.ctime_ns - SEC,
        ..b
    };
    index.insert(p("b.txt"), record(earlier));
    index.insert(p("gone.txt"), record(Stat { ino: 97, ..earlier }));
    let same = BTreeMap::from([(here, now.clone())]);
    let mut judge = Judge::new(root.path(), &index, &same);
    assert_eq!(judge.gone_file(&p("gone.txt")), None);
    assert_eq!(judge.joined_file(&p("b.txt"), &b), None);
    assert_eq!(judge.survey(), vec![(here, Surveyed::Same(now.clone()))]);
    let other = BTreeMap::from([(
        here,
        ident::FsIdent {
            kind: now.kind ^ 1,
            fsid: now.fsid,
            mount: now.mount ^ 1,
            point: None,
        },
    )]);
    let mut judge = Judge::new(root.path(), &index, &other);
    let parked = judge.gone_file(&p("gone.txt")).expect("not a removal");
    // The folder's own file system: not there right now.
    assert_eq!(
        (parked.why, parked.now, parked.was),
        (Why::Gone, here, here)
    );
    assert_eq!(judge.joined_file(&p("b.txt"), &b), Some(Why::Other));
    assert_eq!(judge.survey(), vec![(here, Surveyed::Other(now.clone()))]);
    // No record yet: new.
    let mut judge = Judge::new(root.path(), &index, &NONE);
    assert_eq!(judge.survey(), vec![(here, Surveyed::New(now))]);
}
