//! The files a pull puts in the folder, noted before each appears there,
//! so a crash cannot turn the client's own download into a file the user
//! added (PROTOCOL.md; outside tester breaker27, F0).
//!
//! Why: the index is saved when a pull ends, not at every step, and the
//! cursor with it. A client killed (SIGKILL, OOM, power cut) while placing
//! a large pull started again with the files it had placed on disk and
//! not in the index; the repeated pull, from the old cursor, then met them
//! as files added here. If another device had deleted, renamed or edited
//! them meanwhile, the addition beat the deletion ("kept …: changed here,
//! the server deleted it", uploaded back on every device), the rename left
//! duplicates at the old paths and the edits became conflict copies (65 to
//! 3,120 files per kill).
//!
//! A placement record is `P TAB LINE NUL`, where LINE is the index's own
//! `F` line for the entry ([`entry_line`]: version, the placed file's
//! identity — size, mtime, ctime, device, inode, birth time — the bit to
//! record, hash, path). It is appended before the rename that puts the file
//! at its path, with the identity of the file renamed (a rename keeps the
//! inode), so a crash at any instant leaves a record for every placed file;
//! a record whose rename did not happen names an inode that is not at its
//! path and is ignored. A directory the pull makes is noted (a `D` line)
//! before it is made; directories moved whole note each entry
//! below at its new path the same way, with its indexed record.
//!
//! Records go to the same log as the pull's removals
//! ([`super::removal_log`], `.cloudservice/removing`), not to a sibling
//! file: the two are replayed in the order they were made, and the order
//! matters (a file placed and then removed by the same unsaved pull must end
//! unrecorded; a swap of two directories notes removals at paths it then
//! fills). The log is written, not synced, like the removals and the
//! temporary area's origin notes: a process crash keeps the page cache;
//! and since each record is appended before its rename, a journaling file
//! system that orders metadata (ext4's default) does not commit the rename
//! without the record's size. It is removed once the index is saved.
//!
//! At start, [`settled`] decides each record: the path holds a regular file
//! with the logged inode (the very file placed) and the index holds nothing
//! newer there → the entry is recorded as synced at the logged version, as
//! the save would have, and the repeated pull's deletion, rename or edit
//! applies to it as to any synced file. A file changed since it was placed
//! (in place: same inode, other size or mtime) is recorded with an unknown
//! mtime, so the next look hashes it and pushes the edit on the placed
//! version. Anything else (nothing there, another file renamed over it) is
//! left unrecorded, as without the log. A directory is recorded when the
//! path is a directory (the pull's, or one it recorded as it was).

use super::removal_log::{self, log_path};
use crate::client::detect::seal_at;
use crate::client::error::ClientError;
use crate::client::fsutil::{Local, Stat};
use crate::client::index::{entry_line, parse_entry_line, Entry, EntryKind};
use crate::protocol::WirePath;

/// A placement record's first field.
const TAG: &str = "P\t";

/// One placement (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Where the file goes.
    pub path: WirePath,
    /// What the index records for it once placed: the server's version and
    /// hash, the bit to record, and the identity of the file renamed there.
    pub entry: Entry,
}

impl Placement {
    /// The record as appended (`P TAB LINE NUL`).
    pub fn encode(&self) -> String {
        format!("{TAG}{}\0", entry_line(&self.path, &self.entry))
    }

    /// The placement in one record (without its NUL); `None` when it is
    /// not one (a removal) or torn.
    pub fn parse(record: &str) -> Option<Placement> {
        let (path, entry) = parse_entry_line(record.strip_prefix(TAG)?)?;
        Some(Placement { path, entry })
    }
}

/// Pure: what to record at a logged placement's path at start, given what
/// the index holds there (`indexed`), what the path holds now (`now`) and
/// the time (`at_ns`, to seal a racy stat); `None`: leave the index as it
/// is (see the module comment).
pub fn settled(
    logged: &Placement,
    indexed: Option<&Entry>,
    now: Local,
    at_ns: i64,
) -> Option<Entry> {
    if indexed.is_some_and(|e| e.version > logged.entry.version) {
        return None;
    }
    let (was, hash, now) = match (logged.entry.kind, now) {
        (EntryKind::File { stat, hash }, Local::File(now)) => (stat, hash, now),
        // A directory the pull made or recorded, still one.
        (EntryKind::Dir, Local::Dir) => return Some(logged.entry),
        _ => return None,
    };
    if !was.same_inode(&now) {
        return None;
    }
    let untouched = was.mtime_ns != 0 && was.mtime_ns == now.mtime_ns && was.size == now.size;
    let stat = match untouched {
        // The file placed, as placed: trusted from now on, unless racy.
        true => seal_at(
            Stat {
                exec: was.exec,
                ..now
            },
            at_ns,
        ),
        // Written since: the next look hashes it.
        false => Stat { mtime_ns: 0, ..was },
    };
    Some(Entry {
        kind: EntryKind::File { stat, hash },
        version: logged.entry.version,
    })
}

impl super::Applier<'_> {
    /// Notes that the file with identity `placing` (the bit to record
    /// already in it) is about to be placed at `path` with `hash` at
    /// `version`.
    ///
    /// # Errors
    /// The log cannot be written: the file must then not be placed (it is
    /// held back and tried again, R-5.6.8).
    pub(super) fn log_placement(
        &self,
        path: &WirePath,
        placing: Stat,
        hash: crate::protocol::ContentHash,
        version: u64,
    ) -> Result<(), ClientError> {
        let placement = Placement {
            path: path.clone(),
            entry: Entry {
                kind: EntryKind::File {
                    stat: placing,
                    hash,
                },
                version,
            },
        };
        self.log_record(&placement.encode())
    }

    /// Notes that the directory `path` is about to be made (or recorded
    /// as it is) at `version`.
    ///
    /// # Errors
    /// The log cannot be written: the directory must then not be made.
    pub(super) fn log_placed_dir(&self, path: &WirePath, version: u64) -> Result<(), ClientError> {
        let placement = Placement {
            path: path.clone(),
            entry: Entry {
                kind: EntryKind::Dir,
                version,
            },
        };
        self.log_record(&placement.encode())
    }

    /// Notes each entry the index records at or below `from` (files and
    /// directories) at its path below `to`, where a directory rename
    /// is about to take it.
    ///
    /// # Errors
    /// The log cannot be written (the rename must then not be made).
    pub(super) fn log_moving_in(&self, from: &WirePath, to: &WirePath) -> Result<(), ClientError> {
        let records: String = self
            .index
            .subtree(Some(from))
            .filter_map(|(p, e)| {
                let path = p.rebase(from, to)?;
                Some(Placement { path, entry: *e }.encode())
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.log_record(&records)
    }

    fn log_record(&self, record: &str) -> Result<(), ClientError> {
        let log = log_path(self.tmp);
        removal_log::append_record(&log, record)
            .map_err(|e| ClientError::io(format!("write {}", log.display()), e))
    }
}

#[cfg(test)]
mod tests;
