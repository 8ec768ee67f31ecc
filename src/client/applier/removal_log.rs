//! The pull's log: the synced files a pull is removing, recorded before
//! each leaves the folder, so a crash cannot turn the client's own removal
//! into the user's (PROTOCOL.md: the path leaves what the client
//! records at the deletion's step; outside tester breaker21, F1), and,
//! in the same log and order, the files it places
//! ([`super::placement_log`], R-5.2.21).
//!
//! Why: the index is saved when a pull ends, not at every step. A client
//! killed (SIGKILL, OOM, power cut) after the applier removed X for a reply
//! that moves X to Y on the server, and before that save, started again
//! with X missing and X recorded as synced: a deletion made here, which
//! makes follow the move, so the re-pulled reply's Y was deleted
//! on every device (100 of 3,000 files of a `mv d e` on another device).
//!
//! The log, `.cloudservice/removing`, holds one record per removal
//! (and per placement: `P TAB …`, see [`super::placement_log`]):
//! `VERSION SP HASH SP PATH NUL` (the recorded version in decimal, the
//! recorded content's BLAKE3 in hex, the wire path, which never holds NUL).
//! It is appended before the file is moved out of the folder and removed
//! once the index is saved ([`clear`]). At start, [`settle`] drops from the
//! index every logged path that is missing and still recorded with exactly
//! the logged version and content: the pull removed it, the server already
//! holds the removal, and the repeated pull brings whatever replaced it. A
//! path recorded since with another version (the user made the file again
//! and pushed it) is not touched. The log is written, not synced, like the
//! temporary area's origin notes: it covers a process crash.

use super::placement_log::Placement;
use crate::client::fsutil::{check_path, now_ns};
use crate::client::index::{EntryKind, Index};
use crate::protocol::WirePath;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The log's name in the state folder.
pub const REMOVAL_LOG: &str = "removing";

/// The log beside the temporary area `tmp` (both in the state folder).
pub fn log_path(tmp: &Path) -> PathBuf {
    tmp.parent().unwrap_or(tmp).join(REMOVAL_LOG)
}

/// One record (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The removed path.
    pub path: WirePath,
    /// The version the index recorded for it.
    pub version: u64,
    /// The recorded content's BLAKE3, in hex.
    pub hash: String,
}

impl Removal {
    fn encode(&self) -> String {
        format!("{} {} {}\0", self.version, self.hash, self.path)
    }
}

/// Appends `removal` to the log at `log`. A record cut short by a full
/// disk is cut off again, so the record the retry appends (after the spare
/// is given up, [`crate::client::spare`]) is not glued to its torn start.
///
/// # Errors
/// The log cannot be written: the removal must then not be made.
pub fn append(log: &Path, removal: &Removal) -> io::Result<()> {
    append_record(log, &removal.encode())
}

/// Appends `records` (whole records, each ending with NUL: a removal's or
/// a placement's, [`super::placement_log`]) to the log at `log`, in one
/// write; cut back to where it was when the write fails (as [`append`]).
///
/// # Errors
/// The log cannot be written: what the records announce must then not be
/// done.
pub fn append_record(log: &Path, records: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let before = file.metadata()?.len();
    let written = file.write_all(records.as_bytes());
    if written.is_err() {
        let _ = file.set_len(before);
    }
    written
}

/// One record of the log, of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A synced file about to leave the folder.
    Removal(Removal),
    /// A file about to be placed ([`super::placement_log`]).
    Placement(Placement),
}

/// The records in `text`, in the order they were appended; a record
/// counts only once its NUL is written: a torn tail (a crash in the middle
/// of an append, which may hold a shorter path that parses) is skipped,
/// its step was not yet made; an unreadable record too.
pub fn records(text: &str) -> Vec<Record> {
    let complete = text.rfind('\0').map_or("", |end| &text[..end]);
    complete
        .split('\0')
        .filter_map(|record| match Placement::parse(record) {
            Some(placement) => Some(Record::Placement(placement)),
            None => parse_removal(record).map(Record::Removal),
        })
        .collect()
}

/// The removal records in `text` ([`records`]).
pub fn parse(text: &str) -> Vec<Removal> {
    records(text)
        .into_iter()
        .filter_map(|record| match record {
            Record::Removal(removal) => Some(removal),
            Record::Placement(_) => None,
        })
        .collect()
}

/// One removal record (without its NUL); `None` when it is not one.
fn parse_removal(record: &str) -> Option<Removal> {
    let mut parts = record.splitn(3, ' ');
    let version = parts.next()?.parse().ok()?;
    let hash = parts.next()?.to_owned();
    let path = WirePath::new(parts.next()?).ok()?;
    Some(Removal {
        path,
        version,
        hash,
    })
}

/// Whether the record `removal` is the pull's own removal of what `index`
/// still records, given whether the path is missing now: then the record
/// goes. Pure ([`settle`] gathers the facts).
pub fn was_pulls(index: &Index, removal: &Removal, missing: bool) -> bool {
    missing
        && index.get(&removal.path).is_some_and(|entry| {
            entry.version == removal.version
                && matches!(entry.kind, EntryKind::File { hash, .. } if hash.to_string() == removal.hash)
        })
}

