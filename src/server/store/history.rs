//! The store's side of §14: keeping what a change displaces (called by the
//! push rules just before the disk changes), listing kept versions a page
//! at a time, and restoring one as an ordinary new change.

use super::tree::NodeKind;
use super::versions::{displaced, now_ms};
use super::{restore_plan, StagedFile, StoreError, UserStore};
use crate::protocol::versions::MAX_VERSION_ENTRIES;
use crate::protocol::{
    Cause, ClientId, FileBegin, KeptKind, KeptVersion, ListVersions, PushAck, PushStatus,
    VersionList, WirePath,
};
use std::io::Read;

/// Bytes read from an object per upload write when restoring.
const RESTORE_READ: usize = 256 * 1024;

impl UserStore {
    /// Keeps what `paths` hold now (whole subtrees for directories) as
    /// versions displaced by change `seq` (§14.1), before the change is
    /// made on disk.
    ///
    /// # Errors
    /// The versions could not be written: the change must not be made.
    pub(super) fn keep_versions(
        &mut self,
        paths: &[WirePath],
        seq: u64,
        cause: Cause,
    ) -> Result<(), StoreError> {
        // The change's own time, so the kept entries and the change-time
        // log agree.
        let time_ms = self.times.time_of(seq, now_ms());
        let mut entries = displaced(&self.tree, paths, seq, cause, time_ms);
        // A missing file has nothing to keep.
        if !self.lost.is_empty() {
            entries.retain(|e| self.lost_kind(&e.path) != Some(false));
        }
        // Content leaving the folder is read first: an edit in
        // place that put size and mtime back, which the look before the
        // push cannot see, or a damaged copy, is kept under its
        // own hash, never dropped as "kept already" under the journal's.
        // A rename's content stays in the folder (R-10.6 finds it).
        if cause != Cause::RenamedAway {
            for entry in &mut entries {
                self.as_on_disk(entry)?;
            }
        }
        let added = self
            .versions
            .keep(&self.root, &entries, self.durable)
            .map_err(StoreError::Io)?;
        if added > 0 {
            self.count_kept_bytes(added);
        }
        Ok(())
    }

    /// Makes the kept file `entry` what its path holds on disk: hashed,
    /// and given the bytes' own hash and size when they are not the
    /// journal's (logged). Nothing there: left as it is (the keep fails).
    /// Not read when it is exactly as the server placed it with the
    /// journal's hash (its `fstat` unchanged, ctime included: `known`).
    ///
    /// # Errors
    /// The file cannot be read.
    fn as_on_disk(&mut self, entry: &mut KeptVersion) -> Result<(), StoreError> {
        let KeptKind::File {
            size,
            hash,
            executable,
            ..
        } = entry.kind
        else {
            return Ok(());
        };
        let Some(file) = crate::fsafe::open_file(&self.root, &entry.path)? else {
            return Ok(());
        };
        let meta = file.metadata()?;
        let identity = super::known::Identity::of_meta(&meta);
        if self.known.vouches(&entry.path, &identity, hash) {
            self.known.vouched += 1;
            return Ok(());
        }
        self.known.hashed += 1;
        let (found, read) = crate::fsafe::hash_reader(&file)?;
        if (found, read) == (hash, size) {
            return Ok(());
        }
        log::warn!(
            "{}: {} does not hold its journaled content (v{}: other bytes at the journaled size \
             and mtime, changed in place with its times put back, or damaged): what it holds is \
             kept as the version this change displaces, under its own hash {found}",
            self.label(),
            entry.path,
            entry.since
        );
        entry.kind = KeptKind::File {
            size: read,
            hash: found,
            mtime_ns: super::recover::meta_mtime_ns(&meta),
            executable,
        };
        Ok(())
    }

    /// Adds `added` bytes to the kept versions' running total (counted from
    /// the index when not known) and marks a reap as wanted once the total
    /// passes the limit (§14.4: `--versions-space` holds as versions are
    /// kept, not only at the periodic reap). After that the total is
    /// counted again at the next keep, so it follows what the reaper did.
    fn count_kept_bytes(&mut self, added: u64) {
        if self.versions_limit == u64::MAX {
            return;
        }
        let total = match self.kept_bytes {
            Some(before) => before.saturating_add(added),
            None => match self.versions.bytes_kept() {
                Ok(total) => total,
                Err(e) => {
                    log::warn!("counting kept versions: {e}");
                    return;
                }
            },
        };
        if total > self.versions_limit {
            self.reap_wanted = true;
            self.kept_bytes = None;
        } else {
            self.kept_bytes = Some(total);
        }
    }

