//! [`super::restore`] on data directories made by hand (no server): what
//! it keeps of the replaced directory, what it refuses.

use super::*;
use crate::protocol::Secret;
use std::os::unix::fs::PermissionsExt;

/// A data directory holding `user` with devices 1 and 2 and a file.
fn data_dir(base: &Path, user: &UserId) -> DataPaths {
    let paths = DataPaths {
        base: base.to_path_buf(),
    };
    fs::create_dir_all(paths.user_root(user)).unwrap();
    fs::create_dir_all(paths.user_state(user)).unwrap();
    fs::write(paths.user_root(user).join("a.txt"), b"backup's").unwrap();
    let mut book = devices::DeviceBook::load(&paths, user).unwrap();
    book.add(1, "desk", Some(&Secret::random()), 1);
    book.add(2, "laptop", Some(&Secret::random()), 1);
    book.save().unwrap();
    paths
}

#[test]
fn the_backup_comes_back_with_the_later_doors_closed() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserId([5; 16]);
    let live = data_dir(&dir.path().join("data"), &user);
    devices::rotate_join(&live, &user).unwrap();
    let used = devices::invite(&live, &user).unwrap();
    fs::create_dir_all(live.base.join("tls")).unwrap();
    fs::write(live.base.join("tls/server.key"), b"old key").unwrap();
    let backup = dir.path().join("backup");
    tree_copy::copy_tree(&live.base, &backup).unwrap();
    // After the backup: device 2 revoked, the invite used, the code
    // rotated, the key replaced, a file changed, a line logged.
    devices::revoke(&live, &user, 2).unwrap();
    assert!(devices::take_invite(&live, &user, &used).unwrap());
    let code = devices::rotate_join(&live, &user).unwrap();
    fs::write(live.base.join("tls/server.key"), b"new key").unwrap();
    fs::write(live.user_root(&user).join("a.txt"), b"later").unwrap();
    fs::write(live.base.join("connectionLog.txt"), b"the theft\n").unwrap();
    let done = restore(&live.base, &backup).unwrap();
    assert!(done.copied.files >= 3, "{done:?}");
    assert!(
        done.notes
            .iter()
            .any(|n| n.contains("device 2 was revoked")),
        "{:?}",
        done.notes
    );
    assert_eq!(
        fs::read(live.user_root(&user).join("a.txt")).unwrap(),
        b"backup's"
    );
    assert!(devices::is_revoked(&live, &user, 2));
    assert!(!devices::is_revoked(&live, &user, 1));
    let join = devices::join_code(&live, &user).unwrap().unwrap();
    assert!(devices::matches(&join.digest, &code) && join.generation == 2);
    assert!(!devices::take_invite(&live, &user, &used).unwrap());
    assert_eq!(
        fs::read(live.base.join("tls/server.key")).unwrap(),
        b"new key"
    );
    assert_eq!(
        fs::read(live.base.join("connectionLog.txt")).unwrap(),
        b"the theft\n"
    );
    let marker = revoked_file_mode(&live, &user, 2);
    assert_eq!(marker, 0o600);
    assert!(!live.base.join(STAGING).exists() && !live.base.join(REPLACED).exists());
    // The backup itself is untouched.
    assert!(!devices::is_revoked(
        &DataPaths {
            base: backup.clone()
        },
        &user,
        2
    ));
}

fn revoked_file_mode(paths: &DataPaths, user: &UserId, id: u64) -> u32 {
    let file = devices::revoked_dir(paths).join(format!("{user}.{id}"));
    fs::metadata(file).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_served_directory_a_non_backup_and_overlaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserId([6; 16]);
    let live = data_dir(&dir.path().join("data"), &user);
    let backup = dir.path().join("backup");
    tree_copy::copy_tree(&live.base, &backup).unwrap();
    fs::write(live.user_root(&user).join("a.txt"), b"live").unwrap();
    let held = try_lock(&live).unwrap().expect("free");
    assert!(matches!(
        restore(&live.base, &backup),
        Err(RestoreError::Running(_))
    ));
    drop(held);
    let owner = moves::try_own(&live, &user).unwrap().expect("free");
    assert!(matches!(
        restore(&live.base, &backup),
        Err(RestoreError::Running(_))
    ));
    drop(owner);
    assert!(matches!(
        restore(&live.base, &dir.path().join("nothing")),
        Err(RestoreError::NotABackup(_))
    ));
    assert!(matches!(
        restore(&live.base, &live.base),
        Err(RestoreError::Overlap)
    ));
    assert_eq!(
        fs::read(live.user_root(&user).join("a.txt")).unwrap(),
        b"live"
    );
    assert!(!live.base.join(STAGING).exists());
}

/// breaker22 F7: after `cloud-server restore` the advice no longer tells
/// the operator to rotate the join code; without its marker (a backup
/// copied back by hand) it does. A marker newer than the finding came
/// with a later restore than the one found, so it does not count.
#[test]
fn the_advice_after_a_found_restore_depends_on_the_commands_marker() {
    let user: UserId = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1".parse().unwrap();
    let data = Path::new("/srv/cloud");
    let stamp = |s: u64| format!("t{s}");
    let marker = parse_by_command("100 /backup/day one\n").unwrap();
    assert_eq!(
        marker,
        ByCommand {
            at: 100,
            from: "/backup/day one".into()
        }
    );
    assert_eq!(parse_by_command("garbage"), None);
    let by_command = restore_advice(150, Some(&marker), data, &user, stamp);
    assert!(
        by_command.starts_with(
            "it was put back with `cloud-server restore` at t100 from /backup/day one, \
             which kept the revocations"
        ),
        "{by_command}"
    );
    assert!(by_command.contains("nothing to redo"), "{by_command}");
    let rotate = "run: cloud-server rotate-join /srv/cloud 9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1";
    for by_hand in [
        restore_advice(150, None, data, &user, stamp),
        restore_advice(50, Some(&marker), data, &user, stamp),
    ] {
        assert!(by_hand.starts_with("it was not put back"), "{by_hand}");
        assert!(by_hand.ends_with(rotate), "{by_hand}");
    }
}
