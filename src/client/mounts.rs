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
//! downloaded onto it, [`Missing::Replaced`]).
//!
//! The same device number is not always the same file system (breaker19
//! G1: a tmpfs re-created gets the number just freed, another image on the
//! same loop device the same `7:N`): the identity recorded per number
//! ([`ident`]: file system ID, kind, unique mount ID) tells them apart. A
//! file system mounted again under another device number (a USB disk given
//! another one, a network or FUSE mount, a re-created btrfs subvolume) is
//! still the recorded one when it has the same file system ID, or (none
//! known) when a file recorded on it is at its path untouched (same inode,
//! ctime and size) on the new device ([`Judge`]'s renumbering evidence).
//! On the recorded file system, the file-level rule [`older_state`] (no
//! mount knowledge needed) catches an older state of it, a block-level
//! image of the drive (G2), whose file system ID and untouched files are
//! the drive's: a missing file whose nearest directory has not changed
//! since the file was synced was not removed from it ([`Missing::Older`]),
//! a different file not changed since was not edited.
//!
//! The file-level rule alone is not enough (outside tester breaker20 F1):
//! anything written on the image before the client looks (a file made in a
//! directory, one at the drive's top, an old file appended to, or the
//! client's own removal of a staging directory left on the image) makes
//! that directory or file newer than the records, and its missing files
//! looked removed, its old files edited. So a file system that shows an
//! older state anywhere ([`older_state`]: a recorded file there with a ctime
//! before the recorded one, a missing one whose nearest directory has one)
//! is held as a whole for the rest of the run, per mount ([`FsKey`]): every
//! missing file on it is [`Missing::Older`], every file on it with other
//! content a copy. The client looks before it touches the folder at start
//! ([`Judge::older_now`], before its staging directories are tidied).
//!
//! (Before, "a file system mounted anew" counted as the recorded one and
//! its missing files as removals: another drive swapped in deleted the
//! first drive's files everywhere, outside tester breaker18, F6.)
//!
//! A file that is there but on another file system than recorded, with
//! other content, or not changed since it was synced ([`joined`]), is not
//! an edit either: it is the other
//! file system's copy (an older backup drive mounted over the directory,
//! F10), handled as a folder joining: both are kept.
//!
//! No index format change: the device and ctime have been in the records
//! since format 2 (a record without a device, 0, is never held by device;
//! one without a ctime, 0, never by the ctime rule); the identities are a
//! sidecar (`.cloudservice/mounts`; without it, numbers alone decide, as
//! before, until they are recorded).
//!
//! [`missing`] and [`joined`] are the decisions, without I/O; [`Judge`]
//! gathers their inputs from the disk and the index for a push round or
//! `status`.

pub mod ident;

use super::fsutil::Stat;
use super::index::{EntryKind, Index};
use crate::protocol::WirePath;
use ident::{same_fs, FsIdent, Sameness};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How many files recorded on a device [`Judge`] looks at, at most, for
/// evidence that the device's file system is mounted under another number.
const RENUMBER_LOOKS: usize = 256;

/// How many recorded files [`Judge`] looks at, at most, for evidence that
/// a file system is an older state (once per mount and run: a full
/// comparison stats as many).
const OLDER_LOOKS: usize = 1_000_000;

/// One mount of a file system: its device number and unique mount ID (0
/// where the kernel gives none: then every mount at that number is one).
/// An older state is held per mount ([`Judge::held_older`]): the drive
/// mounted back in the image's place is a new mount, judged anew.
pub type FsKey = (u64, u64);

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
    /// The place is on the recorded file system (as far as device and
    /// file system ID tell) but its nearest directory has not changed
    /// since the file was synced ([`older_state`]): an older state of it
    /// (a block-level image of the drive, breaker19 G2), or the clock went
    /// back. Not a removal; handled as [`Missing::Replaced`].
    Older,
}