    /// Sets `--versions-space` for [`Self::take_reap_wanted`] (unlimited until set).
    pub fn set_versions_limit(&mut self, bytes: u64) {
        self.versions_limit = bytes;
    }

    /// Whether a change kept since the last call took the kept versions
    /// past `--versions-space` (the actor then asks the reaper, §14.4).
    pub fn take_reap_wanted(&mut self) -> bool {
        std::mem::take(&mut self.reap_wanted)
    }

    /// One page of the kept versions at or below `request.under`, after
    /// the request's position (§14.2): at most [`MAX_VERSION_ENTRIES`],
    /// read from the index one record at a time.
    ///
    /// # Errors
    /// The index cannot be read.
    pub fn list_versions(&self, request: &ListVersions) -> Result<VersionList, StoreError> {
        let mut entries = Vec::new();
        let mut more = false;
        self.versions.scan(|entry| {
            if entry.is_under(request.under.as_ref())
                && entry.is_after(request.after_seq, request.after.as_ref())
            {
                if entries.len() == MAX_VERSION_ENTRIES {
                    more = true;
                    return false;
                }
                entries.push(entry);
            }
            true
        })?;
        Ok(VersionList { more, entries })
    }

    /// Restores `path` as it was just before change `seq` (§14.3): every
    /// kept version at or below `path` that was live then (in place before
    /// `seq`, displaced at or after it) is placed again — a file uploaded
    /// from its object, a directory made — each an ordinary change pushed
    /// for the restoring device, but with no author (R-14.3.3: the device has not seen
    /// the restored content, so its later push of an older copy is a
    /// Conflict, not an overwrite; what is at a path now is itself kept
    /// first). Entries
    /// not displaced since `seq` are left as they are. The answer is the
    /// top entry's status and place, with the newest sequence number; when
    /// everything was already there as it was, `Unchanged` with `path`'s
    /// current version and no change made.
    ///
    /// # Errors
    /// [`StoreError::NoSuchVersion`] when nothing live just before `seq`
    /// is kept for `path` (never kept, or reaped; for a directory that is
    /// still there: for nothing below it), or when files were in place
    /// then and none of them is kept, only directories (reaped, counted
    /// in `expired`: an empty directory is not what was there, R-14.3.2;
    /// the decision is [`restore_plan::plan`]);
    /// [`StoreError::KeptDamaged`] when an object no longer matches its
    /// hash; disk and journal failures.
    pub fn restore(&mut self, seq: u64, path: &WirePath) -> Result<PushAck, StoreError> {
        let under = |e: &KeptVersion| e.live_before(seq) && e.is_under(Some(path));
        let mut kept: Vec<KeptVersion> = Vec::new();
        self.versions.scan(|entry| {
            if under(&entry) {
                kept.push(entry);
            }
            true
        })?;
        let mut expired: Vec<KeptVersion> = Vec::new();
        self.versions.scan_expired(|entry| {
            if under(&entry) {
                expired.push(entry);
            }
        })?;
        // A directory still there needs no version of its own: what was
        // displaced below it since comes back.
        let dir_there = self.tree.get(path).is_some_and(|n| n.is_dir());
        let plan =
            restore_plan::plan(&kept, &expired, seq, path, dir_there).map_err(|refusal| {
                StoreError::NoSuchVersion {
                    path: path.clone(),
                    seq,
                    expired: refusal.expired,
                }
            })?;
        if plan.expired > 0 {
            log::info!(
                "restore of {path} before change {seq}: {} entries in place then expired and do not come back",
                plan.expired
            );
        }
        let found = plan.place;
        let head_before = self.head();
        // Below a restored directory, only what is not there now (or
        // differs) needs placing; commit_file answers Unchanged for
        // identical content. Under an intent record, so a crash does not
        // leave it half-done.
        let top = self.place_restore(seq, path, &found)?;
        let mut ack = top.ok_or_else(|| StoreError::NoSuchVersion {
            path: path.clone(),
            seq,
            expired: 0,
        })?;
        if self.head() == head_before {
            // Everything was there as it was: nothing changed,
            // and the answer says so with `path`'s own current version.
            let version = self.tree.get(path).map_or(ack.version, |n| n.version);
            return Ok(PushAck {
                status: PushStatus::Unchanged,
                version,
                path: path.clone(),
            });
        }
        if ack.status == PushStatus::Unchanged {
            ack.status = PushStatus::Applied;
        }
        ack.version = ack.version.max(self.head());
        Ok(ack)
    }

