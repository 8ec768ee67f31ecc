//! End-to-end: a running client's status while the folder holds entries that
//! cannot be synced (names the protocol cannot carry, a path too deep,
//! symlinks, FIFOs, sockets). README "Last sync": while anything keeps the
//! folder "not in sync" (an entry not synced among them) every reading
//! shows the earlier time. The client itself records what its walk finds
//! unsyncable, so what it publishes agrees with what `status` lists: "not
//! in sync, N entries", each named with why, at every reading, and "last
//! sync" stays until the entries are gone (soak25's leftover: it moved at
//! each round the client finished, and every 30 s, while `status` said "not
//! in sync").

mod common;

use common::{eventually, new_user, status_json, status_text, tree, write, Client, Server};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One kind of entry that cannot be synced, made at `at` (a folder's
/// subdirectory, `""` or ending in `/`) in `folder`: the path (under the
/// folder, as `status` shows it) of the entry `status` lists for it.
type Maker = fn(folder: &Path, at: &str) -> String;

fn backslash_name(folder: &Path, at: &str) -> String {
    write(folder, &format!("{at}back\\slash.txt"), "b");
    format!("{at}back\\slash.txt")
}

fn newline_name(folder: &Path, at: &str) -> String {
    write(folder, &format!("{at}new\nline.txt"), "n");
    format!("{at}new\nline.txt")
}

fn not_utf8_name(folder: &Path, at: &str) -> String {
    let mut name = at.as_bytes().to_vec();
    name.extend_from_slice(b"caf\xe9.txt");
    std::fs::write(folder.join(OsStr::from_bytes(&name)), "c").expect("write non-UTF-8 name");
    format!("{at}caf\u{fffd}.txt")
}

/// A directory whose name holds a tab, with a file in it: listed once.
fn control_dir(folder: &Path, at: &str) -> String {
    write(folder, &format!("{at}tab\tdir/inner.txt"), "t");
    format!("{at}tab\tdir")
}

/// Directories down to 70 levels below the folder: the one at level 65 is
/// too deep (R-2: 64 components at most), and lists for all below it.
fn too_deep(folder: &Path, at: &str) -> String {
    let depth = at.matches('/').count();
    let deep = format!("{at}deep{}", "/d".repeat(69 - depth));
    write(folder, &format!("{deep}/x.txt"), "x");
    let components: Vec<&str> = deep.split('/').collect();
    components[..65].join("/")
}

fn fifo(folder: &Path, at: &str) -> String {
    let path = format!("{at}pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(folder.join(&path))
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo {path}");
    path
}

fn symlink(folder: &Path, at: &str) -> String {
    let path = format!("{at}link");
    std::os::unix::fs::symlink("a.txt", folder.join(&path)).expect("symlink");
    path
}

fn socket(folder: &Path, at: &str) -> String {
    let path = format!("{at}sock");
    // The socket file stays after the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(folder.join(&path)).expect("bind socket"));
    path
}

/// The client's own status file (what it publishes, before `status` adds
/// its walk of the folder).
fn published(folder: &Path) -> Value {
    let text = std::fs::read_to_string(folder.join(".cloudservice/status.json"))
        .expect("read status.json");
    serde_json::from_str(&text).expect("status.json is JSON")
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every entry of `listed` names one of `paths` (`PATH (why)`), each once.
fn names_each(listed: &[String], paths: &[String]) -> bool {
    listed.len() == paths.len()
        && paths.iter().all(|p| {
            listed
                .iter()
                .filter(|l| l.starts_with(&format!("{p} (")))
                .count()
                == 1
        })
}

/// Reads `status` `rounds` times, 150 ms apart, and checks every reading
/// says the same: not in sync (exit 1) for `paths.len()` entries listed
/// under not synced, each named, "last sync" still `last`; and the client's
/// own status file lists them too and keeps `last`.
fn stays_not_in_sync(a: &Path, paths: &[String], last: &Value, rounds: usize, when: &str) {
    let want = format!(
        "state:         not in sync ({} entries listed under not synced below)",
        paths.len()
    );
    let mut first: Option<String> = None;
    for round in 0..rounds {
        let (code, v) = status_json(a);
        let listed = strings(&v["not_synced"]);
        assert_eq!(code, 1, "{when}, reading {round}: {v:#}");
        assert_eq!(v["in_sync"], Value::Bool(false), "{when}, reading {round}");
        assert!(
            names_each(&listed, paths),
            "{when}, reading {round}: {listed:#?} should name each of {paths:#?}"
        );
        assert_eq!(
            &v["last_sync"], last,
            "{when}, reading {round}: last sync moved while not in sync: {v:#}"
        );
        let own = published(a);
        assert!(
            names_each(&strings(&own["not_synced"]), paths),
            "{when}, reading {round}: the client's own status lists {:#?}, not each of {paths:#?}",
            strings(&own["not_synced"])
        );
        assert_eq!(&own["last_sync"], last, "{when}, reading {round}: {own:#}");
        let (_, text) = status_text(a, false);
        assert!(
            text.contains(&want),
            "{when}, reading {round}: {want:?} in\n{text}"
        );
        // The report is the same at every reading (its "updated" aside,
        // which the text does not show).
        match &first {
            None => first = Some(text),
            Some(was) => assert_eq!(was, &text, "{when}, reading {round}"),
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// B's tree: A's without what cannot be synced (and what is below it).
fn syncable(a: &Path, paths: &[String]) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut t = tree(a);
    t.retain(|p, _| {
        !paths
            .iter()
            .any(|u| p == u || p.starts_with(&format!("{u}/")))
    });
    t
}

/// The whole family, each kind at a random depth (the folder's top, a
/// synced directory, one below it: a full walk and a watcher's look at a
/// subdirectory both record it): `status` and the client's own status
/// agree at every reading, "last sync" stays while any is there, even
/// across real sync rounds both ways, and moves once they are gone; the
/// other device gets everything else and none of them.
#[test]
fn unsyncable_entries_keep_status_and_last_sync_still_until_they_go() {
    let seed = common::rng::seed("STATUS_UNSYNCABLE_SEED");
    eprintln!("STATUS_UNSYNCABLE_SEED={seed}");
    let mut rng = common::rng::Rng::new(seed);
    let server = Server::start();
    let a_dir = tempfile::tempdir().expect("tempdir");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (a_dir.path(), b_dir.path());
    write(a, "a.txt", "a");
    write(a, "docs/sub/d.txt", "d");
    let user = new_user(server.port, a);
    let _ca = Client::start(server.port, a, None);
    let _cb = Client::start(server.port, b, Some(&user));
    assert!(
        eventually(Duration::from_secs(30), || status_json(a).0 == 0
            && status_json(b).0 == 0
            && tree(b) == tree(a)),
        "in sync at first: {:#}",
        status_json(a).1
    );
    // "Last sync" has a second's resolution: a move must show.
    std::thread::sleep(Duration::from_millis(1_100));
    let last = status_json(a).1["last_sync"].clone();
    assert!(last.is_string(), "{last}");

    let family: [(&str, Maker); 8] = [
        ("backslash", backslash_name),
        ("newline", newline_name),
        ("not UTF-8", not_utf8_name),
        ("control character directory", control_dir),
        ("too deep", too_deep),
        ("FIFO", fifo),
        ("symlink", symlink),
        ("socket", socket),
    ];
    let mut paths = Vec::new();
    for (what, make) in family {
        let at = *rng.pick(&["", "docs/", "docs/sub/"]);
        let path = make(a, at);
        eprintln!("{what}: {path:?}");
        paths.push(path);
    }
    // A good file made with them still travels.
    write(a, "docs/good.txt", "good");
    assert!(
        eventually(Duration::from_secs(30), || tree(b) == syncable(a, &paths)
            && status_json(a).1["uploads_pending"] == 0
            && names_each(&strings(&status_json(a).1["not_synced"]), &paths)
            && names_each(&strings(&published(a)["not_synced"]), &paths)),
        "B has the rest, and A lists each entry (status: {:#?}, the client's own: {:#?})",
        strings(&status_json(a).1["not_synced"]),
        strings(&published(a)["not_synced"])
    );
    stays_not_in_sync(a, &paths, &last, 15, "with the entries made");

    // Real rounds both ways: the folder still does not agree.
    write(b, "from_b.txt", "from b");
    write(a, "docs/later.txt", "later");
    assert!(
        eventually(Duration::from_secs(30), || tree(b) == syncable(a, &paths)
            && a.join("from_b.txt").exists()
            && status_json(a).1["uploads_pending"] == 0),
        "both rounds done"
    );
    std::thread::sleep(Duration::from_millis(500));
    stays_not_in_sync(a, &paths, &last, 10, "after rounds both ways");

    // Gone: in sync, "last sync" moves, nothing is listed any more.
    for path in &paths {
        let local: PathBuf = if path.contains('\u{fffd}') {
            let at = path.trim_end_matches("caf\u{fffd}.txt");
            let mut name = at.as_bytes().to_vec();
            name.extend_from_slice(b"caf\xe9.txt");
            a.join(OsStr::from_bytes(&name))
        } else {
            a.join(path)
        };
        let top = match path.find("deep/") {
            Some(at) => a.join(&path[..at + 4]),
            None => local,
        };
        match std::fs::symlink_metadata(&top) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&top).expect("rm dir"),
            Ok(_) => std::fs::remove_file(&top).expect("rm"),
            Err(e) => panic!("{}: {e}", top.display()),
        }
    }
    let v = common::status_until("in sync again", a, Duration::from_secs(30), |code, v| {
        code == 0 && v["last_sync"] != last
    });
    assert!(strings(&v["not_synced"]).is_empty(), "{v:#}");
    assert!(strings(&published(a)["not_synced"]).is_empty());
    assert!(
        eventually(Duration::from_secs(30), || tree(b) == tree(a)),
        "B follows the removals"
    );
}