/// What the disk shows where a missing file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// `st_dev` of the nearest directory above the file that exists now.
    pub nearest: u64,
    /// `nearest` is the recorded file system: the same device number and
    /// no other file system ID or mount ([`ident::same_fs`]), or another
    /// number with the same file system ID or renumbering evidence (see
    /// [`Judge`]).
    pub same: bool,
    /// That directory's ctime is before the ctime recorded for the file
    /// ([`older_state`]).
    pub older: bool,
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
/// . When the place is not on the recorded file system: gone with
/// its file system when the place shows the file system around the
/// recorded one's mount point, or (the place being on a file system
/// mounted inside the folder) replaced by another file system. On it (or
/// the record has no device): a removal, unless the place is an older
/// state than the record ([`Missing::Older`]).
pub fn missing(recorded: u64, place: Place) -> Missing {
    if recorded != 0 && !place.same {
        if place.mounted && place.outside != Some(place.nearest) {
            Missing::Replaced
        } else {
            Missing::Gone
        }
    } else if place.older {
        Missing::Older
    } else {
        Missing::Removed
    }
}

/// The file-level rule (R-5.6.9, breaker19 G2), needing no mount knowledge:
/// whether something with ctime `now` cannot have changed since a file
/// was synced with ctime `recorded`. A removal from a directory, a rename
/// into or out of it, sets the directory's ctime to the time of the
/// change, and so does every write to a file; no unprivileged program can
/// set a ctime back. So a missing file's nearest existing directory whose
/// ctime is before the file's recorded one was not changed since the
/// file was synced (the file was not removed from it: it is an older state,
/// an image or another file system); a file there with other content and
/// such a ctime was not edited (a stale copy). Only a ctime *before* the
/// recorded one counts: timestamps are coarse (a kernel tick of 1-10 ms,
/// FAT's 2 s), and on Linux 6.13+ a change after a fine-grained one may get
/// exactly that timestamp (the multigrain floor), so a rename or removal in
/// the same tick as a pulled change (or the write the record saw) has an
/// equal ctime; taking that as older brought a renamed directory's old
/// name back everywhere (e2e_exec_lost, CI of 28a351d). Timestamps never
/// go backwards, so a later change is never *before*; an image whose
/// directory has the very timestamp of a file written after the image was
/// taken would have to be made within one tick of that write. A 0
/// (unknown) on either side proves nothing. A clock stepped
/// back makes a real removal look older: it is held and the file comes
/// back from the server (nothing lost); an edit so made is kept as a
/// conflict copy beside the server's version.
pub fn older_state(recorded: i64, now: i64) -> bool {
    recorded != 0 && now != 0 && now < recorded
}

/// Whether the file system of a place, the recorded one (`same`), is held
/// as an older state: once one piece of evidence was found on it this run
/// (`found`: a recorded file there, or the nearest directory of a missing
/// one, whose ctime is before the one recorded for the file,
/// [`older_state`]), the whole of it is, whatever changed on it since
/// (breaker20 F1). On the live file system ctimes only grow, so only an
/// image taken before that sync, or a clock stepped back, shows it.
pub fn held_as_older(same: bool, found: bool) -> bool {
    same && found
}

/// Why a file is not synced from the disk as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// The recorded file system went away ([`Missing::Gone`]).
    Gone,
    /// Another file system is at the place ([`Missing::Replaced`]).
    Other,
    /// An older state of the recorded one ([`Missing::Older`]).
    Older,
}

