//! File systems mounted inside the folder (README "Safety", PROTOCOL.md
//! a synced file that is missing because the file system holding
//! it is not at its place any more (a drive unmounted, not mounted yet at
//! start-up, replaced by another drive, an empty tmpfs mounted anew, a
//! drive mounted over its directory) is "not there right now", never
//! "deleted by the user". Only a file missing from the very file system it
//! was recorded on is a removal.
//!
//! The fact comes from the index, whose file records keep the device
//! (`st_dev`) each file was on when last synced, and from the device of the
//! nearest directory above the missing file that exists now. Another device
//! there means another file system: either the one around the recorded
//! file system's mount point (it went away: the removal waits until it is
//! back, [`Missing::Gone`]) or one mounted at or above the file's place
//! (another drive, one mounted anew, one mounted over the directory: a
//! drive joining the folder, whose missing files are the server's and are
//! downloaded onto it, [`Missing::Replaced`]). A file system mounted again
//! under another device number (a USB disk given another one, a network or
//! FUSE mount, a re-created btrfs subvolume) is still the recorded one when
//! a file recorded on it is at its path untouched (same inode, ctime and
//! size) on the new device ([`Judge`]'s renumbering evidence).
//! (Before, "a file system mounted anew" counted as the recorded one and
//! its missing files as removals: another drive swapped in deleted the
//! first drive's files everywhere, outside tester breaker18, F6.)
//!
//! A file that is there but on another file system than recorded, with
//! other content ([`joined`]), is not an edit either: it is the other
//! file system's copy (an older backup drive mounted over the directory,
//! F10), handled as a folder joining: both are kept.
//!
//! No index format change: the device has been in the records since
//! format 2 (a record without one, device 0, is never held).
//!
//! [`missing`] and [`joined`] are the decisions, without I/O; [`Judge`]
//! gathers their inputs from the disk and the index for a push round or
//! `status`.

use super::fsutil::Stat;
use super::index::{EntryKind, Index};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How many files recorded on a device [`Judge`] looks at, at most, for
/// evidence that the device's file system is mounted under another number.
const RENUMBER_LOOKS: usize = 256;

/// What a recorded file missing from its place means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Removed from the file system it was recorded on: pushed.
    Removed,
    /// The file system it was recorded on went away: the place shows the
    /// file system around that one's mount point (an empty mount point, or
    /// none). Parked until it is back.
    Gone,
    /// Another file system is mounted at or above its place (another
    /// drive, an empty one mounted anew, a bind of another directory, a
    /// drive mounted over its directory): a drive joining the folder. Not
    /// a removal; the server's file is downloaded onto it.
    Replaced,
}

/// What the disk shows where a missing file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// `st_dev` of the nearest directory above the file that exists now.
    pub nearest: u64,
    /// The recorded file system is mounted there under the number
    /// `nearest` (renumbering evidence, see [`Judge`]).
    pub renumbered: bool,
    /// `nearest` is a file system mounted inside the folder (a mount lies
    /// between the folder and the place), not the folder's own.
    pub mounted: bool,
    /// `st_dev` of the directory holding the recorded file system's mount
    /// point (the folder for a top-level one; if missing, the nearest
    /// existing one above it); `None` when no mount point is known
    /// ([`mount_point`]).
    pub outside: Option<u64>,
}

/// What the synced file recorded on device `recorded`, missing now, means
/// . A removal only when the place is on the recorded file system
/// (the same device, or the same file system renumbered) or the record has
/// no device; otherwise the file is not there right now: gone with its file
/// system when the place shows the file system around the recorded one's
/// mount point, or (the place being on a file system mounted inside the
/// folder) replaced by another file system.
pub fn missing(recorded: u64, place: Place) -> Missing {
    if recorded == 0 || recorded == place.nearest || place.renumbered {
        Missing::Removed
    } else if place.mounted && place.outside != Some(place.nearest) {
        Missing::Replaced
    } else {
        Missing::Gone
    }
}

/// Whether a synced file recorded on device `recorded`, there now on
/// device `now` with content other than recorded, is another file system's
/// copy rather than an edit (F10): it is on another file system than the
/// one it was synced on, and that one is not merely renumbered. Such a
/// file is not pushed over the server's version; both are kept.
pub fn joined(recorded: u64, now: u64, renumbered: bool) -> bool {
    recorded != 0 && recorded != now && !renumbered
}

/// Whether the file at `there` is the file recorded as `recorded`, not
/// touched since, whatever device number its file system has now: the same
/// inode, ctime and size (no program can set a ctime back; a copy on
/// another drive, even one with the same inode number, has the ctime of
/// the copy). A record without an inode or ctime proves nothing.
pub fn untouched(recorded: &Stat, there: &Stat) -> bool {
    recorded.ino != 0
        && recorded.ctime_ns != 0
        && recorded.ino == there.ino
        && recorded.ctime_ns == there.ctime_ns
        && recorded.size == there.size
}

/// `major:minor` of a device number, as `/proc/self/mountinfo` and
/// `ls -l` name it (for the warnings).
pub fn dev_name(dev: u64) -> String {
    // glibc's gnu_dev_major / gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    format!("{major}:{minor}")
}

/// The top-level component of `path`: where a warning about a file with
/// no mount point known is said.
pub fn top_of(path: &WirePath) -> WirePath {
    path.components()
        .next()
        .and_then(|c| WirePath::new(c).ok())
        .unwrap_or_else(|| path.clone())
}

