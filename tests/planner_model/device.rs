//! An in-memory device: a folder (paths to directories and files with a
//! stat record), the real `Index`, and the real planner (`plan::resolve`,
//! `plan::order`, `plan::ack`) making every push decision. Walking and
//! hashing are exact here (every file is compared by content), and the pull
//! is applied by a model of `client::applier`'s rules.

use super::server::{ancestors, hash, Change, Content, Node, Server};
use cloudservice::client::fsutil::Stat;
use cloudservice::client::index::{Entry, EntryKind, Index};
use cloudservice::client::plan::{self, ack, DiskEntry, Op};
use cloudservice::protocol::{conflict_path, PushAck, WirePath};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

/// A file on the model disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Dir,
    File(Content, Stat),
}

/// One device.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: u32,
    pub disk: BTreeMap<WirePath, Disk>,
    pub index: Index,
    /// Sent, not yet applied by the server (with the cursor at sending).
    pub outbox: VecDeque<(Op, u64)>,
    /// Answered, not yet digested.
    pub acks: VecDeque<(Op, PushAck)>,
    /// An acknowledgement asked for a pull: the session pulls before its
    /// next push round.
    pub pull_wanted: bool,
    /// The last pull could not apply everything: as the session waits 2 s
    /// before repeating it, the device pushes first.
    pub pull_failed: bool,
    /// Source of mtimes: every write gets a new one.
    clock: i64,
    template: Stat,
}

/// What `check_path` would say.
#[derive(Debug, PartialEq, Eq)]
enum Local {
    Absent,
    Dir,
    File(Content),
    /// An ancestor is a file.
    Blocked,
}

impl Device {
    /// A device holding `base`, indexed at version 1, cursor 1.
    pub fn synced(id: u32, base: &BTreeMap<WirePath, Node>, template: Stat) -> Device {
        let mut dev = Device {
            id,
            disk: BTreeMap::new(),
            index: Index::new(),
            outbox: VecDeque::new(),
            acks: VecDeque::new(),
            pull_wanted: false,
            pull_failed: false,
            clock: 1000 * i64::from(id),
            template,
        };
        for (path, node) in base {
            let disk = match node {
                Node::Dir => Disk::Dir,
                Node::File(c) => Disk::File(*c, dev.stat_for(*c)),
            };
            dev.disk.insert(path.clone(), disk);
            dev.index.insert(path.clone(), dev.entry_of(disk, 1));
        }
        dev.index.set_cursor(1);
        dev
    }

    /// A fresh stat record for content `c` (a new mtime) of a new file (a
    /// new inode number: the planner matches a moved and edited file by
    /// it, R-7.2.4).
    pub fn stat_for(&mut self, c: Content) -> Stat {
        self.clock += 1;
        let mut stat = self.template;
        stat.size = super::server::bytes(c).len() as u64;
        stat.mtime_ns = self.clock;
        stat.ino = self.clock as u64;
        stat
    }

    fn entry_of(&self, disk: Disk, version: u64) -> Entry {
        let kind = match disk {
            Disk::Dir => EntryKind::Dir,
            Disk::File(c, stat) => EntryKind::File {
                stat,
                hash: hash(c),
            },
        };
        Entry { kind, version }
    }

    fn local(&self, path: &WirePath) -> Local {
        if ancestors(path).any(|a| matches!(self.disk.get(&a), Some(Disk::File(..)))) {
            return Local::Blocked;
        }
        match self.disk.get(path) {
            None => Local::Absent,
            Some(Disk::Dir) => Local::Dir,
            Some(Disk::File(c, _)) => Local::File(*c),
        }
    }

