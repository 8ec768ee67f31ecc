//! The executable bit beside the content: a download never takes
//! away a local chmod not yet pushed, and a local edit, move or deletion not
//! yet pushed never hides a bit the server changed.

use super::test_folder::{deleted, dir, file, p, Folder};
use super::*;
use std::os::unix::fs::PermissionsExt;

impl Folder {
    fn apply_modes(&mut self, entries: &[ChangeEntry]) -> Applied {
        Applier::new(&self.root, &self.tmp, &mut self.index, 2)
            .with_modes(true)
            .apply(entries, false)
            .unwrap()
    }

    fn deliver_modes(&mut self, job: &FetchJob, data: &str) -> Applied {
        let mut applier = Applier::new(&self.root, &self.tmp, &mut self.index, 2).with_modes(true);
        let tmp = applier.tmp_name("test");
        fs::write(&tmp, data).unwrap();
        let mut out = Applied::default();
        let hash = ContentHash::of(data.as_bytes());
        applier
            .place(job, &tmp, (hash, job.version), &mut out)
            .unwrap();
        out
    }

    fn chmod(&self, path: &str, mode: u32) {
        let full = self.root.join(path);
        fs::set_permissions(full, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn exec(&self, path: &str) -> bool {
        let meta = fs::metadata(self.root.join(path)).unwrap();
        meta.permissions().mode() & 0o100 != 0
    }

    fn indexed_exec(&self, path: &str) -> Option<bool> {
        indexed_exec(self.index.get(&p(path)).copied())
    }
}

fn exec_file(path: &str, version: u64, data: &str) -> ChangeEntry {
    ChangeEntry {
        executable: true,
        ..file(path, version, data)
    }
}

#[test]
fn a_download_keeps_a_local_chmod_not_yet_pushed() {
    let mut f = Folder::new();
    f.write("r.sh", "r\n");
    f.chmod("r.sh", 0o755);
    f.sync_all(3);
    // chmod -x here; another device's edit arrives (bit still set there).
    f.chmod("r.sh", 0o644);
    let out = f.apply_modes(&[exec_file("r.sh", 4, "r\nX\n")]);
    assert_eq!(out.fetches.len(), 1);
    let placed = f.deliver_modes(&out.fetches[0], "r\nX\n");
    assert_eq!(f.read("r.sh").as_deref(), Some("r\nX\n"));
    assert!(!f.exec("r.sh"), "the local -x survives the download");
    assert_eq!(f.indexed_exec("r.sh"), Some(true), "the server's bit");
    assert!(placed.dirty.contains(&p("r.sh")), "SetMode follows");
}

#[test]
fn a_download_takes_the_servers_bit_when_not_changed_here() {
    let mut f = Folder::new();
    f.write("r.sh", "r\n");
    f.sync_all(3);
    let out = f.apply_modes(&[exec_file("r.sh", 4, "r\nX\n")]);
    let placed = f.deliver_modes(&out.fetches[0], "r\nX\n");
    assert!(f.exec("r.sh"));
    assert_eq!(f.indexed_exec("r.sh"), Some(true));
    assert!(placed.dirty.is_empty());
}

#[test]
fn a_local_edit_takes_a_bit_the_server_changed() {
    let mut f = Folder::new();
    f.write("z.sh", "z\n");
    f.chmod("z.sh", 0o755);
    f.sync_all(3);
    f.write("z.sh", "z\nmoreB\n");
    // The server's z.sh: same content as synced, bit cleared elsewhere.
    let out = f.apply_modes(&[file("z.sh", 4, "z\n")]);
    assert!(out.fetches.is_empty());
    assert!(!f.exec("z.sh"), "the server's -x reaches the edited file");
    assert_eq!(f.read("z.sh").as_deref(), Some("z\nmoreB\n"));
    assert_eq!(f.indexed_exec("z.sh"), Some(false));
    assert_eq!(f.index.get(&p("z.sh")).map(|e| e.version), Some(4));
    assert!(out.dirty.contains(&p("z.sh")), "the edit is pushed");
    assert!(out.deferred.is_empty());
}

#[test]
fn a_local_edit_and_chmod_keep_the_local_bit_over_the_servers() {
    let mut f = Folder::new();
    f.write("z.sh", "z\n");
    f.sync_all(3);
    f.write("z.sh", "z\nmine\n");
    f.chmod("z.sh", 0o755);
    // The server did not change the bit: the local +x is pushed later.
    let out = f.apply_modes(&[file("z.sh", 4, "z\n")]);
    assert!(f.exec("z.sh"));
    assert_eq!(f.indexed_exec("z.sh"), Some(false));
    assert!(out.dirty.contains(&p("z.sh")));
}

#[test]
fn a_file_moved_here_whose_bit_the_server_changed_is_pushed_first() {
    let mut f = Folder::new();
    f.write("w.sh", "w\n");
    f.sync_all(3);
    fs::rename(f.root.join("w.sh"), f.root.join("w2.sh")).unwrap();
    let out = f.apply_modes(&[exec_file("w.sh", 4, "w\n")]);
    assert!(out.deferred.contains(&p("w.sh")), "the Rename goes first");
    assert!(out.must_repeat());
    assert_eq!(f.index.get(&p("w.sh")).map(|e| e.version), Some(3));
    // The same with the bit unchanged: the move is pushed on version 4.
    let mut g = Folder::new();
    g.write("w.sh", "w\n");
    g.sync_all(3);
    fs::remove_file(g.root.join("w.sh")).unwrap();
    let out = g.apply_modes(&[file("w.sh", 4, "w\n")]);
    assert!(out.deferred.is_empty());
    assert_eq!(g.index.get(&p("w.sh")).map(|e| e.version), Some(4));
}

/// every combination of: the bit indexed for `t.sh`, its local
/// bit, the bit the server gives the file it moved, and whether the server
/// moved it (to `u.sh`, in the same reply) or deleted it. A bit changed
/// here follows the moved file (placed with it, the server's recorded, a
/// SetMode to follow); a bit not changed here takes the server's; a deleted
/// file is never kept because of a chmod.
#[test]
fn a_chmod_here_follows_a_rename_elsewhere_and_never_keeps_a_deleted_file() {
    for case in 0..16u32 {
        let (indexed, local, server, moved) =
            (case & 1 != 0, case & 2 != 0, case & 4 != 0, case & 8 != 0);
        let what = format!("indexed {indexed} local {local} server {server} moved {moved}");
        let mut f = Folder::new();
        f.write("t.sh", "t\n");
        f.chmod("t.sh", if indexed { 0o755 } else { 0o644 });
        f.sync_all(3);
        f.chmod("t.sh", if local { 0o755 } else { 0o644 });
        let mut reply = vec![deleted("t.sh", 4)];
        if moved {
            reply.push(ChangeEntry {
                executable: server,
                ..file("u.sh", 4, "t\n")
            });
        }
        let out = f.apply_modes(&reply);
        assert_eq!(f.read("t.sh"), None, "{what}: t.sh deleted");
        assert!(f.index.get(&p("t.sh")).is_none(), "{what}");
        assert!(!out.dirty.contains(&p("t.sh")), "{what}: t.sh not pushed");
        if !moved {
            assert!(out.dirty.is_empty(), "{what}");
            continue;
        }
        assert!(out.fetches.is_empty(), "{what}: reused, not downloaded");
        assert_eq!(f.read("u.sh").as_deref(), Some("t\n"), "{what}");
        let changed_here = indexed != local;
        let want = if changed_here { local } else { server };
        assert_eq!(f.exec("u.sh"), want, "{what}: the bit u.sh appears with");
        assert_eq!(
            f.indexed_exec("u.sh"),
            Some(server),
            "{what}: server's bit indexed"
        );
        assert_eq!(
            out.dirty.contains(&p("u.sh")),
            want != server,
            "{what}: a SetMode follows exactly when the bits differ"
        );
    }
}

#[test]
fn a_chmod_here_follows_a_directory_renamed_elsewhere() {
    let mut f = Folder::new();
    f.write("d/s.sh", "s\n");
    f.sync_all(3);
    f.chmod("d/s.sh", 0o755);
    let out = f.apply_modes(&[deleted("d", 4), dir("d2", 4), file("d2/s.sh", 4, "s\n")]);
    assert_eq!(f.read("d/s.sh"), None);
    assert!(
        f.exec("d2/s.sh"),
        "the local +x follows the moved directory"
    );
    assert_eq!(f.indexed_exec("d2/s.sh"), Some(false));
    assert!(out.dirty.contains(&p("d2/s.sh")));
}

/// What a local writer does to `r.sh` at one step of a download's
/// placement (the [`RaceHook`] seam): a chmod that flips the bit, or a
/// same-size rewrite that puts the old mtime back (`touch -d`), which only
/// the ctime and the content show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Racer {
    Chmod,
    SameSizeSameMtime,
}

/// Plays `racer` on the file at `at`; a chmod gives it the bit `exec`.
fn race(racer: Racer, at: &Path, exec: bool) {
    let Ok(meta) = fs::symlink_metadata(at) else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    match racer {
        Racer::Chmod => {
            let mode = if exec { 0o755 } else { 0o644 };
            fs::set_permissions(at, fs::Permissions::from_mode(mode)).unwrap();
        }
        Racer::SameSizeSameMtime => {
            let was = meta.modified().unwrap();
            fs::write(at, "R\n").unwrap();
            let file = fs::OpenOptions::new().write(true).open(at).unwrap();
            file.set_times(fs::FileTimes::new().set_modified(was))
                .unwrap();
        }
    }
}

/// The race behind e2e_exec_diverge's lost `chmod 644` (dir/r3.sh ended
/// executable): a change made here to a file while another device's
/// version of it is being placed, at every step of the placement, for
/// every bit indexed and given by the server. A chmod landing between the
/// placement's look at the path and its exchange was deleted with the
/// replaced file (that file was judged by its content only) and the
/// download appeared with the server's bit. Nothing is lost now: the
/// download takes the bit set here (and a SetMode follows when it is not
/// the server's), and a same-size rewrite with the old mtime is a conflict
/// copy.
#[test]
fn a_change_here_racing_the_placement_of_a_download_is_kept() {
    for racer in [Racer::Chmod, Racer::SameSizeSameMtime] {
        for case in 0..4u32 {
            let (indexed, server) = (case & 1 != 0, case & 2 != 0);
            let mut step = 0;
            loop {
                let what = format!("{racer:?} at step {step}, indexed {indexed} server {server}");
                let mut f = Folder::new();
                f.write("r.sh", "r\n");
                f.chmod("r.sh", if indexed { 0o755 } else { 0o644 });
                f.sync_all(3);
                let entry = ChangeEntry {
                    executable: server,
                    ..file("r.sh", 4, "r\nX\n")
                };
                let out = f.apply_modes(&[entry]);
                assert_eq!(out.fetches.len(), 1, "{what}");
                let target = f.root.join("r.sh");
                let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2).with_modes(true);
                let mut n = 0;
                applier.set_race_hook(|_: &Path| {
                    if n == step {
                        race(racer, &target, !indexed);
                    }
                    n += 1;
                });
                let tmp = applier.tmp_name("test");
                fs::write(&tmp, "r\nX\n").unwrap();
                let mut placed = Applied::default();
                let job = &out.fetches[0];
                applier
                    .place(job, &tmp, (job.hash, 4), &mut placed)
                    .unwrap();
                drop(applier);
                if n <= step {
                    // Every step had its turn.
                    assert!(step > 0, "{what}: no step");
                    break;
                }
                let copies: Vec<String> = snapshot_files(&f.root)
                    .into_iter()
                    .filter(|(name, _)| name.contains("(conflict 2 "))
                    .map(|(_, text)| text)
                    .collect();
                match racer {
                    // The chmod reached the old file (its bit is carried to
                    // the download) or the new one.
                    Racer::Chmod => {
                        assert_eq!(f.read("r.sh").as_deref(), Some("r\nX\n"), "{what}");
                        assert!(copies.is_empty(), "{what}: {copies:?}");
                        assert_eq!(f.exec("r.sh"), !indexed, "{what}: the chmod here");
                    }
                    Racer::SameSizeSameMtime => {
                        let both = [f.read("r.sh"), copies.first().cloned()];
                        assert!(
                            both.contains(&Some("R\n".to_owned())),
                            "{what}: the rewrite was lost: {both:?}"
                        );
                    }
                }
                if racer == Racer::Chmod {
                    // The server's bit is recorded; a SetMode follows
                    // exactly when the bit here is another.
                    assert_eq!(f.indexed_exec("r.sh"), Some(server), "{what}");
                    assert_eq!(
                        placed.dirty.contains(&p("r.sh")),
                        server == indexed,
                        "{what}: a SetMode follows exactly when the bits differ"
                    );
                }
                step += 1;
            }
        }
    }
}

