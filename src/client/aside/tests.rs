//! The soak's lost write (seed 1795672392086381154), replayed step by step,
//! and the no-replace moves on their own.

use super::*;
use crate::client::fsutil::hash_file;
use crate::client::push::apply_ack;
use crate::client::scanner::Op;
use crate::protocol::{ContentHash, PushAck, PushStatus};
use std::path::PathBuf;

/// The device of the replay (client 3 in the soak's log).
const ME: ClientId = 3;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn stat_of(root: &Path, path: &WirePath) -> crate::client::fsutil::Stat {
    match check_path(root, path).unwrap() {
        Local::File(stat) => stat,
        other => panic!("{path}: {other:?}"),
    }
}

/// Every file content in the folder, by path.
fn contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.unwrap();
        if item.file_type().is_file() {
            let rel = item.path().strip_prefix(root).unwrap();
            let rel = rel.to_string_lossy().into_owned();
            out.push((rel, fs::read(item.path()).unwrap()));
        }
    }
    out
}

/// Device 3 created `d0/f3.txt` (not pushed yet) when a pull brought
/// another device's `d0/f3.txt`: the applier kept the local file as
/// `d0/f3 (conflict 3 <this second>).txt`. The user then rewrote the
/// downloaded `d0/f3.txt` and it was pushed at once; the server, which had a
/// newer `d0/f3.txt` again, stored the push as a conflict copy and, not
/// knowing the unpushed local copy, chose the same name for it. Moving the
/// acknowledged file to that name must not destroy the unpushed copy.
#[test]
fn a_server_conflict_name_taken_by_an_unpushed_local_copy_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("sync");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(root.join("d0")).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    let f3 = p("d0/f3.txt");
    // A pull no longer makes this copy (the server decides, §7.2), but a
    // download placed over a file edited at that moment still does: the
    // unpushed local copy, and the server's d0/f3.txt v17 synced.
    let local_copy = p("d0/f3 (conflict 3 2026-11-30 120000).txt");
    fs::write(
        local_copy.to_local(&root),
        b"op 15: created here, not pushed",
    )
    .unwrap();
    let theirs = b"op 15: written on another device";
    fs::write(f3.to_local(&root), theirs).unwrap();
    let mut index = Index::new();
    let synced =
        crate::client::index::Entry::synced_file(stat_of(&root, &f3), ContentHash::of(theirs), 17);
    index.insert(f3.clone(), synced);

    // The user rewrites d0/f3.txt; it is pushed with base 17 at once.
    let mine = b"op 20: rewritten here";
    fs::write(f3.to_local(&root), mine).unwrap();
    let op = Op::Upload {
        path: f3.clone(),
        base: 17,
        stat: stat_of(&root, &f3),
        hash: ContentHash::of(mine),
    };
    // The server answers with a conflict copy named like the local one.
    let ack = PushAck {
        status: PushStatus::Conflict,
        version: 25,
        path: local_copy.clone(),
    };
    let effect = apply_ack(&root, &mut index, &op, &ack, (0, ME));

    let all = contents(&root);
    let has = |data: &[u8]| all.iter().any(|(_, c)| c.as_slice() == data);
    assert!(
        has(b"op 15: created here, not pushed"),
        "the unpushed local copy was destroyed: {all:?}"
    );
    assert_eq!(fs::read(local_copy.to_local(&root)).unwrap(), mine);
    assert_eq!(
        index.get(&local_copy).and_then(|e| e.hash()),
        Some(ContentHash::of(mine))
    );
    // The copy set aside is new to the server: it is pushed.
    let aside: Vec<&WirePath> = effect
        .dirty
        .iter()
        .filter(|d| **d != f3 && **d != local_copy)
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", effect.dirty);
    assert_eq!(
        hash_file(&aside[0].to_local(&root)).unwrap().0,
        ContentHash::of(b"op 15: created here, not pushed")
    );
    assert!(index.get(aside[0]).is_none());
}

#[test]
fn moves_never_replace_and_report_what_they_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = Index::new();
    fs::write(root.join("a"), b"a").unwrap();
    // Free destination: a plain move.
    assert_eq!(
        move_to_server_name(root, &index, &p("a"), &p("b"), ME).unwrap(),
        None
    );
    assert_eq!(fs::read(root.join("b")).unwrap(), b"a");
    assert!(!root.join("a").exists());
    // Taken by a file: that file moves to a free name first.
    fs::write(root.join("a"), b"second").unwrap();
    let aside = move_to_server_name(root, &index, &p("a"), &p("b"), ME)
        .unwrap()
        .unwrap();
    assert_eq!(fs::read(root.join("b")).unwrap(), b"second");
    assert_eq!(fs::read(aside.to_local(root)).unwrap(), b"a");
    // A directory moves too, and a taken name is set aside the same way.
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/sub/x"), b"x").unwrap();
    fs::create_dir(root.join("e")).unwrap();
    fs::write(root.join("e/y"), b"y").unwrap();
    let aside = move_to_server_name(root, &index, &p("d"), &p("e"), ME)
        .unwrap()
        .unwrap();
    assert_eq!(fs::read(root.join("e/sub/x")).unwrap(), b"x");
    assert_eq!(fs::read(aside.to_local(root).join("y")).unwrap(), b"y");
    // A missing source changes nothing.
    assert!(move_to_server_name(root, &index, &p("gone"), &p("b"), ME).is_err());
    assert_eq!(fs::read(root.join("b")).unwrap(), b"second");
}
