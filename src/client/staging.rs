//! Staging on the file system a file goes to (PROTOCOL.md ): a
//! drive mounted inside the folder (a second disk, a share, even a bind
//! mount of the same disk) is its own mount, and `rename(2)` never crosses
//! mounts (`EXDEV`). A download verified in the state folder's temporary
//! area, or a file the applier moves aside before deleting it,
//! could therefore not reach or leave such a drive: nothing from the server
//! was ever placed there, and every pull fetched it again (outside tester
//! breaker16, F2).
//!
//! So every rename of the applier happens inside one mount: a path whose
//! directory is on the mount of the temporary area uses the temporary area,
//! as always; a path on another mount uses that mount's staging directory,
//! `.cloudservice/staging` at the top directory of the mount inside the
//! folder ([`mount_top`]). That name is already never synced at any depth
//! (a nested folder's state, `IgnoreRules::decide`), so nothing staged is
//! ever pushed, shown as the user's, or taken for a nested device (it holds
//! no identity). The applier removes the directory when it is empty again
//! ([`tidy`]); after a crash the start-up settles what it holds as it does
//! the temporary area ([`drive_stagings`]: noted files go back, the rest is
//! removed).
//!
//! Mounts are told apart by `statx`'s mount id (Linux 5.8; a bind mount of
//! the same disk has the disk's `st_dev` but its own mount), and by
//! `st_dev` where the kernel gives no mount id.

use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the staging directory inside `.cloudservice` at a mount's top.
pub const DRIVE_STAGING: &str = "staging";

/// Which mount a path is on: its device and, when the kernel says, its
/// mount id (0 when not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountId {
    /// `st_dev` as (major, minor).
    pub dev: (u32, u32),
    /// `stx_mnt_id`, 0 when unknown.
    pub mnt: u64,
}

impl MountId {
    /// Whether a rename between the two can work: the same device, and the
    /// same mount where both mount ids are known.
    pub fn same(self, other: MountId) -> bool {
        self.dev == other.dev && (self.mnt == 0 || other.mnt == 0 || self.mnt == other.mnt)
    }
}

/// The mount of `path` (not followed if a symlink).
///
/// # Errors
/// `statx` fails (missing path, no permission).
pub fn mount_of(path: &Path) -> io::Result<MountId> {
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )?;
    let mnt = match StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::MNT_ID) {
        true => st.stx_mnt_id,
        false => 0,
    };
    Ok(MountId {
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mnt,
    })
}

/// The nearest directory at or above `dir` (a path inside `root`) that
/// exists: where a file below `dir` will be, once its missing parents are
/// made (they are made on that directory's mount).
pub fn existing_dir(root: &Path, dir: &Path) -> PathBuf {
    let mut at = dir;
    while at != root {
        if fs::symlink_metadata(at).is_ok_and(|m| m.is_dir()) {
            return at.to_path_buf();
        }
        match at.parent() {
            Some(up) => at = up,
            None => break,
        }
    }
    root.to_path_buf()
}

/// The top directory inside `root` of the mount holding `dir` (an existing
/// directory below `root`): the highest directory above it, `root`
/// excluded, on the same mount. `dir` itself when its parent is elsewhere.
///
/// # Errors
/// A directory on the way cannot be looked at.
pub fn mount_top(root: &Path, dir: &Path) -> io::Result<PathBuf> {
    let mine = mount_of(dir)?;
    let mut top = dir;
    while let Some(up) = top.parent() {
        if up == root || !up.starts_with(root) || !mount_of(up)?.same(mine) {
            break;
        }
        top = up;
    }
    Ok(top.to_path_buf())
}

/// Where files for `dir` (an existing directory inside `root`) are
/// staged: `None` when `dir` is on the mount of `tmp` (the temporary area
/// does), else `.cloudservice/staging` at the top of `dir`'s mount
/// ([`mount_top`]), created (mode 0700) if missing. `None` too when the
/// mounts cannot be told apart (no `statx`).
///
/// # Errors
/// Looking at the directories above `dir`, or creating the staging
/// directory (a read-only drive: placing there cannot work either).
pub fn staging_for(root: &Path, tmp: &Path, dir: &Path) -> io::Result<Option<PathBuf>> {
    let (Ok(here), Ok(there)) = (mount_of(dir), mount_of(tmp)) else {
        // Cannot be told (no statx): the temporary area, as always.
        return Ok(None);
    };
    if here.same(there) {
        return Ok(None);
    }
    let top = mount_top(root, dir)?;
    if top == root {
        // The folder itself is on this mount, its state folder is not: no
        // place in between (a rename then fails, as it did before).
        return Ok(None);
    }
    let staging = top
        .join(crate::protocol::limits::STATE_DIR_NAME)
        .join(DRIVE_STAGING);
    crate::private_dir::create_all(&staging)?;
    Ok(Some(staging))
}

