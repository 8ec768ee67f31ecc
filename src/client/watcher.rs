//! The folder watcher: notify, reduced to "these paths may have changed"
//! (the scanner decides what really did) or "events were lost: rescan
//! everything". The client's loop adds the debounce.
//!
//! Every directory is watched on its own (notify's non-recursive mode)
//! except the ones the ignore rules leave out and what is below them: an
//! ignored `node_modules/` of thousands of directories costs no inotify
//! watch (the limit, `fs.inotify.max_user_watches`, is shared by all the
//! user's programs) and its churn wakes nobody. A directory that appears
//! (created, or moved in) is watched, with what it holds, when the session
//! hands its event back ([`FolderWatcher::follow`]); a change of the rules
//! watches the folder anew ([`FolderWatcher::set_rules`]). A mount inside
//! the folder makes no inotify event: the mount table is watched for them
//! ([`mount_table`]), and a mount point that came or went is reported as a
//! path, which the session follows like a directory moved in.

mod mount_table;

use super::error::ClientError;
use super::ignore::IgnoreRules;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::WirePath;
use crossbeam_channel::{Receiver, Sender};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Something happened at these paths (relative to the folder).
    Paths(Vec<WirePath>),
    /// These files were closed after writing, or moved in whole: their
    /// content is complete.
    Settled(Vec<WirePath>),
    /// Only metadata (times, permissions) changed at these paths.
    Metadata(Vec<WirePath>),
    /// Events were lost or the watcher failed: compare the whole folder.
    Rescan(String),
    /// The folder itself was removed or moved away.
    RootGone,
    /// Something happened at an entry whose name the protocol cannot carry
    /// (PROTOCOL.md §6: not UTF-8, a backslash, a control character, too
    /// long…): the entry (the first component of its path that is not
    /// syncable) and why. It is not synced; the client says so at once.
    Unsyncable(PathBuf, String),
}

/// A running watcher; dropping it stops watching.
pub struct FolderWatcher {
    watcher: RecommendedWatcher,
    /// The sending side of `events`, for a watcher made anew.
    tx: Sender<WatchEvent>,
    events: Receiver<WatchEvent>,
    root: PathBuf,
    rules: IgnoreRules,
    /// The mount table's watch (none where it cannot be had: the periodic
    /// comparison then notices mounts).
    _mounts: Option<mount_table::MountTable>,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderWatcher")
    }
}

impl FolderWatcher {
    /// Watches `root` and every directory below it that `rules` do not
    /// leave out (nor the state folder).
    ///
    /// # Errors
    /// [`ClientError::Watch`] when the watch cannot be set up (for instance the
    /// inotify watch limit); the caller then falls back to periodic rescans.
    pub fn start(root: &Path, rules: &IgnoreRules) -> Result<FolderWatcher, ClientError> {
        // Unbounded: notify's thread must never block (the kernel queue would
        // overflow); events are small and the loop drains them continuously.
        let (tx, events) = crossbeam_channel::unbounded();
        let watcher = new_watcher(root, &tx)?;
        // Started before the tree is watched: a mount made meanwhile is
        // either under a watch or reported.
        let mounts = mount_table::MountTable::start(root, tx.clone());
        let mut me = FolderWatcher {
            watcher,
            tx,
            events,
            root: root.to_path_buf(),
            rules: rules.clone(),
            _mounts: mounts,
        };
        me.watch_tree(root)?;
        Ok(me)
    }

    /// Watches the directories among `paths` (reported by an event: created
    /// or moved in) with what they hold, unless the rules leave them out.
    ///
    /// # Errors
    /// [`ClientError::Watch`] when a watch cannot be added (the inotify
    /// limit): the caller stops watching and falls back to rescans.
    pub fn follow(&mut self, paths: &[WirePath]) -> Result<(), ClientError> {
        for path in paths {
            let local = path.to_local(&self.root);
            let is_dir = local.symlink_metadata().is_ok_and(|m| m.is_dir());
            if is_dir && !self.left_out(path.as_str()) {
                self.watch_tree(&local)?;
            }
        }
        Ok(())
    }

    /// New rules: the folder is watched anew under them (directories they
    /// ignore now lose their watches, those they no longer ignore get
    /// theirs). Events in between may be lost: the session compares the
    /// whole folder after a change of the rules.
    ///
    /// # Errors
    /// As [`FolderWatcher::start`].
    pub fn set_rules(&mut self, rules: &IgnoreRules) -> Result<(), ClientError> {
        self.rules = rules.clone();
        self.watcher = new_watcher(&self.root, &self.tx)?;
        let root = self.root.clone();
        self.watch_tree(&root)
    }

    /// True when the directory at `rel` (or one above it) is not watched:
    /// the state folder, or ignored by the rules.
    fn left_out(&self, rel: &str) -> bool {
        if rel.split('/').next() == Some(STATE_DIR_NAME) {
            return true;
        }
        let mut prefix = String::new();
        for part in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.rules.ignores(&prefix, true) {
                return true;
            }
        }
        false
    }

    /// Watches `dir` (an absolute path in the folder), then each directory
    /// below it the rules do not leave out. A directory is watched before it
    /// is listed, so an entry made meanwhile is either listed or reported.
    /// Directories gone meanwhile, unreadable ones and symlinks are passed
    /// over (the scanner reports what it cannot read).
    fn watch_tree(&mut self, dir: &Path) -> Result<(), ClientError> {
        let mut todo = vec![dir.to_path_buf()];
        while let Some(dir) = todo.pop() {
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    return Err(ClientError::Watch(e.to_string()));
                }
                Err(e) if dir == self.root => return Err(ClientError::Watch(e.to_string())),
                Err(_) => continue,
            }
            let Ok(listing) = std::fs::read_dir(&dir) else {
                continue;
            };
            for item in listing.flatten() {
                if !item.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = item.path();
                let rel = path.strip_prefix(&self.root).ok().and_then(Path::to_str);
                // A name the protocol cannot carry is not synced (nor
                // what is below it): the scanner reports it.
                let Some(rel) = rel.filter(|r| WirePath::new(r).is_ok()) else {
                    continue;
                };
                if !self.left_out(rel) {
                    todo.push(path);
                }
            }
        }
        Ok(())
    }

    /// The stream of events.
    pub fn events(&self) -> &Receiver<WatchEvent> {
        &self.events
    }
}

