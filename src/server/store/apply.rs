//! The push rules of PROTOCOL.md §5.4: how each pushed change is applied,
//! when it is a conflict, and what the pusher is told.

use super::journal::Record;
use super::live::Standing;
use super::tree::NodeKind;
use super::{StagedFile, StoreError, UserStore};
use crate::fsafe::{self as storefs, OnDisk};
use crate::protocol::conflict::free_conflict_path;
use crate::protocol::{Cause, ClientId, PushAck, PushStatus, WirePath};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

fn ack(status: PushStatus, version: u64, path: &WirePath) -> PushAck {
    PushAck {
        status,
        version,
        path: path.clone(),
    }
}

impl UserStore {
    /// A conflict-copy name for `path` that is free in the tree and on disk.
    fn free_conflict_name(
        &self,
        path: &WirePath,
        client: ClientId,
    ) -> Result<WirePath, StoreError> {
        let taken = |candidate: &WirePath| -> Result<bool, StoreError> {
            Ok(self.tree.get(candidate).is_some()
                || storefs::inspect(&self.root, candidate)? != OnDisk::Absent)
        };
        free_conflict_path(path, client, SystemTime::now(), taken)?
            .ok_or_else(|| StoreError::NoFreeConflictName(path.clone()))
    }

    /// Where a new entry for `path` can go: `path` itself, or — when an
    /// ancestor is a file — the same place below that ancestor's conflict
    /// name: the one this device's earlier pushes below that file already
    /// use while it is still a directory, else a fresh one (§7.4). Inside
    /// that directory the place is decided again like a push at that path
    /// (R-7.4.1.5): a file there on the way (this device's earlier upload
    /// `a/b` placed at `a (conflict …)/b`) sends the entry on to that
    /// file's own conflict directory, at every level
    /// (`a (conflict …)/b (conflict …)/c`). Each round moves the first file
    /// on the way one level deeper, so there are at most as many rounds as
    /// the path has components.
    ///
    /// # Errors
    /// [`StoreError::ConflictPathTooLong`] when a place breaks the path
    /// limits of §6 (permanent: `Unstorable`); I/O errors of the look for a
    /// free conflict name.
    fn placement(
        &mut self,
        path: &WirePath,
        client: ClientId,
    ) -> Result<(WirePath, PushStatus), StoreError> {
        let mut target = path.clone();
        let mut status = PushStatus::Applied;
        for _ in 0..=path.components().count() {
            let Some(ancestor) = self.tree.file_ancestor(&target) else {
                return Ok((target, status));
            };
            let renamed = self.conflict_dir(&ancestor, client)?;
            target = target.rebase(&ancestor, &renamed).ok_or_else(|| {
                StoreError::ConflictPathTooLong {
                    path: path.clone(),
                    dir: renamed.clone(),
                }
            })?;
            status = PushStatus::Conflict;
        }
        // Unreachable while the first file on the way moves deeper each
        // round; a permanent refusal rather than a retry for ever if not.
        Err(StoreError::ConflictPathTooLong {
            path: path.clone(),
            dir: target,
        })
    }

    /// The conflict directory standing in for the file at `file` for
    /// `client`'s pushed subtree: the remembered one if it is still a
    /// directory, else a fresh conflict name (remembered from now on).
    fn conflict_dir(&mut self, file: &WirePath, client: ClientId) -> Result<WirePath, StoreError> {
        let key = (client, file.clone());
        if let Some(dir) = self.conflict_dirs.get(&key) {
            if self.tree.get(dir).is_some_and(|n| n.is_dir()) {
                return Ok(dir.clone());
            }
        }
        let fresh = self.free_conflict_name(file, client)?;
        self.conflict_dirs.insert(key, fresh.clone());
        Ok(fresh)
    }

    /// Applies a complete upload (`FileBegin` … `FileEnd`).
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way. The temp file is
    /// removed on every path out (dropping `staged` removes it).
    pub fn commit_file(
        &mut self,
        base: u64,
        path: &WirePath,
        staged: StagedFile,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        self.commit_file_with_bit(base, path, staged, client, None)
    }

