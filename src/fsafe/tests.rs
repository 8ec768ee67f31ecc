//! Unit tests of the symlink-safe walk: a symlink planted at every
//! component of a path, `..`, a tree deeper than PATH_MAX.

use super::walk::{self as dirfd, Walked};
use super::*;
use std::os::unix::fs::symlink;
use std::path::Path;

#[test]
fn symlinked_ancestor_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
    let p = WirePath::new("link/x.txt").unwrap();
    assert!(matches!(inspect(root.path(), &p), Err(FsError::Unsafe(_))));
    // The message names the symlink, not the path below it.
    let deep = WirePath::new("link/x/y.txt").unwrap();
    let said = make_dirs(root.path(), &deep).map_err(|e| e.to_string());
    assert_eq!(said, Err("refusing to follow a symlink at link".to_owned()));
    assert!(matches!(
        make_dirs(root.path(), &p),
        Err(FsError::Unsafe(_))
    ));
    assert!(matches!(remove(root.path(), &p), Err(FsError::Unsafe(_))));
    // The link itself can be removed without touching its target.
    std::fs::write(outside.path().join("keep"), b"k").unwrap();
    remove(root.path(), &WirePath::new("link").unwrap()).unwrap();
    assert!(outside.path().join("keep").exists());
}

#[test]
fn a_tree_deeper_than_path_max_is_made_read_and_removed_without_following_links() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"k").unwrap();
    let root = tempfile::tempdir().unwrap();
    // 16 components, 4,080 bytes: with `/f.txt` a legal 4,086-byte
    // wire path, and with the temp folder's own path past PATH_MAX.
    let parts: Vec<String> = (0..16u8)
        .map(|i| {
            ((b'a' + i) as char)
                .to_string()
                .repeat(if i < 15 { 255 } else { 240 })
        })
        .collect();
    let deep = WirePath::new(&parts.join("/")).unwrap();
    assert_eq!(deep.as_str().len(), 4080);
    make_dirs(root.path(), &deep).unwrap();
    assert_eq!(inspect(root.path(), &deep).unwrap(), OnDisk::Dir);
    let file = WirePath::new(&format!("{deep}/f.txt")).unwrap();
    assert!(root.path().join(file.as_str()).as_os_str().len() > 4096);
    let temp = root.path().join("temp");
    std::fs::write(&temp, b"content").unwrap();
    place_file(root.path(), &temp, &file).unwrap();
    let mut read = String::new();
    std::io::Read::read_to_string(
        &mut open_file(root.path(), &file).unwrap().unwrap(),
        &mut read,
    )
    .unwrap();
    assert_eq!(read, "content");
    // A symlink deep inside, to a folder outside.
    let Walked::Dir(dir) = dirfd::walk(
        root.path(),
        &file.parent().unwrap().components().collect::<Vec<_>>(),
        false,
        &file,
    )
    .unwrap() else {
        panic!("walk");
    };
    rustix::fs::symlinkat(outside.path(), &dir, "link").unwrap();
    let link = WirePath::new(&format!("{deep}/link/keep")).unwrap();
    assert!(matches!(
        open_file(root.path(), &link),
        Err(FsError::Unsafe(_))
    ));
    let top = WirePath::new(&parts[0]).unwrap();
    remove(root.path(), &top).unwrap();
    assert_eq!(inspect(root.path(), &top).unwrap(), OnDisk::Absent);
    assert!(outside.path().join("keep").exists());
}