    /// The pushes the folder calls for now (refreshing unchanged stats).
    pub fn plan(&mut self) -> Vec<Op> {
        let disk: BTreeMap<WirePath, DiskEntry> = self
            .disk
            .iter()
            .map(|(p, d)| match d {
                Disk::Dir => (p.clone(), DiskEntry::Dir),
                Disk::File(_, stat) => (p.clone(), DiskEntry::File(*stat)),
            })
            .collect();
        let known: BTreeMap<WirePath, Entry> =
            self.index.iter().map(|(p, e)| (p.clone(), *e)).collect();
        let (deleted, added) = plan::dir_changes(&disk, &known);
        let mut ops = plan::dir_renames(&disk, &known, &deleted, &added);
        if ops.is_empty() {
            let mut uploads = Vec::new();
            for (path, d) in &self.disk {
                let Disk::File(c, stat) = *d else { continue };
                let h = hash(c);
                match known.get(path) {
                    Some(Entry {
                        kind: EntryKind::File { hash: old, .. },
                        version,
                    }) if *old == h => {
                        let entry = Entry {
                            kind: EntryKind::File { stat, hash: h },
                            version: *version,
                        };
                        self.index.insert(path.clone(), entry);
                    }
                    known => {
                        let base = match known {
                            Some(Entry {
                                kind: EntryKind::File { .. },
                                version,
                            }) => *version,
                            _ => 0,
                        };
                        uploads.push(Op::Upload {
                            path: path.clone(),
                            base,
                            stat,
                            hash: h,
                        });
                    }
                }
            }
            ops = plan::file_changes(&disk, &known, &deleted, added, uploads);
        }
        let taken = |p: &WirePath| self.index.get(p).is_some() || self.disk.contains_key(p);
        let ops = plan::order(ops, &taken);
        if std::env::var_os("PLANNER_TRACE").is_some() {
            eprintln!("dev {} plans {ops:?}", self.id);
        }
        ops
    }

    /// Digests the oldest acknowledgement.
    pub fn digest_ack(&mut self) {
        let Some((op, ack)) = self.acks.pop_front() else {
            return;
        };
        let cursor = self.index.cursor();
        let effect = ack::on_ack(&mut self.index, &op, &ack, cursor);
        if std::env::var_os("PLANNER_TRACE").is_some() {
            eprintln!(
                "dev {} ack {:?} {} {} cursor {cursor}",
                self.id, ack.status, ack.version, ack.path
            );
        }
        if let Some(mv) = effect.local_move {
            let made = match mv.expect {
                ack::Expect::File(stat) => {
                    matches!(self.disk.get(&mv.to), Some(Disk::File(_, s)) if *s == stat)
                        || (matches!(self.disk.get(&mv.from), Some(Disk::File(_, s)) if *s == stat)
                            && self.move_local(&mv.from, &mv.to))
                }
                ack::Expect::Dir => {
                    self.local(&mv.from) == Local::Dir
                        && self.local(&mv.to) == Local::Absent
                        && self.move_local(&mv.from, &mv.to)
                }
                ack::Expect::Free => {
                    self.local(&mv.to) == Local::Absent && self.move_local(&mv.from, &mv.to)
                }
            };
            if let (true, Some(entry)) = (made, mv.record) {
                self.index.insert(mv.to, entry);
            }
        }
        self.pull_wanted |= effect.pull;
        if let Some(next) = effect.advance {
            self.index.set_cursor(next);
        }
        if let Some(back) = effect.rewind {
            if back < self.index.cursor() {
                self.index.set_cursor(back);
            }
        }
    }

    /// `rename(2)` of `from` (with what is below) to `to`, parents made;
    /// false when it cannot be done.
    pub fn move_local(&mut self, from: &WirePath, to: &WirePath) -> bool {
        if !self.disk.contains_key(from) || to.is_within(from) || self.local(to) == Local::Blocked {
            return false;
        }
        match (self.disk.get(from), self.disk.get(to)) {
            (_, None) => {}
            (Some(Disk::File(..)), Some(Disk::File(..))) => {}
            _ => return false,
        }
        let moved: Vec<(WirePath, Disk)> = self
            .disk
            .iter()
            .filter(|(p, _)| p.is_within(from))
            .map(|(p, d)| (p.clone(), *d))
            .collect();
        for (p, _) in &moved {
            self.disk.remove(p);
        }
        self.mkdirs(to);
        for (p, d) in moved {
            if let Some(q) = p.rebase(from, to) {
                self.disk.insert(q, d);
            }
        }
        true
    }