    /// [`Self::commit_file`], placing the file with the executable bit
    /// `bit` when it is `Some` (a restore, §14.3: content and bit come back
    /// as ONE change), else with the bit of the file it replaces (§15.3).
    /// The file is renamed into place with its final mode, and a bit that
    /// differs from the tree's after the content is journaled as a
    /// `SetMode` of the same change (as a compacted journal does), so no
    /// device and no kept version ever sees the content with the other bit.
    /// `Unchanged` (the content is there already) sets no bit: the caller
    /// decides.
    ///
    /// # Errors
    /// As [`Self::commit_file`].
    pub(super) fn commit_file_with_bit(
        &mut self,
        base: u64,
        path: &WirePath,
        staged: StagedFile,
        client: ClientId,
        bit: Option<bool>,
    ) -> Result<PushAck, StoreError> {
        // What a hand changed at the path while the server runs is
        // journaled first: the upload then meets it as another device's
        // change.
        self.catch_up(path, false)?;
        // The lost version of the path coming back from a device:
        // put back as it was, no change, `Unchanged` as for any upload of
        // the content the server lists.
        let staged = if self.lost.contains_key(path) {
            match self.restore_lost(path, staged)? {
                Ok(version) => {
                    self.restored.push((path.clone(), version, client));
                    return Ok(ack(PushStatus::Unchanged, version, path));
                }
                Err(staged) => staged,
            }
        } else {
            staged
        };
        let (target, status) = match self.tree.get(path) {
            None => {
                let (target, status) = self.placement(path, client)?;
                // In a conflict directory an entry may already be there:
                // this device's earlier push, or another's change since.
                match self.tree.get(&target).copied() {
                    None => (target, status),
                    Some(node) => match node.kind {
                        NodeKind::File { hash, .. } if hash == staged.hash => {
                            return Ok(ack(PushStatus::Unchanged, node.version, &target));
                        }
                        NodeKind::File { .. } if self.pushed_by(node.version, client) => {
                            (target, status)
                        }
                        _ => (
                            self.free_conflict_name(&target, client)?,
                            PushStatus::Conflict,
                        ),
                    },
                }
            }
            Some(node) => match node.kind {
                NodeKind::File { hash, .. } if hash == staged.hash => {
                    return Ok(ack(PushStatus::Unchanged, node.version, path));
                }
                // The base (or a version after it that changed only the
                // bit: the content is the base's, R-15.3.4) if the device
                // can hold it, or this device's own later push
                // (§7.2).
                NodeKind::File { .. } if self.base_holds(path, base, client) => {
                    (path.clone(), PushStatus::Applied)
                }
                _ => (self.free_conflict_name(path, client)?, PushStatus::Conflict),
            },
        };
        // A place in a conflict directory may hold a hand's file that the
        // journal does not list yet: journaled, and the place decided again.
        if target != *path && self.catch_up(&target, false)? {
            return self.commit_file_with_bit(base, path, staged, client, bit);
        }
        // One walk to the parent for the look and the rename (a missing
        // parent is created by `place_file` below).
        let parent = storefs::open_parent(&self.root, &target)?;
        if let Some(OnDisk::Dir) = parent.as_ref().map(|p| p.inspect()).transpose()? {
            return Err(StoreError::DirectoryInTheWay(target.clone()));
        }
        // New content over an executable file stays executable (§15.3),
        // unless the caller gives the bit.
        let executable = bit.unwrap_or_else(|| self.tree.is_executable(&target));
        if executable {
            let mode = std::fs::metadata(&staged.temp)?.permissions().mode();
            let exec = storefs::with_executable(mode, true);
            std::fs::set_permissions(&staged.temp, std::fs::Permissions::from_mode(exec))?;
        }
        if self.tree.get(&target).is_some_and(|n| !n.is_dir()) {
            // The content there now is overwritten: kept first (§14.1).
            self.keep_versions(
                std::slice::from_ref(&target),
                self.next_seq(),
                Cause::Overwritten,
            )?;
        }
        self.intend(client, &target)?;
        // With --fsync the upload synced the temp file's data before
        // handing it over; the directory entry is synced once per cycle (flush).
        let placed = match &parent {
            Some(parent) => parent.place_file(&staged.temp)?,
            None => storefs::place_file(&self.root, &staged.temp, &target)?,
        };
        // Placed: the temp path no longer exists, nothing left to remove.
        let _ = staged.temp.keep();
        self.touched_dir(&target);
        let seq = self.next_seq();
        self.record(Record::PutFile {
            seq,
            path: target.clone(),
            size: staged.size,
            hash: staged.hash,
            mtime_ns: placed.mtime_ns,
        })?;
        if let Some(st) = placed.stat {
            let identity = super::known::Identity::of_stat(&st);
            self.known.note(&target, identity, staged.hash);
        }
        // The PutFile kept the replaced file's bit in the tree (a new file
        // starts without it): the bit placed on disk is part of the same
        // change.
        if self.tree.is_executable(&target) != executable {
            self.record(Record::SetMode {
                seq,
                path: target.clone(),
                executable,
            })?;
        }
        self.record_author(seq, client)?;
        Ok(ack(status, seq, &target))
    }

