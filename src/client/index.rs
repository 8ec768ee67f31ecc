//! The local index: for every synced path, what it was when this device and
//! the server last agreed on it (kind, stat record, BLAKE3 hash, version),
//! plus the pull cursor. Whether a file still matches its record is decided
//! by [`super::detect::judge`] alone. "Local change" means "the disk differs from the
//! index"; that is how offline edits and deletions are found, and how the
//! client's own writes are told apart from the user's (echo suppression).

use super::detect;
use super::error::ClientError;
use super::fsutil::{write_atomic, Stat};
use crate::protocol::{ContentHash, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::Path;

/// What a synced path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A file with this stat and content.
    File {
        /// The stat record when indexed (a zero field: rehash before trusting).
        stat: Stat,
        /// BLAKE3 of the content.
        hash: ContentHash,
    },
}

/// One synced path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: EntryKind,
    /// The server version this state was synced at.
    pub version: u64,
}

impl Entry {
    /// A file synced at `version` whose stat is `stat` now: the record is
    /// sealed ([`detect::seal`]) so a racy one is hashed at the next look.
    pub fn synced_file(stat: Stat, hash: ContentHash, version: u64) -> Entry {
        Entry {
            kind: EntryKind::File {
                stat: detect::seal(stat),
                hash,
            },
            version,
        }
    }

    /// A file this client just renamed into place at `version`: `stat` is
    /// taken right after the rename, `staged` is the temporary file's right
    /// before it ([`detect::seal_placed_at`]: not hashed again at the next
    /// look when it is the staged file and its mtime is not racy).
    pub fn placed_file(stat: Stat, staged: Option<Stat>, hash: ContentHash, version: u64) -> Entry {
        Entry {
            kind: EntryKind::File {
                stat: detect::seal_placed_at(stat, staged, crate::client::fsutil::now_ns()),
                hash,
            },
            version,
        }
    }

    /// The file's hash, or `None` for a directory.
    pub fn hash(&self) -> Option<ContentHash> {
        match self.kind {
            EntryKind::File { hash, .. } => Some(hash),
            EntryKind::Dir => None,
        }
    }
}

/// The index and the pull cursor, saved together so they never disagree.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Newest journal sequence number whose changes are applied here.
    cursor: u64,
    /// The last change this device saw and the tag the server gave it
    /// (PROTOCOL.md §5.8): named in every pull, so a server that lost
    /// that history says so. (0, 0): none known.
    checked: (u64, u64),
    /// The highest the cursor has been since this index was loaded (or
    /// made): what this device has seen, which a rewind (to list paths
    /// again) does not undo ([`Index::seen`]). Not saved: a loaded index
    /// starts at its cursor.
    seen: u64,
    entries: BTreeMap<WirePath, Entry>,
    /// Mutations since load, and how many of them are on disk: an idle pull
    /// does not rewrite the file.
    changes: u64,
    saved: Option<u64>,
    /// Every indexed name of each (device, inode): a write through one hard
    /// link changes them all, though the watcher reports only the one.
    by_inode: HashMap<(u64, u64), BTreeSet<WirePath>>,
    /// The synced base of each path the ignore rules hide now (README
    /// "Ignoring files"): not synced, so not an entry, but kept so that
    /// when the rule goes away what was done to the path meanwhile is an
    /// ordinary local change on that base, not a new file that conflicts
    /// with the server's copy ([`Index::hold`], [`Index::release`]).
    held: BTreeMap<WirePath, Entry>,
    /// Server files this device does not place because a directory it
    /// keeps out of sync is in their way (PROTOCOL.md R-5.6.5): path → the
    /// version held back. The cursor passes them; they are pulled again
    /// once the directory is gone or synced ([`Index::hold_back`]).
    held_back: BTreeMap<WirePath, u64>,
}

impl PartialEq for Index {
    fn eq(&self, other: &Index) -> bool {
        self.cursor == other.cursor
            && self.checked == other.checked
            && self.entries == other.entries
            && self.held == other.held
            && self.held_back == other.held_back
    }
}

impl Eq for Index {}

