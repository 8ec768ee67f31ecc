//! An in-memory server that decides pushes by exactly the rules of
//! protocol-spec §5.4 (versions, base versions, Stale, conflict copies) and
//! answers pulls as §5.2 does (each touched path once with its state now,
//! Deleted first, then directories parents first, then files).

use cloudservice::client::plan::Op;
use cloudservice::protocol::{conflict_path, ContentHash, PushAck, PushStatus, WirePath};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// A content, by number; its bytes are `content-N`.
pub type Content = u32;

/// The bytes of a content.
pub fn bytes(c: Content) -> Vec<u8> {
    format!("content-{c}").into_bytes()
}

/// The hash of a content.
pub fn hash(c: Content) -> ContentHash {
    ContentHash::of(&bytes(c))
}

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Content),
}

/// One entry of a pull reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: WirePath,
    /// `None`: Deleted.
    pub node: Option<Node>,
    pub version: u64,
}

/// Paths a change emptied (with what was below) and paths it set.
#[derive(Debug, Default, Clone)]
struct Record {
    removed: Vec<WirePath>,
    set: Vec<WirePath>,
}

/// The server's tree of one user and its journal.
#[derive(Debug, Default, Clone)]
pub struct Server {
    pub tree: BTreeMap<WirePath, (Node, u64)>,
    pub head: u64,
    journal: Vec<Record>,
    /// Every content ever written, by hash (uploads carry only the hash).
    pub contents: HashMap<ContentHash, Content>,
    /// Which device made each change, for R-5.4.9's directory row.
    authors: HashMap<u64, u32>,
}

/// The instant every conflict name is stamped with.
fn when() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000)
}

/// Strict ancestors, nearest first.
pub fn ancestors(path: &WirePath) -> impl Iterator<Item = WirePath> {
    std::iter::successors(path.parent(), WirePath::parent)
}

impl Server {
    /// A server whose tree is `base`, journaled as change 1.
    pub fn with(base: &BTreeMap<WirePath, Node>) -> Server {
        let mut server = Server::default();
        let mut rec = Record::default();
        for (path, node) in base {
            server.tree.insert(path.clone(), (*node, 1));
            rec.set.push(path.clone());
        }
        server.commit(rec);
        server
    }

    fn commit(&mut self, rec: Record) -> u64 {
        self.journal.push(rec);
        self.head += 1;
        self.head
    }

    fn file_ancestor(&self, path: &WirePath) -> Option<WirePath> {
        ancestors(path).find(|a| matches!(self.tree.get(a), Some((Node::File(_), _))))
    }

    fn conflict_name(&self, path: &WirePath, client: u32) -> WirePath {
        (1..)
            .map(|attempt| conflict_path(path, u64::from(client), when(), attempt))
            .find(|p| !self.tree.contains_key(p))
            .expect("a free conflict name")
    }

    /// Where an entry meant for `path` goes when an ancestor is a file: below
    /// that file's conflict name.
    fn below_conflict(&self, path: &WirePath, file: &WirePath, client: u32) -> WirePath {
        let copy = self.conflict_name(file, client);
        path.rebase(file, &copy).expect("a valid rebased path")
    }

    fn make_parents(&mut self, path: &WirePath, seq: u64, rec: &mut Record) {
        let mut missing: Vec<WirePath> = ancestors(path)
            .filter(|a| !self.tree.contains_key(a))
            .collect();
        missing.reverse();
        for dir in missing {
            self.tree.insert(dir.clone(), (Node::Dir, seq));
            rec.set.push(dir);
        }
    }

    fn put(&mut self, path: WirePath, node: Node, rec: &mut Record) -> u64 {
        let seq = self.head + 1;
        self.make_parents(&path, seq, rec);
        self.tree.insert(path.clone(), (node, seq));
        rec.set.push(path);
        self.commit(std::mem::take(rec))
    }

    fn subtree(&self, path: &WirePath) -> Vec<WirePath> {
        self.tree
            .keys()
            .filter(|p| p.is_within(path))
            .cloned()
            .collect()
    }

    /// Applies one push of `client`; `cursor` is the client's cursor when it
    /// sent it (for RemoveDir).
    pub fn push(&mut self, client: u32, op: &Op, cursor: u64) -> PushAck {
        let head = self.head;
        let done = self.apply(client, op, cursor);
        for seq in head + 1..=self.head {
            self.authors.insert(seq, client);
        }
        done
    }

