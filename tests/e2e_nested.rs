//! End-to-end: two devices of one user on folders that lie one inside the
//! other (outside tester breaker15, F5). Before, the inner device downloaded
//! the tree into itself, the outer one uploaded that copy, the inner one
//! downloaded it a level deeper, and so on: 64 levels of copies on the
//! server and every device within seconds. Now whichever of the two starts
//! second is refused with a message naming both folders, and nothing is
//! copied anywhere (README "Running a client", `src/client/nesting.rs`).
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs these against
//! another build (both fail with aaa0ecf's client: the copies appear).

mod common;

use common::{converge, new_user, settle, tree, write, Client, Server, Tree};
use std::path::Path;
use std::time::Duration;

/// How long a refused client may take to stop, and how long the copies took
/// to appear with the old client (5 s to 64 levels).
const WATCH: Duration = Duration::from_secs(8);

fn files(t: &Tree) -> Vec<String> {
    t.iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect()
}

/// `a`, `docs/d`: the user's files.
fn seed(root: &Path) {
    write(root, "a", "a\n");
    write(root, "docs/d", "d\n");
}

/// No copy of the tree anywhere: the server's copy holds exactly the two
/// seed files (and no path below `inner`).
fn assert_no_copies(server: &Server, user: &str, inner_name: &str) {
    let on_server = tree(&server.user_dir(user));
    let stray: Vec<String> = files(&on_server)
        .into_iter()
        .filter(|p| p.starts_with(&format!("{inner_name}/")))
        .collect();
    assert!(stray.is_empty(), "copies reached the server: {stray:?}");
    assert_eq!(
        files(&on_server),
        vec!["a".to_owned(), "docs/d".to_owned()],
        "the server's copy is the user's two files"
    );
}

/// The tester's order: the outer folder syncs, then the user joins a folder
/// inside it as another device of the same user. The inner client refuses
/// at once and changes nothing.
#[test]
fn a_device_inside_a_synced_folder_of_its_user_is_refused() {
    let server = Server::start();
    let outer = tempfile::tempdir().expect("temp dir");
    seed(outer.path());
    settle();
    let user = new_user(server.port, outer.path());
    let _a = Client::start(server.port, outer.path(), None);
    let inner = outer.path().join("nested");
    std::fs::create_dir(&inner).expect("mkdir");
    let mut b = Client::options(server.port, &inner)
        .user(Some(&user))
        .capture_stderr()
        .start();
    let status = b.wait_exit(WATCH);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the inner client stops with an error: {status:?}"
    );
    let said = b.stderr_lines().join("\n");
    assert!(
        said.contains("lies inside") && said.contains(&outer.path().display().to_string()),
        "the error names the outer folder: {said}"
    );
    assert_no_copies(&server, &user, "nested");
    assert_eq!(
        files(&tree(&inner)),
        Vec::<String>::new(),
        "nothing was downloaded into the inner folder"
    );
    assert!(
        !inner.join(".cloudservice").exists(),
        "the refused client made no state folder"
    );
    // A folder beside it (not inside) of the same user still joins.
    let beside = tempfile::tempdir().expect("temp dir");
    let _c = Client::start(server.port, beside.path(), Some(&user));
    converge("a device beside it", &[outer.path(), beside.path()]);
}

/// The other order: a device already syncs `X/inner`, then the user joins
/// `X` as another device of the same user. The outer client stops at its
/// first look at the folder, before it uploads the inner device's files.
#[test]
fn a_folder_around_a_running_device_of_its_user_stops() {
    let server = Server::start();
    let first = tempfile::tempdir().expect("temp dir");
    seed(first.path());
    settle();
    let user = new_user(server.port, first.path());
    let _a = Client::start(server.port, first.path(), None);
    let x = tempfile::tempdir().expect("temp dir");
    let inner = x.path().join("inner");
    std::fs::create_dir(&inner).expect("mkdir");
    let _b = Client::start(server.port, &inner, Some(&user));
    converge("the inner device", &[first.path(), &inner]);
    let mut outer = Client::options(server.port, x.path())
        .user(Some(&user))
        .capture_stderr()
        .start();
    let status = outer.wait_exit(WATCH);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the outer client stops with an error: {status:?}"
    );
    let said = outer.stderr_lines().join("\n");
    assert!(
        said.contains("inside this folder") && said.contains(&inner.display().to_string()),
        "the error names the inner folder: {said}"
    );
    assert_no_copies(&server, &user, "inner");
    assert_eq!(
        files(&tree(&inner)),
        vec!["a".to_owned(), "docs/d".to_owned()],
        "the inner device holds the user's files, no copies"
    );
}