    /// Applies `MakeDir`.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way.
    pub fn make_dir(&mut self, path: &WirePath, client: ClientId) -> Result<PushAck, StoreError> {
        self.catch_up(path, false)?;
        let (target, status) = match self.tree.get(path) {
            Some(node) if node.is_dir() => {
                return Ok(ack(PushStatus::Unchanged, node.version, path))
            }
            // A file is in the way: the directory and, later, what this
            // device pushes below it go to one conflict directory.
            Some(_) => (self.conflict_dir(path, client)?, PushStatus::Conflict),
            None => self.placement(path, client)?,
        };
        // A conflict directory (or a place below it) may exist already.
        let (target, status) = match self.tree.get(&target) {
            Some(node) if node.is_dir() => {
                return Ok(ack(PushStatus::Unchanged, node.version, &target))
            }
            Some(_) => (
                self.free_conflict_name(&target, client)?,
                PushStatus::Conflict,
            ),
            None => (target, status),
        };
        self.intend(client, &target)?;
        storefs::make_dirs(&self.root, &target)?;
        self.touched_dir(&target);
        let seq = self.next_seq();
        self.record(Record::MakeDir {
            seq,
            path: target.clone(),
        })?;
        self.record_author(seq, client)?;
        Ok(ack(status, seq, &target))
    }

    /// Removes `path` (a file or a whole tree) from disk and journals it as
    /// (part of) change `seq`: one push is one change however many subtrees
    /// it removes (§5.4).
    /// What stands at `path` and is not the server's (another type than
    /// the journal lists, or a lost file's name taken) stays on disk and
    /// is journaled as a change made in the server's folder right after.
    fn remove_path(&mut self, path: &WirePath, seq: u64) -> Result<(), StoreError> {
        self.keep_versions(std::slice::from_ref(path), seq, Cause::Deleted)?;
        let foreign = self.standing(path)? == Standing::Foreign;
        if !foreign {
            storefs::remove(&self.root, path)?;
        }
        self.touched_dir(path);
        self.record(Record::Remove {
            seq,
            path: path.clone(),
        })?;
        if foreign {
            self.catch_up(path, false)?;
        }
        Ok(())
    }

    /// Applies `Delete` of a file.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way.
    pub fn delete_file(
        &mut self,
        base: u64,
        path: &WirePath,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        self.catch_up(path, false)?;
        match self.tree.get(path) {
            None => Ok(ack(PushStatus::Unchanged, 0, path)),
            // Stale only for a content or place changed after `base` by
            // another device: SetModes alone do not keep a deleted file
            //
            Some(node) if node.is_dir() || !self.base_holds(path, base, client) => {
                Ok(ack(PushStatus::Stale, node.version, path))
            }
            Some(_) => {
                let seq = self.next_seq();
                self.intend(client, path)?;
                self.remove_path(path, seq)?;
                self.record_author(seq, client)?;
                Ok(ack(PushStatus::Applied, seq, path))
            }
        }
    }

