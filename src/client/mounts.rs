//! File systems mounted inside the folder (README "Safety", PROTOCOL.md
//! a synced file that is missing because the file system holding
//! it went away (a drive unmounted, or not mounted yet at start-up) is "not
//! there right now", never "deleted by the user". Its removal is not pushed
//! until the file system is back.
//!
//! The fact comes from the index, whose file records keep the device
//! (`st_dev`) each file was on when last synced: a file whose recorded
//! device differs from the files around it lived under a mount point, the
//! top-most directory above it whose indexed files were all on that device
//! ([`mount_point`]). When such a file is missing, the nearest directory
//! above it that still exists tells what happened ([`gone_with_mount`]): on
//! the recorded device (or on a file system mounted there anew), the user
//! removed it; on the device outside the mount point (the mount point is an
//! empty directory of the outer file system, or missing), the file system
//! went away.
//! No index format change: the device has been in the records since
//! format 2 (a record without one, device 0, is never held).
//!
//! [`gone_with_mount`] is the decision, without I/O; [`Judge`] gathers its
//! inputs from the disk and the index for a push round or `status`.

use super::index::{EntryKind, Index};
use crate::protocol::WirePath;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the disk shows where a missing file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// `st_dev` of the nearest directory above the file that exists now.
    pub nearest: u64,
    /// `nearest` is a device the folder is known on: the folder's own, or
    /// one the index records for another file (not a file system mounted
    /// anew, which gets a new device number).
    pub known: bool,
    /// `st_dev` of the directory holding the file's mount point (the
    /// folder for a top-level one; if missing, the nearest existing one
    /// above it); `None` when no mount point is known ([`mount_point`]) or
    /// the folder cannot be looked at.
    pub outside: Option<u64>,
}

/// Whether a synced file recorded on device `recorded`, missing now, went
/// away with the file system that held it: where it was, the
/// nearest existing directory is on another device than the recorded one,
/// a device the folder is known on, and the very device outside its mount
/// point: the file system is no longer mounted there (the mount point is an
/// empty directory of the outer file system, or missing). A file missing
/// from a directory on its own device, or on a file system mounted there
/// anew (an unknown device), was removed.
pub fn gone_with_mount(recorded: u64, place: Place) -> bool {
    recorded != 0
        && recorded != place.nearest
        && place.known
        && place.outside == Some(place.nearest)
}

/// Whether a synced file recorded on device `recorded`, missing now, is
/// hidden by a file system mounted over its directory since (outside tester
/// breaker16, F1: a drive plugged back in over the empty mount point, into
/// which this device had downloaded other devices' new files meanwhile; their
/// deletion went to every device): where it was, the nearest existing
/// directory is on another device (`nearest`) whose mount point lies in a
/// directory of the very device the file was recorded on
/// (`outside_of_mount`). A file removed from a file system mounted anew is
/// recorded on that file system's old device, not on the outer one, so it
/// stays an ordinary removal.
pub fn hidden_by_mount(recorded: u64, nearest: u64, outside_of_mount: Option<u64>) -> bool {
    recorded != 0 && recorded != nearest && outside_of_mount == Some(recorded)
}

/// Why a missing file's removal is not pushed: its mount point, and whether
/// a file system went away from it or was mounted over it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Parked {
    /// The mount point (for a hidden file, the top directory of the file
    /// system mounted over it).
    pub point: WirePath,
    /// A file system mounted over the file hides it ([`hidden_by_mount`]);
    /// else the file system holding it went away ([`gone_with_mount`]).
    pub hidden: bool,
}

/// Where the file system of device `dev` was mounted, as far as the index
/// tells: the deepest directory holding every file indexed on `dev` (their
/// common ancestor; if the mount point held files only in one subdirectory,
/// that subdirectory, which is on the mounted file system too, all
/// [`gone_with_mount`] needs). `None` when every indexed file of the folder
/// was on `dev` (no boundary known: the folder was moved to another disk
/// whole, or is itself the mount, which the empty-folder guard of
/// covers) or their common ancestor is the folder.
pub fn mount_point(index: &Index, dev: u64) -> Option<WirePath> {
    let mut other = false;
    let mut common: Option<Vec<&str>> = None;
    for (path, entry) in index.iter() {
        let EntryKind::File { stat, .. } = entry.kind else {
            continue;
        };
        if stat.dev != dev {
            other = true;
            continue;
        }
        let mut dirs: Vec<&str> = path.components().collect();
        dirs.pop();
        common = Some(match common {
            None => dirs,
            Some(mut c) => {
                let same = c.iter().zip(&dirs).take_while(|(a, b)| a == b).count();
                c.truncate(same);
                c
            }
        });
    }
    if !other {
        return None;
    }
    common
        .filter(|c| !c.is_empty())
        .and_then(|c| WirePath::new(&c.join("/")).ok())
}

