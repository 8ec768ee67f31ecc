//! Two devices of one user must not sync folders that lie one inside the
//! other (outside tester breaker15, F5): the inner device downloads the
//! user's tree into itself, the outer one uploads that copy as new files,
//! the inner one downloads those one level deeper, and so on down to the
//! protocol's depth limit (§6.1: 64 levels), on every device.
//!
//! The inner device is refused at start when any folder above it is synced
//! as a device of the same user ([`synced_ancestor`]); the outer one stops
//! when its scan meets a running device of its own user below it
//! ([`runs_inside`]: a device that started before this check existed, or
//! before the outer folder was joined). A stopped device's state below the
//! folder (a copy, a backup) is plain content, as before: it cannot start.

use crate::client::state::StateDir;
use crate::protocol::UserId;
use std::path::{Path, PathBuf};

/// The nearest folder above `root` (canonical) that is synced as a device of
/// `user`: its `.cloudservice/identity` names that user. A state folder that
/// cannot be read or does not parse is no evidence and is passed over.
pub fn synced_ancestor(root: &Path, user: UserId) -> Option<PathBuf> {
    root.ancestors()
        .skip(1)
        .find(|dir| holds_device_of(dir, user))
        .map(Path::to_path_buf)
}

/// True when `dir` (below the synced folder) holds a device of `user` whose
/// client is running now.
pub fn runs_inside(dir: &Path, user: UserId) -> bool {
    holds_device_of(dir, user) && crate::client::status::is_running(StateDir::existing(dir).path())
}

fn holds_device_of(dir: &Path, user: UserId) -> bool {
    matches!(
        StateDir::existing(dir).load_identity(),
        Ok(Some(identity)) if identity.user == user
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::state::Identity;

    fn join(folder: &Path, user: UserId) {
        std::fs::create_dir_all(folder).expect("mkdir");
        let state = StateDir::open(folder).expect("state dir");
        state
            .save_identity(&Identity {
                user,
                client: 1,
                key: None,
            })
            .expect("identity");
    }

    #[test]
    fn the_nearest_synced_folder_of_the_same_user_is_found_and_others_are_not() {
        let top = tempfile::tempdir().expect("temp dir");
        let root = top.path().canonicalize().expect("canonical");
        let (mine, other) = (UserId([7; 16]), UserId([8; 16]));
        let inner = root.join("outer/mid/inner");
        std::fs::create_dir_all(&inner).expect("mkdir");
        assert_eq!(synced_ancestor(&inner, mine), None, "nothing synced above");
        join(&root.join("outer/mid"), other);
        assert_eq!(synced_ancestor(&inner, mine), None, "another user's folder");
        join(&root.join("outer"), mine);
        assert_eq!(synced_ancestor(&inner, mine), Some(root.join("outer")));
        join(&inner, mine);
        assert_eq!(
            synced_ancestor(&inner, mine),
            Some(root.join("outer")),
            "its own state is not above it"
        );
        std::fs::write(root.join("outer/.cloudservice/identity"), "garbage").expect("write");
        assert_eq!(synced_ancestor(&inner, mine), None, "unreadable state");
    }

    #[test]
    fn a_stopped_device_below_is_content_and_a_running_one_is_found() {
        let top = tempfile::tempdir().expect("temp dir");
        let inner = top.path().join("inner");
        let user = UserId([7; 16]);
        join(&inner, user);
        assert!(!runs_inside(&inner, user), "no client runs there");
        let lock = crate::client::status::lock_running(StateDir::existing(&inner).path())
            .expect("lock")
            .expect("free");
        assert!(runs_inside(&inner, user));
        assert!(!runs_inside(&inner, UserId([8; 16])), "another user's");
        drop(lock);
        assert!(!runs_inside(&inner, user), "stopped again");
    }
}