/// Whether `dir` is a drive's staging directory (`…/.cloudservice/staging`),
/// not the temporary area.
pub fn is_drive_staging(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == DRIVE_STAGING)
        && dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == crate::protocol::limits::STATE_DIR_NAME)
}

/// Removes a drive's staging directory, and the `.cloudservice` holding
/// it, when they are empty (best effort; a busy one stays, and goes when
/// the applier next finds it empty or at the next start).
pub fn tidy(dir: &Path) {
    if !is_drive_staging(dir) {
        return;
    }
    if fs::remove_dir(dir).is_ok() {
        if let Some(state) = dir.parent() {
            let _ = fs::remove_dir(state);
        }
    }
}

/// Mount points strictly inside `root` (canonical), from
/// `/proc/self/mountinfo`; empty when it cannot be read.
pub fn mounts_inside(root: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(mount_point_of_line)
        .filter(|p| p != root && p.starts_with(root))
        .collect();
    points.sort();
    points.dedup();
    points
}

/// The mount point (5th field) of one `mountinfo` line, its `\NNN` octal
/// escapes (space, tab, newline, backslash) decoded.
pub(crate) fn mount_point_of_line(line: &str) -> Option<PathBuf> {
    let field = line.split(' ').nth(4)?;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).ok()?);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    let name: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(out);
    Some(PathBuf::from(name))
}

/// The staging directories that exist on the drives mounted inside `root`
/// (canonical): what a crash may have left there, for the start-up to
/// settle.
pub fn drive_stagings(root: &Path) -> Vec<PathBuf> {
    mounts_inside(root)
        .into_iter()
        .map(|p| {
            p.join(crate::protocol::limits::STATE_DIR_NAME)
                .join(DRIVE_STAGING)
        })
        .filter(|p| p.is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_their_mount_point_unescaped() {
        let line = "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw";
        assert_eq!(
            mount_point_of_line(line),
            Some(PathBuf::from("/mnt/my disk"))
        );
        let line = "1 2 3:4 / /a\\134b\\011c rw - tmpfs x rw";
        assert_eq!(mount_point_of_line(line), Some(PathBuf::from("/a\\b\tc")));
        assert_eq!(mount_point_of_line("short line"), None);
        // A lone backslash not followed by three octal digits stays.
        let line = "1 2 3:4 / /a\\9x rw - tmpfs x rw";
        assert_eq!(mount_point_of_line(line), Some(PathBuf::from("/a\\9x")));
    }

    #[test]
    fn one_file_system_needs_no_staging_and_names_are_recognised() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        let tmp = root.join(".cloudservice/tmp");
        fs::create_dir_all(&tmp).expect("mkdir");
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        assert_eq!(
            staging_for(root, &tmp, &root.join("a/b")).expect("look"),
            None
        );
        assert_eq!(existing_dir(root, &root.join("a/b/c/d")), root.join("a/b"));
        assert_eq!(existing_dir(root, &root.join("x/y")), root.to_path_buf());
        assert_eq!(
            mount_top(root, &root.join("a/b")).expect("top"),
            root.join("a")
        );
        assert!(is_drive_staging(Path::new(
            "/f/Photos/.cloudservice/staging"
        )));
        assert!(!is_drive_staging(&tmp));
        assert!(mount_of(root)
            .expect("mount")
            .same(mount_of(&root.join("a")).expect("mount")));
    }

    #[test]
    fn mount_ids_differ_only_when_both_are_known() {
        let a = MountId {
            dev: (8, 1),
            mnt: 5,
        };
        assert!(a.same(MountId {
            dev: (8, 1),
            mnt: 0
        }));
        assert!(!a.same(MountId {
            dev: (8, 1),
            mnt: 6
        }));
        assert!(!a.same(MountId {
            dev: (8, 2),
            mnt: 5
        }));
    }
}
