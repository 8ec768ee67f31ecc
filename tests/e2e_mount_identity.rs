//! End-to-end (root: tmpfs and ext4 images mounted at `B/Photos`): another
//! file system where a synced drive was that got the drive's device number,
//! and an older block-level image of the drive itself (outside tester
//! breaker19, G1 and G2; PROTOCOL.md ).
//!
//! - G1: Linux hands a tmpfs re-created after the old one was unmounted the
//!   anonymous device number just freed, and a second ext4 image attached
//!   to the same loop device is the same `7:N` again. Told apart by the
//!   file system ID recorded in `B/.cloudservice/mounts`. Each test asserts
//!   the number is the same and prints SKIPPED when the kernel gave another
//!   one (another test grabbed it meanwhile).
//! - G2: an image of the drive taken before files were edited, added and
//!   deleted on it has the drive's file system ID and untouched files: the
//!   ctime rule tells it apart (its directories and files are not newer
//!   than what was synced).
//!
//! - breaker20 F1: such an image written to before the client looks (a
//!   file made in a directory, one at the drive's top, an old file
//!   appended to, the client's own tidying of a staging directory left on
//!   it) is still an older state, as a whole: nothing synced after the
//!   image is deleted, an edit on it becomes a conflict copy.
//! - breaker20 F2: another file system at the drive's place when every
//!   synced file of the drive sat in one subdirectory (`Photos/d`) gets the
//!   synced files (its mount point is `Photos`, recorded with its
//!   identity, not `Photos/d`).
//!
//! Nothing may be deleted or overwritten anywhere: A, the server and B end
//! with the server's photos (downloaded onto the new file system), the new
//! file system's different copies beside them as conflict copies. And no
//! false hold: the same drive mounted again, a file then deleted on it (the
//! client stopped, or running), is deleted everywhere.
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs them against
//! another build (212d2a8's client fails the four G1/G2 tests; 28a351d's
//! the six F1/F2 tests).

mod common;

