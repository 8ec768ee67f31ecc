//! A directory another device renamed is renamed here whole, with one
//! `renameat2` (PROTOCOL.md ), so whatever this device keeps in it
//! and does not sync travels with it. Real binaries on loopback. Before,
//! the directory was rebuilt file by file (outside tester breaker26 FA,
//! F0b, F0-dirs; breaker25 F2): ignored files, symlinks, a nested folder
//! of another user's client and a drive mounted inside stayed behind in
//! the old directory, its 0700 mode became the umask's, and that other
//! user's client pushed its files' deletions.
//!
//! Randomized parts print their seed: `DIR_RENAME_SEED=N` replays one.

mod common;

use common::{eventually, new_user, seed, settle, tree, write, Client, Rng, TwoDevices, CONVERGE};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const IGNORE: &str = "*.tmp\nnode_modules/\n";

/// The synced part of a folder's tree: what is ignored here left out.
fn synced(root: &Path) -> common::Tree {
    tree(root)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".tmp") && !p.ends_with(".swp"))
        .filter(|(p, _)| !p.split('/').any(|c| c == "node_modules"))
        .collect()
}

/// Waits until `a` and `b` hold the same synced tree and `check` holds.
fn synced_alike(what: &str, a: &Path, b: &Path, check: impl Fn() -> bool) {
    let ok = eventually(CONVERGE, || synced(a) == synced(b) && check());
    assert!(
        ok,
        "{what}: not converged.\nA: {:?}\nB: {:?}",
        synced(a).keys().collect::<Vec<_>>(),
        tree(b).keys().collect::<Vec<_>>()
    );
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn ignored_files_symlinks_and_the_mode_travel_with_a_renamed_directory() {
    let d = TwoDevices::start(|a| {
        write(a, ".cloudignore", IGNORE);
        write(a, "proj/main.c", "int main;\n");
        write(a, "proj/src/s.c", "s\n");
        write(a, "proj/src/t.c", "t\n");
    });
    let (a, b) = (d.a.path(), d.b.path());
    write(b, "proj/node_modules/lib/index.js", "module\n");
    write(b, "proj/cache.tmp", "cache\n");
    write(b, "proj/src/.s.c.swp", "swap\n");
    std::os::unix::fs::symlink("main.c", b.join("proj/link")).expect("symlink");
    fs::set_permissions(b.join("proj"), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::set_permissions(b.join("proj/src"), fs::Permissions::from_mode(0o700)).expect("chmod");
    settle();
    fs::rename(a.join("proj"), a.join("project")).expect("mv proj project");
    synced_alike("the rename reaches B", a, b, || !b.join("proj").exists());
    let p = b.join("project");
    assert_eq!(
        fs::read_to_string(p.join("node_modules/lib/index.js"))
            .ok()
            .as_deref(),
        Some("module\n"),
        "the ignored node_modules/ moved with project/"
    );
    assert_eq!(
        fs::read_to_string(p.join("cache.tmp")).ok().as_deref(),
        Some("cache\n")
    );
    assert_eq!(
        fs::read_to_string(p.join("src/.s.c.swp")).ok().as_deref(),
        Some("swap\n")
    );
    assert!(
        is_symlink(&p.join("link")),
        "the symlink moved with project/"
    );
    assert_eq!(mode(&p), 0o700, "project/ kept B's 0700");
    assert_eq!(mode(&p.join("src")), 0o700, "project/src kept B's 0700");
    assert!(!b.join("proj").exists(), "nothing left behind in proj/");
}

/// Files of user Y's folder, nested in user X's folder on device B.
const YFILES: usize = 6;

#[test]
fn a_nested_folder_of_another_user_moves_whole_and_that_user_loses_nothing() {
    let d = TwoDevices::start(|a| {
        write(a, "proj/x.txt", "x\n");
        write(a, "proj/sub/x2.txt", "x2\n");
    });
    let (a, b) = (d.a.path(), d.b.path());
    // User Y: a folder of its own inside X's proj/ on B, and a second
    // device Y2.
    let ytop = tempfile::tempdir().expect("temp dir");
    let yfirst = ytop.path().join("y");
    for i in 0..YFILES {
        write(&yfirst, &format!("y{i}.txt"), format!("y file {i}\n"));
    }
    settle();
    let y = new_user(d.server.port, &yfirst);
    let y2 = tempfile::tempdir().expect("temp dir");
    let mut cy2 = Client::start(d.server.port, y2.path(), Some(&y));
    let ynest = b.join("proj/ynest");
    fs::create_dir_all(&ynest).expect("mkdir");
    let mut cy = Client::start(d.server.port, &ynest, Some(&y));
    let want = tree(&yfirst);
    // Y's files are plain content of X's folder too (README): X's devices
    // hold them as well before the rename.
    assert!(
        eventually(CONVERGE, || tree(&ynest) == want
            && tree(y2.path()) == want
            && (0..YFILES)
                .all(|i| a.join(format!("proj/ynest/y{i}.txt")).is_file())),
        "Y's devices converge, and X's folder holds Y's files"
    );
    settle();
    fs::rename(a.join("proj"), a.join("project")).expect("mv proj project");
    let moved = eventually(CONVERGE, || {
        !b.join("proj").exists() && b.join("project/x.txt").is_file()
    });
    assert!(
        moved,
        "the rename reaches B: {:?}",
        tree(b).keys().collect::<Vec<_>>()
    );
    // Y's client on B had time to act on what it saw (its folder moved).
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        tree(&b.join("project/ynest")),
        want,
        "Y's folder moved whole with its files"
    );
    assert!(
        b.join("project/ynest/.cloudservice").is_dir(),
        "with Y's state folder"
    );
    assert_eq!(tree(y2.path()), want, "Y's other device lost nothing");
    let server_y = d.server.data.join("AllClients").join(&y);
    assert_eq!(tree(&server_y), want, "Y's server copy lost nothing");
    cy.terminate();
    cy2.stop();
}

/// One directory of the scenario: its files (name, content) and the
/// unsynced marker B keeps in it.
struct Dir {
    name: String,
    files: Vec<(String, String)>,
}

/// `n` files of directory `name` with seeded contents.
fn dir(rng: &mut Rng, name: &str, n: usize) -> Dir {
    let files = (0..n)
        .map(|i| {
            (
                format!("f{i}.txt"),
                format!("{name} {i} {}\n", rng.next_u64()),
            )
        })
        .collect();
    Dir {
        name: name.to_owned(),
        files,
    }
}

fn fill(root: &Path, d: &Dir) {
    for (f, c) in &d.files {
        write(root, &format!("{}/{f}", d.name), c);
    }
}

/// The marker B keeps in the directory that starts as `name`.
fn marker(name: &str) -> String {
    format!("marker of {name}\n")
}

#[test]
fn renamed_deeper_chained_swapped_nested_and_edited_directories_each_move_whole() {
    let seed = seed("DIR_RENAME_SEED");
    println!("DIR_RENAME_SEED={seed}");
    let mut rng = Rng::new(seed);
    // Every directory holds at least three files, so that one edited
    // elsewhere leaves most of it the same (the rule of ).
    let mut count = || 3 + rng.index(4);
    let sizes: Vec<usize> = (0..8).map(|_| count()).collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    let dirs = [
        dir(&mut rng, "d1", sizes[0]),
        dir(&mut rng, "d2", sizes[1]),
        dir(&mut rng, "c0", sizes[2]),
        dir(&mut rng, "c1", sizes[3]),
        dir(&mut rng, "s1", sizes[4]),
        dir(&mut rng, "s2", sizes[5]),
        dir(&mut rng, "n", sizes[6]),
        dir(&mut rng, "n/in", sizes[7]),
    ];
    let mut d = TwoDevices::start(|a| {
        write(a, ".cloudignore", IGNORE);
        for one in &dirs {
            fill(a, one);
        }
    });
    let (a, b) = (d.a.path().to_path_buf(), d.b.path().to_path_buf());
    for one in &dirs {
        write(&b, &format!("{}/keep.tmp", one.name), marker(&one.name));
    }
    settle();
    // B is stopped: it meets every change in one pull reply.
    d.cb.stop();
    let mv = |from: &str, to: &str| {
        let to = a.join(to);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::rename(a.join(from), &to).unwrap_or_else(|e| panic!("mv {from}: {e}"));
    };
    mv("d1", "e1");
    mv("d2", "z/y/d2");
    mv("c1", "c2");
    mv("c0", "c1");
    mv("s1", "t");
    mv("s2", "s1");
    mv("t", "s2");
    mv("n", "m");
    mv("m/in", "m/out");
    // An edit elsewhere in the renamed e1/.
    let edited = format!("e1/{}", dirs[0].files[rng.index(dirs[0].files.len())].0);
    write(&a, &edited, format!("edited on A {}\n", rng.next_u64()));
    settle();
    // A has pushed it all (its status says so) before B starts again.
    assert!(
        eventually(CONVERGE, || common::status_text(&a, false).0 == 0),
        "A in sync: {}",
        common::status_text(&a, false).1
    );
    d.cb.spawn();
    let moved = [
        ("d1", "e1"),
        ("d2", "z/y/d2"),
        ("c1", "c2"),
        ("c0", "c1"),
        ("s1", "s2"),
        ("s2", "s1"),
        ("n", "m"),
        ("n/in", "m/out"),
    ];
    let markers_moved = || {
        moved.iter().all(|(from, to)| {
            fs::read_to_string(b.join(to).join("keep.tmp")).ok() == Some(marker(from))
        })
    };
    synced_alike("the renames reach B", &a, &b, markers_moved);
    for (from, to) in moved {
        assert_eq!(
            fs::read_to_string(b.join(to).join("keep.tmp")).ok(),
            Some(marker(from)),
            "seed {seed}: B's unsynced file of {from} moved with it to {to}"
        );
    }
    for gone in ["d1", "d2", "c0", "n"] {
        assert!(
            !b.join(gone).exists(),
            "seed {seed}: {gone} left behind on B"
        );
    }
    assert_eq!(
        fs::read(b.join(&edited)).ok(),
        fs::read(a.join(&edited)).ok(),
        "seed {seed}: A's edit of {edited} is on B"
    );
}

/// A tmpfs mounted at a directory inside a folder, unmounted when dropped
/// (at each place it may be then: where it was mounted, where it moved).
struct Mount(Vec<PathBuf>);

impl Mount {
    fn at(dir: &Path) -> Option<Mount> {
        fs::create_dir_all(dir).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Mount(vec![dir.to_path_buf()]))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Wherever the directory is now (the rename moves the mount).
        for at in &self.0 {
            let _ = Command::new("umount").arg("-l").arg(at).status();
        }
    }
}