    fn apply(&mut self, client: u32, op: &Op, cursor: u64) -> PushAck {
        let ack = |status, version, path: &WirePath| PushAck {
            status,
            version,
            path: path.clone(),
        };
        let mut rec = Record::default();
        match op {
            Op::Stream { .. } => panic!("a scanner with streams off plans no one-read upload"),
            Op::Upload {
                path, base, hash, ..
            } => {
                let content = self.contents[hash];
                let node = Node::File(content);
                if let Some(file) = self.file_ancestor(path) {
                    let to = self.below_conflict(path, &file, client);
                    let v = self.put(to.clone(), node, &mut rec);
                    return ack(PushStatus::Conflict, v, &to);
                }
                match self.tree.get(path).copied() {
                    None => {
                        let v = self.put(path.clone(), node, &mut rec);
                        ack(PushStatus::Applied, v, path)
                    }
                    Some((Node::File(c), v)) if c == content => ack(PushStatus::Unchanged, v, path),
                    Some((Node::File(_), v)) if v == *base => {
                        let v = self.put(path.clone(), node, &mut rec);
                        ack(PushStatus::Applied, v, path)
                    }
                    Some(_) => {
                        let to = self.conflict_name(path, client);
                        let v = self.put(to.clone(), node, &mut rec);
                        ack(PushStatus::Conflict, v, &to)
                    }
                }
            }
            Op::MakeDir { path } => {
                let blocking = match self.tree.get(path) {
                    Some((Node::File(_), _)) => Some(path.clone()),
                    _ => self.file_ancestor(path),
                };
                if let Some(file) = blocking {
                    let to = self.below_conflict(path, &file, client);
                    let v = self.put(to.clone(), Node::Dir, &mut rec);
                    return ack(PushStatus::Conflict, v, &to);
                }
                match self.tree.get(path).copied() {
                    Some((_, v)) => ack(PushStatus::Unchanged, v, path),
                    None => {
                        let v = self.put(path.clone(), Node::Dir, &mut rec);
                        ack(PushStatus::Applied, v, path)
                    }
                }
            }
            Op::Delete { path, base } => match self.tree.get(path).copied() {
                None => ack(PushStatus::Unchanged, 0, path),
                Some((Node::Dir, v)) => ack(PushStatus::Stale, v, path),
                Some((Node::File(_), v)) if v == *base => {
                    self.tree.remove(path);
                    rec.removed.push(path.clone());
                    let v = self.commit(rec);
                    ack(PushStatus::Applied, v, path)
                }
                Some((_, v)) => ack(PushStatus::Stale, v, path),
            },
            Op::RemoveDir { path } => self.remove_dir(path, cursor),
            Op::Rename { from, to, base } => {
                // another device's directory this one has not
                // pulled is not what it moved.
                if let Some((Node::Dir, v)) = self.tree.get(from).copied() {
                    let other = self.authors.get(&v).is_some_and(|a| *a != client);
                    if v > *base && other && v > cursor {
                        return ack(PushStatus::Stale, v, from);
                    }
                }
                self.rename(client, from, to)
            }
            // The model's devices never chmod, so no SetMode is planned;
            // were one sent, a file's mode is all the model does not keep.
            Op::SetMode { path, .. } => match self.tree.get(path).copied() {
                Some((Node::File(_), v)) => ack(PushStatus::Unchanged, v, path),
                Some((_, v)) => ack(PushStatus::Stale, v, path),
                None => ack(PushStatus::Stale, 0, path),
            },
        }
    }

