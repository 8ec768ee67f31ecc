//! A damaged state file of the client (outside tester breaker22, F5): a
//! truncated, emptied or garbage `.cloudservice/index` stopped the client
//! at every start with a bare `state file … is damaged: line 17` (or the
//! OS's "stream did not contain valid UTF-8"), naming no way out; a garbage
//! `identity` the same. Now, with the real binaries on loopback:
//! - a damaged index is renamed aside (kept byte for byte) and rebuilt by
//!   comparing the folder with the server, as a device joining with files
//!   does: offline edits made on both sides are all kept, nothing is lost,
//!   the devices converge;
//! - a damaged identity (which nothing can rebuild) stops the client with
//!   the file, what it holds and the way out, and following that way out
//!   (the file moved aside, the folder joined again) syncs with no loss.

mod common;

use common::{new_user, run_once, tree, write, Client, Server, Tree, Verbosity};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
}

/// Whether some file of `t` holds exactly `bytes`.
fn holds(t: &Tree, bytes: &str) -> bool {
    t.values().any(|v| v.as_deref() == Some(bytes.as_bytes()))
}

/// The server and two devices A and B of one user, in sync on f1..f4,
/// then (B stopped) A edits f3 and deletes f4 and B edits f1: the state
/// breaker22 damaged B's files in.
struct Rig {
    server: Server,
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    user: String,
}

impl Rig {
    fn start() -> Rig {
        let server = Server::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("A"), dir.path().join("B"));
        for n in 1..=4 {
            write(&a, &format!("f{n}.txt"), format!("f{n} at the start\n"));
        }
        fs::create_dir_all(&b).expect("B");
        common::settle();
        let user = new_user(server.port, &a);
        ok("B joins", &run_once(server.port, &b, Some(&user)));
        write(&a, "f3.txt", "f3 edited on A\n");
        fs::remove_file(a.join("f4.txt")).expect("rm f4");
        common::settle();
        ok("A's offline changes", &run_once(server.port, &a, None));
        write(&b, "f1.txt", "f1 edited on B while stopped\n");
        common::settle();
        Rig {
            server,
            _dir: dir,
            a,
            b,
            user,
        }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.b.join(".cloudservice").join(name)
    }

    /// After B's run: A runs too, then A, B and the server hold one tree
    /// with both edits in it.
    fn converged_keeping_both_edits(&self, what: &str) {
        ok(
            &format!("{what}: A again"),
            &run_once(self.server.port, &self.a, None),
        );
        let (ta, tb) = (tree(&self.a), tree(&self.b));
        let ts = tree(&self.server.user_dir(&self.user));
        assert_eq!(ta, tb, "{what}: A and B differ");
        assert_eq!(ta, ts, "{what}: A and the server differ");
        for token in [
            "f1 edited on B while stopped\n",
            "f3 edited on A\n",
            "f2 at the start\n",
        ] {
            assert!(holds(&tb, token), "{what}: {token:?} lost: {tb:?}");
        }
    }
}

/// The file `prefix…` in B's state folder, if one.
fn aside(state: &Path, prefix: &str) -> Vec<PathBuf> {
    fs::read_dir(state)
        .expect("state folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

/// Truncated to half, emptied, or garbage (not text): B's next start sets
/// the index aside, says so, and rebuilds it with nothing lost. Failed on
/// main before the fix (990dad9's cloud-client through
/// CLOUD_TEST_CLIENT_BIN: exit 1, `state file …/index is damaged: line N`,
/// `… empty file`, `read …/index: stream did not contain valid UTF-8`).
#[test]
fn a_damaged_index_is_set_aside_and_rebuilt_from_the_folder_and_the_server() {
    for damage in ["truncated", "empty", "garbage"] {
        let rig = Rig::start();
        let index = rig.state("index");
        let bytes = fs::read(&index).expect("B's index");
        let damaged: Vec<u8> = match damage {
            "truncated" => bytes[..bytes.len() / 2].to_vec(),
            "empty" => Vec::new(),
            _ => (0..4096u32)
                .map(|i| (i.wrapping_mul(131) % 251) as u8 | 0x80)
                .collect(),
        };
        fs::write(&index, &damaged).expect("damage the index");
        let out = Client::options(rig.server.port, &rig.b)
            .rate("0.2")
            .verbosity(Verbosity::Normal)
            .run_once();
        let err = stderr(&out);
        assert!(out.status.success(), "{damage}: B stopped: {err}");
        assert!(
            err.contains("is damaged") && err.contains("kept as") && err.contains("rebuilding it"),
            "{damage}: B says what it did: {err}"
        );
        let kept = aside(&rig.state(""), "index.damaged-");
        assert_eq!(kept.len(), 1, "{damage}: {kept:?}");
        assert_eq!(
            fs::read(&kept[0]).expect("kept"),
            damaged,
            "{damage}: kept byte for byte"
        );
        rig.converged_keeping_both_edits(damage);
    }
}

/// A garbage identity: B stops at start, changing nothing, with the file,
/// what it holds and the way out; following it (mv aside, join again with
/// the user ID) syncs with nothing lost. Failed on main before the fix
/// (990dad9's cloud-client: `read …/identity: stream did not contain valid
/// UTF-8`, no way out named).
#[test]
fn a_damaged_identity_names_the_way_out_and_the_way_out_works() {
    let rig = Rig::start();
    let identity = rig.state("identity");
    let garbage: Vec<u8> = (0..64u8).map(|i| i | 0x80).collect();
    fs::write(&identity, &garbage).expect("damage the identity");
    let before = tree(&rig.b);
    let out = run_once(rig.server.port, &rig.b, None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let moved = format!("mv {} {}.damaged", identity.display(), identity.display());
    let named = format!("state file {} is damaged", identity.display());
    for needle in [
        named.as_str(),
        "it holds this device's user ID, device number and device key",
        moved.as_str(),
        "cloud-client SERVER_IP SERVER_PORT",
    ] {
        assert!(err.contains(needle), "{needle:?} in: {err}");
    }
    assert_eq!(tree(&rig.b), before, "nothing in the folder changed");
    assert_eq!(
        fs::read(&identity).expect("identity"),
        garbage,
        "left as it was"
    );

    // The way out, as the line says.
    fs::rename(&identity, rig.state("identity.damaged")).expect("mv");
    ok(
        "B joins again",
        &run_once(rig.server.port, &rig.b, Some(&rig.user)),
    );
    assert_eq!(
        fs::read(rig.state("identity.damaged")).expect("kept"),
        garbage
    );
    rig.converged_keeping_both_edits("after the way out");
}
