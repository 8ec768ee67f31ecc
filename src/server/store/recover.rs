//! After an unclean stop: make the journal agree with the folder, which is the
//! truth for content (files are renamed into place before they are journaled).

use super::journal::Record;
use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::fsafe::{hash_reader, open_file};
use crate::protocol::WirePath;
use std::collections::BTreeSet;

impl UserStore {
    /// Journals every difference between the folder and the tree; returns how
    /// many changes that took.
    pub(super) fn reconcile(&mut self) -> Result<usize, StoreError> {
        let mut seen: BTreeSet<WirePath> = BTreeSet::new();
        let mut fixes: Vec<Record> = Vec::new();
        let mut seq = self.head;
        // Through directory handles, like every other access: a legal path
        // longer than PATH_MAX allows below the data directory is found too.
        for found in crate::fsafe::walk::scan(&self.root)? {
            let path = found.path;
            match found.file {
                None => {
                    if !matches!(self.tree.get(&path), Some(n) if n.is_dir()) {
                        seq += 1;
                        fixes.push(Record::MakeDir {
                            seq,
                            path: path.clone(),
                        });
                    }
                }
                Some((len, mtime)) => {
                    let known = match self.tree.get(&path).map(|n| n.kind) {
                        Some(NodeKind::File {
                            size,
                            mtime_ns,
                            hash,
                        }) if size == len && mtime_ns == mtime => Some(hash),
                        _ => None,
                    };
                    if known.is_none() {
                        // New or changed content, or only a new mtime: either
                        // way one record, so the next re-scan need not hash it.
                        let Some(file) = open_file(&self.root, &path)? else {
                            continue;
                        };
                        let (hash, size) = hash_reader(file)?;
                        seq += 1;
                        fixes.push(Record::PutFile {
                            seq,
                            path: path.clone(),
                            size,
                            hash,
                            mtime_ns: mtime,
                        });
                    }
                }
            }
            seen.insert(path);
        }
        let missing: Vec<WirePath> = self
            .tree
            .iter()
            .filter(|(p, _)| !seen.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for path in WirePath::top_most(missing) {
            seq += 1;
            fixes.push(Record::Remove { seq, path });
        }
        let count = fixes.len();
        for fix in fixes {
            self.record(fix)?;
        }
        Ok(count)
    }
}