    /// Restores `path` as it was at the moment `time_ms` (ms since the
    /// epoch, R-14.3.5): as just before the first change made after it
    /// (by the change-time log, and by the kept versions' own times, which
    /// also cover changes made before the server noted times; the head + 1
    /// when there is none). A path there now and unchanged since is
    /// `Unchanged`.
    ///
    /// # Errors
    /// [`StoreError::NotAtTime`] when the path did not exist at that moment
    /// (or what it was then is no longer kept); as [`UserStore::restore`].
    pub fn restore_at(&mut self, time_ms: u64, path: &WirePath) -> Result<PushAck, StoreError> {
        let mut first = self.times.first_after(time_ms)?;
        self.versions.scan(|entry| {
            if entry.time_ms > time_ms {
                first = Some(first.map_or(entry.seq, |f| f.min(entry.seq)));
            }
            true
        })?;
        let seq = first.unwrap_or(self.head() + 1);
        match self.restore(seq, path) {
            Err(StoreError::NoSuchVersion { expired, .. }) => match self.tree.get(path) {
                Some(node) if node.version < seq => Ok(PushAck {
                    status: PushStatus::Unchanged,
                    version: node.version,
                    path: path.clone(),
                }),
                _ => Err(StoreError::NotAtTime {
                    path: path.clone(),
                    time_ms,
                    expired,
                }),
            },
            other => other,
        }
    }

    /// Places one kept entry at its path as a push by `client` would.
    pub(super) fn restore_one(
        &mut self,
        entry: &KeptVersion,
        client: ClientId,
    ) -> Result<PushAck, StoreError> {
        match entry.kind {
            KeptKind::Dir => self.make_dir(&entry.path, client),
            KeptKind::File {
                size,
                hash,
                executable,
                ..
            } => {
                let staged = self.stage_kept(&entry.path, size, hash)?;
                // What is there now is the base: it is overwritten (and
                // kept); a directory there makes the restore a Conflict.
                let base = match self.tree.get(&entry.path) {
                    Some(node) if matches!(node.kind, NodeKind::File { .. }) => node.version,
                    _ => 0,
                };
                // Content and bit as they were, placed as ONE change (a
                // version is content and bit, §14.1): never the content
                // with the bit of what it replaces, which no device may
                // pull and no kept version may record.
                let ack =
                    self.commit_file_with_bit(base, &entry.path, staged, client, Some(executable))?;
                // The content is there already (Unchanged): only the bit
                // may differ, and that is one SetMode change (the file as
                // it is now, a state it really had, is kept).
                if ack.status == PushStatus::Unchanged
                    && self.tree.is_executable(&ack.path) != executable
                {
                    let moded = self.set_mode(ack.version, &ack.path, executable, client)?;
                    return Ok(PushAck {
                        version: moded.version,
                        ..ack
                    });
                }
                Ok(ack)
            }
        }
    }

