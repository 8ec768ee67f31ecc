//! Running the server as an operator does (issue 12, outside tester
//! breaker10's findings 11, 7 and 12), with the real binaries:
//! - the device commands run by root against the data directory of a
//!   server that runs as its own user (deploy/systemd: `cloudservice`;
//!   here `nobody`) leave files that server can use: new devices join with
//!   the new code and the invite; a device file the server cannot read is
//!   named in the refusal;
//! - the data directory's private parts are private whatever the umask;
//! - `connectionLog.txt` is reopened on SIGHUP (rotation by rename).
//!
//! `CLOUD_TEST_SERVER_BIN` runs them against another build.

mod common;

use common::{run_once, signal, write, Server, WireClient};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The server binary under test.
fn server_bin() -> PathBuf {
    std::env::var_os("CLOUD_TEST_SERVER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cloud-server")),
        PathBuf::from,
    )
}

/// `cloud-server COMMAND DATA ARGS…` as the caller (root in the test).
fn admin(data: &Path, command: &str, args: &[&str]) -> Output {
    Command::new(server_bin())
        .arg(command)
        .arg(data)
        .args(args)
        .output()
        .expect("run cloud-server")
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Why the root-only test cannot run here, if it cannot.
fn cannot_run_as_nobody() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    if !uid.is_ok_and(|u| u.trim_ascii() == b"0") {
        return Some("not root: cannot run the server as another user".into());
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("no setpriv".into()),
    }
}

/// The uid of `nobody`.
fn nobody_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("nobody's uid")
}

/// The code part of the `USER:CODE` a device command printed.
fn printed_code(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "command failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("a USER:CODE line")
        .to_owned()
}

/// Every file and directory below `dir` whose owner is not `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.uid() != uid {
                bad.push(format!("{} (uid {})", entry.path().display(), meta.uid()));
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    bad
}