/// The header of the current format (version 2 added ctime, device and
/// inode to file lines, version 3 the executable bit, `x` or `-`, version 4
/// the `I` lines of held bases, version 5 the `B` lines of held-back
/// server files, version 6 the birth time after the executable bit,
/// version 7 the checked change and its tag after the cursor).
const HEADER: &str = "cloudservice-index 7";
/// The header of the format before: no checked change (none known).
const HEADER_V6: &str = "cloudservice-index 6";
/// The header of the format before: file lines without the birth time
/// (loaded as 0, unknown: PROTOCOL.md R-7.2.4's rule without it).
const HEADER_V5: &str = "cloudservice-index 5";
/// The header of the format before: the same lines without `B` lines.
const HEADER_V4: &str = "cloudservice-index 4";
/// The header of the format before: the same lines without `I` lines.
const HEADER_V3: &str = "cloudservice-index 3";
/// The header of the format before: loaded with every file not executable
/// (a file that is gets its bit pushed at the first scan).
const HEADER_V2: &str = "cloudservice-index 2";
/// The header of the format before: still loaded, its files untrusted.
const HEADER_V1: &str = "cloudservice-index 1";

impl Index {
    /// An empty index at cursor 0.
    pub fn new() -> Index {
        Index::default()
    }

    /// Newest journal sequence number whose changes are applied here.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The last change this device saw with its tag (§5.8; (0, 0): none).
    pub fn checked(&self) -> (u64, u64) {
        self.checked
    }

    /// The server does not hold the history this device saw (PROTOCOL.md
    /// R-5.8.4): of what it saw, only the changes up to `common` are the
    /// server's, so a later `RemoveDir` carries no cursor of the lost
    /// history ([`Index::seen`] is `common`, or the cursor if higher).
    pub fn forget_seen(&mut self, common: u64) {
        self.seen = common;
    }

    /// Records the change `seq` a pull reply reached and its `tag`.
    pub fn set_checked(&mut self, seq: u64, tag: u64) {
        if self.checked != (seq, tag) {
            self.checked = (seq, tag);
            self.changes += 1;
        }
    }

    /// What a `PullChecked` names (§5.8): the cursor, the change checked
    /// and its tag; without a known tag, the cursor itself and tag 0.
    pub fn pull_point(&self) -> (u64, u64, u64) {
        match self.checked {
            (_, 0) => (self.cursor, self.cursor, 0),
            (seq, tag) => (self.cursor, seq, tag),
        }
    }

    /// Moves the cursor.
    pub fn set_cursor(&mut self, cursor: u64) {
        self.seen = self.seen.max(cursor);
        if cursor != self.cursor {
            self.cursor = cursor;
            self.changes += 1;
        }
    }

    /// The highest journal sequence number this device's pulls (or its own
    /// pushes right after the cursor) reached since the index was loaded,
    /// at least the loaded cursor: every server change up to it was pulled.
    /// The cursor itself goes back below it when a path must be listed
    /// again (a refused push, a directory renamed behind unpulled changes,
    /// new ignore rules: the next pull is a full listing from 0), and stays
    /// there until that pull completes, which a local edit deferred to its
    /// push can put off. A `RemoveDir` carries this, not the cursor
    /// (PROTOCOL.md R-7.2.6): with cursor 0, every entry below the
    /// directory counts as unseen and the server keeps all of it.
    pub fn seen(&self) -> u64 {
        self.seen.max(self.cursor)
    }

    /// The cursor a `RemoveDir` of `dir` carries: [`Index::seen`], but
    /// below the version of any server entry held back at or under `dir`
    /// ([`Index::hold_back`]; PROTOCOL.md R-7.2.7). This device never
    /// placed such an entry, so the server must count it as unseen and
    /// keep it; the cursor passing it would have the RemoveDir delete on
    /// the server a file this device never had.
    pub fn remove_dir_cursor(&self, dir: &WirePath) -> u64 {
        self.held_back
            .iter()
            .filter(|(path, _)| path.is_within(dir))
            .map(|(_, version)| version.saturating_sub(1))
            .fold(self.seen(), u64::min)
    }

    /// The entry for `path`.
    pub fn get(&self, path: &WirePath) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Sets the entry for `path`.
    pub fn insert(&mut self, path: WirePath, entry: Entry) {
        let old = self.entries.insert(path.clone(), entry);
        if old != Some(entry) {
            self.changes += 1;
            if let Some(old) = old {
                self.unlink_inode(&path, &old);
            }
            if let Some(key) = inode_key(&entry) {
                self.by_inode.entry(key).or_default().insert(path);
            }
        }
    }