    /// Copies the object of a kept file into `tmp/` through the upload
    /// path, which checks its size and hash.
    fn stage_kept(
        &self,
        path: &WirePath,
        size: u64,
        hash: crate::protocol::ContentHash,
    ) -> Result<StagedFile, StoreError> {
        let mut object = match std::fs::File::open(self.versions.object(&hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::KeptDamaged(path.clone()))
            }
            Err(e) => return Err(StoreError::Io(e)),
        };
        let mut upload = self.begin_upload(FileBegin {
            version: 0,
            size,
            hash,
            path: path.clone(),
        });
        let mut buf = vec![0u8; RESTORE_READ];
        loop {
            let n = object.read(&mut buf)?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n]).map_err(|e| match e {
                StoreError::TooManyBytes { .. } => self.kept_damaged(path, &hash),
                other => other,
            })?;
        }
        upload.finish().map_err(|e| match e {
            StoreError::SizeMismatch { .. } | StoreError::HashMismatch(_) => {
                self.kept_damaged(path, &hash)
            }
            other => other,
        })
    }

    /// A kept object found not to hold its hash at a restore: set aside
    /// (so the next keep of that content stores it anew, never dedupes to
    /// the damaged bytes) and the restore refused `KeptDamaged`.
    fn kept_damaged(&self, path: &WirePath, hash: &crate::protocol::ContentHash) -> StoreError {
        match self.versions.set_aside(hash) {
            Ok(_) => log::warn!(
                "{}: the kept content {hash} of {path} does not hold that content (changed \
                 outside the server): restore refused, the object set aside",
                self.label()
            ),
            Err(e) => log::warn!(
                "{}: setting aside the damaged kept content {hash}: {e}",
                self.label()
            ),
        }
        StoreError::KeptDamaged(path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::versions::KeepPolicy;
    use super::super::{DataPaths, StoreError, UserStore};
    use crate::protocol::{Cause, KeptKind, ListVersions, PushStatus, UserId, WirePath};
    use std::time::Duration;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("test path")
    }

    fn open(dir: &std::path::Path) -> UserStore {
        let paths = DataPaths {
            base: dir.to_path_buf(),
        };
        UserStore::open(&paths, &UserId([5; 16]), true, false)
            .expect("open store")
            .0
    }

    fn put(store: &mut UserStore, path: &str, content: &[u8]) -> u64 {
        let base = store.tree().get(&p(path)).map(|n| n.version).unwrap_or(0);
        let staged = store.stage(&p(path), base, content);
        store
            .commit_file(base, &p(path), staged, 1)
            .expect("commit")
            .version
    }

    fn read(store: &UserStore, path: &str) -> Vec<u8> {
        std::fs::read(p(path).to_local(store.root())).expect("read placed file")
    }

    fn all(store: &UserStore) -> Vec<(u64, String, Cause, bool)> {
        let list = store
            .list_versions(&ListVersions {
                after_seq: 0,
                after: None,
                under: None,
            })
            .expect("list");
        list.entries
            .into_iter()
            .map(|e| {
                let dir = e.kind == KeptKind::Dir;
                (e.seq, e.path.to_string(), e.cause, dir)
            })
            .collect()
    }

    fn objects(dir: &std::path::Path) -> usize {
        let objects = dir
            .join(".cloudservice-server")
            .join(UserId([5; 16]).to_string())
            .join("versions/objects");
        std::fs::read_dir(objects).expect("objects dir").count()
    }

    /// Overwrite, delete, rename and directory removal each keep what they
    /// displace, and each comes back by restore with its content.
    #[test]
    fn every_displaced_version_is_kept_and_restorable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        put(&mut store, "a.txt", b"one");
        let v2 = put(&mut store, "a.txt", b"two");
        assert_eq!(
            all(&store),
            vec![(v2, "a.txt".into(), Cause::Overwritten, false)]
        );
        let ack = store.restore(v2, &p("a.txt")).expect("restore overwrite");
        assert_eq!(ack.status, PushStatus::Applied);
        assert_eq!(read(&store, "a.txt"), b"one");

        put(&mut store, "d/x/y.txt", b"y");
        put(&mut store, "d/z.txt", b"z");
        let head = store.head();
        store.remove_dir(head, &p("d"), 1).expect("rmdir");
        let removed_at = store.head();
        let kept: Vec<_> = all(&store)
            .into_iter()
            .filter(|e| e.0 == removed_at)
            .map(|e| (e.1, e.3))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("d".into(), true),
                ("d/x".into(), true),
                ("d/x/y.txt".into(), false),
                ("d/z.txt".into(), false)
            ]
        );
        assert!(!p("d").to_local(store.root()).exists());
        store.restore(removed_at, &p("d")).expect("restore dir");
        assert_eq!(read(&store, "d/x/y.txt"), b"y");
        assert_eq!(read(&store, "d/z.txt"), b"z");

        let v = store.tree().get(&p("d/z.txt")).expect("z").version;
        // The restored version has no author: device 1 holds it only once
        // it pulled it.
        store.add_client().expect("client 1");
        store.set_cursor(1, store.head()).expect("ack");
        store.delete_file(v, &p("d/z.txt"), 1).expect("delete");
        let deleted_at = store.head();
        store
            .rename(store.head(), &p("a.txt"), &p("b.txt"), 1)
            .expect("rename");
        let renamed_at = store.head();
        let last: Vec<_> = all(&store).into_iter().rev().take(2).collect();
        assert_eq!(
            last,
            vec![
                (renamed_at, "a.txt".into(), Cause::RenamedAway, false),
                (deleted_at, "d/z.txt".into(), Cause::Deleted, false)
            ]
        );
        store
            .restore(deleted_at, &p("d/z.txt"))
            .expect("restore delete");
        assert_eq!(read(&store, "d/z.txt"), b"z");
        assert!(matches!(
            store.restore(deleted_at, &p("nothing")),
            Err(StoreError::NoSuchVersion { .. })
        ));
        assert!(matches!(
            store.restore(deleted_at + 1000, &p("d/z.txt")),
            Err(StoreError::NoSuchVersion { .. })
        ));
    }

    /// A directory removed in several changes (files first, as a watcher
    /// may see them go) comes back whole from the first of them; restoring
    /// from the last brings back only what was still there then.
    #[test]
    fn a_directory_removed_piecemeal_comes_back_whole_from_the_first_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        put(&mut store, "d/a", b"a");
        put(&mut store, "d/b", b"b");
        let va = store.tree().get(&p("d/a")).expect("a").version;
        store.delete_file(va, &p("d/a"), 1).expect("delete a");
        let first = store.head();
        store.remove_dir(store.head(), &p("d"), 1).expect("rmdir");
        let last = store.head();
        store.restore(last, &p("d")).expect("restore from the last");
        assert!(!p("d/a").to_local(store.root()).exists());
        assert_eq!(read(&store, "d/b"), b"b");
        store
            .remove_dir(store.head(), &p("d"), 1)
            .expect("rmdir again");
        store
            .restore(first, &p("d"))
            .expect("restore from the first");
        assert_eq!(read(&store, "d/a"), b"a");
        assert_eq!(read(&store, "d/b"), b"b");
    }

    /// A kept file's executable bit (§15) is kept and comes back with it.
    #[test]
    fn the_executable_bit_is_kept_and_restored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let v = put(&mut store, "run.sh", b"#!/bin/sh\n");
        let v = store
            .set_mode(v, &p("run.sh"), true, 1)
            .expect("chmod")
            .version;
        store.delete_file(v, &p("run.sh"), 1).expect("delete");
        let deleted = store.head();
        let kept = store
            .list_versions(&ListVersions {
                after_seq: 0,
                after: None,
                under: None,
            })
            .expect("list");
        // The chmod kept the file as it was (not executable), the delete
        // as it was then (executable).
        let bits: Vec<(u64, bool)> = kept
            .entries
            .iter()
            .filter_map(|e| match e.kind {
                KeptKind::File { executable, .. } => Some((e.seq, executable)),
                KeptKind::Dir => None,
            })
            .collect();
        assert_eq!(bits, [(v, false), (deleted, true)]);
        store.restore(deleted, &p("run.sh")).expect("restore");
        assert!(store.tree().is_executable(&p("run.sh")));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(p("run.sh").to_local(store.root()))
                .expect("meta")
                .permissions(),
        );
        assert_eq!(mode & 0o100, 0o100, "{mode:o}");
    }

    /// Identical contents are stored once however often they are kept.
    #[test]
    fn identical_contents_are_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        for round in 0..5u8 {
            put(&mut store, "f", b"same");
            put(&mut store, "f", &[round]);
            put(&mut store, &format!("g{round}"), b"same");
        }
        // "same" once, the five one-byte contents once each (4 of them
        // overwritten; the last still live).
        assert_eq!(objects(dir.path()), 1 + 4);
        assert_eq!(all(&store).len(), 9);
    }

    /// A listing comes in pages of at most 128 in (change, path) order, and
    /// the pages together are the whole listing.
    #[test]
    fn listing_pages_cover_everything_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        for i in 0..300u32 {
            put(&mut store, &format!("d/f{i:03}"), &i.to_be_bytes());
        }
        store.remove_dir(store.head(), &p("d"), 1).expect("rmdir");
        let mut request = ListVersions {
            after_seq: 0,
            after: None,
            under: Some(p("d")),
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = store.list_versions(&request).expect("page");
            pages += 1;
            assert!(page.entries.len() <= 128);
            seen.extend(page.entries.iter().map(|e| e.path.to_string()));
            match (page.more, page.entries.last()) {
                (true, Some(last)) => {
                    request.after_seq = last.seq;
                    request.after = Some(last.path.clone());
                }
                _ => break,
            }
        }
        assert_eq!(pages, 3);
        let mut want = vec!["d".to_string()];
        want.extend((0..300).map(|i| format!("d/f{i:03}")));
        assert_eq!(seen, want);
    }

    /// The reaper drops by age, then oldest first past the space limit,
    /// and unlinks exactly the objects nothing names any more.
    #[test]
    fn reaping_by_age_and_by_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        for i in 0..10u8 {
            put(&mut store, "f", &[i; 100]);
        }
        assert_eq!(all(&store).len(), 9);
        let versions = store.versions.clone();
        let now = super::super::versions::now_ms();
        let keep_all = KeepPolicy {
            max_age: Duration::from_secs(3600),
            max_bytes: u64::MAX,
        };
        let report = versions.reap(keep_all, now).expect("reap");
        assert_eq!(
            (report.dropped, report.kept, report.objects_removed),
            (0, 9, 0)
        );
        // 450 bytes: the 4 newest of 100 bytes fit, the 5 oldest go.
        let space = KeepPolicy {
            max_age: Duration::from_secs(3600),
            max_bytes: 450,
        };
        let report = versions.reap(space, now).expect("reap");
        assert_eq!(
            (report.dropped, report.kept, report.objects_removed),
            (5, 4, 5)
        );
        assert_eq!(report.bytes_kept, 400);
        let seqs: Vec<u64> = all(&store).iter().map(|e| e.0).collect();
        assert_eq!(seqs.len(), 4);
        assert_eq!(objects(dir.path()), 4);
        // An hour later everything is too old.
        let report = versions.reap(keep_all, now + 3_600_001).expect("reap");
        assert_eq!((report.dropped, report.kept), (4, 0));
        assert_eq!(objects(dir.path()), 0);
        assert!(all(&store).is_empty());
        // New versions are kept after a rewrite of the index.
        put(&mut store, "f", b"later");
        assert_eq!(all(&store).len(), 1);
    }

    /// Every file's content in the user's folder, sorted.
    fn contents(store: &UserStore) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = walkdir::WalkDir::new(store.root())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| std::fs::read(e.path()).expect("read"))
            .collect();
        all.sort();
        all
    }

    /// Two restores whose places fall in the same conflict directory (a
    /// directory restored beside the file now at its name, then a file of
    /// it restored as it was earlier) each keep their content: the second
    /// takes a conflict name of its own, never the first one's place.
    /// Restored changes have no author, so the first restore's
    /// file is nobody's own to overwrite (outside tester breaker15 F2: the
    /// second restore replaced the first one's file within the same second).
    #[test]
    fn a_second_restore_never_overwrites_what_the_first_placed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        put(&mut store, "d/f", b"v1");
        let v2 = put(&mut store, "d/f", b"v2");
        put(&mut store, "d/f", b"v3");
        store.remove_dir(store.head(), &p("d"), 1).expect("rmdir");
        let removed = store.head();
        put(&mut store, "d", b"a file now");
        let first = store.restore(removed, &p("d")).expect("restore d");
        assert_eq!(first.status, PushStatus::Conflict);
        let second = store.restore(v2, &p("d/f")).expect("restore d/f");
        assert_eq!(second.status, PushStatus::Conflict);
        assert_ne!(
            second.path,
            WirePath::new(&format!("{}/f", first.path)).expect("path"),
            "the second restore took the first one's place"
        );
        assert_eq!(
            contents(&store),
            vec![b"a file now".to_vec(), b"v1".to_vec(), b"v3".to_vec()]
        );
        // A restored version is no device's: not held by a device whose
        // acknowledged cursor has not reached it.
        assert!(!store.may_hold(first.version, &first.path, 1));
        assert!(!store.pushed_by(first.version, 0));
    }
}
