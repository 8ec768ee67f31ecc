//! End-to-end: `cloud-client restore DIR --version N` says what it does
//! not bring back. A version is what one change displaced (PROTOCOL.md
//! §14), so restoring a directory by the number of its removal brings back
//! what the directory held then, not a file deleted under it by an earlier,
//! separate change (outside tester's finding 4: 199 of 200 files came back
//! and `restore` said only "restored d003 as it was before change N"). The
//! answer now counts what comes back and names each earlier deletion with
//! the command that restores it; that command works.

mod common;

use common::{cli, eventually, new_user, write, Client, Server, CONVERGE};
use std::path::Path;

/// Waits until `check` holds, failing with `what`.
fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

/// The number `versions FOLDER PATH` lists for `line_path` with `cause`.
fn listed_number(port: u16, folder: &Path, under: &str, cause: &str, line_path: &str) -> u64 {
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(port, &["versions", dir, under]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() == 5 && words[2] == cause && words[4] == line_path
        })
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {cause} {line_path} in:\n{out}"))
}

#[test]
fn restoring_a_directory_by_number_names_files_deleted_earlier() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    for i in 0..5 {
        write(a.path(), &format!("d/f{i}.txt"), format!("file {i}"));
    }
    write(a.path(), "other.txt", "elsewhere");
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let on_server = server.user_dir(&user);
    wait_for("d on the server", || on_server.join("d/f4.txt").is_file());

    // One file deleted on its own, then the whole directory.
    std::fs::remove_file(a.path().join("d/f2.txt")).expect("rm");
    wait_for("f2 deleted on the server", || {
        !on_server.join("d/f2.txt").exists()
    });
    std::fs::remove_dir_all(a.path().join("d")).expect("rm -rf");
    wait_for("d removed on the server", || !on_server.join("d").exists());

    let m = listed_number(server.port, a.path(), "d", "deleted", "d/f2.txt");
    let n = listed_number(server.port, a.path(), "d", "deleted", "d/");
    assert!(m < n, "f2.txt ({m}) went before d ({n})");

    let folder = a.path().to_str().expect("utf-8");
    let (code, out, err) = cli(
        server.port,
        &["restore", folder, "d", "--version", &n.to_string()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!(
            "restored d as it was before change {n} (4 files): "
        )),
        "{out}"
    );
    let again = format!("cloud-client restore {folder} d/f2.txt --version {m}");
    assert!(
        out.contains("1 entry under d had been deleted earlier"),
        "the answer does not say f2.txt stays deleted:\n{out}"
    );
    assert!(
        out.contains(&format!("d/f2.txt (deleted by change {m}): {again}")),
        "{out}"
    );
    wait_for("d back with 4 files", || {
        (0..5)
            .filter(|i| a.path().join(format!("d/f{i}.txt")).is_file())
            .count()
            == 4
    });
    assert!(!a.path().join("d/f2.txt").exists());

    // The command it names brings the file back.
    let (code, out, err) = cli(
        server.port,
        &["restore", folder, "d/f2.txt", "--version", &m.to_string()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("restored d/f2.txt"), "{out}");
    wait_for("f2 back", || {
        std::fs::read_to_string(a.path().join("d/f2.txt"))
            .ok()
            .as_deref()
            == Some("file 2")
    });
}