    /// Stops syncing `path` (only it, not what is below it) because the
    /// ignore rules hide it: its entry becomes its held base. True when it
    /// had an entry.
    pub fn hold(&mut self, path: &WirePath) -> bool {
        match self.remove(path) {
            Some(entry) => {
                self.held.insert(path.clone(), entry);
                true
            }
            None => false,
        }
    }

    /// Syncs `path` again (the rules no longer hide it) from its held base,
    /// unless it has an entry already (which wins). True when an entry came
    /// back.
    pub fn release(&mut self, path: &WirePath) -> bool {
        let Some(entry) = self.held.remove(path) else {
            return false;
        };
        self.changes += 1;
        if self.entries.contains_key(path) {
            return false;
        }
        self.insert(path.clone(), entry);
        true
    }

    /// Records that the server's file at `path`, `version`, is not placed
    /// here (a directory kept out of sync is in the way). True when this
    /// is news (not recorded before at that version): the caller warns once.
    pub fn hold_back(&mut self, path: &WirePath, version: u64) -> bool {
        let news = self.held_back.insert(path.clone(), version) != Some(version);
        if news {
            self.changes += 1;
        }
        news
    }

    /// Forgets that the server's file at `path` was held back (a pull is
    /// deciding the path again). Returns the version that was held back.
    pub fn unhold_back(&mut self, path: &WirePath) -> Option<u64> {
        let old = self.held_back.remove(path);
        if old.is_some() {
            self.changes += 1;
        }
        old
    }

    /// The server files held back ([`Index::hold_back`]): path and version,
    /// sorted by path.
    pub fn held_back(&self) -> impl Iterator<Item = (&WirePath, u64)> {
        self.held_back.iter().map(|(p, v)| (p, *v))
    }

    /// The held bases of ignored paths ([`Index::hold`]), sorted by path.
    pub fn held(&self) -> impl Iterator<Item = (&WirePath, &Entry)> {
        self.held.iter()
    }

    /// Forgets `path` only (not what is below it).
    pub fn remove(&mut self, path: &WirePath) -> Option<Entry> {
        let old = self.entries.remove(path);
        if let Some(old) = old {
            self.changes += 1;
            self.unlink_inode(path, &old);
        }
        old
    }

    fn unlink_inode(&mut self, path: &WirePath, old: &Entry) {
        if let Some(key) = inode_key(old) {
            if let Some(names) = self.by_inode.get_mut(&key) {
                names.remove(path);
                if names.is_empty() {
                    self.by_inode.remove(&key);
                }
            }
        }
    }

    /// The indexed paths whose record names the file `(dev, ino)`: every
    /// name of a hard-linked file (none for inode 0, "unknown").
    pub fn paths_of_inode(&self, dev: u64, ino: u64) -> impl Iterator<Item = &WirePath> {
        self.by_inode.get(&(dev, ino)).into_iter().flatten()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of indexed files.
    pub fn file_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count()
    }

    /// Every entry, parents before children.
    pub fn iter(&self) -> impl Iterator<Item = (&WirePath, &Entry)> {
        self.entries.iter()
    }

