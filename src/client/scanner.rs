//! Finding local changes: walk (part of) the folder, compare it with the
//! index, and turn the differences into the pushes that reproduce them on the
//! server — renames detected by content, deletions included. Runs at start-up
//! over the whole folder (offline changes) and later over the paths the
//! watcher reported.
//!
//! # Layout
//! - this file: the [`Scanner`] (what it remembers between looks) and the
//!   [`Plan`] a look returns;
//! - [`walk`]: reading the folder (or part of it) into disk entries, and
//!   what is skipped on the way;
//! - [`compare`]: one look, the disk against the index, into ordered pushes;
//! - [`uploads`]: what each file on disk becomes (an upload, a stream, a
//!   mode change, an index refresh, "still being written");
//! - [`unsyncable`]: which entries cannot be synced, and why, as `status`
//!   words it;
//! - [`hashing`]: reading a file for its hash (and chunk list) while
//!   checking it did not change meanwhile;
//! - [`scope`], [`settle`], [`ignored_moves`]: what a look covers, when a
//!   file is done being written, moves through an ignored name.

use super::fsutil::Stat;
use super::hardlinks::HardLinks;
use super::ignore::IgnoreRules;
use super::index::Entry;
use crate::chunk::Manifest;
use crate::client::status::heartbeat::Heartbeat;
use crate::protocol::{UserId, WirePath};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod compare;
mod hashing;
mod ignored_moves;
mod scope;
mod settle;
mod stranded;
pub mod unsyncable;
mod uploads;
mod walk;
pub use hashing::MAX_KEPT_CHUNKS;
use ignored_moves::IgnoredMoves;
pub use scope::Scope;
use settle::Settle;

/// How long a file without a close-after-write event must be seen unchanged
/// before it is pushed (see [`settle`]); also the retry delay for files
/// still being written.
pub const SETTLE: Duration = settle::QUIET;

pub use super::plan::{DiskEntry, Op};

/// The result of comparing the folder with the index.
#[derive(Debug, Default)]
pub struct Plan {
    /// Pushes, in sending order.
    pub ops: Vec<Op>,
    /// Files whose stat changed but whose content did not: index updates only.
    pub refreshed: Vec<(WirePath, Entry)>,
    /// Paths still being written or that changed while hashed: look again later.
    pub unstable: Vec<WirePath>,
    /// The plan holds only directory renames; everything else in the same
    /// scopes must be planned again once they are acknowledged (the server
    /// gives moved entries new versions).
    pub renames_only: bool,
}

/// Walks the folder and compares; remembers which odd entries it already
/// warned about so a rescan does not repeat itself.
#[derive(Debug)]
pub struct Scanner {
    root: PathBuf,
    warned: HashSet<PathBuf>,
    /// Paths that could not be read during the last scan: what the index
    /// lists below them is unknown, not deleted.
    unreadable: Vec<WirePath>,
    /// What cannot be synced now, by path under the folder (a name the
    /// protocol cannot carry is no [`WirePath`]), with why: what anyone can
    /// see ([`unsyncable`]: such a name, a path too deep, a symlink, a FIFO)
    /// and what only this process can (a file it may not read, a path too
    /// long with the folder's in front). Published in the status file, so
    /// the folder is not in sync while any is here; warned about once per
    /// state (a path that becomes syncable again is warned about anew if it
    /// stops being so).
    skipped: BTreeMap<PathBuf, String>,
    /// Files waiting to be seen unchanged.
    settle: Settle,
    /// Indexed files whose inode is at an ignored name: a move through it
    /// may be under way ([`ignored_moves`]).
    ignored_moves: IgnoredMoves,
    /// What is not synced: neither walked nor compared with the index.
    rules: IgnoreRules,
    /// Directories that directly hold an ignored entry (last scan).
    holds_ignored: HashSet<WirePath>,
    /// Chunk lists of the files hashed by the last plan, cut in the same
    /// read as their hash (issue 11: a delta upload does not read the file
    /// a second time), by path, with the stat they were read at. Taken by
    /// [`Scanner::take_manifest`]; dropped at the next plan.
    manifests: HashMap<WirePath, (Stat, Manifest)>,
    /// Chunk entries held in `manifests` (bounded by [`MAX_KEPT_CHUNKS`]).
    kept_chunks: usize,
    /// Beaten as the walk and the hashing advance (a long scan is not a
    /// hung client): [`crate::client::status::heartbeat`].
    heart: Option<Heartbeat>,
    /// New files may be planned as [`Op::Stream`] (the server takes
    /// protocol version 6, PROTOCOL.md §13.8): not read by the plan.
    streams: bool,
    /// This device's user: a running device of the same user found below
    /// the folder stops the scan ([`crate::client::nesting::runs_inside`]).
    user: Option<UserId>,
    /// Such a device's folder, found by the walk in progress.
    nested_device: Option<PathBuf>,
    /// The files seen with more than one name, which a write through a
    /// name outside the folder changes without an event here (breaker21
    /// F2): looked at again by [`Scanner::linked_pass`].
    links: HardLinks,
    /// The entries whose paths the protocol cannot carry: where a synced
    /// file moved out of the protocol's reach may be ([`stranded`]).
    stranded: stranded::StrandedRoots,
}

