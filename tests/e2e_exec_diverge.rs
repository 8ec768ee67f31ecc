//! The executable bit never diverges (issue 13, PROTOCOL.md §15, R-15.2.4):
//! the families of input an outside tester found to leave devices with
//! different bits for good while both said "in sync". Each test runs the
//! real binaries and waits until every device's folder and the server's
//! copy hold the same contents AND the same bits, then that `status` says
//! in sync.
//!
//! 1. A chmod on A while B is stopped and edits (or renames) the file.
//! 2. A rename and a chmod in quick succession (one look sees both).
//! 3. A chmod on A racing a content edit on B, 0-100 ms apart, both orders.
//! 4. Editor-style saves: those that keep the mode (`sed -i`, vim's write
//!    to a new file with the old mode, `cp --preserve=mode`, `install -m
//!    755`) keep +x everywhere; a fresh 644 file moved over the script is
//!    a real -x, and it reaches every device.

mod common;

use common::{append, chmod, exec_bits};

use common::{converge, eventually, settle, write, TwoDevices, CONVERGE};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `cloud-client status FOLDER` exit code (0: in sync).
fn status_code(folder: &Path) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_cloud-client"))
        .arg("status")
        .arg(folder)
        .output()
        .expect("run status")
        .status
        .code()
        .unwrap_or(-1)
}

/// Waits until the devices' folders and the server's copy hold the same
/// contents and the same bits (returned), and both devices' `status` says
/// in sync; panics with the differences.
fn converge_bits(what: &str, d: &TwoDevices) -> BTreeMap<String, bool> {
    let (a, b) = (d.a.path(), d.b.path());
    let server = d.server.user_dir(&d.user);
    converge(what, &[a, b, &server]);
    let same = eventually(CONVERGE, || {
        let want = exec_bits(&server);
        exec_bits(a) == want && exec_bits(b) == want
    });
    let shown = |f: &Path| format!("{:?}", exec_bits(f));
    assert!(
        same,
        "{what}: executable bits differ\n  server {}\n  a      {}\n  b      {}",
        shown(&server),
        shown(a),
        shown(b)
    );
    converge(what, &[a, b, &server]);
    let in_sync = eventually(CONVERGE, || status_code(a) == 0 && status_code(b) == 0);
    assert!(in_sync, "{what}: status says in sync on both devices");
    exec_bits(&server)
}