    /// Applies `SetMode` (§15.3): sets or clears the executable bit of the
    /// file at `path`, on disk and in the tree, as one change. Decided as a
    /// `Delete` is: a file changed meanwhile by another device is `Stale`.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way.
    pub fn set_mode(
        &mut self,
        base: u64,
        path: &WirePath,
        executable: bool,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        self.catch_up(path, false)?;
        let node = match self.tree.get(path) {
            None => return Ok(ack(PushStatus::Stale, 0, path)),
            Some(node) => *node,
        };
        let own = self.pushed_by(node.version, client);
        if node.is_dir() || (!own && (node.version != base || !self.may_hold(base, path, client))) {
            return Ok(ack(PushStatus::Stale, node.version, path));
        }
        if self.tree.is_executable(path) == executable {
            return Ok(ack(PushStatus::Unchanged, node.version, path));
        }
        // The file with its former bit is a version too (§14.1); its
        // content is stored once, so this costs one index record.
        self.keep_versions(
            std::slice::from_ref(path),
            self.next_seq(),
            Cause::Overwritten,
        )?;
        self.intend(client, path)?;
        if !storefs::set_executable(&self.root, path, executable)? {
            return Err(StoreError::NotFound(path.clone()));
        }
        let seq = self.next_seq();
        self.record(Record::SetMode {
            seq,
            path: path.clone(),
            executable,
        })?;
        self.record_author(seq, client)?;
        Ok(ack(PushStatus::Applied, seq, path))
    }

    /// Applies `RemoveDir`: removes what the client had seen (version ≤
    /// `cursor`, or pushed by this client itself), keeps what other devices
    /// changed since, with its parents. Everything it removes is one change.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way.
    pub fn remove_dir(
        &mut self,
        cursor: u64,
        path: &WirePath,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        // Everything below: what a hand added or changed there is then
        // newer than the device's cursor and stays.
        self.catch_up(path, true)?;
        let node = match self.tree.get(path) {
            None => return Ok(ack(PushStatus::Unchanged, 0, path)),
            Some(node) if !node.is_dir() => return Ok(ack(PushStatus::Stale, node.version, path)),
            Some(node) => *node,
        };
        let unseen = |version: u64| version > cursor && !self.pushed_by(version, client);
        let newer: Vec<WirePath> = self
            .tree
            .descendants(path)
            .filter(|(_, n)| unseen(n.version))
            .map(|(p, _)| p.clone())
            .collect();
        let seq = self.next_seq();
        if newer.is_empty() && !unseen(node.version) {
            self.intend(client, path)?;
            self.remove_path(path, seq)?;
            self.record_author(seq, client)?;
            return Ok(ack(PushStatus::Applied, seq, path));
        }
        // Keep the newer entries and every ancestor of them; remove the
        // top-most subtrees that hold none of them.
        let mut keep: BTreeSet<WirePath> = BTreeSet::new();
        for p in &newer {
            let mut current = Some(p.clone());
            while let Some(c) = current {
                if !keep.insert(c.clone()) {
                    break;
                }
                current = c.parent();
            }
        }
        let candidates = self.tree.descendants(path).map(|(p, _)| p);
        let removed = WirePath::top_most(candidates.filter(|p| !keep.contains(*p)).cloned());
        self.intend(client, path)?;
        for p in &removed {
            self.remove_path(p, seq)?;
        }
        if removed.is_empty() {
            return Ok(ack(PushStatus::Stale, node.version, path));
        }
        self.record_author(seq, client)?;
        Ok(ack(PushStatus::Stale, seq, path))
    }

    /// Whether the directory of version `version` at `from` is one that
    /// another client made (or moved) there after `base` and that `client`
    /// has not pulled: it cannot be what `client` moved, since a
    /// directory's version changes only when it is made or moved. The mover
    /// renamed a file another device replaced by that directory (`rm x;
    /// mv d x` elsewhere), or a directory since removed and made again;
    /// moving this one would carry the other device's directory away under
    /// the mover's name, and what the mover moved (its file) would be lost
    /// (outside tester breaker18, F7: `rm x; mv d x` on one device while
    /// another ran `rm -r d; mv x d`). A version without an author (a move
    /// of content its mover had not seen, a restore, a re-scan) is left to
    /// as before: such a directory may be the mover's own, moved
    /// again.
    fn another_clients_dir(
        &self,
        version: u64,
        base: u64,
        from: &WirePath,
        client: ClientId,
    ) -> bool {
        version > base
            && self
                .authors
                .get(&version)
                .is_some_and(|author| *author != client)
            && !self.has_seen(client, from, version)
    }