    /// `path` and every entry below it. `None` means the whole index.
    pub fn subtree<'a>(
        &'a self,
        path: Option<&'a WirePath>,
    ) -> Box<dyn Iterator<Item = (&'a WirePath, &'a Entry)> + 'a> {
        let Some(path) = path else {
            return Box::new(self.entries.iter());
        };
        let own = self.entries.get_key_value(path);
        // Children sort between "path/" and "path0" ('0' follows '/').
        let lo = format!("{path}/");
        let hi = format!("{path}0");
        let below = self
            .entries
            .range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())));
        Box::new(own.into_iter().chain(below))
    }

    /// Forgets `path` and everything below it; returns what was removed.
    pub fn remove_subtree(&mut self, path: &WirePath) -> Vec<(WirePath, Entry)> {
        let keys: Vec<WirePath> = self.subtree(Some(path)).map(|(k, _)| k.clone()).collect();
        keys.into_iter()
            .filter_map(|k| self.remove(&k).map(|e| (k, e)))
            .collect()
    }

    /// Forgets `path` and everything below it that is at `version` or
    /// older; entries at a newer version (made after a deletion by change
    /// `version`) stay. Returns what was removed.
    /// The directories holding such a newer entry stay too.
    pub fn remove_subtree_up_to(
        &mut self,
        path: &WirePath,
        version: u64,
    ) -> Vec<(WirePath, Entry)> {
        let newer: Vec<WirePath> = self
            .subtree(Some(path))
            .filter(|(_, e)| e.version > version)
            .map(|(k, _)| k.clone())
            .collect();
        let keys: Vec<WirePath> = self
            .subtree(Some(path))
            .filter(|(k, e)| e.version <= version && !newer.iter().any(|n| n.is_within(k)))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.remove(&k).map(|e| (k, e)))
            .collect()
    }

    /// Moves `from` and everything below it to `to`; moved entries take
    /// `version` when given (a server rename gives them its sequence number).
    pub fn rebase(&mut self, from: &WirePath, to: &WirePath, version: Option<u64>) {
        for (path, mut entry) in self.remove_subtree(from) {
            if let Some(moved) = path.rebase(from, to) {
                if let Some(v) = version {
                    entry.version = v;
                }
                self.insert(moved, entry);
            }
        }
    }

    /// Loads the index, or an empty one when the file does not exist.
    ///
    /// # Errors
    /// Reading, or a line that does not parse.
    pub fn load(file: &Path) -> Result<Index, ClientError> {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::new()),
            Err(e) => return Err(ClientError::io(format!("read {}", file.display()), e)),
        };
        let mut index = Index::parse(&text).map_err(|detail| ClientError::CorruptState {
            file: file.to_path_buf(),
            detail,
        })?;
        index.saved = Some(0);
        Ok(index)
    }

    /// Saves the index atomically (temporary file, then rename), unless
    /// nothing changed since the last save.
    ///
    /// # Errors
    /// Writing the file.
    pub fn save(&mut self, file: &Path) -> Result<(), ClientError> {
        if self.saved == Some(self.changes) {
            return Ok(());
        }
        write_atomic(file, self.render().as_bytes())
            .map_err(|e| ClientError::io(format!("write {}", file.display()), e))?;
        self.saved = Some(self.changes);
        Ok(())
    }

    /// The file format: a header line with the cursor, then one line per
    /// entry, fields separated by tabs (paths cannot contain control
    /// characters); times in nanoseconds since the epoch:
    /// ```text
    /// cloudservice-index 7<TAB>cursor<TAB>42<TAB>checked<TAB>42<TAB>tag_hex16
    /// D<TAB>version<TAB>path
    /// F<TAB>version<TAB>size<TAB>mtime_ns<TAB>ctime_ns<TAB>dev<TAB>ino<TAB>exec<TAB>btime_ns<TAB>hash_hex<TAB>path
    /// I<TAB>D<TAB>…   or   I<TAB>F<TAB>…
    /// ```
    /// An `I` line is a held base ([`Index::hold`]): `I`, then a `D` or `F`
    /// line as above. A `B` line (`B<TAB>version<TAB>path`) is a server
    /// file held back ([`Index::hold_back`]).
    /// `exec` is `x` or `-` (the executable bit); version 2 had no such
    /// field and loads every file as not executable. `btime_ns` is the
    /// birth time (0: unknown); versions 2 to 5 had no such field and load
    /// it as 0, which [`Stat::same_inode`] reads as "not known to differ"
    /// (the scanner records it when it next finds the file unchanged).
    /// Version 1 (`cloudservice-index 1`) had `F` lines without ctime, device
    /// and inode; they load with those fields 0, which the rule reads as
    /// "unknown: hash again" (so the first scan after an upgrade rehashes).
    fn render(&self) -> String {
        let mut out = format!(
            "{HEADER}\tcursor\t{}\tchecked\t{}\t{:016x}\n",
            self.cursor, self.checked.0, self.checked.1
        );
        let lines = self
            .entries
            .iter()
            .map(|e| ("", e))
            .chain(self.held.iter().map(|e| ("I\t", e)));
        for (held, (path, entry)) in lines {
            out.push_str(held);
            out.push_str(&entry_line(path, entry));
            out.push('\n');
        }
        for (path, version) in &self.held_back {
            let _ = writeln!(out, "B\t{version}\t{path}");
        }
        out
    }

    fn parse(text: &str) -> Result<Index, String> {
        let mut lines = text.lines();
        let header = lines.next().ok_or("empty file")?;
        // Format 7: `cursor N checked SEQ TAG`; before it, no checked change.
        let (rest, checked) = match header.strip_prefix(HEADER) {
            Some(rest) => {
                let (cursor, checked) = rest.split_once("\tchecked\t").ok_or("bad header")?;
                let (seq, tag) = checked.split_once('\t').ok_or("bad header")?;
                let seq = seq.parse::<u64>().map_err(|_| "bad header")?;
                let tag = u64::from_str_radix(tag, 16).map_err(|_| "bad header")?;
                (Some(cursor), (seq, tag))
            }
            None => (None, (0, 0)),
        };
        let cursor = rest
            .or_else(|| header.strip_prefix(HEADER_V6))
            .or_else(|| header.strip_prefix(HEADER_V5))
            .or_else(|| header.strip_prefix(HEADER_V4))
            .or_else(|| header.strip_prefix(HEADER_V3))
            .or_else(|| header.strip_prefix(HEADER_V2))
            .or_else(|| header.strip_prefix(HEADER_V1))
            .and_then(|rest| rest.strip_prefix("\tcursor\t"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or("bad header")?;
        let mut index = Index {
            cursor,
            checked,
            seen: cursor,
            ..Index::default()
        };
        for (n, line) in lines.enumerate() {
            let bad = || format!("line {}", n + 2);
            let fields: Vec<&str> = line.split('\t').collect();
            if let ["B", version, path] = fields[..] {
                let version = version.parse::<u64>().map_err(|_| bad())?;
                let path = WirePath::new(path).map_err(|_| bad())?;
                index.held_back.insert(path, version);
                continue;
            }
            let (held, fields) = match fields.split_first() {
                Some((&"I", rest)) => (true, rest),
                _ => (false, &fields[..]),
            };
            let (path, entry) = parse_entry(fields).ok_or_else(bad)?;
            let path = WirePath::new(path).map_err(|_| bad())?;
            if held {
                index.held.insert(path, entry);
            } else {
                index.insert(path, entry);
            }
        }
        index.changes = 0;
        Ok(index)
    }
}

/// One entry as a line of the index file (without its newline): the `D`
/// or `F` line [`Index::render`] documents. The pull's log records a
/// placement with it too (`applier::placement_log`), so an entry has one
/// written form.
pub fn entry_line(path: &WirePath, entry: &Entry) -> String {
    match entry.kind {
        EntryKind::Dir => format!("D\t{}\t{path}", entry.version),
        EntryKind::File { stat, hash } => format!(
            "F\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{hash}\t{path}",
            entry.version,
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            stat.dev,
            stat.ino,
            if stat.exec { "x" } else { "-" },
            stat.btime_ns
        ),
    }
}

/// The entry an [`entry_line`] of the current format holds; `None` when
/// it does not parse (a torn record).
pub fn parse_entry_line(line: &str) -> Option<(WirePath, Entry)> {
    let fields: Vec<&str> = line.split('\t').collect();
    let (path, entry) = parse_entry(&fields)?;
    Some((WirePath::new(path).ok()?, entry))
}

/// One entry line split at tabs, either format; `None` when it does not parse.
fn parse_entry<'a>(fields: &[&'a str]) -> Option<(&'a str, Entry)> {
    let (version, kind, path) = match *fields {
        ["D", version, path] => (version, EntryKind::Dir, path),
        ["F", version, size, mtime, hash, path] => {
            let stat = Stat {
                size: size.parse().ok()?,
                mtime_ns: mtime.parse().ok()?,
                ..Stat::default()
            };
            let hash = parse_hash(hash)?;
            (version, EntryKind::File { stat, hash }, path)
        }
        // Format 2 (no exec field: not executable), formats 3 to 5 (no
        // birth time: unknown) and format 6.
        ["F", version, size, mtime, ctime, dev, ino, ref rest @ ..] => {
            let exec = |bit: &str| match bit {
                "x" => Some(true),
                "-" => Some(false),
                _ => None,
            };
            let (exec, btime_ns, hash, path) = match *rest {
                [hash, path] => (false, 0, hash, path),
                [bit, hash, path] => (exec(bit)?, 0, hash, path),
                [bit, btime, hash, path] => (exec(bit)?, btime.parse().ok()?, hash, path),
                _ => return None,
            };
            let stat = Stat {
                size: size.parse().ok()?,
                mtime_ns: mtime.parse().ok()?,
                ctime_ns: ctime.parse().ok()?,
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                exec,
                btime_ns,
            };
            let hash = parse_hash(hash)?;
            (version, EntryKind::File { stat, hash }, path)
        }
        _ => return None,
    };
    let version = version.parse().ok()?;
    Some((path, Entry { kind, version }))
}