    fn remove_dir(&mut self, path: &WirePath, cursor: u64) -> PushAck {
        let ack = |status, version| PushAck {
            status,
            version,
            path: path.clone(),
        };
        let v = match self.tree.get(path).copied() {
            None => return ack(PushStatus::Unchanged, 0),
            Some((Node::File(_), v)) => return ack(PushStatus::Stale, v),
            Some((Node::Dir, v)) => v,
        };
        let all = self.subtree(path);
        let mut keep: Vec<WirePath> = all
            .iter()
            .filter(|p| *p != path && self.tree[*p].1 > cursor)
            .cloned()
            .collect();
        let kept_ancestors: Vec<WirePath> = keep
            .iter()
            .flat_map(|p| {
                ancestors(p)
                    .filter(|a| a.is_within(path))
                    .collect::<Vec<_>>()
            })
            .collect();
        keep.extend(kept_ancestors);
        let mut rec = Record::default();
        for p in &all {
            if !keep.contains(p) {
                self.tree.remove(p);
                rec.removed.push(p.clone());
            }
        }
        match (rec.removed.is_empty(), keep.is_empty()) {
            (true, _) => ack(PushStatus::Stale, v),
            (false, full) => {
                let seq = self.commit(rec);
                let status = if full {
                    PushStatus::Applied
                } else {
                    PushStatus::Stale
                };
                ack(status, seq)
            }
        }
    }

    fn rename(&mut self, client: u32, from: &WirePath, to: &WirePath) -> PushAck {
        let Some((_, v)) = self.tree.get(from).copied() else {
            return PushAck {
                status: PushStatus::Stale,
                version: 0,
                path: from.clone(),
            };
        };
        if to.is_within(from) {
            return PushAck {
                status: PushStatus::Stale,
                version: v,
                path: from.clone(),
            };
        }
        let (status, dest) = if self.tree.contains_key(to) {
            (PushStatus::Conflict, self.conflict_name(to, client))
        } else if let Some(file) = self.file_ancestor(to) {
            (PushStatus::Conflict, self.below_conflict(to, &file, client))
        } else {
            (PushStatus::Applied, to.clone())
        };
        let seq = self.head + 1;
        let mut rec = Record::default();
        let moved: Vec<(WirePath, Node)> = self
            .subtree(from)
            .into_iter()
            .map(|p| {
                let node = self.tree.remove(&p).expect("listed").0;
                (p, node)
            })
            .collect();
        rec.removed.push(from.clone());
        self.make_parents(&dest, seq, &mut rec);
        for (p, node) in moved {
            let q = p.rebase(from, &dest).expect("valid rebased path");
            self.tree.insert(q.clone(), (node, seq));
            rec.set.push(q);
        }
        let seq = self.commit(rec);
        PushAck {
            status,
            version: seq,
            path: dest,
        }
    }

    /// The reply to a Pull from `cursor`: a full listing from 0, else
    /// incremental (the journal is never compacted).
    pub fn pull(&self, cursor: u64) -> Vec<Change> {
        if cursor == 0 {
            // Full listing: every path once, no Deleted entries.
            let (dirs, files): (Vec<Change>, Vec<Change>) = self
                .tree
                .iter()
                .map(|(p, (n, v))| Change {
                    path: p.clone(),
                    node: Some(*n),
                    version: *v,
                })
                .partition(|c| c.node == Some(Node::Dir));
            return dirs.into_iter().chain(files).collect();
        }
        // Each touched path with the newest change after the cursor that
        // removed it, if one did.
        let mut touched: BTreeMap<WirePath, Option<u64>> = BTreeMap::new();
        for (i, rec) in self.journal.iter().enumerate().skip(cursor as usize) {
            let seq = i as u64 + 1;
            for p in &rec.removed {
                touched.insert(p.clone(), Some(seq));
            }
            for p in &rec.set {
                touched.entry(p.clone()).or_insert(None);
            }
        }
        // §7.1: a Deleted entry carries the change that removed the path:
        // the newest removal of the path or of a directory above it.
        let removed_at = |path: &WirePath| {
            std::iter::once(path.clone())
                .chain(ancestors(path))
                .filter_map(|p| touched.get(&p).copied().flatten())
                .max()
                .unwrap_or(self.head)
        };
        let mut deleted = Vec::new();
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for (path, removed) in &touched {
            let path = path.clone();
            let now = self.tree.get(&path).copied();
            if removed.is_some() || now.is_none() {
                deleted.push(Change {
                    path: path.clone(),
                    node: None,
                    version: removed_at(&path),
                });
            }
            match now {
                Some((Node::Dir, v)) => dirs.push(Change {
                    path,
                    node: Some(Node::Dir),
                    version: v,
                }),
                Some((node, v)) => files.push(Change {
                    path,
                    node: Some(node),
                    version: v,
                }),
                None => {}
            }
        }
        deleted.extend(dirs);
        deleted.extend(files);
        deleted
    }
}