    fn mkdirs(&mut self, path: &WirePath) {
        let missing: Vec<WirePath> = ancestors(path)
            .filter(|a| !self.disk.contains_key(a))
            .collect();
        for dir in missing {
            self.disk.insert(dir, Disk::Dir);
        }
    }

    fn conflict_copy(&mut self, path: &WirePath) {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_100);
        let free = (1..)
            .map(|attempt| conflict_path(path, u64::from(self.id), when, attempt))
            .find(|p| !self.disk.contains_key(p))
            .expect("a free conflict name");
        self.move_local(path, &free);
    }

    fn is_synced(&self, path: &WirePath) -> bool {
        match (self.disk.get(path), self.index.get(path)) {
            (Some(Disk::File(c, _)), Some(e)) => e.hash() == Some(hash(*c)),
            _ => false,
        }
    }

    /// Pulls from `server` and applies the reply.
    pub fn pull(&mut self, server: &Server) {
        self.pull_wanted = false;
        let cursor = self.index.cursor();
        let mut failed = false;
        let mut changes = server.pull(cursor);
        if cursor == 0 {
            // A full listing: what it does not list is gone, removed first
            // (synced files and directories go; local edits stay, to be
            // pushed), as the applier does.
            let listed: std::collections::BTreeSet<&WirePath> =
                changes.iter().map(|c| &c.path).collect();
            // A path indexed above the listing's head was pushed after the
            // listing was made: not gone.
            let mut gone: Vec<WirePath> = Vec::new();
            for (path, e) in self.index.iter() {
                if e.version <= server.head
                    && !listed.contains(path)
                    && !gone.last().is_some_and(|g| path.is_within(g))
                {
                    gone.push(path.clone());
                }
            }
            let deleted = gone.into_iter().map(|path| Change {
                path,
                node: None,
                version: server.head,
            });
            changes = deleted.chain(changes).collect();
        }
        // An entry older than what the index holds at its path is this
        // device's own acknowledged push, made after the reply: left alone
        // decided before anything is applied, as the applier does.
        let current: Vec<&Change> = changes
            .iter()
            .filter(|c| {
                self.index
                    .get(&c.path)
                    .is_none_or(|e| e.version <= c.version)
            })
            .collect();
        // Listed as deleted and again as the file the index holds there by
        // content: the deletion is not applied to it.
        let remade: Vec<WirePath> = current
            .iter()
            .filter(|c| match c.node {
                Some(Node::File(content)) => self
                    .index
                    .get(&c.path)
                    .is_some_and(|e| e.hash() == Some(hash(content))),
                _ => false,
            })
            .map(|c| c.path.clone())
            .collect();
        let current = current
            .into_iter()
            .filter(|c| c.node.is_some() || !remade.contains(&c.path));
        for change in current {
            failed |= !self.apply(change);
        }
        self.pull_failed = failed;
        if std::env::var_os("PLANNER_TRACE").is_some() {
            eprintln!(
                "dev {} pulled {changes:?}\n  index {:?}",
                self.id,
                self.index.iter().collect::<Vec<_>>()
            );
        }
        if !failed {
            self.index.set_cursor(cursor.max(server.head));
        }
    }

    /// One entry (the applier's rules); false when the pull must be repeated.
    fn apply(&mut self, change: &Change) -> bool {
        let path = &change.path;
        match change.node {
            None => {
                match self.local(path) {
                    Local::File(_) if self.is_synced(path) => {
                        self.disk.remove(path);
                    }
                    Local::Dir => self.remove_tree(path, change.version),
                    _ => {}
                }
                self.index.remove_subtree_up_to(path, change.version);
                true
            }
            Some(Node::Dir) => {
                let dir = Entry {
                    kind: EntryKind::Dir,
                    version: change.version,
                };
                match self.local(path) {
                    Local::Dir => {}
                    _ if self.agrees(path, None, change.version) => return true,
                    Local::Blocked => {
                        self.clear_file_ancestor(path);
                        self.mkdirs(path);
                        self.disk.insert(path.clone(), Disk::Dir);
                    }
                    Local::Absent => {
                        self.mkdirs(path);
                        self.disk.insert(path.clone(), Disk::Dir);
                    }
                    Local::File(_) => {
                        if self.is_synced(path) {
                            self.disk.remove(path);
                        } else {
                            self.conflict_copy(path);
                        }
                        self.index.remove(path);
                        self.disk.insert(path.clone(), Disk::Dir);
                    }
                }
                self.index.insert(path.clone(), dir);
                true
            }
            Some(Node::File(c)) => self.apply_file(path, c, change.version),
        }
    }

    fn apply_file(&mut self, path: &WirePath, c: Content, version: u64) -> bool {
        let indexed = self.index.get(path).copied();
        match self.local(path) {
            Local::Absent | Local::Dir | Local::Blocked if self.agrees(path, Some(c), version) => {
                return true
            }
            Local::Blocked => self.clear_file_ancestor(path),
            // Deleted here, newer on the server: the Delete (old base) goes
            // first and the server decides (§7.2); the pull is repeated.
            Local::Absent if indexed.is_some_and(|e| e.hash().is_some()) => return false,
            Local::Absent => {}
            Local::Dir => {
                if !indexed.is_some_and(|e| e.kind == EntryKind::Dir) {
                    return false;
                }
                self.remove_tree(path, version);
                self.index.remove_subtree_up_to(path, version);
                if self.local(path) != Local::Absent {
                    return false;
                }
            }
            Local::File(local) => {
                if local == c {
                    self.record(path, version);
                    return true;
                }
                if !self.is_synced(path) {
                    // Edited here: kept, pushed with its old base; the
                    // server decides (§7.2) and the pull is repeated.
                    return self.agrees(path, Some(c), version);
                }
            }
        }
        let stat = self.stat_for(c);
        self.mkdirs(path);
        self.disk.insert(path.clone(), Disk::File(c, stat));
        self.record(path, version);
        true
    }

    /// The applier's `agrees`: the server holds what the index says was
    /// synced (content `c`, or a directory for `None`); adopt its version.
    fn agrees(&mut self, path: &WirePath, c: Option<Content>, version: u64) -> bool {
        let Some(mut entry) = self.index.get(path).copied() else {
            return false;
        };
        if entry.hash() != c.map(hash) {
            return false;
        }
        entry.version = version;
        self.index.insert(path.clone(), entry);
        true
    }

    fn record(&mut self, path: &WirePath, version: u64) {
        if let Some(d) = self.disk.get(path).copied() {
            let entry = self.entry_of(d, version);
            self.index.insert(path.clone(), entry);
        }
    }

    fn clear_file_ancestor(&mut self, path: &WirePath) {
        let mut up: Vec<WirePath> = ancestors(path).collect();
        up.reverse();
        for dir in up {
            match self.disk.get(&dir) {
                Some(Disk::Dir) => {}
                Some(Disk::File(..)) => {
                    self.conflict_copy(&dir);
                    if self.index.get(&dir).is_some_and(|e| e.hash().is_some()) {
                        self.index.remove(&dir);
                    }
                    return;
                }
                None => return,
            }
        }
    }

    /// Removes what below `dir` (and `dir`) is synced, as removed by
    /// change `version`; keeps local work, what the index holds at a newer
    /// version and the directories holding it.
    fn remove_tree(&mut self, dir: &WirePath, version: u64) {
        let below: Vec<WirePath> = self
            .disk
            .keys()
            .filter(|p| p.is_within(dir))
            .cloned()
            .collect();
        let newer: Vec<&WirePath> = below
            .iter()
            .filter(|p| self.index.get(p).is_some_and(|e| e.version > version))
            .collect();
        for p in below.iter().rev() {
            if newer.iter().any(|n| n.is_within(p)) {
                continue;
            }
            match self.disk.get(p) {
                Some(Disk::File(..)) if self.is_synced(p) => {
                    self.disk.remove(p);
                }
                Some(Disk::Dir) => {
                    let known = self.index.get(p).is_some_and(|e| e.kind == EntryKind::Dir);
                    let empty = !self.disk.keys().any(|q| q != p && q.is_within(p));
                    if known && empty {
                        self.disk.remove(p);
                    }
                }
                _ => {}
            }
        }
    }
}