/// Whether a synced file recorded on device `recorded` with ctime
/// `recorded_ctime`, there now with content other than recorded and ctime
/// `now_ctime`, is a copy rather than an edit, and why: it is on another
/// file system than the one it was synced on (`same` false: breaker18
/// F10, breaker19 G1), or its ctime says it was not changed since it was
/// synced ([`older_state`], G2). Such a file is not pushed over the
/// server's version; both are kept.
pub fn joined(recorded: u64, same: bool, recorded_ctime: i64, now_ctime: i64) -> Option<Why> {
    if recorded != 0 && !same {
        Some(Why::Other)
    } else if older_state(recorded_ctime, now_ctime) {
        Some(Why::Older)
    } else {
        None
    }
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
    /// The mount point: for a replaced file (or an older state), the top
    /// directory of the file system now there (the file's top directory on
    /// the folder's own); for a gone one, where the recorded one was.
    pub point: WirePath,
    /// What happened there.
    pub why: Why,
    /// The device now at the place.
    pub now: u64,
    /// The device the files were recorded on.
    pub was: u64,
}

impl Parked {
    /// Something else than the recorded file system's files is at the
    /// place (another file system, an older state): the server's files are
    /// downloaded onto it; else the recorded one went away.
    pub fn hidden(&self) -> bool {
        self.why != Why::Gone
    }
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
    /// `st_dev` and ctime of each directory looked at; `None`: missing.
    dirs: HashMap<WirePath, Option<(u64, i64)>>,
    /// The folder's own `st_dev` and ctime.
    root_meta: Option<(u64, i64)>,
    /// [`mount_point`] by device.
    points: HashMap<u64, Option<WirePath>>,
    /// By recorded device: the device its file system has now, when a file
    /// recorded on it is at its path untouched (`None`: no such evidence).
    /// Kept by the session across rounds ([`Judge::renumbering`]): once
    /// files are recorded again on the new number, the index holds the
    /// evidence no more.
    renumbered: HashMap<u64, Option<u64>>,
    /// The identities recorded by device number (the sidecar, [`ident`]).
    idents: &'a BTreeMap<u64, FsIdent>,
    /// The identity of the file system at each device number looked at now.
    now_idents: HashMap<u64, Option<FsIdent>>,
    /// Per mount: whether it shows an older state ([`older_state`]). Kept by
    /// the session for the run ([`Judge::older_verdicts`]).
    older: HashMap<FsKey, bool>,
    /// Whether this judge looked for that evidence already.
    scanned: bool,
}

/// What a full comparison found of one device number's file system
/// ([`Judge::survey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surveyed {
    /// No identity recorded for it yet.
    New(FsIdent),
    /// The recorded file system (its identity as it is now).
    Same(FsIdent),
    /// Another file system has the number now.
    Other(FsIdent),
}

impl<'a> Judge<'a> {
    /// A judge for the folder `root`, its index and the identities
    /// recorded for its devices.
    pub fn new(root: &'a Path, index: &'a Index, idents: &'a BTreeMap<u64, FsIdent>) -> Judge<'a> {
        Judge {
            root,
            index,
            dirs: HashMap::new(),
            root_meta: std::fs::metadata(root)
                .ok()
                .map(|m| (m.dev(), ctime_ns(&m))),
            points: HashMap::new(),
            renumbered: HashMap::new(),
            idents,
            now_idents: HashMap::new(),
            older: HashMap::new(),
            scanned: false,
        }
    }

    /// The verdicts of [`Judge::held_older`] known before (the session's,
    /// or those found at start before the folder was touched).
    pub fn with_older(mut self, known: impl IntoIterator<Item = (FsKey, bool)>) -> Judge<'a> {
        self.older.extend(known);
        self
    }