#[test]
fn a_chmod_made_while_the_other_device_is_stopped_reaches_its_edit_and_its_rename() {
    let mut d = TwoDevices::start(|a| {
        write(a, "z.sh", "z\n");
        chmod(&a.join("z.sh"), 0o755);
        write(a, "w.sh", "w\n");
        write(a, "y.sh", "y\n");
        chmod(&a.join("y.sh"), 0o755);
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    converge_bits("initial", &d);
    d.cb.stop();
    // B edits z.sh and renames w.sh and y.sh; A changes all three bits.
    append(&b.join("z.sh"), "moreB\n");
    fs::rename(b.join("w.sh"), b.join("w2.sh")).expect("mv");
    fs::rename(b.join("y.sh"), b.join("y2.sh")).expect("mv");
    chmod(&a.join("z.sh"), 0o644);
    chmod(&a.join("w.sh"), 0o755);
    chmod(&a.join("y.sh"), 0o644);
    let server = d.server.user_dir(&d.user);
    let seen = eventually(CONVERGE, || {
        let s = exec_bits(&server);
        s.get("z.sh") == Some(&false) && s.get("w.sh") == Some(&true)
    });
    assert!(
        seen,
        "A's chmods reached the server: {:?}",
        exec_bits(&server)
    );
    settle();
    d.cb.restart();
    let end = converge_bits("B back", &d);
    // The bit and the content are independent facts: both changes survive.
    assert_eq!(end.get("z.sh"), Some(&false), "{end:?}");
    assert_eq!(end.get("w2.sh"), Some(&true), "{end:?}");
    assert_eq!(end.get("y2.sh"), Some(&false), "{end:?}");
    assert_eq!(
        fs::read_to_string(a.join("z.sh")).expect("z.sh"),
        "z\nmoreB\n"
    );
}

#[test]
fn a_rename_and_a_chmod_at_once_send_the_bit() {
    let d = TwoDevices::start(|a| {
        for i in 0..4 {
            write(a, &format!("ii{i}.sh"), format!("script {i}\n"));
            chmod(&a.join(format!("ii{i}.sh")), 0o755);
        }
    });
    let a = d.a.path();
    converge_bits("initial", &d);
    // Within one look: the chmod lands before the rename is planned.
    for i in 0..4 {
        fs::rename(a.join(format!("ii{i}.sh")), a.join(format!("ii{i}x.sh"))).expect("mv");
        chmod(&a.join(format!("ii{i}x.sh")), 0o644);
        std::thread::sleep(Duration::from_millis(150 * i));
    }
    let end = converge_bits("renamed and -x", &d);
    for i in 0..4 {
        assert_eq!(end.get(&format!("ii{i}x.sh")), Some(&false), "{end:?}");
    }
}

#[test]
fn a_chmod_racing_a_content_edit_elsewhere_keeps_both() {
    const GAPS_MS: [u64; 5] = [0, 10, 30, 60, 100];
    let d = TwoDevices::start(|a| {
        for i in 0..GAPS_MS.len() * 2 {
            write(a, &format!("dir/r{i}.sh"), format!("r{i}\n"));
            chmod(&a.join(format!("dir/r{i}.sh")), 0o755);
        }
    });
    let (a, b) = (d.a.path(), d.b.path());
    converge_bits("initial", &d);
    for (n, gap) in GAPS_MS.iter().enumerate() {
        // Chmod on A first, then the edit on B; then the other order.
        let first = a.join(format!("dir/r{}.sh", 2 * n));
        chmod(&first, 0o644);
        std::thread::sleep(Duration::from_millis(*gap));
        append(&b.join(format!("dir/r{}.sh", 2 * n)), "X\n");
        let second = 2 * n + 1;
        append(&b.join(format!("dir/r{second}.sh")), "X\n");
        std::thread::sleep(Duration::from_millis(*gap));
        chmod(&a.join(format!("dir/r{second}.sh")), 0o644);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = converge_bits("chmod vs edit", &d);
    let tree = common::tree(a);
    for i in 0..GAPS_MS.len() * 2 {
        let path = format!("dir/r{i}.sh");
        assert_eq!(end.get(&path), Some(&false), "{path} lost A's -x: {end:?}");
        // B's edit is at the path, or, when A's SetMode reached the server
        // between B's edit and B's upload, in a conflict copy beside it
        // (the SetMode is a new version; nothing is lost either way).
        let edited = format!("r{i}\nX\n").into_bytes();
        let kept = tree.iter().any(|(k, v)| {
            (k == &path || k.starts_with(&format!("dir/r{i} (conflict ")))
                && v.as_deref() == Some(edited.as_slice())
        });
        assert!(kept, "{path}: B's edit kept: {:?}", tree.keys());
    }
}

/// vim's default save of a file with one link (`backupcopy=auto` picks
/// "no"): the new content goes to a new file, which gets the old file's
/// mode before it is renamed over it.
fn vim_like_save(path: &Path, data: &str) {
    let tmp = path.with_extension("swp-new");
    let mode = fs::metadata(path).expect("stat").permissions().mode();
    fs::write(&tmp, data).expect("write new");
    chmod(&tmp, mode & 0o7777);
    fs::rename(&tmp, path).expect("rename over");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

#[test]
fn editor_saves_that_keep_the_mode_keep_x_and_a_fresh_file_over_it_drops_it() {
    let d = TwoDevices::start(|a| {
        for name in ["sed.sh", "vim.sh", "cp.sh", "install.sh", "fresh.sh"] {
            write(a, name, format!("#!/bin/sh\necho {name}\n"));
            chmod(&a.join(name), 0o755);
        }
        write(a, "src.txt", "#!/bin/sh\necho copied\n");
        write(a, "plain.sh", "#!/bin/sh\necho plain\n");
    });
    let (a, b) = (d.a.path(), d.b.path());
    converge_bits("initial", &d);
    run(Command::new("sed")
        .arg("-i")
        .arg("s/echo/printf/")
        .arg(a.join("sed.sh")));
    vim_like_save(&a.join("vim.sh"), "#!/bin/sh\necho saved by vim\n");
    run(Command::new("cp")
        .arg("--preserve=mode")
        .arg(a.join("src.txt"))
        .arg(b.join("cp.sh")));
    chmod(&b.join("cp.sh"), 0o755);
    run(Command::new("install")
        .args(["-m", "755"])
        .arg(a.join("src.txt"))
        .arg(a.join("install.sh")));
    run(Command::new("install")
        .args(["-m", "755"])
        .arg(b.join("plain.sh"))
        .arg(b.join("plain.sh.new")));
    fs::rename(b.join("plain.sh.new"), b.join("plain.sh")).expect("mv");
    // A fresh file (umask mode, no x) moved over the script: a real -x.
    let fresh = a.join("fresh.tmp");
    fs::write(&fresh, "#!/bin/sh\necho fresh\n").expect("write");
    chmod(&fresh, 0o644);
    fs::rename(&fresh, a.join("fresh.sh")).expect("mv over");
    let end = converge_bits("editor saves", &d);
    for name in ["sed.sh", "vim.sh", "cp.sh", "install.sh", "plain.sh"] {
        assert_eq!(end.get(name), Some(&true), "{name} keeps +x: {end:?}");
    }
    assert_eq!(end.get("fresh.sh"), Some(&false), "{end:?}");
    assert_eq!(
        fs::read_to_string(b.join("sed.sh")).expect("sed.sh"),
        "#!/bin/sh\nprintf sed.sh\n"
    );
}
