//! End-to-end (root: tmpfs "drives" bound onto `B/Photos`): another file
//! system where a synced drive was (outside tester breaker18, F6 and F10;
//! PROTOCOL.md ). B's photos live on drive T1, mounted at
//! `B/Photos`; T1 is replaced by drive T2, with B's client stopped (at its
//! start) or running (noticed at the 60 s safety-net comparison). T2 is
//! either empty (another disk, a re-created ramdisk) or holds older copies
//! of some photos (last month's backup disk).
//!
//! Nothing may be deleted or overwritten anywhere: the server's photos stay
//! the files on A, on the server and, downloaded onto T2, on B; T2's older
//! copies are kept beside them as conflict copies (the join rule); T1 is
//! left as it was. Before, the empty drive made B push the deletion of
//! every photo (F6) and the older copies were uploaded as edits over the
//! current ones (F10).
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs them against
//! another build (aeaefc9's client fails all four).

mod common;

use common::tmpfs::{bind, Bound};
use common::{
    eventually, new_user, run_once, status_text, tree, write, Client, Server, Tmpfs, Tree,
    Verbosity,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Photos on A and on drive T1 (more than 10: the big-removal wait, which
/// did not stop F6, is in play).
const PHOTOS: usize = 12;
/// Photos the older drive holds an older copy of.
const OLD: usize = 3;
/// The safety-net comparison (60 s) plus a pull and the downloads.
const NOTICED: Duration = Duration::from_secs(110);

fn current(i: usize) -> String {
    format!("photo {i}, current\n")
}

fn old(i: usize) -> String {
    format!("OLD photo {i}\n")
}

/// A and B synced, B's photos on drive T1 bound onto `B/Photos`, drive T2
/// prepared (empty, or with older copies); `None` when mounting is not
/// allowed here (the test prints SKIPPED and passes).
struct Rig {
    /// T1 plugged in (unplugged by the swap). First: unmounted before the
    /// drives themselves when the rig is dropped.
    plugged: Option<Bound>,
    /// T2 plugged in.
    swapped: Option<Bound>,
    server: Server,
    user: String,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    c: tempfile::TempDir,
    t1: Tmpfs,
    t2: Tmpfs,
    photos: PathBuf,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Rig {
    fn new(older: bool) -> Option<Rig> {
        let t1 = Tmpfs::mount("16m")?;
        let t2 = Tmpfs::mount("16m")?;
        if older {
            let month_ago = SystemTime::now() - Duration::from_secs(60 * 86_400);
            for i in 1..=OLD {
                let name = format!("ph{i}.jpg");
                write(t2.path(), &name, old(i));
                let file = std::fs::File::options()
                    .write(true)
                    .open(t2.path().join(&name))
                    .expect("open");
                file.set_modified(month_ago).expect("mtime");
            }
        }
        let server = Server::start();
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        let c = tempfile::tempdir().expect("temp dir");
        let logs = tempfile::tempdir().expect("temp dir");
        for i in 1..=PHOTOS {
            write(a.path(), &format!("Photos/ph{i}.jpg"), current(i));
        }
        write(a.path(), "top.txt", "top\n");
        let photos = b.path().join("Photos");
        std::fs::create_dir(&photos).expect("mkdir");
        if !bind(t1.path(), &photos) {
            eprintln!("SKIPPED: cannot bind-mount here (needs root)");
            return None;
        }
        let plugged = Some(Bound(photos.clone()));
        let user = new_user(server.port, a.path());
        let out = run_once(server.port, b.path(), Some(&user));
        assert!(
            out.status.success(),
            "B joins: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 1..=PHOTOS {
            let on_t1 = std::fs::read(t1.path().join(format!("ph{i}.jpg")));
            assert_eq!(on_t1.ok(), Some(current(i).into_bytes()), "ph{i} on T1");
        }
        let log = logs.path().join("b.log");
        Some(Rig {
            server,
            user,
            a,
            b,
            c,
            t1,
            t2,
            photos,
            log,
            _logs: logs,
            plugged,
            swapped: None,
        })
    }

    /// B's watching client, logging to `self.log`.
    fn start_b(&self) -> Client {
        Client::options(self.server.port, self.b.path())
            .log(&self.log)
            .verbosity(Verbosity::for_log_file())
            .start()
    }

    /// T1 out, T2 in at `B/Photos`.
    fn swap(&mut self) {
        if let Some(t1) = self.plugged.take() {
            t1.unplug();
        }
        assert!(bind(self.t2.path(), &self.photos), "plug T2 in");
        self.swapped = Some(Bound(self.photos.clone()));
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

    fn b_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What every device must end with: every current photo, and (older
    /// drive) each older copy once as a conflict copy of its photo.
    fn check_end(&self, older: bool, limit: Duration) {
        let a = self.a.path();
        let expected = |t: &Tree| shape_ok(t, older);
        let done = eventually(limit, || {
            let ta = tree(a);
            expected(&ta) && tree(self.b.path()) == ta
        });
        let ta = tree(a);
        assert!(
            done,
            "A and B did not end with the server's photos{}:\nA: {}\nB: {}\nB's log:\n{}",
            if older { " and the older copies" } else { "" },
            names(&ta),
            names(&tree(self.b.path())),
            self.b_log()
        );
        assert_eq!(self.server_tree(), ta, "the server holds what A holds");
        // The drive that went is as it was: nothing written to it.
        let t1 = tree(self.t1.path());
        for i in 1..=PHOTOS {
            let name = format!("ph{i}.jpg");
            assert_eq!(
                t1.get(&name).cloned().flatten(),
                Some(current(i).into_bytes())
            );
        }
        // The new drive holds B's photos.
        let t2 = tree(self.t2.path());
        for i in 1..=PHOTOS {
            assert_eq!(
                t2.get(&format!("ph{i}.jpg")).cloned().flatten(),
                Some(current(i).into_bytes()),
                "ph{i}.jpg downloaded onto T2"
            );
        }
        assert!(
            eventually(Duration::from_secs(30), || in_sync(self.b.path())),
            "B's status: {}",
            status_text(self.b.path(), false).1
        );
        let log = self.b_log();
        assert_eq!(
            log.matches("Photos: another file system is mounted here")
                .count(),
            1,
            "said once: {log}"
        );
    }
}

/// `ta` holds top.txt, every current photo and (older drive) exactly one
/// conflict copy of each older one, with the older content, nothing else.
fn shape_ok(ta: &Tree, older: bool) -> bool {
    let mut want = 2 + PHOTOS; // top.txt, Photos, the photos
    if ta.get("top.txt").cloned().flatten() != Some(b"top\n".to_vec()) {
        return false;
    }
    for i in 1..=PHOTOS {
        if ta.get(&format!("Photos/ph{i}.jpg")).cloned().flatten() != Some(current(i).into_bytes())
        {
            return false;
        }
    }
    if older {
        for i in 1..=OLD {
            let prefix = format!("Photos/ph{i} (conflict ");
            let copies: Vec<_> = ta
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && k.ends_with(".jpg"))
                .collect();
            if copies.len() != 1 || copies[0].1.as_deref() != Some(old(i).as_bytes()) {
                return false;
            }
        }
        want += OLD;
    }
    ta.len() == want
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

/// B's client stopped, T1 replaced by an empty T2, B started.
#[test]
fn another_empty_drive_at_start_deletes_nothing_and_gets_the_files() {
    let Some(mut rig) = Rig::new(false) else {
        return;
    };
    rig.swap();
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    rig.check_end(false, Duration::from_secs(40));
}

/// T1 replaced by an empty T2 while B's client runs.
#[test]
fn another_empty_drive_while_running_deletes_nothing_and_gets_the_files() {
    let Some(mut rig) = Rig::new(false) else {
        return;
    };
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    std::thread::sleep(Duration::from_secs(2));
    rig.swap();
    rig.check_end(false, NOTICED);
}

/// B's client stopped, T1 replaced by T2 holding older copies of three
/// photos (and none of the others), B started.
#[test]
fn an_older_drive_at_start_overwrites_nothing_and_keeps_both() {
    let Some(mut rig) = Rig::new(true) else {
        return;
    };
    rig.swap();
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    rig.check_end(true, Duration::from_secs(40));
}

/// The same while B's client runs.
#[test]
fn an_older_drive_while_running_overwrites_nothing_and_keeps_both() {
    let Some(mut rig) = Rig::new(true) else {
        return;
    };
    let _ca = Client::start(rig.server.port, rig.a.path(), None);
    let _cb = rig.start_b();
    std::thread::sleep(Duration::from_secs(2));
    rig.swap();
    rig.check_end(true, NOTICED);
}