/// What [`settle`] changed in the index.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Paths a crashed pull removed ([`was_pulls`]): no longer recorded.
    pub dropped: Vec<WirePath>,
    /// Paths a crashed pull placed ([`super::placement_log::settled`]):
    /// recorded as synced at the version placed.
    pub placed: Vec<WirePath>,
}

/// Replays, in order, the log at `log` of a pull that a crash cut off
/// before its index was saved: drops from `index` every path it removed
/// from the folder under `root` ([`was_pulls`]) and records every file it
/// placed there ([`super::placement_log::settled`]). The caller saves the
/// index, then [`clear`]s the log.
pub fn settle(log: &Path, root: &Path, index: &mut Index) -> Settled {
    let mut settled = Settled::default();
    let Ok(text) = fs::read_to_string(log) else {
        return settled;
    };
    for record in records(&text) {
        match record {
            Record::Removal(removal) => {
                // Through directory handles: a path too long for a
                // whole-path `lstat` is looked at too (breaker21 F3).
                let missing = matches!(crate::fsafe::stat(root, &removal.path), Ok(None))
                    || matches!(
                        fs::symlink_metadata(removal.path.to_local(root)),
                        Err(e) if e.kind() == io::ErrorKind::NotFound
                    );
                if was_pulls(index, &removal, missing) {
                    index.remove(&removal.path);
                    settled.dropped.push(removal.path);
                }
            }
            Record::Placement(placement) => {
                // Unreadable: left to the look, as without the log.
                let Ok(now) = check_path(root, &placement.path) else {
                    continue;
                };
                let indexed = index.get(&placement.path);
                if let Some(entry) =
                    super::placement_log::settled(&placement, indexed, now, now_ns())
                {
                    index.insert(placement.path.clone(), entry);
                    settled.placed.push(placement.path);
                }
            }
        }
    }
    settled
}

impl super::Applier<'_> {
    /// Logs the removal of the synced file `path` (at `local`) before it
    /// leaves the folder; nothing when it is not recorded as a file or is
    /// gone already (a deletion made here stays the user's).
    ///
    /// # Errors
    /// The log cannot be written (the removal must then not be made).
    pub(super) fn log_removal(
        &self,
        path: &WirePath,
        local: &Path,
    ) -> Result<(), crate::client::error::ClientError> {
        let Some(entry) = self.index.get(path).copied() else {
            return Ok(());
        };
        let EntryKind::File { hash, .. } = entry.kind else {
            return Ok(());
        };
        if fs::symlink_metadata(local).is_err() {
            return Ok(());
        }
        let log = log_path(self.tmp);
        let removal = Removal {
            path: path.clone(),
            version: entry.version,
            hash: hash.to_string(),
        };
        // On a full disk the spare is given up for it: the removal frees
        // more than its record takes (breaker27 F1).
        let state = self.tmp.parent().unwrap_or(self.tmp);
        crate::client::spare::with_room(state, crate::client::error::is_no_space, || {
            append(&log, &removal)
        })
        .map_err(|e| crate::client::error::ClientError::io(format!("write {}", log.display()), e))
    }
}

/// Removes the log once the index that records its removals is saved.
pub fn clear(log: &Path) {
    if let Err(e) = fs::remove_file(log) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", log.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fsutil::Stat;
    use crate::client::index::Entry;
    use crate::protocol::ContentHash;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    #[test]
    fn records_round_trip_with_any_legal_name_and_a_torn_tail_is_skipped() {
        let names = ["a.txt", "d/with space", "ünï/cödé", "x y z"];
        let mut text = String::new();
        let mut want = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let removal = Removal {
                path: p(name),
                version: i as u64 * 1000 + 7,
                hash: ContentHash::of(name.as_bytes()).to_string(),
            };
            text.push_str(&removal.encode());
            want.push(removal);
        }
        assert_eq!(parse(&text), want);
        // A crash in the middle of the next append.
        text.push_str("12 abc");
        assert_eq!(parse(&text), want);
        assert_eq!(parse(""), Vec::new());
    }

    #[test]
    fn only_a_missing_path_recorded_exactly_as_logged_goes() {
        let hash = ContentHash::of(b"x");
        let mut index = Index::new();
        index.insert(p("x"), Entry::synced_file(Stat::default(), hash, 5));
        let logged = |version, hash: ContentHash| Removal {
            path: p("x"),
            version,
            hash: hash.to_string(),
        };
        assert!(was_pulls(&index, &logged(5, hash), true));
        assert!(!was_pulls(&index, &logged(5, hash), false), "still there");
        assert!(
            !was_pulls(&index, &logged(4, hash), true),
            "recorded again since (another version)"
        );
        assert!(
            !was_pulls(&index, &logged(5, ContentHash::of(b"y")), true),
            "other content"
        );
        let other = Removal {
            path: p("y"),
            ..logged(5, hash)
        };
        assert!(!was_pulls(&index, &other, true), "not recorded");
    }
}