    /// The verdicts to keep for the run: all of those of mounts with a
    /// unique ID; for one without (every mount at its number is one), only
    /// an older state (held on the safe side), so a "live" verdict is not
    /// kept for an image mounted later at the same number.
    pub fn older_verdicts(&self) -> impl Iterator<Item = (FsKey, bool)> + '_ {
        self.older
            .iter()
            .filter(|((_, mount), older)| *mount != 0 || **older)
            .map(|(key, older)| (*key, *older))
    }

    /// Looks for the evidence on every file system the recorded files are
    /// at now, before anything is changed in the folder (at start: the
    /// client's own tidying of a staging directory left on a drive would
    /// make the drive's top newer, F1 MODE=staging): the verdicts, for
    /// [`Judge::with_older`].
    pub fn older_now(&mut self) -> Vec<(FsKey, bool)> {
        self.scan_older();
        self.older_verdicts().collect()
    }

    /// The key of the mount at device `dev` (`at` being a path on it).
    fn key(&mut self, dev: u64, at: &Path) -> FsKey {
        (dev, self.ident_now(dev, at).map_or(0, |id| id.mount))
    }

    /// Whether the file system at device `dev` (`at` a path on it), being
    /// the recorded one of the file in question, is held as an older state
    /// (see the module): looked up, or looked for once per judge.
    fn held_older(&mut self, dev: u64, at: &Path) -> bool {
        let key = self.key(dev, at);
        if let Some(older) = self.older.get(&key) {
            return *older;
        }
        if !self.scanned {
            self.scan_older();
        }
        *self.older.entry(key).or_insert(false)
    }

    /// Looks at every recorded file (at most [`OLDER_LOOKS`]) for
    /// [`older_state`] evidence on the recorded file system where it is now: the
    /// file itself when there, else its nearest existing directory.
    fn scan_older(&mut self) {
        self.scanned = true;
        let index = self.index;
        let records = index
            .iter()
            .filter_map(|(path, entry)| match entry.kind {
                EntryKind::File { stat, .. } if stat.dev != 0 && stat.ctime_ns != 0 => {
                    Some((path, stat))
                }
                _ => None,
            })
            .take(OLDER_LOOKS);
        for (path, stat) in records {
            let local = path.to_local(self.root);
            let (dev, ctime, at) = match std::fs::symlink_metadata(&local) {
                Ok(meta) if meta.is_file() => (meta.dev(), ctime_ns(&meta), local),
                Ok(_) => continue,
                Err(_) => match self.existing(path.parent()) {
                    Some((dir, dev, ctime)) => (
                        dev,
                        ctime,
                        dir.map_or_else(|| self.root.to_path_buf(), |d| d.to_local(self.root)),
                    ),
                    None => continue,
                },
            };
            if !self.is_recorded_fs(stat.dev, dev, &at) {
                continue;
            }
            let key = self.key(dev, &at);
            let found = self.older.entry(key).or_insert(false);
            if older_state(stat.ctime_ns, ctime) && !*found {
                *found = true;
                log::debug!(
                    "{path}: its place is older than its record (ctime {ctime} < {}): the file system at device {} is an older state",
                    stat.ctime_ns,
                    dev_name(dev)
                );
            }
        }
    }

    /// The same, knowing renumberings found before (`(recorded, now)`).
    pub fn with_renumbered(
        root: &'a Path,
        index: &'a Index,
        idents: &'a BTreeMap<u64, FsIdent>,
        known: impl IntoIterator<Item = (u64, u64)>,
    ) -> Judge<'a> {
        let mut judge = Judge::new(root, index, idents);
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

    /// The device and ctime of the entry at `path` (not followed if a
    /// symlink), `None` when it cannot be looked at.
    fn meta(&mut self, path: &WirePath) -> Option<(u64, i64)> {
        if let Some(meta) = self.dirs.get(path) {
            return *meta;
        }
        let meta = std::fs::symlink_metadata(path.to_local(self.root))
            .ok()
            .map(|m| (m.dev(), ctime_ns(&m)));
        self.dirs.insert(path.clone(), meta);
        meta
    }

    fn dev(&mut self, path: &WirePath) -> Option<u64> {
        self.meta(path).map(|(dev, _)| dev)
    }

    /// `from` or, when it is missing, the nearest directory above it that
    /// exists (the folder at the top, `from` being `None`), with its device
    /// and ctime; `None` when the folder itself cannot be looked at.
    fn existing(&mut self, from: Option<WirePath>) -> Option<(Option<WirePath>, u64, i64)> {
        let mut at = from;
        while let Some(dir) = at {
            if let Some((dev, ctime)) = self.meta(&dir) {
                return Some((Some(dir), dev, ctime));
            }
            at = dir.parent();
        }
        self.root_meta.map(|(dev, ctime)| (None, dev, ctime))
    }

    fn existing_dev(&mut self, from: Option<WirePath>) -> Option<u64> {
        self.existing(from).map(|(_, dev, _)| dev)
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
                None => self.root_meta.map(|(dev, _)| dev),
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
    /// drive has another ctime).
    pub fn is_renumbered(&mut self, recorded: u64, now: u64) -> bool {
        self.evidence(recorded) == Some(now)
    }

    /// The device on which a file recorded on `recorded` is at its path
    /// untouched ([`untouched`]); at most [`RENUMBER_LOOKS`] files are
    /// looked at.
    fn evidence(&mut self, recorded: u64) -> Option<u64> {
        if let Some(found) = self.renumbered.get(&recorded) {
            return *found;
        }
        let mut found = None;
        let files = self
            .index
            .iter()
            .filter_map(|(path, entry)| match entry.kind {
                EntryKind::File { stat, .. } if stat.dev == recorded => Some((path, stat)),
                _ => None,
            });
        for (path, stat) in files.take(RENUMBER_LOOKS) {
            let Ok(meta) = std::fs::symlink_metadata(path.to_local(self.root)) else {
                continue;
            };
            let there = Stat::of(&meta);
            if meta.is_file() && untouched(&stat, &there) {
                found = Some(there.dev);
                break;
            }
        }
        self.renumbered.insert(recorded, found);
        found
    }

    /// The identity of the file system at device `dev`, read at `at` (a
    /// path on it) the first time.
    fn ident_now(&mut self, dev: u64, at: &Path) -> Option<FsIdent> {
        self.now_idents
            .entry(dev)
            .or_insert_with(|| FsIdent::of(at))
            .clone()
    }

    /// Whether the file system at device `now` (`at` being a path on it) is
    /// the one recorded as device `recorded`: by the identities
    /// where one was recorded ([`ident::same_fs`]; "unsure" needs a
    /// recorded file found untouched on it), else by the device number or
    /// the renumbering evidence.
    fn is_recorded_fs(&mut self, recorded: u64, now: u64, at: &Path) -> bool {
        let Some(was) = self.idents.get(&recorded).cloned() else {
            return recorded == now || self.is_renumbered(recorded, now);
        };
        let Some(is) = self.ident_now(now, at) else {
            // Not readable now: by number, as without a record.
            return recorded == now || self.is_renumbered(recorded, now);
        };
        match same_fs(&was, &is) {
            Sameness::Same => true,
            Sameness::Other => false,
            Sameness::Unsure => self.is_renumbered(recorded, now),
        }
    }

    /// Whether the indexed file `path`, there now as `there` with other
    /// content than recorded, is a copy rather than an edit ([`joined`]),
    /// and why.
    pub fn joined_file(&mut self, path: &WirePath, there: &Stat) -> Option<Why> {
        let Some(EntryKind::File { stat, .. }) = self.index.get(path).map(|e| e.kind) else {
            return None;
        };
        let recorded = stat.dev;
        let at = path.to_local(self.root);
        let same = recorded == 0 || self.is_recorded_fs(recorded, there.dev, &at);
        joined(recorded, same, stat.ctime_ns, there.ctime_ns).or_else(|| {
            let found = same && self.held_older(there.dev, &at);
            held_as_older(same, found).then_some(Why::Older)
        })
    }

    /// Why the removal of the indexed file `path` (assumed missing) is not
    /// pushed: the file system holding it went away, another one is at its
    /// place, or the place is an older state; `None` when its removal is
    /// the user's.
    pub fn gone_file(&mut self, path: &WirePath) -> Option<Parked> {
        let EntryKind::File { stat, .. } = self.index.get(path)?.kind else {
            return None;
        };
        let recorded = stat.dev;
        let (dir, nearest, ctime) = self.existing(path.parent())?;
        let at = match &dir {
            Some(dir) => dir.to_local(self.root),
            None => self.root.to_path_buf(),
        };
        let same = recorded == 0 || self.is_recorded_fs(recorded, nearest, &at);
        let older = older_state(stat.ctime_ns, ctime) || {
            let found = same && self.held_older(nearest, &at);
            held_as_older(same, found)
        };
        if same && !older {
            // The common case, a file removed from its own directory: no
            // look at the index.
            return None;
        }
        let covering = self.covering_mount(path.parent());
        let index = self.index;
        let (point, outside) = if same {
            (None, None)
        } else {
            // Where it was mounted, as recorded with its identity (F2), or
            // as far as the index tells.
            let recorded_point = self.idents.get(&recorded).and_then(|id| id.point.clone());
            let point = match recorded_point {
                Some(point) => Some(point),
                None => self
                    .points
                    .entry(recorded)
                    .or_insert_with(|| mount_point(index, recorded))
                    .clone(),
            };
            let outside = match &point {
                Some(point) => self.existing_dev(point.parent()),
                None => None,
            };
            (point, outside)
        };
        let place = Place {
            nearest,
            same,
            older,
            mounted: covering.is_some(),
            outside,
        };
        let top = || top_of(path);
        let parked = |point, why| {
            Some(Parked {
                point,
                why,
                now: nearest,
                was: recorded,
            })
        };
        match missing(recorded, place) {
            Missing::Removed => None,
            Missing::Replaced => parked(covering.unwrap_or_else(top), Why::Other),
            Missing::Older => parked(covering.unwrap_or_else(top), Why::Older),
            Missing::Gone => parked(point.unwrap_or_else(top), Why::Gone),
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

    /// Each device number files are recorded on, whose file system is at
    /// its place now (a file recorded on it is there on that number), with
    /// its identity as it is and how it compares with the recorded one: for
    /// the session to record after a full comparison ([`ident`]). At most
    /// [`RENUMBER_LOOKS`] files are looked at per device.
    pub fn survey(&mut self) -> Vec<(u64, Surveyed)> {
        let mut looks: BTreeMap<u64, usize> = BTreeMap::new();
        let mut found: BTreeMap<u64, FsIdent> = BTreeMap::new();
        for (path, entry) in self.index.iter() {
            let EntryKind::File { stat, .. } = entry.kind else {
                continue;
            };
            if stat.dev == 0 || found.contains_key(&stat.dev) {
                continue;
            }
            let n = looks.entry(stat.dev).or_insert(0);
            if *n >= RENUMBER_LOOKS {
                continue;
            }
            *n += 1;
            let local = path.to_local(self.root);
            let on_it =
                std::fs::symlink_metadata(&local).is_ok_and(|m| m.is_file() && m.dev() == stat.dev);
            if !on_it {
                continue;
            }
            if let Some(id) = self.ident_now(stat.dev, &local) {
                // Its mount point, recorded with it (F2).
                let point = self.mount_of(path);
                found.insert(stat.dev, FsIdent { point, ..id });
            }
        }
        let mut out = Vec::new();
        for (dev, now) in found {
            let verdict = match self.idents.get(&dev) {
                None => Surveyed::New(now),
                Some(was) => match same_fs(was, &now) {
                    Sameness::Same => Surveyed::Same(now),
                    Sameness::Other => Surveyed::Other(now),
                    Sameness::Unsure if self.evidence(dev) == Some(dev) => Surveyed::Same(now),
                    Sameness::Unsure => Surveyed::Other(now),
                },
            };
            out.push((dev, verdict));
        }
        out
    }
}

/// The ctime of `meta` in nanoseconds since the epoch.
fn ctime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
}

#[cfg(test)]
mod tests;