/// Every regular file below `root` with its text, by relative path.
fn snapshot_files(root: &Path) -> Vec<(String, String)> {
    super::test_folder::snapshot(root)
        .into_iter()
        .filter_map(|(name, data)| Some((name, String::from_utf8(data?).ok()?)))
        .collect()
}

/// What a program here does to `d/r.sh` between the applier's decision to
/// give it the server's bit and the chmod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meddler {
    /// Renames a file of its own over it.
    RenamedOver,
    /// Moves `d/` out of the folder and puts a symlink to it in its place.
    SymlinkedParent,
    /// Moves `d/` out of the folder once the file is opened.
    MovedOut,
}

/// A mode change from elsewhere reaches only the file it was decided for,
/// inside the folder: a file renamed over the path keeps its own
/// bit (and is pushed), and no file outside the folder is changed, whether
/// reached through a symlink put in place of its directory or in a
/// directory moved out of the folder. Before, the chmod went by path: the
/// user's new file became executable, and the file behind the symlink did.
#[test]
fn the_servers_bit_goes_only_to_the_file_judged_inside_the_folder() {
    use std::os::unix::fs::symlink;
    for meddler in [
        Meddler::RenamedOver,
        Meddler::SymlinkedParent,
        Meddler::MovedOut,
    ] {
        let mut f = Folder::new();
        f.write("d/r.sh", "r\n");
        f.chmod("d/r.sh", 0o644);
        f.sync_all(3);
        let d = f.root.join("d");
        let outside = f.root.parent().unwrap().join("moved");
        let mut step = 0;
        let mut applier = Applier::new(&f.root, &f.tmp, &mut f.index, 2).with_modes(true);
        applier.set_race_hook(|_: &Path| {
            step += 1;
            match (meddler, step) {
                (Meddler::RenamedOver, 1) => {
                    fs::write(d.join(".r.sh.new"), "mine\n").unwrap();
                    fs::rename(d.join(".r.sh.new"), d.join("r.sh")).unwrap();
                }
                (Meddler::SymlinkedParent, 1) => {
                    fs::rename(&d, &outside).unwrap();
                    symlink(&outside, &d).unwrap();
                }
                (Meddler::MovedOut, 2) => fs::rename(&d, &outside).unwrap(),
                _ => {}
            }
        });
        let out = applier
            .apply(&[exec_file("d/r.sh", 4, "r\n")], false)
            .unwrap();
        drop(applier);
        assert!(out.failures.is_empty(), "{meddler:?}: {:?}", out.failures);
        for at in [d.join("r.sh"), outside.join("r.sh")] {
            if let Ok(meta) = fs::metadata(&at) {
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o644, "{meddler:?}: {} got the bit", at.display());
            }
        }
        if meddler == Meddler::RenamedOver {
            assert_eq!(f.read("d/r.sh").as_deref(), Some("mine\n"));
        } else {
            let moved = fs::read_to_string(outside.join("r.sh")).ok();
            assert_eq!(moved.as_deref(), Some("r\n"), "{meddler:?}");
        }
        // The server's bit is recorded and the path looked at again: the
        // next look pushes the new file, or the deletion.
        assert_eq!(f.indexed_exec("d/r.sh"), Some(true), "{meddler:?}");
        assert_eq!(f.index.get(&p("d/r.sh")).map(|e| e.version), Some(4));
        assert!(out.dirty.contains(&p("d/r.sh")), "{meddler:?}");
    }
}