/// Every component of `a/b/c/d/f.txt` in turn is made a symlink to a
/// folder outside holding the same tree: no operation may reach, list,
/// create, remove or replace anything outside.
#[test]
fn a_symlink_at_any_component_is_never_followed() {
    let parts = ["a", "b", "c", "d", "f.txt"];
    for at in 0..parts.len() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        // The same tree on both sides, so a followed link would "work".
        let below = parts[at + 1..].join("/");
        let out_dir = outside.path().join(parts[at..parts.len() - 1].join("/"));
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::write(outside.path().join(parts[at..].join("/")), b"secret").unwrap();
        let inside = root.path().join(parts[..at].join("/"));
        std::fs::create_dir_all(&inside).unwrap();
        symlink(outside.path().join(parts[at]), inside.join(parts[at])).unwrap();
        let full = WirePath::new(&parts.join("/")).unwrap();
        let last = at + 1 == parts.len();
        let what = format!("link at component {at} ({below})");
        if last {
            // The path itself is the link: seen as "other", never opened.
            assert_eq!(
                inspect(root.path(), &full).unwrap(),
                OnDisk::Other,
                "{what}"
            );
            assert!(open_file(root.path(), &full).unwrap().is_none(), "{what}");
            let (kind, _, _) = stat(root.path(), &full).unwrap().unwrap();
            assert_eq!(kind, rustix::fs::FileType::Symlink, "{what}");
        } else {
            assert_all_refused(root.path(), &full, &what);
        }
        // Outside is exactly as it was.
        assert_eq!(
            std::fs::read(outside.path().join(parts[at..].join("/"))).unwrap(),
            b"secret",
            "{what}"
        );
        // Nothing was created there: the folder itself and the tree.
        let listed = walkdir::WalkDir::new(outside.path()).into_iter().count();
        assert_eq!(listed, 1 + parts.len() - at, "{what}");
    }
}

/// Every operation on `full` (below a symlink) is refused as unsafe.
fn assert_all_refused(root: &Path, full: &WirePath, what: &str) {
    let refused = |r: Result<(), FsError>| matches!(r, Err(FsError::Unsafe(_)));
    assert!(refused(inspect(root, full).map(drop)), "inspect: {what}");
    assert!(refused(stat(root, full).map(drop)), "stat: {what}");
    assert!(refused(open_file(root, full).map(drop)), "open: {what}");
    assert!(refused(remove(root, full)), "remove: {what}");
    let deeper = WirePath::new(&format!("{full}.new/x")).unwrap();
    assert!(refused(make_dirs(root, &deeper)), "make_dirs: {what}");
    let temp = root.join("temp");
    std::fs::write(&temp, b"new").unwrap();
    let placed = place_file(root, &temp, full).map(drop);
    assert!(refused(placed), "place: {what}");
    let synced = sync_dir(root, full.parent().as_ref());
    assert!(refused(synced), "sync_dir: {what}");
    std::fs::write(root.join("z"), b"z").unwrap();
    let from = WirePath::new("z").unwrap();
    assert!(refused(rename(root, &from, full)), "rename: {what}");
}

/// A file where a directory must be: `inspect` says absent (nothing
/// can be there), `stat` refuses, `make_dirs` refuses and leaves it.
#[test]
fn a_file_as_an_ancestor() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"k").unwrap();
    let p = WirePath::new("f/x").unwrap();
    assert_eq!(inspect(root.path(), &p).unwrap(), OnDisk::Absent);
    // Refused as what it is, naming the file in the way: never "a symlink".
    let named_f = |r: Result<(), FsError>| match r {
        Err(e @ FsError::NotADirectory(_)) => {
            e.to_string() == "f is not a directory (a file is there)"
        }
        _ => false,
    };
    assert!(named_f(stat(root.path(), &p).map(drop)));
    assert!(named_f(make_dirs(root.path(), &p)));
    let deeper = WirePath::new("f/x/y").unwrap();
    assert!(named_f(stat(root.path(), &deeper).map(drop)));
    assert!(named_f(make_dirs(root.path(), &deeper)));
    assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"k");
    assert!(stat(root.path(), &WirePath::new("none/x").unwrap())
        .unwrap()
        .is_none());
}

