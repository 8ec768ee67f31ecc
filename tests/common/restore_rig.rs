//! [`RestoreRig`]: a server and a user's devices A and B (watching), all
//! in one temp dir, whose data directory is backed up and put back while
//! the server is stopped, as README's restore procedure says (`cp -a`).
//! Shared by the restore tests (conformance_backup_restore,
//! e2e_restore_late); trees are compared by content.

use super::{converge_stable, new_user, status_json, tree, Client, Server, Tree};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Generous: the machine is shared and slow.
pub const CONVERGE: Duration = Duration::from_secs(120);
/// How long a converged tree must stay unchanged.
pub const STABLE: Duration = Duration::from_millis(2_500);

/// A server (plaintext), a user, and its devices A and B.
pub struct RestoreRig {
    pub dir: tempfile::TempDir,
    pub srv: Server,
    pub user: String,
    pub a: Client,
    pub b: Client,
}

impl RestoreRig {
    /// A new user made by A from `files` (path, text); B joins; both
    /// watch, pulling every `rate` seconds (the client's default when
    /// `None`); returns once A, B and the server agree.
    pub fn start(files: &[(&str, &str)], rate: Option<&str>) -> RestoreRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let srv = Server::options()
            .data(&dir.path().join("data"))
            .log(&dir.path().join("server.log"))
            .plaintext()
            .start();
        let a_dir = dir.path().join("A");
        fs::create_dir_all(&a_dir).expect("A");
        for (path, text) in files {
            super::write(&a_dir, path, text);
        }
        let user = new_user(srv.port, &a_dir);
        let b_dir = dir.path().join("B");
        fs::create_dir_all(&b_dir).expect("B");
        let client = |folder: &Path, log: &str| {
            let mut options = Client::options(srv.port, folder).plaintext();
            if let Some(rate) = rate {
                options = options.rate(rate);
            }
            options.user(Some(&user)).log(&dir.path().join(log)).start()
        };
        let a = client(&a_dir, "A.log");
        let b = client(&b_dir, "B.log");
        let rig = RestoreRig {
            dir,
            srv,
            user,
            a,
            b,
        };
        rig.converged_ab("A, B and the server at the start");
        rig
    }

    /// The user's folder on the server.
    pub fn server_dir(&self) -> PathBuf {
        self.srv.user_dir(&self.user)
    }

    /// `name` in the rig's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits until `folders` and the server hold one tree; returns it.
    /// Panics with the logs if they never do within [`CONVERGE`].
    pub fn converged(&self, what: &str, folders: &[&Path]) -> Tree {
        let server = self.server_dir();
        let mut all: Vec<&Path> = folders.to_vec();
        all.push(&server);
        match converge_stable(&all, CONVERGE, STABLE) {
            Ok(t) => t,
            Err(why) => panic!(
                "{what}: never agreed:\n{why}\nA's log: {}\nB's log: {}\nserver: {}",
                self.a.log_tail(6_000),
                self.b.log_tail(6_000),
                self.srv.log_tail(3_000)
            ),
        }
    }

    /// [`RestoreRig::converged`] for A, B and the server.
    pub fn converged_ab(&self, what: &str) -> Tree {
        self.converged(what, &[&self.a.folder, &self.b.folder])
    }

    /// The backup: stop, copy the data directory, start again.
    pub fn backup(&mut self) {
        self.srv.stop();
        super::copies::copy_folder(&self.srv.data, &self.path("backup"));
        self.srv.start_again();
    }

    /// The restore: stop, put the backup in place of the data, start.
    pub fn restore(&mut self) {
        self.srv.stop();
        fs::remove_dir_all(&self.srv.data).expect("remove data");
        super::copies::copy_folder(&self.path("backup"), &self.srv.data);
        self.srv.start_again();
    }

    /// A device that joins now, once (`--once`, pulling every 0.2 s): what
    /// it receives.
    pub fn new_device(&self, name: &str) -> Tree {
        let folder = self.path(name);
        fs::create_dir_all(&folder).expect("new device folder");
        let out = Client::options(self.srv.port, &folder)
            .plaintext()
            .rate("0.2")
            .user(Some(&self.user))
            .run_once();
        assert!(
            out.status.success(),
            "{name} --once: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tree(&folder)
    }

    /// A and B say "in sync" (and so none says the server lost changes).
    pub fn both_in_sync(&self) {
        for (name, c) in [("A", &self.a), ("B", &self.b)] {
            let ok = super::eventually(CONVERGE, || status_json(&c.folder).0 == 0);
            assert!(
                ok,
                "{name} never said in sync: {:?}\n{}",
                status_json(&c.folder).1,
                c.log_tail(4_000)
            );
        }
    }

    /// Waits until A's log says it reconciled, then until A and the server
    /// agree.
    pub fn a_reconciled(&self) -> Tree {
        assert!(
            self.a
                .wait_log("reconciling with the server's history", CONVERGE),
            "A never reconciled:\n{}",
            self.a.log_tail(6_000)
        );
        self.converged("A after the restore", &[&self.a.folder])
    }
}

/// The paths of `t` that are conflict copies.
pub fn conflict_copies(t: &Tree) -> Vec<&String> {
    t.keys().filter(|p| p.contains("(conflict ")).collect()
}