/// Judges missing files against the disk, caching what it stats and
/// finds (one push round, or one `status`).
pub struct Judge<'a> {
    root: &'a Path,
    index: &'a Index,
    /// `st_dev` of each directory looked at; `None`: missing.
    devs: HashMap<WirePath, Option<u64>>,
    /// The folder's own `st_dev`.
    root_dev: Option<u64>,
    /// [`mount_point`] by device.
    points: HashMap<u64, Option<WirePath>>,
    /// Every device the index records a file on.
    recorded: Option<std::collections::HashSet<u64>>,
}

impl<'a> Judge<'a> {
    /// A judge for the folder `root` and its index.
    pub fn new(root: &'a Path, index: &'a Index) -> Judge<'a> {
        Judge {
            root,
            index,
            devs: HashMap::new(),
            root_dev: std::fs::metadata(root).ok().map(|m| m.dev()),
            points: HashMap::new(),
            recorded: None,
        }
    }

    /// The device of the entry at `path` (not followed if a symlink),
    /// `None` when it cannot be looked at.
    fn dev(&mut self, path: &WirePath) -> Option<u64> {
        if let Some(dev) = self.devs.get(path) {
            return *dev;
        }
        let dev = std::fs::symlink_metadata(path.to_local(self.root))
            .ok()
            .map(|m| m.dev());
        self.devs.insert(path.clone(), dev);
        dev
    }

    /// `st_dev` of `from` or, when it is missing, of the nearest directory
    /// above it that exists (the folder at the top, `from` being `None`);
    /// `None` when the folder itself cannot be looked at.
    fn existing_dev(&mut self, from: Option<WirePath>) -> Option<u64> {
        let mut at = from;
        while let Some(dir) = at {
            if let Some(dev) = self.dev(&dir) {
                return Some(dev);
            }
            at = dir.parent();
        }
        self.root_dev
    }

    /// The top directory of the file system holding `from` (or, when it is
    /// missing, the nearest directory above it that exists) and the device
    /// of the directory that holds it: `None` when that file system is the
    /// folder's own all the way up (no mount in between).
    fn covering_mount(&mut self, from: Option<WirePath>) -> Option<(WirePath, Option<u64>)> {
        let mut at = from;
        let mut nearest = None;
        while let Some(dir) = at {
            if let Some(dev) = self.dev(&dir) {
                nearest = Some((dir, dev));
                break;
            }
            at = dir.parent();
        }
        let (mut top, dev) = nearest?;
        loop {
            let above = match top.parent() {
                Some(parent) => self.dev(&parent),
                None => self.root_dev,
            };
            if above != Some(dev) {
                return Some((top, above));
            }
            top = top.parent()?;
        }
    }

    /// Why the removal of the indexed file `path` (assumed missing) is not
    /// pushed: the file system holding it went away, or one mounted over
    /// its directory hides it; `None` when its removal is the user's.
    pub fn gone_file(&mut self, path: &WirePath) -> Option<Parked> {
        let EntryKind::File { stat, .. } = self.index.get(path)?.kind else {
            return None;
        };
        let recorded = stat.dev;
        if recorded == 0 {
            return None;
        }
        let nearest = self.existing_dev(path.parent())?;
        if recorded == nearest {
            // The common case, a file removed from its own directory: no
            // look at the index.
            return None;
        }
        if let Some((point, outside)) = self.covering_mount(path.parent()) {
            if hidden_by_mount(recorded, nearest, outside) {
                return Some(Parked {
                    point,
                    hidden: true,
                });
            }
        }
        let index = self.index;
        let point = self
            .points
            .entry(recorded)
            .or_insert_with(|| mount_point(index, recorded))
            .clone()?;
        let outside = self.existing_dev(point.parent());
        let known = self.root_dev == Some(nearest)
            || self
                .recorded
                .get_or_insert_with(|| {
                    index
                        .iter()
                        .filter_map(|(_, e)| match e.kind {
                            EntryKind::File { stat, .. } => Some(stat.dev),
                            EntryKind::Dir => None,
                        })
                        .collect()
                })
                .contains(&nearest);
        let place = Place {
            nearest,
            known,
            outside,
        };
        gone_with_mount(recorded, place).then_some(Parked {
            point,
            hidden: false,
        })
    }

    /// The same for a missing directory: why the first file indexed below
    /// it that went away with a file system, or is hidden by one, is parked.
    pub fn gone_dir(&mut self, path: &WirePath) -> Option<Parked> {
        let index = self.index;
        index
            .subtree(Some(path))
            .filter(|(_, e)| e.hash().is_some())
            .find_map(|(file, _)| self.gone_file(file))
    }

    /// Every mount point whose file system went away with indexed files,
    /// or hides them, with how many (files missing now only): for
    /// `cloud-client status`.
    pub fn gone_mounts(&mut self) -> std::collections::BTreeMap<Parked, usize> {
        let index = self.index;
        let mut out = std::collections::BTreeMap::new();
        for (path, entry) in index.iter() {
            if entry.hash().is_none() {
                continue;
            }
            let missing = matches!(
                std::fs::symlink_metadata(path.to_local(self.root)),
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                )
            );
            if !missing {
                continue;
            }
            if let Some(point) = self.gone_file(path) {
                *out.entry(point).or_insert(0) += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