    /// Applies `Rename`.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way.
    pub fn rename(
        &mut self,
        base: u64,
        from: &WirePath,
        to: &WirePath,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        // The source (and below it) and the target as they are on disk:
        // a hand's edit moves without the mover's name on it, a hand's
        // file at the target is never replaced.
        self.catch_up(from, true)?;
        self.catch_up(to, false)?;
        let Some(source) = self.tree.get(from) else {
            return Ok(ack(PushStatus::Stale, 0, from));
        };
        if to.is_within(from) {
            return Ok(ack(PushStatus::Stale, source.version, from));
        }
        let source_is_dir = source.is_dir();
        if source_is_dir && self.another_clients_dir(source.version, base, from, client) {
            return Ok(ack(PushStatus::Stale, source.version, from));
        }
        // The move carries what the server holds at `from`; if that includes
        // a change the mover had not seen, the moved version is not the
        // mover's own content, so it gets no author: a later push of the
        // mover's older copy there is then a Conflict, never an
        // overwrite. `base` speaks for `from` only (a version above it, or
        // one the mover cannot hold, R-7.2.8); below a directory, the
        // mover's acknowledged cursor is the only evidence of what it saw
        // (a pull can bring the directory's version without a file's, a
        // local edit left to the push, R-5.6.1), with its last PartialAck
        // (which names such files, R-5.3.4).
        let unseen = (!self.pushed_by(source.version, client)
            && (source.version > base || !self.may_hold(source.version, from, client)))
            || self.tree.descendants(from).any(|(path, n)| {
                !self.has_seen(client, path, n.version) && !self.pushed_by(n.version, client)
            });
        let (target, status) = match self.tree.get(to) {
            // A directory moved onto a file: later pushes below `to` from
            // this device follow it into the same conflict directory.
            // If that directory exists already (an earlier push below
            // `to`), the move is decided there like a push at that place
            // (R-7.4.1.5): it goes to that place's conflict name.
            Some(n) if source_is_dir && !n.is_dir() => {
                let dir = self.conflict_dir(to, client)?;
                match self.tree.get(&dir) {
                    Some(_) => (self.free_conflict_name(&dir, client)?, PushStatus::Conflict),
                    None => (dir, PushStatus::Conflict),
                }
            }
            Some(_) => (self.free_conflict_name(to, client)?, PushStatus::Conflict),
            None => {
                let (target, status) = self.placement(to, client)?;
                if self.tree.get(&target).is_some() {
                    // Something is already at that place in the conflict
                    // directory: never replace it.
                    (
                        self.free_conflict_name(&target, client)?,
                        PushStatus::Conflict,
                    )
                } else {
                    (target, status)
                }
            }
        };
        if target != *to && self.catch_up(&target, false)? {
            return self.rename(base, from, to, client);
        }
        // A lost source (missing, or something not the server's at its
        // name) has nothing of the server's on disk to move: the rename is
        // journaled, and the file at its new name is found lost at its
        // next fetch.
        let standing = self.standing(from)?;
        // An unseen move is announced without an author, so a crash's
        // re-scan does not make it the mover's own either.
        self.keep_versions(
            std::slice::from_ref(from),
            self.next_seq(),
            Cause::RenamedAway,
        )?;
        self.intend_move(if unseen { 0 } else { client }, from, &target)?;
        if standing == Standing::Ours {
            storefs::rename(&self.root, from, &target)?;
        }
        self.touched_dir(from);
        self.touched_dir(&target);
        let seq = self.next_seq();
        self.record(Record::Rename {
            seq,
            from: from.clone(),
            to: target.clone(),
        })?;
        if !unseen {
            self.record_author(seq, client)?;
        }
        if standing == Standing::Foreign {
            self.catch_up(from, false)?;
        }
        Ok(ack(status, seq, &target))
    }
}