/// `..` and other escapes never become a `WirePath`, so no operation
/// here can be handed one; a name that merely contains dots is a name.
#[test]
fn dot_dot_cannot_be_named_and_dotted_names_stay_inside() {
    for bad in [
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "a//b",
        ".",
    ] {
        assert!(WirePath::new(bad).is_err(), "{bad}");
    }
    let root = tempfile::tempdir().unwrap();
    let p = WirePath::new("...x/..y").unwrap();
    make_dirs(root.path(), &p).unwrap();
    assert!(root.path().join("...x/..y").is_dir());
}

/// A folder that is itself a symlink (a user's folder moved to another
/// disk) is used through it: only what is *below* the root is guarded.
#[test]
fn a_root_that_is_a_symlink_is_followed() {
    let real = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let root = holder.path().join("root");
    symlink(real.path(), &root).unwrap();
    make_dirs(&root, &WirePath::new("d").unwrap()).unwrap();
    assert!(real.path().join("d").is_dir());
}

/// One walk to the parent serves the look and the rename of a push: a
/// missing parent is reported (nothing created), a present one sees the
/// entry before and after the file is placed, a symlinked ancestor is
/// refused before anything is looked at.
#[test]
fn one_parent_walk_looks_and_places() {
    let root = tempfile::tempdir().unwrap();
    let path = WirePath::new("a/b/f").unwrap();
    assert!(open_parent(root.path(), &path).unwrap().is_none());
    assert!(!root.path().join("a").exists(), "nothing created");
    make_dirs(root.path(), &WirePath::new("a/b").unwrap()).unwrap();
    let parent = open_parent(root.path(), &path).unwrap().expect("parent");
    assert_eq!(parent.inspect().unwrap(), OnDisk::Absent);
    let temp = root.path().join("temp");
    std::fs::write(&temp, b"content").unwrap();
    parent.place_file(&temp).unwrap();
    assert_eq!(parent.inspect().unwrap(), OnDisk::File);
    assert_eq!(
        std::fs::read(root.path().join("a/b/f")).unwrap(),
        b"content"
    );
    assert!(!temp.exists());
    std::fs::create_dir(root.path().join("a/b/d")).unwrap();
    let dir = WirePath::new("a/b/d").unwrap();
    let parent = open_parent(root.path(), &dir).unwrap().expect("parent");
    assert_eq!(parent.inspect().unwrap(), OnDisk::Dir);
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), root.path().join("a/s")).unwrap();
    let through = WirePath::new("a/s/f").unwrap();
    assert!(matches!(
        open_parent(root.path(), &through),
        Err(FsError::Unsafe(_))
    ));
}

#[test]
fn a_handle_is_still_at_its_path_only_while_that_directory_is_there() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("folder");
    std::fs::create_dir_all(root.join("d/s")).unwrap();
    let path = WirePath::new("d/s/f").unwrap();
    let parts = ["d", "s"];
    let Walked::Dir(held) = dirfd::walk(&root, &parts, false, &path).unwrap() else {
        panic!("d/s is there");
    };
    assert!(dirfd::still_at(&root, &parts, &held, &path).unwrap());
    // Moved out of the folder (to the trash): not at its path any more.
    std::fs::rename(root.join("d"), top.path().join("trash")).unwrap();
    assert!(!dirfd::still_at(&root, &parts, &held, &path).unwrap());
    // Another directory of the same name there: not the one held either.
    std::fs::create_dir_all(root.join("d/s")).unwrap();
    assert!(!dirfd::still_at(&root, &parts, &held, &path).unwrap());
    // A symlink to where it went is never followed.
    std::fs::remove_dir_all(root.join("d")).unwrap();
    symlink(top.path().join("trash"), root.join("d")).unwrap();
    assert!(!dirfd::still_at(&root, &parts, &held, &path).unwrap());
    // Moved back: the same directory again.
    std::fs::remove_file(root.join("d")).unwrap();
    std::fs::rename(top.path().join("trash"), root.join("d")).unwrap();
    assert!(dirfd::still_at(&root, &parts, &held, &path).unwrap());
}