/// The (device, inode) a file entry names, when known.
fn inode_key(entry: &Entry) -> Option<(u64, u64)> {
    match entry.kind {
        EntryKind::File { stat, .. } if stat.ino != 0 => Some((stat.dev, stat.ino)),
        _ => None,
    }
}

fn parse_hash(hex: &str) -> Option<ContentHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(ContentHash(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn file(v: u64, data: &[u8]) -> Entry {
        Entry {
            kind: EntryKind::File {
                stat: Stat {
                    size: data.len() as u64,
                    mtime_ns: 1_700_000_000_123_456_789,
                    ctime_ns: 1_700_000_001_000_000_007,
                    dev: 2049,
                    ino: 1000 + v,
                    exec: v % 2 == 1,
                    btime_ns: 1_699_999_999_000_000_000 + v as i64,
                },
                hash: ContentHash::of(data),
            },
            version: v,
        }
    }

    fn dir(v: u64) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            version: v,
        }
    }

    /// R-7.2.6: a rewind (for a full listing) lowers the cursor, not what
    /// the device has seen; a loaded index has seen its cursor.
    #[test]
    fn a_rewound_cursor_keeps_what_was_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let mut index = Index::new();
        assert_eq!(index.seen(), 0);
        index.set_cursor(16);
        index.set_cursor(0);
        assert_eq!((index.cursor(), index.seen()), (0, 16));
        index.set_cursor(9);
        assert_eq!((index.cursor(), index.seen()), (9, 16));
        index.set_cursor(18);
        assert_eq!((index.cursor(), index.seen()), (18, 18));
        let f = tmp.path().join("index");
        index.set_cursor(5);
        index.save(&f).unwrap();
        let loaded = Index::load(&f).unwrap();
        assert_eq!((loaded.cursor(), loaded.seen()), (5, 5));
    }

    #[test]
    fn save_load_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let mut index = Index::new();
        index.set_cursor(42);
        index.set_checked(40, 0xfedc_ba98_7654_3210);
        index.insert(p("a"), dir(1));
        index.insert(p("a/naïve café 📁.bin"), file(2, b"hello"));
        index.insert(p("zero"), file(3, b""));
        let f = tmp.path().join("index");
        index.save(&f).unwrap();
        assert_eq!(Index::load(&f).unwrap(), index);
        assert_eq!(
            Index::load(&f).unwrap().pull_point(),
            (42, 40, 0xfedc_ba98_7654_3210)
        );
        // A format 6 file: no checked change; the pull checks the cursor only.
        fs::write(&f, "cloudservice-index 6\tcursor\t7\n").unwrap();
        let old = Index::load(&f).unwrap();
        assert_eq!(
            (old.cursor(), old.checked(), old.pull_point()),
            (7, (0, 0), (7, 7, 0))
        );
        assert_eq!(Index::load(&tmp.path().join("none")).unwrap(), Index::new());
        fs::write(&f, "cloudservice-index 1\tcursor\t1\nX\t1\n").unwrap();
        assert!(Index::load(&f).is_err());
    }

    #[test]
    fn a_remove_dir_cursor_stays_below_what_is_held_back_under_the_directory() {
        // R-7.2.7: the server keeps what the RemoveDir's cursor has not seen.
        let mut index = Index::new();
        index.set_cursor(40);
        assert_eq!(index.remove_dir_cursor(&p("d")), 40);
        assert!(index.hold_back(&p("d/deep/x"), 31));
        assert!(index.hold_back(&p("d/y"), 35));
        assert!(index.hold_back(&p("dx"), 12));
        assert!(index.hold_back(&p("e"), 1));
        assert_eq!(index.remove_dir_cursor(&p("d")), 30);
        assert_eq!(index.remove_dir_cursor(&p("d/deep")), 30);
        assert_eq!(index.remove_dir_cursor(&p("d/y")), 34);
        assert_eq!(
            index.remove_dir_cursor(&p("dx")),
            11,
            "a sibling, not below d"
        );
        assert_eq!(index.remove_dir_cursor(&p("e")), 0);
        assert_eq!(index.remove_dir_cursor(&p("f")), 40);
        index.unhold_back(&p("d/deep/x"));
        assert_eq!(index.remove_dir_cursor(&p("d")), 34);
    }

    #[test]
    fn held_back_files_are_saved_and_a_format_4_index_still_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("index");
        let mut index = Index::new();
        index.set_cursor(9);
        index.insert(p("a"), dir(1));
        assert!(index.hold_back(&p("build"), 7));
        assert!(
            !index.hold_back(&p("build"), 7),
            "the same version is no news"
        );
        assert!(index.hold_back(&p("x y/proj"), 8));
        index.save(&f).unwrap();
        let loaded = Index::load(&f).unwrap();
        assert_eq!(loaded, index);
        let back: Vec<(String, u64)> = loaded
            .held_back()
            .map(|(p, v)| (p.to_string(), v))
            .collect();
        assert_eq!(back, [("build".into(), 7), ("x y/proj".into(), 8)]);
        let mut loaded = loaded;
        assert_eq!(loaded.unhold_back(&p("build")), Some(7));
        assert_eq!(loaded.unhold_back(&p("build")), None);
        fs::write(&f, "cloudservice-index 4\tcursor\t3\nD\t1\ta\n").unwrap();
        assert_eq!(Index::load(&f).unwrap().cursor(), 3);
        fs::write(&f, "cloudservice-index 5\tcursor\t3\nB\tx\tbuild\n").unwrap();
        assert!(Index::load(&f).is_err(), "a bad version is an error");
    }

    #[test]
    fn held_bases_are_saved_apart_and_come_back_unless_an_entry_won() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("index");
        let mut index = Index::new();
        index.insert(p("d"), dir(1));
        index.insert(p("d/x"), file(2, b"x"));
        index.insert(p("y"), file(3, b"y"));
        assert!(index.hold(&p("d")) && index.hold(&p("d/x")) && index.hold(&p("y")));
        assert!(!index.hold(&p("never")));
        assert!(index.is_empty());
        assert_eq!(index.paths_of_inode(2049, 1002).count(), 0, "not synced");
        index.save(&f).unwrap();
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("\nI\tD\t1\td\n"), "{text}");
        let mut loaded = Index::load(&f).unwrap();
        assert_eq!(loaded, index);
        assert!(loaded.is_empty());
        // A new entry at a held path (pulled after the rule went) wins.
        loaded.insert(p("y"), file(9, b"new"));
        assert!(loaded.release(&p("d/x")) && loaded.release(&p("d")));
        assert!(!loaded.release(&p("y")));
        assert!(!loaded.release(&p("d")), "released once");
        assert_eq!(loaded.get(&p("d/x")), Some(&file(2, b"x")));
        assert_eq!(loaded.get(&p("y")), Some(&file(9, b"new")));
        assert_eq!(loaded.held().count(), 0);
        assert_eq!(loaded.paths_of_inode(2049, 1002).count(), 1);
        // A format 3 file (no `I` lines) still loads.
        fs::write(&f, format!("{HEADER_V3}\tcursor\t5\nD\t1\td\n")).unwrap();
        assert_eq!(Index::load(&f).unwrap().cursor(), 5);
    }

    #[test]
    fn subtree_and_rebase() {
        let mut index = Index::new();
        for (path, v) in [
            ("a", 1),
            ("a/b", 2),
            ("a/b/c", 3),
            ("a b", 4),
            ("a0", 5),
            ("ab", 6),
        ] {
            index.insert(p(path), dir(v));
        }
        let a = p("a");
        let sub: Vec<&str> = index.subtree(Some(&a)).map(|(k, _)| k.as_str()).collect();
        assert_eq!(sub, ["a", "a/b", "a/b/c"]);
        index.rebase(&p("a"), &p("x/y"), Some(9));
        assert_eq!(index.get(&p("x/y/b/c")), Some(&dir(9)));
        assert!(index.get(&p("a/b")).is_none());
        assert_eq!(index.get(&p("ab")), Some(&dir(6)));
        assert_eq!(index.remove_subtree(&p("x/y")).len(), 3);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn an_index_of_the_first_format_loads_with_every_file_untrusted() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("index");
        let hash = ContentHash::of(b"aaaa");
        let v1 = format!("cloudservice-index 1\tcursor\t7\nD\t3\tx\nF\t4\t4\t1700000000123456789\t{hash}\tx/a.txt\n");
        fs::write(&f, v1).unwrap();
        let index = Index::load(&f).unwrap();
        assert_eq!(index.cursor(), 7);
        let Some(Entry {
            kind: EntryKind::File { stat, hash: h },
            version: 4,
        }) = index.get(&p("x/a.txt")).copied()
        else {
            panic!("file entry expected");
        };
        assert_eq!(
            (stat.size, stat.mtime_ns, h),
            (4, 1_700_000_000_123_456_789, hash)
        );
        assert!(
            !detect::is_trusted(&stat),
            "missing ctime/inode: hash again"
        );
        // Saved again in the current format, it loads the same.
        let mut index = index;
        index.insert(p("y"), file(9, b"y"));
        index.save(&f).unwrap();
        assert!(fs::read_to_string(&f).unwrap().starts_with(HEADER));
        assert_eq!(Index::load(&f).unwrap(), index);
    }

    #[test]
    fn format_2_and_3_file_lines_load_through_one_rule() {
        let hash = ContentHash::of(b"x");
        let line = |exec: &str| format!("F\t4\t1\t17\t18\t2049\t77\t{exec}{hash}\tbin/x.sh");
        let load = |text: String| Index::parse(&text).map(|i| i.get(&p("bin/x.sh")).copied());
        let v2 = load(format!("{HEADER_V2}\tcursor\t9\n{}\n", line("")));
        let v3x = load(format!("{HEADER_V6}\tcursor\t9\n{}\n", line("x\t")));
        let v3 = load(format!("{HEADER_V6}\tcursor\t9\n{}\n", line("-\t")));
        let exec = |r: Result<Option<Entry>, String>| match r {
            Ok(Some(Entry {
                kind: EntryKind::File { stat, .. },
                version: 4,
            })) if (stat.size, stat.ctime_ns, stat.dev, stat.ino) == (1, 18, 2049, 77) => {
                Some(stat.exec)
            }
            _ => None,
        };
        assert_eq!(exec(v2), Some(false), "format 2: not executable");
        assert_eq!(exec(v3x), Some(true));
        assert_eq!(exec(v3), Some(false));
        let bad = load(format!("{HEADER_V6}\tcursor\t9\n{}\n", line("y\t")));
        assert_eq!(bad, Err("line 2".to_owned()), "an exec field is x or -");
    }

    /// R-7.2.4: the birth time is saved beside the inode number; an index
    /// of format 5 (none) loads it as 0, unknown.
    #[test]
    fn birth_times_are_saved_and_a_format_5_index_loads_them_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("index");
        let mut index = Index::new();
        index.insert(p("a.txt"), file(4, b"a"));
        index.save(&f).unwrap();
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("\t-\t1699999999000000004\t"), "{text}");
        assert_eq!(Index::load(&f).unwrap(), index);
        let hash = ContentHash::of(b"a");
        let v5 = format!("{HEADER_V5}\tcursor\t9\nF\t4\t1\t17\t18\t2049\t77\tx\t{hash}\ta.txt\n");
        let stat = match Index::parse(&v5).map(|i| i.get(&p("a.txt")).map(|e| e.kind)) {
            Ok(Some(EntryKind::File { stat, .. })) => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (stat.ino, stat.exec, stat.btime_ns),
            (77, true, 0),
            "format 5: birth unknown"
        );
        let bad =
            format!("{HEADER_V6}\tcursor\t9\nF\t4\t1\t17\t18\t2049\t77\tx\tsoon\t{hash}\ta.txt\n");
        assert!(Index::parse(&bad).is_err(), "a birth time is a number");
    }

    #[test]
    fn every_name_of_an_inode_is_found() {
        let mut index = Index::new();
        let linked = file(1, b"v1");
        index.insert(p("x/one"), linked);
        index.insert(p("y/two"), linked);
        index.insert(p("z"), file(2, b"other"));
        let EntryKind::File { stat, .. } = linked.kind else {
            unreachable!()
        };
        let names = |index: &Index| -> Vec<String> {
            index
                .paths_of_inode(stat.dev, stat.ino)
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(names(&index), ["x/one", "y/two"]);
        index.rebase(&p("y"), &p("w"), None);
        assert_eq!(names(&index), ["w/two", "x/one"]);
        index.insert(p("x/one"), file(5, b"v2"));
        assert_eq!(names(&index), ["w/two"]);
        index.remove(&p("w/two"));
        assert!(names(&index).is_empty());
        assert_eq!(index.paths_of_inode(0, 0).count(), 0);
    }
}