impl Scanner {
    /// Beats `heart` as scans advance.
    pub fn set_heartbeat(&mut self, heart: Heartbeat) {
        self.heart = Some(heart);
    }

    /// The user this folder is synced for (checked against devices below it).
    pub fn set_user(&mut self, user: UserId) {
        self.user = Some(user);
    }

    /// A scanner for the folder `root`.
    pub fn new(root: &Path) -> Scanner {
        Scanner {
            root: root.to_path_buf(),
            warned: HashSet::new(),
            unreadable: Vec::new(),
            skipped: BTreeMap::new(),
            settle: Settle::default(),
            ignored_moves: IgnoredMoves::default(),
            rules: IgnoreRules::default(),
            holds_ignored: HashSet::new(),
            manifests: HashMap::new(),
            kept_chunks: 0,
            heart: None,
            streams: false,
            user: None,
            nested_device: None,
            links: HardLinks::default(),
            stranded: stranded::StrandedRoots::default(),
        }
    }

    /// Looks again, when due, at a batch of the files seen with more than
    /// one name ([`HardLinks::pass`]); returns those that changed, for the
    /// pending round as a watcher's event would bring them.
    pub fn linked_pass(&mut self, now: std::time::Instant) -> Vec<WirePath> {
        self.links.pass(&self.root, now)
    }

    /// Whether new files are planned as one-read uploads ([`Op::Stream`],
    /// PROTOCOL.md §13.8): off until the session knows the server may take
    /// them, and for good once a server refused version 6.
    pub fn set_streams(&mut self, on: bool) {
        self.streams = on;
    }

    /// Replaces the ignore rules (`.cloudignore` changed).
    pub fn set_rules(&mut self, rules: IgnoreRules) {
        self.rules = rules;
    }

    /// Logs `skipping PATH: WHY` the first time `path` is skipped.
    pub fn warn_once(&mut self, path: &Path, why: &str) {
        if self.warned.insert(path.to_path_buf()) {
            log::warn!("skipping {}: {why}", path.display());
        }
    }

    /// What this scanner found it cannot sync ([`Scanner::skip`]): path (as
    /// `status` shows it, [`unsyncable::shown`]) and why, in path order.
    pub fn not_synced(&self) -> impl Iterator<Item = (String, &String)> {
        self.skipped
            .iter()
            .map(|(rel, why)| (unsyncable::shown(rel), why))
    }

    /// Records that `path` cannot be synced now, and why; warns once
    /// (`skipping PATH: why`).
    fn skip(&mut self, path: &WirePath, why: String) {
        self.skip_local(Path::new(path.as_str()), why);
    }

    /// [`Scanner::skip`] for the entry at `rel` under the folder, whose
    /// name may be one the protocol cannot carry.
    fn skip_local(&mut self, rel: &Path, why: String) {
        self.warn_once(&self.root.join(rel), &why);
        self.skipped.insert(rel.to_path_buf(), why);
    }

    /// The watcher reported `entry` (under the folder), the first part of
    /// a path whose name the protocol cannot carry: recorded while it is
    /// there, as a walk would; forgotten, with what was recorded below it,
    /// once it is gone (no look at a [`WirePath`] can cover it, so none
    /// would notice).
    pub fn unsyncable_seen(&mut self, entry: &Path) {
        let Ok(rel) = entry.strip_prefix(&self.root).map(Path::to_path_buf) else {
            return;
        };
        if entry.symlink_metadata().is_ok() {
            if let Some(why) = unsyncable::name_why(&rel) {
                self.skip_local(&rel, why.to_string());
            }
            return;
        }
        let gone: BTreeMap<PathBuf, String> = self
            .skipped
            .extract_if(.., |p, _| p.starts_with(&rel))
            .collect();
        self.forget_fixed(gone);
    }
}

#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod type_change_tests;