/// Why a missing file's removal is not pushed: the place it concerns, what
/// happened there and the devices, for the warning said once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Parked {
    /// The mount point: for a replaced file, the top directory of the file
    /// system now there; for a gone one, where the recorded one was.
    pub point: WirePath,
    /// Another file system is there ([`Missing::Replaced`]); else the
    /// recorded one went away ([`Missing::Gone`]).
    pub hidden: bool,
    /// The device now at the place.
    pub now: u64,
    /// The device the files were recorded on.
    pub was: u64,
}

/// Where the file system of device `dev` was mounted, as far as the index
/// tells: the deepest directory holding every file indexed on `dev` (their
/// common ancestor; if the mount point held files only in one subdirectory,
/// that subdirectory, which is on the mounted file system too, all
/// [`missing`] needs). `None` when every indexed file of the folder
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

/// Judges missing files, and files found on another device than recorded,
/// against the disk, caching what it stats and finds (one push round, or
/// one `status`).
pub struct Judge<'a> {
    root: &'a Path,
    index: &'a Index,
    /// `st_dev` of each directory looked at; `None`: missing.
    devs: HashMap<WirePath, Option<u64>>,
    /// The folder's own `st_dev`.
    root_dev: Option<u64>,
    /// [`mount_point`] by device.
    points: HashMap<u64, Option<WirePath>>,
    /// By recorded device: the device its file system has now, when a file
    /// recorded on it is at its path untouched on another device (`None`:
    /// no such evidence). Kept by the session across rounds
    /// ([`Judge::renumbering`]): once files are recorded again on the new
    /// number, the index holds the evidence no more.
    renumbered: HashMap<u64, Option<u64>>,
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
            renumbered: HashMap::new(),
        }
    }

    /// The same, knowing renumberings found before (`(recorded, now)`).
    pub fn with_renumbered(
        root: &'a Path,
        index: &'a Index,
        known: impl IntoIterator<Item = (u64, u64)>,
    ) -> Judge<'a> {
        let mut judge = Judge::new(root, index);
        judge
            .renumbered
            .extend(known.into_iter().map(|(was, now)| (was, Some(now))));
        judge
    }

    /// The renumberings found (`(recorded, now)`), to be kept.
    pub fn renumbering(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.renumbered
            .iter()
            .filter_map(|(was, now)| now.map(|now| (*was, now)))
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
    /// missing, the nearest directory above it that exists): `None` when
    /// that file system is the folder's own all the way up (no mount in
    /// between).
    fn covering_mount(&mut self, from: Option<WirePath>) -> Option<WirePath> {
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
                return Some(top);
            }
            top = top.parent()?;
        }
    }

    /// The top directory of the file system mounted inside the folder that
    /// holds `path` (or, when it is missing, the nearest directory above
    /// it); `None` when that is the folder's own file system.
    pub fn mount_of(&mut self, path: &WirePath) -> Option<WirePath> {
        self.covering_mount(path.parent())
    }

    /// Whether the file system recorded as device `recorded` is mounted
    /// now under the number `now`: a file recorded on it is at its path on
    /// `now`, untouched (the same inode, ctime and size; a copy on another
    /// drive has another ctime). At most [`RENUMBER_LOOKS`] files are
    /// looked at; a file still on `recorded` ends the search (the file
    /// system is there under its own number).
    pub fn is_renumbered(&mut self, recorded: u64, now: u64) -> bool {
        if let Some(found) = self.renumbered.get(&recorded) {
            return *found == Some(now);
        }
        let mut found = None;
        let mut looks = 0;
        for (path, entry) in self.index.iter() {
            let EntryKind::File { stat, .. } = entry.kind else {
                continue;
            };
            if stat.dev != recorded {
                continue;
            }
            looks += 1;
            if looks > RENUMBER_LOOKS {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(path.to_local(self.root)) else {
                continue;
            };
            if meta.dev() == recorded {
                break;
            }
            let there = Stat::of(&meta);
            if meta.is_file() && untouched(&stat, &there) {
                found = Some(there.dev);
                break;
            }
        }
        self.renumbered.insert(recorded, found);
        found == Some(now)
    }

    /// Whether the indexed file `path`, there now on device `now` with
    /// other content than recorded, is another file system's copy
    /// ([`joined`]) rather than an edit.
    pub fn joined_file(&mut self, path: &WirePath, now: u64) -> bool {
        let Some(EntryKind::File { stat, .. }) = self.index.get(path).map(|e| e.kind) else {
            return false;
        };
        let recorded = stat.dev;
        if recorded == 0 || recorded == now {
            return false;
        }
        let renumbered = self.is_renumbered(recorded, now);
        joined(recorded, now, renumbered)
    }

    /// Why the removal of the indexed file `path` (assumed missing) is not
    /// pushed: the file system holding it went away, or another one is at
    /// its place; `None` when its removal is the user's.
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
        let renumbered = self.is_renumbered(recorded, nearest);
        let covering = self.covering_mount(path.parent());
        let index = self.index;
        let point = self
            .points
            .entry(recorded)
            .or_insert_with(|| mount_point(index, recorded))
            .clone();
        let outside = match &point {
            Some(point) => self.existing_dev(point.parent()),
            None => None,
        };
        let place = Place {
            nearest,
            renumbered,
            mounted: covering.is_some(),
            outside,
        };
        let top = || top_of(path);
        match missing(recorded, place) {
            Missing::Removed => None,
            Missing::Replaced => Some(Parked {
                point: covering.unwrap_or_else(top),
                hidden: true,
                now: nearest,
                was: recorded,
            }),
            Missing::Gone => Some(Parked {
                point: point.unwrap_or_else(top),
                hidden: false,
                now: nearest,
                was: recorded,
            }),
        }
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
    pub fn gone_mounts(&mut self) -> BTreeMap<Parked, usize> {
        let index = self.index;
        let mut out = BTreeMap::new();
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