use common::{
    eventually, new_user, run_once, status_text, tree, write, Client, Server, Tree, Verbosity,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Photos on A (more than 10: the big-removal wait is in play).
const PHOTOS: usize = 12;
/// Photos the second drive holds an older copy of.
const OLD: usize = 3;
/// The safety-net comparison (60 s) plus a pull and the downloads.
const NOTICED: Duration = Duration::from_secs(110);

fn current(i: usize) -> String {
    format!("photo {i}, current\n")
}

fn old(i: usize) -> String {
    format!("OLD photo {i}\n")
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn run_out(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn dev_of(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").dev()
}

/// A file system mounted at a place (a tmpfs, or an image on a loop
/// device); unmounted, and its loop device detached, when dropped.
struct Mounted {
    at: PathBuf,
    loop_dev: Option<String>,
}

impl Mounted {
    fn tmpfs(at: &Path) -> Option<Mounted> {
        run("mount", &["-t", "tmpfs", "-o", "size=16m", "tmpfs", s(at)]).then(|| Mounted {
            at: at.to_path_buf(),
            loop_dev: None,
        })
    }

    /// `image` attached to `loop_dev` (or the first free loop device) and
    /// mounted at `at`.
    fn image(image: &Path, at: &Path, loop_dev: Option<&str>) -> Option<Mounted> {
        let dev = match loop_dev {
            Some(dev) => run("losetup", &[dev, s(image)]).then(|| dev.to_string())?,
            None => run_out("losetup", &["-f", "--show", s(image)])?,
        };
        if !run("mount", &[&dev, s(at)]) {
            let _ = run("losetup", &["-d", &dev]);
            return None;
        }
        Some(Mounted {
            at: at.to_path_buf(),
            loop_dev: Some(dev),
        })
    }

    /// Unmounted now (asserted) and its loop device detached; the loop
    /// device it had.
    fn unplug(mut self) -> Option<String> {
        assert!(
            run("umount", &[s(&self.at)]),
            "umount {}",
            self.at.display()
        );
        let dev = self.loop_dev.take();
        if let Some(dev) = &dev {
            assert!(run("losetup", &["-d", dev]), "losetup -d {dev}");
        }
        dev
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Quiet: after `unplug` (or a test's own unmount) it is not mounted.
        let _ = Command::new("umount")
            .args(["-l", s(&self.at)])
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(dev) = &self.loop_dev {
            let _ = run("losetup", &["-d", dev]);
        }
    }
}

/// A 16 MiB ext4 image at `path` holding `files`, without `lost+found`
/// (it would be synced as a directory); `None` when it cannot be made.
fn ext4_image(path: &Path, files: &[(String, String)]) -> Option<()> {
    let ok = run("truncate", &["-s", "16M", s(path)]) && run("mkfs.ext4", &["-q", "-F", s(path)]);
    if !ok {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let m = Mounted::image(path, dir.path(), None)?;
    std::fs::remove_dir(dir.path().join("lost+found")).expect("rmdir lost+found");
    let month_ago = SystemTime::now() - Duration::from_secs(60 * 86_400);
    for (name, content) in files {
        write(dir.path(), name, content);
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(name))
            .expect("open");
        file.set_modified(month_ago).expect("mtime");
    }
    m.unplug();
    Some(())
}

/// A and B synced, B's photos on the drive mounted at `B/Photos` by
/// `plug`; `None` when mounting is not allowed here (SKIPPED printed).
struct Rig {
    /// The drive at `B/Photos`. First: unmounted before the folders go.
    drive: Option<Mounted>,
    server: Server,
    user: String,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    c: tempfile::TempDir,
    /// Images.
    work: tempfile::TempDir,
    photos: PathBuf,
    log: PathBuf,
    _logs: tempfile::TempDir,
    /// Held for the rig's life, dropped last: one rig at a time, so no
    /// other test of this file mounts a file system between an unmount and
    /// the next mount and takes the device number just freed (which made
    /// tests print SKIPPED when run in parallel).
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// Serialises the rigs of this file ([`Rig::_one_at_a_time`]).
static RIGS: Mutex<()> = Mutex::new(());

impl Rig {
    fn new(plug: impl FnOnce(&Path, &Path) -> Option<Mounted>) -> Option<Rig> {
        Rig::new_in("", plug)
    }

    /// The same with the photos in `sub` (`""`, or `"d/"`: every synced
    /// file of the drive below one directory of it, breaker20 F2).
    fn new_in(sub: &str, plug: impl FnOnce(&Path, &Path) -> Option<Mounted>) -> Option<Rig> {
        // A test that failed while holding it poisons it; the next still runs.
        let one_at_a_time = RIGS.lock().unwrap_or_else(|e| e.into_inner());
        let server = Server::start();
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        let c = tempfile::tempdir().expect("temp dir");
        let work = tempfile::tempdir().expect("temp dir");
        let logs = tempfile::tempdir().expect("temp dir");
        for i in 1..=PHOTOS {
            write(a.path(), &format!("Photos/{sub}ph{i}.jpg"), current(i));
        }
        write(a.path(), "top.txt", "top\n");
        let photos = b.path().join("Photos");
        std::fs::create_dir(&photos).expect("mkdir");
        let Some(drive) = plug(&photos, work.path()) else {
            eprintln!("SKIPPED: cannot mount a tmpfs or a loop image here (needs root)");
            return None;
        };
        let user = new_user(server.port, a.path());
        let out = run_once(server.port, b.path(), Some(&user));
        assert!(
            out.status.success(),
            "B joins: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 1..=PHOTOS {
            let on = std::fs::read(photos.join(format!("{sub}ph{i}.jpg")));
            assert_eq!(on.ok(), Some(current(i).into_bytes()), "ph{i} on the drive");
        }
        let log = logs.path().join("b.log");
        Some(Rig {
            drive: Some(drive),
            server,
            user,
            a,
            b,
            c,
            work,
            photos,
            log,
            _logs: logs,
            _one_at_a_time: one_at_a_time,
        })
    }

    /// A rig whose drive is an empty ext4 image, `work/drive.img`.
    fn on_ext4() -> Option<Rig> {
        Rig::on_ext4_in("")
    }

    /// The same with the photos in `sub` ([`Rig::new_in`]).
    fn on_ext4_in(sub: &str) -> Option<Rig> {
        Rig::new_in(sub, |at, work| {
            let img = work.join("drive.img");
            ext4_image(&img, &[])?;
            Mounted::image(&img, at, None)
        })
    }

    fn start_b(&self) -> Client {
        Client::options(self.server.port, self.b.path())
            .log(&self.log)
            .verbosity(Verbosity::for_log_file())
            .start()
    }

    fn b_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The user's folder as a fresh device downloads it from the server.
    fn server_tree(&self) -> Tree {
        let out = run_once(self.server.port, self.c.path(), Some(&self.user));
        assert!(
            out.status.success(),
            "C's --once: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tree(self.c.path())
    }

    /// The drive out; `then` mounts the next one at `B/Photos` (given the
    /// loop device freed). False (SKIPPED printed) when the new file
    /// system did not get the device number the drive had.
    fn swap(&mut self, then: impl FnOnce(&Path, Option<String>) -> Option<Mounted>) -> bool {
        let before = dev_of(&self.photos);
        let freed = self.drive.take().and_then(Mounted::unplug);
        let Some(next) = then(&self.photos, freed) else {
            eprintln!("SKIPPED: the loop device was taken by another program meanwhile");
            return false;
        };
        self.drive = Some(next);
        let after = dev_of(&self.photos);
        if after != before {
            eprintln!(
                "SKIPPED: the kernel gave the new file system another device number ({after:#x}, was {before:#x}): not the case under test"
            );
            return false;
        }
        true
    }

    /// A, the server and B end with `want` (B's `Photos` being the new
    /// file system), B's status in sync, and the warning said once.
    fn check_end(&self, want: impl Fn(&Tree) -> bool, limit: Duration, warning: &str) {
        let done = eventually(limit, || {
            let ta = tree(self.a.path());
            want(&ta) && tree(self.b.path()) == ta
        });
        let ta = tree(self.a.path());
        assert!(
            done,
            "A and B did not end as wanted:\nA: {}\nB: {}\nB's log:\n{}",
            names(&ta),
            names(&tree(self.b.path())),
            self.b_log()
        );
        assert_eq!(self.server_tree(), ta, "the server holds what A holds");
        assert!(
            eventually(Duration::from_secs(30), || in_sync(self.b.path())),
            "B's status: {}",
            status_text(self.b.path(), false).1
        );
        let log = self.b_log();
        assert_eq!(log.matches(warning).count(), 1, "said once: {log}");
    }
}

/// `ta` holds top.txt, the photos `photos` says, and for each of `copies`
/// exactly one conflict copy of that photo with that content; nothing else.
fn shape(ta: &Tree, photos: &[(usize, String)], copies: &[(usize, String)]) -> bool {
    shape_in(ta, "", photos, copies)
}

/// The same with the photos in `sub` of `Photos` (`""` or `"d/"`).
fn shape_in(ta: &Tree, sub: &str, photos: &[(usize, String)], copies: &[(usize, String)]) -> bool {
    if ta.get("top.txt").cloned().flatten() != Some(b"top\n".to_vec()) {
        return false;
    }
    for (i, content) in photos {
        if ta.get(&format!("Photos/{sub}ph{i}.jpg")).cloned().flatten()
            != Some(content.clone().into_bytes())
        {
            return false;
        }
    }
    for (i, content) in copies {
        let prefix = format!("Photos/{sub}ph{i} (conflict ");
        let found: Vec<_> = ta
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && k.ends_with(".jpg"))
            .collect();
        if found.len() != 1 || found[0].1.as_deref() != Some(content.as_bytes()) {
            return false;
        }
    }
    // top.txt, Photos (and Photos/d).
    let dirs = 2 + usize::from(!sub.is_empty());
    ta.len() == dirs + photos.len() + copies.len()
}

/// `t` is `want` plus, for each of `copies` (a photo's path without
/// `.jpg`, a content), exactly one conflict copy of it with that content.
fn with_copies(t: &Tree, want: &Tree, copies: &[(&str, &str)]) -> bool {
    let mut rest = t.clone();
    for (stem, content) in copies {
        let prefix = format!("{stem} (conflict ");
        let found: Vec<String> = rest
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(".jpg"))
            .cloned()
            .collect();
        if found.len() != 1 || rest.remove(&found[0]) != Some(Some(content.as_bytes().to_vec())) {
            return false;
        }
    }
    rest == *want
}

fn all_current() -> Vec<(usize, String)> {
    (1..=PHOTOS).map(|i| (i, current(i))).collect()
}

fn names(t: &Tree) -> String {
    t.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// `status` says "state: in sync" for `folder`.
fn in_sync(folder: &Path) -> bool {
    status_text(folder, false).1.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "state" && v.trim() == "in sync")
    })
}

/// The drive photos the new file system holds: every current one.
fn drive_holds_current(photos: &Path) {
    drive_holds_current_in(photos, "");
}

/// The same with the photos in `sub`.
fn drive_holds_current_in(photos: &Path, sub: &str) {
    for i in 1..=PHOTOS {
        let on = std::fs::read(photos.join(format!("{sub}ph{i}.jpg")));
        assert_eq!(
            on.ok(),
            Some(current(i).into_bytes()),
            "ph{i}.jpg downloaded onto the new file system"
        );
    }
}

const ANOTHER: &str = "Photos: another file system is mounted here";

/// B's client stopped; its tmpfs unmounted and an empty one mounted at
/// the same place (the same device number); B started (G1 a).
#[test]
fn a_tmpfs_recreated_with_the_same_number_at_start_deletes_nothing() {
    let Some(mut rig) = Rig::new(|at, _| Mounted::tmpfs(at)) else {
        return;
    };
    if !rig.swap(|at, _| Mounted::tmpfs(at)) {
        return;
    }
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    rig.check_end(
        |t| shape(t, &all_current(), &[]),
        Duration::from_secs(40),
        ANOTHER,
    );
    drive_holds_current(&rig.photos);
}

/// The same while B's client runs (G1 b): noticed at the next comparison.
#[test]
fn a_tmpfs_recreated_with_the_same_number_while_running_deletes_nothing() {
    let Some(mut rig) = Rig::new(|at, _| Mounted::tmpfs(at)) else {
        return;
    };
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    std::thread::sleep(Duration::from_secs(3));
    if !rig.swap(|at, _| Mounted::tmpfs(at)) {
        return;
    }
    rig.check_end(|t| shape(t, &all_current(), &[]), NOTICED, ANOTHER);
    drive_holds_current(&rig.photos);
}

/// B's photos on an ext4 image on loop device L; B stopped; another ext4
/// image (made after the sync: its files are newer than the records) with
/// older copies of three photos and none of the others attached to the
/// same L (the same device number) at the same place; B started (G1).
#[test]
fn another_ext4_image_on_the_same_loop_device_overwrites_nothing() {
    let Some(mut rig) = Rig::on_ext4() else {
        return;
    };
    let second = rig.work.path().join("second.img");
    let olds: Vec<(String, String)> = (1..=OLD).map(|i| (format!("ph{i}.jpg"), old(i))).collect();
    ext4_image(&second, &olds).expect("second image");
    if !rig.swap(|at, freed| Mounted::image(&second, at, freed.as_deref())) {
        return;
    }
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    let copies: Vec<(usize, String)> = (1..=OLD).map(|i| (i, old(i))).collect();
    rig.check_end(
        |t| shape(t, &all_current(), &copies),
        Duration::from_secs(40),
        ANOTHER,
    );
    drive_holds_current(&rig.photos);
}

/// G2: an image of B's drive taken (block by block) after the sync; then,
/// on the drive, ph1 edited, ph13 added and ph2 deleted, all synced; B
/// stopped and the old image mounted where the drive was. ph13 is not
/// deleted and ph1's new version not overwritten: the image's ph1 is kept
/// as a conflict copy; ph2, deleted since, comes back from the image (a
/// file not in the index is a new file: nothing lost, a known limit).
#[test]
fn an_older_image_of_the_drive_overwrites_and_deletes_nothing() {
    let Some(mut rig) = Rig::on_ext4() else {
        return;
    };
    let img = rig.work.path().join("drive.img");
    let backup = rig.work.path().join("backup.img");
    // The image, taken with the drive unmounted (a consistent copy).
    rig.drive.take().map(Mounted::unplug);
    std::fs::copy(&img, &backup).expect("dd");
    rig.drive = Some(Mounted::image(&img, &rig.photos, None).expect("drive back"));
    std::thread::sleep(Duration::from_millis(1100));
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let mut cb = rig.start_b();
    write(&rig.photos, "ph1.jpg", "photo 1, edited\n");
    write(&rig.photos, "ph13.jpg", current(13));
    std::fs::remove_file(rig.photos.join("ph2.jpg")).expect("rm ph2");
    let mut later = all_current();
    later[0].1 = "photo 1, edited\n".to_string();
    later.remove(1);
    later.push((13, current(13)));
    let synced = eventually(Duration::from_secs(40), || {
        shape(&tree(rig.a.path()), &later, &[])
    });
    assert!(synced, "A got B's changes: {}", names(&tree(rig.a.path())));
    cb.stop();
    rig.drive.take().map(Mounted::unplug);
    rig.drive = Some(Mounted::image(&backup, &rig.photos, None).expect("old image"));
    let _cb = rig.start_b();
    let mut end = later.clone();
    end.push((2, current(2)));
    rig.check_end(
        |t| shape(t, &end, &[(1, current(1))]),
        Duration::from_secs(40),
        "Photos: the files here are an older state than the synced ones",
    );
    let on = |name: &str| std::fs::read(rig.photos.join(name)).ok();
    assert_eq!(on("ph1.jpg"), Some(b"photo 1, edited\n".to_vec()));
    assert_eq!(on("ph13.jpg"), Some(current(13).into_bytes()));
}

/// No false hold: the same drive unmounted and mounted again (a new mount,
/// maybe another loop device) with B stopped, a photo then deleted on it:
/// deleted everywhere; another deleted while B runs: the same.
#[test]
fn the_same_drive_mounted_again_still_deletes() {
    let Some(mut rig) = Rig::on_ext4() else {
        return;
    };
    let img = rig.work.path().join("drive.img");
    rig.drive.take().map(Mounted::unplug);
    rig.drive = Some(Mounted::image(&img, &rig.photos, None).expect("drive again"));
    // Past the records' ctimes (1 s timestamps on a small ext4).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::remove_file(rig.photos.join("ph5.jpg")).expect("rm ph5");
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    let mut want = all_current();
    want.retain(|(i, _)| *i != 5);
    let gone = eventually(Duration::from_secs(40), || {
        let ta = tree(rig.a.path());
        shape(&ta, &want, &[]) && tree(rig.b.path()) == ta
    });
    assert!(
        gone,
        "ph5 deleted everywhere: A {}\nB's log:\n{}",
        names(&tree(rig.a.path())),
        rig.b_log()
    );
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::remove_file(rig.photos.join("ph6.jpg")).expect("rm ph6");
    want.retain(|(i, _)| *i != 6);
    let gone = eventually(Duration::from_secs(40), || {
        let ta = tree(rig.a.path());
        shape(&ta, &want, &[]) && tree(rig.b.path()) == ta
    });
    assert!(
        gone,
        "ph6 deleted everywhere: A {}\nB's log:\n{}",
        names(&tree(rig.a.path())),
        rig.b_log()
    );
    assert_eq!(rig.server_tree(), tree(rig.a.path()));
    let log = rig.b_log();
    assert!(
        !log.contains("another file system") && !log.contains("older state"),
        "no hold: {log}"
    );
}

/// What is done on an older image of the drive before B's client looks
/// (breaker20 F1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnImage {
    /// A file made in `d/`, which got `d/z1.jpg` after the image.
    Touch,
    /// A file made at the drive's top, which got `new/` after the image.
    RootFile,
    /// ph1.jpg (edited after the image) appended to on the image.
    Edit,
    /// Nothing by the user: the image holds a leftover
    /// `.cloudservice/staging` (imaged while a download was being placed),
    /// which the client tidies at start; the only change after the image
    /// is `new/y1.jpg` at the drive's top.
    Staging,
}

const NOTE: &str = "a note written on the old disk\n";
const APPENDED: &str = "appended on the old disk\n";

/// breaker20 F1: B's drive (ext4) with `d/keep.jpg` and the photos is
/// imaged with B stopped; then on the drive (B running) ph1 is edited,
/// `d/z1.jpg` and `new/y1.jpg` made (only `new/y1.jpg` for
/// [`OnImage::Staging`]), all synced; B stopped, the image mounted where
/// the drive was, `mode` done on it, B started. Nothing synced after the
/// image may be deleted or overwritten anywhere; the image's ph1 (older,
/// or edited on the image) ends as a conflict copy beside the synced
/// version; what the user made on the image is uploaded.
fn an_older_image_written_to(mode: OnImage) {
    let Some(mut rig) = Rig::on_ext4() else {
        return;
    };
    let img = rig.work.path().join("drive.img");
    let backup = rig.work.path().join("backup.img");
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let mut cb = rig.start_b();
    write(&rig.photos, "d/keep.jpg", "keep\n");
    let kept = eventually(Duration::from_secs(30), || {
        tree(rig.a.path()).contains_key("Photos/d/keep.jpg")
    });
    assert!(kept, "A got d/keep.jpg: {}", names(&tree(rig.a.path())));
    cb.stop();
    let staging = rig.photos.join(".cloudservice");
    if mode == OnImage::Staging {
        std::fs::create_dir_all(staging.join("staging")).expect("mkdir staging");
    }
    // The image, taken with the drive unmounted (a consistent copy).
    rig.drive.take().map(Mounted::unplug);
    std::fs::copy(&img, &backup).expect("dd");
    rig.drive = Some(Mounted::image(&img, &rig.photos, None).expect("drive back"));
    if mode == OnImage::Staging {
        std::fs::remove_dir_all(&staging).expect("rm staging");
    }
    // Past the image's ctimes (1 s timestamps on a small ext4).
    std::thread::sleep(Duration::from_millis(1100));
    let mut cb = rig.start_b();
    let mut later = tree(rig.a.path());
    let mut changes = vec![("new/y1.jpg", "y1, made after the image\n")];
    if mode != OnImage::Staging {
        changes.push(("ph1.jpg", "photo 1, edited\n"));
        changes.push(("d/z1.jpg", "z1, made after the image\n"));
    }
    for (path, content) in &changes {
        write(&rig.photos, path, content);
        later.insert(format!("Photos/{path}"), Some(content.as_bytes().to_vec()));
    }
    later.insert("Photos/new".to_string(), None);
    let synced = eventually(Duration::from_secs(40), || {
        tree(rig.a.path()) == later && tree(rig.b.path()) == later
    });
    assert!(synced, "A got B's changes: {}", names(&tree(rig.a.path())));
    cb.stop();
    rig.drive.take().map(Mounted::unplug);
    rig.drive = Some(Mounted::image(&backup, &rig.photos, None).expect("old image"));
    let mut want = later.clone();
    let mut ph1_copy = current(1);
    match mode {
        OnImage::Touch => {
            write(&rig.photos, "d/note.txt", NOTE);
            want.insert(
                "Photos/d/note.txt".to_string(),
                Some(NOTE.as_bytes().to_vec()),
            );
        }
        OnImage::RootFile => {
            write(&rig.photos, "note.txt", NOTE);
            want.insert(
                "Photos/note.txt".to_string(),
                Some(NOTE.as_bytes().to_vec()),
            );
        }
        OnImage::Edit => {
            let mut file = std::fs::File::options()
                .append(true)
                .open(rig.photos.join("ph1.jpg"))
                .expect("open ph1");
            std::io::Write::write_all(&mut file, APPENDED.as_bytes()).expect("append");
            ph1_copy.push_str(APPENDED);
        }
        OnImage::Staging => {}
    }
    let copies: Vec<(&str, &str)> = match mode {
        OnImage::Staging => Vec::new(),
        _ => vec![("Photos/ph1", ph1_copy.as_str())],
    };
    let _cb = rig.start_b();
    rig.check_end(
        |t| with_copies(t, &want, &copies),
        Duration::from_secs(40),
        "Photos: the files here are an older state than the synced ones",
    );
    for (path, content) in &changes {
        let on = std::fs::read(rig.photos.join(path)).ok();
        assert_eq!(on, Some(content.as_bytes().to_vec()), "{path} on the image");
    }
}

#[test]
fn an_older_image_with_a_file_made_in_a_directory_deletes_nothing() {
    an_older_image_written_to(OnImage::Touch);
}

#[test]
fn an_older_image_with_a_file_made_at_its_top_deletes_nothing() {
    an_older_image_written_to(OnImage::RootFile);
}

#[test]
fn an_older_image_with_an_old_file_edited_overwrites_nothing() {
    an_older_image_written_to(OnImage::Edit);
}

#[test]
fn an_older_image_holding_a_staging_leftover_deletes_nothing() {
    an_older_image_written_to(OnImage::Staging);
}

/// breaker20 F2: every synced file of B's drive is in `Photos/d`; another
/// ext4 image with its own `d/` (older copies of three photos) attached to
/// the same loop device at the drive's place, B stopped (`running` false)
/// or running. It is another drive joining the folder: the photos are
/// downloaded onto it, its different copies kept as conflict copies, and
/// B's status reaches "in sync" (it said "Photos/d: the file system mounted
/// here is gone" for good: the mount point was taken to be `Photos/d`).
fn another_drive_with_the_files_in_a_subdirectory(running: bool) {
    let Some(mut rig) = Rig::on_ext4_in("d/") else {
        return;
    };
    let second = rig.work.path().join("second.img");
    let olds: Vec<(String, String)> = (1..=OLD)
        .map(|i| (format!("d/ph{i}.jpg"), old(i)))
        .collect();
    ext4_image(&second, &olds).expect("second image");
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let cb = if running {
        let cb = rig.start_b();
        assert!(
            eventually(Duration::from_secs(30), || in_sync(rig.b.path())),
            "B in sync: {}",
            rig.b_log()
        );
        Some(cb)
    } else {
        None
    };
    if !rig.swap(|at, freed| Mounted::image(&second, at, freed.as_deref())) {
        return;
    }
    let _cb = cb.unwrap_or_else(|| rig.start_b());
    let copies: Vec<(usize, String)> = (1..=OLD).map(|i| (i, old(i))).collect();
    rig.check_end(
        |t| shape_in(t, "d/", &all_current(), &copies),
        if running {
            NOTICED
        } else {
            Duration::from_secs(40)
        },
        ANOTHER,
    );
    drive_holds_current_in(&rig.photos, "d/");
    assert!(
        !rig.b_log().contains("the file system mounted here is gone"),
        "not gone: {}",
        rig.b_log()
    );
}

#[test]
fn another_drive_with_the_files_in_a_subdirectory_at_start_gets_them() {
    another_drive_with_the_files_in_a_subdirectory(false);
}

#[test]
fn another_drive_with_the_files_in_a_subdirectory_while_running_gets_them() {
    another_drive_with_the_files_in_a_subdirectory(true);
}
