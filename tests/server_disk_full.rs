//! A full disk while receiving a file: the push fails with a clear error, the
//! previous version stays intact, and the server keeps serving.
//!
//! The data directory is a 6 MiB tmpfs mounted for the test. Where mounting is
//! not permitted (not root), the test says so and skips itself.

mod common;

use cloudservice::protocol::{ErrorCode, PushStatus};
use common::*;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn disk_full_fails_the_push_and_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = Server::start_in(&data, &[]);

    let mut a = WireClient::new_user(server.addr);
    let v1 = vec![1u8; 1024 * 1024];
    a.put("doc.bin", &v1, 0).expect("first version fits");
    let too_big = vec![2u8; 8 * 1024 * 1024];
    let err = a.put("doc.bin", &too_big, 1).expect_err("no room");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(err.message.contains("No space left"), "{}", err.message);
    assert_eq!(
        std::fs::read(server.user_dir(&a.user).join("doc.bin")).unwrap(),
        v1
    );

    // The same connection and other users carry on once space is free.
    let ack = a
        .put("small.txt", b"still works", 0)
        .expect("push after ENOSPC");
    assert_eq!(ack.status, PushStatus::Applied);
    let mut b = WireClient::new_user(server.addr);
    b.put("other.txt", b"other user", 0).expect("other user");
    let mut c = WireClient::new_client(server.addr, a.user);
    assert_eq!(c.fetch("doc.bin").expect("fetch").1, v1);
    server.wait_log("No space left");
}
