//! A small tmpfs mounted on a temporary directory for one test (a disk that
//! fills up), unmounted (lazily) when dropped. Mounting needs root (CI runs
//! as root); elsewhere [`Tmpfs::mount`] says why and the test skips itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `6m`) on a new temporary
    /// directory, or prints `SKIPPED: ...` with the reason and returns `None`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        Tmpfs::mount_with(&format!("size={size}"))
    }

    /// [`Tmpfs::mount`] with mount's options as given (`size=50m,nr_inodes=300`).
    pub fn mount_with(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path` joined with `name`, created as a directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).expect("dir on the tmpfs");
        d
    }

    /// Bytes free on it (statvfs through `df`'s output would need parsing;
    /// `stat -f` gives the counts directly).
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.dir.path())
            .output()
            .expect("stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        it.next().unwrap_or(0) * it.next().unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `mount --bind from to`; false when it cannot.
pub fn bind(from: &Path, to: &Path) -> bool {
    Command::new("mount")
        .arg("--bind")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts the bind at `at` when dropped (and by hand, `unplug`).
pub struct Bound(pub PathBuf);

impl Bound {
    /// Unmounts it now (not lazily): fails the test if it cannot.
    pub fn unplug(&self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "umount {}", self.0.display());
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