#[test]
fn a_drive_mounted_inside_a_renamed_directory_moves_with_it_and_keeps_its_files() {
    let d = TwoDevices::start(|a| {
        write(a, "proj/notes.txt", "notes\n");
        for i in 0..3 {
            write(a, &format!("proj/photos/p{i}.jpg"), format!("photo {i}\n"));
        }
    });
    let (a, b) = (d.a.path(), d.b.path());
    // On B the photos live on a drive mounted at proj/photos: set the
    // synced files aside, mount, put them back (same content and mtime is
    // not needed: B's client looks at them and finds them synced).
    let photos = b.join("proj/photos");
    let saved: Vec<(PathBuf, Vec<u8>)> = (0..3)
        .map(|i| {
            let p = photos.join(format!("p{i}.jpg"));
            let bytes = fs::read(&p).expect("photo");
            (p, bytes)
        })
        .collect();
    let Some(mut mount) = Mount::at(&photos) else {
        return;
    };
    for (p, bytes) in &saved {
        fs::write(p, bytes).expect("write on the drive");
    }
    let drive = fs::metadata(&photos).expect("stat").dev();
    assert_ne!(drive, fs::metadata(b.join("proj")).expect("stat").dev());
    settle();
    std::thread::sleep(std::time::Duration::from_secs(2));
    fs::rename(a.join("proj"), a.join("project")).expect("mv proj project");
    let moved = b.join("project/photos");
    mount.0.push(moved.clone());
    synced_alike("the rename reaches B", a, b, || !b.join("proj").exists());
    assert_eq!(
        fs::metadata(&moved).expect("stat").dev(),
        drive,
        "project/photos is still the drive"
    );
    for (i, (_, bytes)) in saved.iter().enumerate() {
        let on = moved.join(format!("p{i}.jpg"));
        assert_eq!(fs::read(&on).ok().as_ref(), Some(bytes));
        assert_eq!(
            fs::metadata(&on).expect("stat").dev(),
            drive,
            "p{i} on the drive"
        );
    }
}