/// A notify watcher forwarding to `tx`, watching nothing yet.
fn new_watcher(root: &Path, tx: &Sender<WatchEvent>) -> Result<RecommendedWatcher, ClientError> {
    let base = root.to_path_buf();
    let tx = tx.clone();
    notify::recommended_watcher(move |res| forward(&base, &tx, res))
        .map_err(|e| ClientError::Watch(e.to_string()))
}

fn forward(root: &Path, tx: &Sender<WatchEvent>, res: notify::Result<Event>) {
    let event = match res {
        Ok(event) => event,
        Err(e) => {
            let _ = tx.send(WatchEvent::Rescan(e.to_string()));
            return;
        }
    };
    if event.need_rescan() {
        let _ = tx.send(WatchEvent::Rescan("the watcher lost events".into()));
        return;
    }
    let settled = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => true,
        EventKind::Access(_) => return,
        _ => false,
    };
    let metadata_only = matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_)));
    let mut paths = Vec::new();
    for path in &event.paths {
        match relative(root, path) {
            Relative::Root => {
                if matches!(event.kind, EventKind::Remove(_)) || !root.is_dir() {
                    let _ = tx.send(WatchEvent::RootGone);
                    return;
                }
            }
            Relative::Inside(wire) => paths.push(wire),
            Relative::Unsyncable(entry, why) => {
                let _ = tx.send(WatchEvent::Unsyncable(entry, why));
            }
            Relative::Ignored => {}
        }
    }
    if paths.is_empty() {
        return;
    }
    if settled {
        // A rename event names the source first: only the destination is settled.
        if matches!(
            event.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both))
        ) && paths.len() > 1
        {
            let dest = paths.split_off(1);
            let _ = tx.send(WatchEvent::Paths(paths));
            let _ = tx.send(WatchEvent::Settled(dest));
        } else {
            let _ = tx.send(WatchEvent::Settled(paths));
        }
    } else if metadata_only {
        let _ = tx.send(WatchEvent::Metadata(paths));
    } else {
        let _ = tx.send(WatchEvent::Paths(paths));
    }
}

enum Relative {
    Root,
    Inside(WirePath),
    /// The entry whose name is not syncable, and why.
    Unsyncable(PathBuf, String),
    Ignored,
}

fn relative(root: &Path, path: &Path) -> Relative {
    let Ok(rel) = path.strip_prefix(root) else {
        return Relative::Ignored;
    };
    if rel.as_os_str().is_empty() {
        return Relative::Root;
    }
    if rel
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == STATE_DIR_NAME)
    {
        return Relative::Ignored;
    }
    match rel.to_str().map(WirePath::new) {
        Some(Ok(wire)) => Relative::Inside(wire),
        _ => {
            let (entry, why) = first_unsyncable(root, rel);
            Relative::Unsyncable(entry, why)
        }
    }
}

/// The shortest leading part of `rel` (a path under `root` that is not
/// syncable) that is not syncable itself, as a path under `root`, and why:
/// what the scanner skips (with everything below it) at a full walk.
fn first_unsyncable(root: &Path, rel: &Path) -> (PathBuf, String) {
    let mut prefix = PathBuf::new();
    for component in rel.components() {
        prefix.push(component);
        let why = match prefix.to_str().map(WirePath::new) {
            Some(Ok(_)) => continue,
            Some(Err(e)) => format!("name not syncable ({e})"),
            None => "name is not UTF-8".to_owned(),
        };
        return (root.join(&prefix), why);
    }
    (root.join(rel), "name not syncable".to_owned())
}

/// The folder as the watcher reports it (symlinks in the folder's own path resolved).
pub fn canonical_root(root: &Path) -> PathBuf {
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reports_changes_but_not_the_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = canonical_root(dir.path());
        std::fs::create_dir(root.join(STATE_DIR_NAME)).unwrap();
        let watcher = FolderWatcher::start(&root, &IgnoreRules::default()).unwrap();
        std::fs::write(root.join(STATE_DIR_NAME).join("index"), "x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), "x").unwrap();
        // A file created right after its directory may precede the watch on
        // that directory; the directory's own event covers it, because the
        // scanner walks a reported directory as a whole.
        let covered = |seen: &[WirePath]| {
            seen.iter()
                .any(|p| p.as_str() == "sub/f" || p.as_str() == "sub")
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while Instant::now() < deadline && !covered(&seen) {
            if let Ok(WatchEvent::Paths(p)) =
                watcher.events().recv_timeout(Duration::from_millis(200))
            {
                seen.extend(p);
            }
        }
        assert!(covered(&seen), "{seen:?}");
        assert!(seen.iter().all(|p| !p.as_str().starts_with(STATE_DIR_NAME)));
    }
}
