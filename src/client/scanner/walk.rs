//! Reading the folder, or the part of it a look covers, into the entries
//! to compare with the index: directories and regular files. What cannot
//! be synced (symlinks, special files, names the protocol cannot carry, a
//! path too deep) is skipped with one warning and recorded as not synced
//! (the state folder is passed over); what cannot be read is kept apart as
//! unknown, so that it is never taken for a deletion.

use super::unsyncable::{self, Unsyncable};
use super::Scanner;
use crate::client::error::ClientError;
use crate::client::fsutil::{
    check_path_counted, is_too_long, os_reason, too_long_why, Local, Stat,
};
use crate::client::plan::DiskEntry;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the walk makes of one entry.
enum Seen {
    /// A directory or regular file to compare.
    Entry(WirePath, DiskEntry),
    /// Not synced.
    Skip,
    /// Not synced, and nothing below it either.
    SkipTree,
}

impl Scanner {
    /// Every directory and regular file in `scope` (the whole folder for
    /// `None`), except the state folder, symlinks, special files and names
    /// the protocol cannot carry (each skipped with one warning; a synced
    /// path that became a symlink or special file is missing from the
    /// result, so its deletion is planned).
    ///
    /// # Errors
    /// [`ClientError::FolderVanished`] when the folder itself is gone; other
    /// I/O errors while walking.
    pub fn scan(
        &mut self,
        scope: Option<&WirePath>,
    ) -> Result<BTreeMap<WirePath, DiskEntry>, ClientError> {
        if !self.root.is_dir() {
            return Err(ClientError::FolderVanished(self.root.clone()));
        }
        let mut out = BTreeMap::new();
        let start = match scope {
            None => self.root.clone(),
            Some(path) => match self.look_at(path, &mut out) {
                Some(start) => start,
                None => return Ok(out),
            },
        };
        let mut walk = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = walk.next() {
            if let Some(heart) = &self.heart {
                heart.beat_if_due();
            }
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    self.walk_error(&e)?;
                    continue;
                }
            };
            match self.classify(&item) {
                Seen::Entry(wire, entry) => {
                    out.insert(wire, entry);
                }
                Seen::Skip => {}
                Seen::SkipTree => walk.skip_current_dir(),
            }
        }
        if let Some(inner) = self.nested_device.take() {
            return Err(ClientError::NestedFolder {
                inner,
                outer: self.root.clone(),
                started_on_inner: false,
            });
        }
        Ok(out)
    }

    /// Where a scan of `path` alone walks from: `None` when there is
    /// nothing to walk (a file at `path` went into `out`, unless ignored).
    fn look_at(
        &mut self,
        path: &WirePath,
        out: &mut BTreeMap<WirePath, DiskEntry>,
    ) -> Option<PathBuf> {
        let (local, links) = match check_path_counted(&self.root, path) {
            Ok(looked) => looked,
            // Could not look (a directory on the way this user may not
            // read): unknown, never taken for a deletion.
            Err(e) => {
                self.warn_once(&path.to_local(&self.root), &format!("unreadable ({e})"));
                self.unreadable.push(path.clone());
                return None;
            }
        };
        match local {
            Local::Absent => None,
            // `rm -r conf; mv conf.new conf`: `conf/a.ini` is gone, not odd.
            Local::Foreign if below_a_file(&self.root, path) => None,
            // A symlink, FIFO, socket or device at the path or above it:
            // what was synced there is gone from this device, as in a full
            // scan ([`Scanner::classify`]).
            Local::Foreign => {
                // At the path itself: listed, as a full walk lists it.
                let at = path.to_local(&self.root).symlink_metadata();
                match at.ok().and_then(|m| unsyncable::kind_why(m.file_type())) {
                    Some(why) => self.skip(path, why.to_string()),
                    None => self.warn_once(
                        &path.to_local(&self.root),
                        "a symlink or special file (not synced) is here or above it",
                    ),
                }
                None
            }
            Local::File(stat) => {
                if !self.rules.ignores(path.as_str(), false) {
                    // Its link count (a second name may be outside).
                    self.links.seen(path, stat, links);
                    out.insert(path.clone(), DiskEntry::File(stat));
                }
                None
            }
            Local::Dir if self.rules.ignores(path.as_str(), true) => None,
            Local::Dir => Some(path.to_local(&self.root)),
        }
    }

    /// An unreadable entry: remembered as unknown (so it is not taken for a
    /// deletion); an unreadable folder is an error.
    fn walk_error(&mut self, e: &walkdir::Error) -> Result<(), ClientError> {
        let gone = e
            .io_error()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
        if gone {
            return Ok(());
        }
        let at = e.path().map(Path::to_path_buf).unwrap_or_default();
        let rel = at.strip_prefix(&self.root).ok().and_then(Path::to_str);
        match rel.map(WirePath::new) {
            Some(Ok(wire)) => {
                let why = match e.io_error() {
                    Some(io) if is_too_long(io) => too_long_why(&self.root, &wire),
                    Some(io) => format!("unreadable ({})", os_reason(io)),
                    None => e.to_string(),
                };
                self.skip(&wire, why);
                self.unreadable.push(wire);
                Ok(())
            }
            _ => Err(ClientError::io(
                format!("read {}", self.root.display()),
                std::io::Error::other(e.to_string()),
            )),
        }
    }

    /// What one walked entry means for syncing.
    fn classify(&mut self, item: &walkdir::DirEntry) -> Seen {
        let Ok(rel) = item.path().strip_prefix(&self.root) else {
            return Seen::Skip;
        };
        if rel.as_os_str().is_empty() {
            return Seen::Skip;
        }
        let ft = item.file_type();
        let skip = if ft.is_dir() {
            Seen::SkipTree
        } else {
            Seen::Skip
        };
        if rel.as_os_str() == STATE_DIR_NAME {
            return skip;
        }
        // Not synced, and listed as such (the folder is not in sync while
        // it is here): as `cloud-client status` lists it ([`unsyncable`]).
        if let Some(why) = unsyncable::name_why(rel) {
            let rel = rel.to_path_buf();
            let why = why.to_string();
            // A synced file may have moved there.
            self.stranded.note(&rel, &why);
            self.skip_local(&rel, why);
            return skip;
        }
        let Some(Ok(wire)) = rel.to_str().map(WirePath::new) else {
            return skip;
        };
        if self.rules.ignores(wire.as_str(), ft.is_dir()) {
            if let Some(parent) = wire.parent() {
                self.holds_ignored.insert(parent);
            }
            if ft.is_file() {
                self.ignored_moves
                    .seen(wire, walkdir::DirEntryExt::ino(item));
            }
            return skip;
        }
        if ft.is_dir() {
            if self
                .user
                .is_some_and(|user| crate::client::nesting::runs_inside(item.path(), user))
            {
                self.nested_device = Some(item.path().to_path_buf());
                return Seen::SkipTree;
            }
            Seen::Entry(wire, DiskEntry::Dir)
        } else if ft.is_file() {
            match item.metadata() {
                Ok(meta) => {
                    let stat = Stat::of(&meta);
                    let links = std::os::unix::fs::MetadataExt::nlink(&meta);
                    self.links.seen(&wire, stat, links);
                    Seen::Entry(wire, DiskEntry::File(stat))
                }
                // Longer than PATH_MAX with the folder's path: looked at
                // through directory handles instead (read the same way).
                Err(e) if e.io_error().is_some_and(is_too_long) => {
                    match check_path_counted(&self.root, &wire) {
                        Ok((Local::File(stat), links)) => {
                            self.links.seen(&wire, stat, links);
                            Seen::Entry(wire, DiskEntry::File(stat))
                        }
                        _ => {
                            self.unreadable.push(wire);
                            Seen::Skip
                        }
                    }
                }
                Err(_) => {
                    // Replaced or removed mid-walk: unknown, not deleted.
                    self.unreadable.push(wire);
                    Seen::Skip
                }
            }
        } else {
            let why = unsyncable::kind_why(ft).unwrap_or(Unsyncable::Special);
            self.skip(&wire, why.to_string());
            // What the index lists here (a file or directory replaced by a
            // symlink, FIFO, socket or device) is gone from this device:
            // the comparison pushes its deletion, whatever the new thing
            // is (breaker13's L3: a FIFO kept the file everywhere, a
            // socket deleted it). Unlike an unreadable entry, nothing here
            // is unknown: lstat said what is there. The RemoveDir's cursor
            // stays below what the applier held back behind it,
            // and the server keeps the removed files' versions.
            Seen::Skip
        }
    }
}

/// True when an ancestor of `path` is a regular file (reached through real
/// directories only): nothing can be at `path`.
fn below_a_file(root: &Path, path: &WirePath) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<&str> = path.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) => return meta.file_type().is_file(),
            Err(_) => return false,
        }
    }
    false
}