/// Finding 11: `rotate-join`, `invite`, `revoke` and `reinstate` run by
/// root against a server running as nobody. With the previous binaries the
/// root-owned 0600 `join_code` and `invites/*` refused every new join with
/// "cannot read or write the user's device table".
#[test]
fn device_commands_run_as_root_leave_files_the_server_can_read() {
    if let Some(why) = cannot_run_as_nobody() {
        println!("SKIPPED: {why}");
        return;
    }
    let base = tempfile::tempdir().expect("tempdir");
    chmod(base.path(), 0o755);
    let data = base.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let status = Command::new("chown")
        .args(["nobody:nogroup"])
        .arg(&data)
        .status()
        .expect("chown");
    assert!(status.success());
    // The server as nobody: a wrapper the kit starts like the binary.
    let wrapper = base.path().join("server-as-nobody");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups '{}' \"$@\"\n",
            server_bin().display()
        ),
    )
    .expect("wrapper");
    chmod(&wrapper, 0o755);
    let server = Server::options().data(&data).bin(&wrapper).start();

    let a = base.path().join("A");
    write(&a, "a.txt", "from A");
    let out = run_once(server.port, &a, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = String::from_utf8_lossy(&out.stdout)
        .split("user id: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("user id")
        .to_owned();

    // The operator, as root, as README "Devices" shows.
    let code = printed_code(&admin(&data, "rotate-join", &[&user]));
    let invite = printed_code(&admin(&data, "invite", &[&user]));
    let nobody = nobody_uid();
    let state = data.join(".cloudservice-server");
    assert_eq!(
        not_owned_by(&state, nobody),
        Vec::<String>::new(),
        "files the commands made belong to the data directory's owner"
    );

    // A device joins with the code, another with the invite.
    let b = base.path().join("B");
    std::fs::create_dir(&b).expect("B");
    let out = run_once(server.port, &b, Some(&code));
    assert!(
        out.status.success(),
        "join with the rotated code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(b.join("a.txt")).ok(),
        Some(b"from A".to_vec())
    );
    let c = base.path().join("C");
    std::fs::create_dir(&c).expect("C");
    let out = run_once(server.port, &c, Some(&invite));
    assert!(
        out.status.success(),
        "join with the invite: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(c.join("a.txt")).ok(),
        Some(b"from A".to_vec())
    );

    // Revoke and reinstate device 2 as root: markers the server's user owns.
    let out = admin(&data, "revoke", &[&user, "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(not_owned_by(&state, nobody), Vec::<String>::new());
    let out = run_once(server.port, &b, None);
    assert!(!out.status.success(), "a revoked device is refused");
    let out = admin(&data, "reinstate", &[&user, "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server's revocation watcher looks every 100 ms.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = run_once(server.port, &b, None);
    assert!(
        out.status.success(),
        "reinstated: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A device file the server's user cannot read is named in the refusal.
    let join_code = state.join(&user).join("join_code");
    std::fs::write(&join_code, "0".repeat(64)).expect("write");
    let status = Command::new("chown")
        .args(["root:root"])
        .arg(&join_code)
        .status()
        .expect("chown");
    assert!(status.success());
    chmod(&join_code, 0o600);
    let d = base.path().join("D");
    std::fs::create_dir(&d).expect("D");
    let out = run_once(server.port, &d, Some(&code));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an unreadable join_code refuses the join"
    );
    assert!(
        err.contains("join_code") && err.contains("Permission denied"),
        "the refusal names the file: {err}"
    );
    assert!(!err.contains("device table"), "{err}");
}

/// A wrapper that starts the server under test with umask 022 (the usual
/// login umask; the test runner's may differ).
fn umask_022_wrapper(dir: &Path) -> PathBuf {
    umask_wrapper(dir, "022")
}

/// A wrapper that runs the server binary under test with `umask`.
fn umask_wrapper(dir: &Path, umask: &str) -> PathBuf {
    let wrapper = dir.join(format!("server-umask-{umask}"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\numask {umask}\nexec '{}' \"$@\"\n",
            server_bin().display()
        ),
    )
    .expect("wrapper");
    chmod(&wrapper, 0o755);
    wrapper
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Finding 7: with umask 022 a new data directory exposed every user's
/// files and user ID (AllClients/ 755, connectionLog.txt 644, journals
/// 644). Now its private parts are 0700 / 0600; an existing data directory
/// with looser modes is named in one warning with the chmod to run, and
/// left as it is.
#[test]
fn a_new_data_directory_is_private_under_umask_022() {
    let base = tempfile::tempdir().expect("tempdir");
    let data = base.path().join("data");
    let wrapper = umask_022_wrapper(base.path());
    let log = base.path().join("server.log");
    let mut server = Server::options()
        .data(&data)
        .bin(&wrapper)
        .log(&log)
        .start();
    let a = base.path().join("A");
    write(&a, "a.txt", "private");
    write(&a, "run.sh", "#!/bin/sh\n");
    chmod(&a.join("run.sh"), 0o755);
    std::thread::sleep(common::SETTLE);
    let user = common::new_user(server.port, &a);
    let (all, state, conn) = (
        data.join("AllClients"),
        data.join(".cloudservice-server"),
        data.join("connectionLog.txt"),
    );
    assert_eq!(mode(&all), 0o700, "AllClients/");
    assert_eq!(mode(&state), 0o700, ".cloudservice-server/");
    assert_eq!(mode(&conn), 0o600, "connectionLog.txt");
    // The user's files keep their own modes (the executable bit travels).
    let folder = all.join(&user);
    assert_eq!(mode(&folder.join("a.txt")) & 0o111, 0);
    assert_ne!(mode(&folder.join("run.sh")) & 0o100, 0);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("chmod"),
        "no warning on a private directory: {text}"
    );
    server.stop();

    // An operator's data directory opened on purpose: named, not changed.
    chmod(&all, 0o755);
    chmod(&conn, 0o644);
    server.start_again();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let want = format!(
        "chmod 700 {} && chmod 600 {}",
        all.display(),
        conn.display()
    );
    assert!(text.contains(&want), "a warning with {want:?}: {text}");
    assert_eq!(text.matches("chmod 700").count(), 1, "one warning: {text}");
    assert_eq!(mode(&all), 0o755, "left as the operator set it");
    assert_eq!(mode(&conn), 0o644);
}

/// Every directory below `root` that the server keeps for itself, with
/// its mode: all but what is inside a user's folder (`AllClients/<ID>/…`,
/// whose directories are the user's; README: the 0700 parent keeps others
/// out). `root` itself and `AllClients/<ID>` are listed.
fn server_dirs(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        found.push((dir.clone(), mode(&dir)));
        let in_user_folder = dir
            .strip_prefix(root)
            .is_ok_and(|rel| rel.starts_with("AllClients") && rel.components().count() >= 2);
        if in_user_folder {
            continue;
        }
        for entry in std::fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// The directories of `dirs` that are not 0700, as `755 /path` lines.
fn not_private(dirs: &[(PathBuf, u32)]) -> Vec<String> {
    dirs.iter()
        .filter(|(_, m)| *m != 0o700)
        .map(|(p, m)| format!("{m:o} {}", p.display()))
        .collect()
}

/// `cloud-server ARGS…` through `wrapper` (the umask under test); asserts
/// success and returns stdout.
fn run_wrapped(wrapper: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(wrapper).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "cloud-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// breaker22 F6: `import` into a new data directory and `export --to`
/// made 0755 directories under umask 022 (every moved user readable by
/// all local users), and under umask 000 every user's state directory was
/// 0777. Now every directory the server and its operator commands make
/// (the data directory, AllClients/ and AllClients/<ID>, the state of
/// each user with its tmp, partial, versions, invites and revocations,
/// tls/, the export and the import, the restore's) is 0700 under both.
/// Failed on main before the fix (990dad9's binaries through
/// CLOUD_TEST_SERVER_BIN).
#[test]
fn every_directory_the_server_and_its_commands_make_is_0700_whatever_the_umask() {
    for umask in ["000", "022"] {
        let base = tempfile::tempdir().expect("tempdir");
        let wrapper = umask_wrapper(base.path(), umask);
        let s0 = base.path().join("s0");
        let log = base.path().join("s0.log");
        let mut server = Server::options().data(&s0).bin(&wrapper).log(&log).start();
        let a = base.path().join("A");
        write(&a, "d/e/f.txt", "private");
        std::thread::sleep(common::SETTLE);
        let user = common::new_user(server.port, &a);
        let os = |s: &str| std::ffi::OsString::from(s);
        let (s0o, useru) = (s0.clone().into_os_string(), os(&user));
        for command in ["invite", "rotate-join"] {
            run_wrapped(&wrapper, &[&os(command), &s0o, &useru]);
        }
        run_wrapped(&wrapper, &[&os("revoke"), &s0o, &useru, &os("1")]);
        // Out of s0 while it runs, into a data directory that does not exist.
        let moved = base.path().join("move");
        let s1 = base.path().join("new/s1");
        run_wrapped(
            &wrapper,
            &[&os("export"), &s0o, &useru, &os("--to"), moved.as_os_str()],
        );
        run_wrapped(
            &wrapper,
            &[&os("import"), s1.as_os_str(), moved.as_os_str()],
        );
        server.stop();
        // A backup of s1 (cp -a) put back with restore.
        let backup = base.path().join("backup");
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&s1)
            .arg(&backup)
            .status()
            .expect("cp");
        assert!(cp.success());
        run_wrapped(
            &wrapper,
            &[
                &os("restore"),
                s1.as_os_str(),
                &os("--from"),
                backup.as_os_str(),
            ],
        );
        let mut s1_server = Server::options()
            .data(&s1)
            .bin(&wrapper)
            .log(&base.path().join("s1.log"))
            .start();
        s1_server.stop();
        let s1_log = std::fs::read_to_string(base.path().join("s1.log")).unwrap_or_default();

        let mut open = Vec::new();
        // s0 itself was made by the test; what the server made below it.
        let s0_dirs = server_dirs(&s0);
        open.extend(not_private(&s0_dirs[1..]));
        let s1_dirs = server_dirs(&s1);
        open.extend(not_private(&s1_dirs));
        open.extend(not_private(&server_dirs(&moved)));
        if mode(&base.path().join("new")) != 0o700 {
            open.push(format!(
                "{:o} {}/new",
                mode(&base.path().join("new")),
                base.path().display()
            ));
        }
        assert!(
            open.is_empty(),
            "umask {umask}: directories the server made that are not 0700:\n{}",
            open.join("\n")
        );
        // What was checked: the parts README names, each user's state.
        let names: Vec<String> = s0_dirs
            .iter()
            .chain(&s1_dirs)
            .map(|(p, _)| p.display().to_string())
            .collect();
        for part in [
            "s0/AllClients",
            "s0/.cloudservice-server",
            "s0/tls",
            &format!("s0/AllClients/{user}"),
            &format!("s0/.cloudservice-server/{user}/tmp"),
            &format!("s0/.cloudservice-server/{user}/versions/objects"),
            "s0/.cloudservice-server/revoked",
            &format!("s1/.cloudservice-server/{user}/partial"),
            "s1/tls",
        ] {
            assert!(
                names.iter().any(|n| n.ends_with(part)),
                "umask {umask}: {part} was made and checked: {names:?}"
            );
        }
        assert!(
            !s1_log.contains("chmod"),
            "umask {umask}: no warning on the imported, restored s1: {s1_log}"
        );
    }
}

/// Finding 12: renaming connectionLog.txt kept the server writing to the
/// renamed file, and SIGHUP did not reopen it (a plaintext server was
/// stopped by SIGHUP). Now: mv, SIGHUP, the next lines land in a new
/// connectionLog.txt (0600), and every request is in one of the two files.
fn rotate_by_rename_and_sighup(plaintext: bool) {
    let options = if plaintext {
        Server::options().plaintext()
    } else {
        Server::options()
    };
    let mut server = options.start();
    let log = server.data.join("connectionLog.txt");
    let rotated = server.data.join("connectionLog.txt.1");
    let mut client = WireClient::new_user(server.addr);
    let mut pushed = 0usize;
    let mut push = |client: &mut WireClient| {
        let path = format!("f{pushed:04}.txt");
        client.put(&path, b"x", 0).expect("push");
        pushed += 1;
    };
    for _ in 0..20 {
        push(&mut client);
    }
    std::fs::rename(&log, &rotated).expect("mv connectionLog.txt");
    for _ in 0..20 {
        push(&mut client);
    }
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("request=push-file")) {
        assert!(
            Instant::now() < deadline,
            "no new connectionLog.txt after SIGHUP (running: {})",
            server.is_running()
        );
        push(&mut client);
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        push(&mut client);
    }
    assert!(server.is_running(), "SIGHUP does not stop the server");
    drop(client);
    let count = |text: &str, i: usize| {
        let needle = format!("detail=\"f{i:04}.txt (");
        text.lines()
            .filter(|l| l.contains("request=push-file") && l.contains(&needle))
            .count()
    };
    // The writer flushes within a second; read while the server runs (the
    // tail written just before a SIGTERM can be lost at exit while actor
    // threads still hold the log: an older, separate issue).
    let read_both = || {
        (
            std::fs::read_to_string(&rotated).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    };
    common::eventually(Duration::from_secs(10), || {
        let (old, new) = read_both();
        (0..pushed).all(|i| count(&old, i) + count(&new, i) >= 1)
    });
    let (old, new) = read_both();
    for i in 0..pushed {
        assert_eq!(
            count(&old, i) + count(&new, i),
            1,
            "push {i} is logged once across the two files"
        );
    }
    // The writer switched files once: the renamed file holds a first run
    // of the pushes (the first one at least; lines still queued at the
    // signal go to the new file), the new file the rest.
    let in_old: Vec<usize> = (0..pushed).filter(|&i| count(&old, i) == 1).collect();
    let in_new: Vec<usize> = (0..pushed).filter(|&i| count(&new, i) == 1).collect();
    assert_eq!(
        in_old.first(),
        Some(&0),
        "the first push in the renamed file"
    );
    assert!(
        in_old.last() < in_new.first(),
        "one switch: renamed file up to {:?}, new file from {:?}",
        in_old.last(),
        in_new.first()
    );
    for i in pushed - 20..pushed {
        assert_eq!(count(&new, i), 1, "push {i} (after) in the new file");
    }
    assert_eq!(mode(&log), 0o600, "the new log is private");
}

#[test]
fn connection_log_rotates_by_rename_and_sighup_over_tls() {
    rotate_by_rename_and_sighup(false);
}

#[test]
fn connection_log_rotates_by_rename_and_sighup_in_plaintext() {
    rotate_by_rename_and_sighup(true);
}

/// Outside tester breaker15, L6: an operator command on a data directory
/// that does not exist (a typo) says so, and does not claim the user is
/// unknown; nothing is created.
#[test]
fn an_operator_command_on_a_missing_data_directory_says_so() {
    let top = tempfile::tempdir().expect("temp dir");
    let missing = top.path().join("no-such-dir");
    let user = "0123456789abcdef0123456789abcdef";
    for (command, extra) in [
        ("devices", vec![user]),
        ("revoke", vec![user, "1"]),
        ("reinstate", vec![user, "1"]),
        ("rotate-join", vec![user]),
        ("invite", vec![user]),
    ] {
        let out = admin(&missing, command, &extra);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {said}");
        assert!(
            said.contains("no data directory") && said.contains("no-such-dir"),
            "{command}: {said}"
        );
        assert!(!said.contains("no user"), "{command}: {said}");
        assert!(!missing.exists(), "{command} created the directory");
    }
}
