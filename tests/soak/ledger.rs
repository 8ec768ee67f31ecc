//! The soak's oracle: every content written, and what became of it.

use cloudservice::protocol::ContentHash;
use std::collections::HashMap;

/// What became of a written content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Must exist at the end.
    Live,
    /// Overwritten, appended to or deleted by a client that had it.
    Destroyed,
    /// The write landed on a file the client had just replaced: it never
    /// existed in the folder.
    Orphaned,
}

#[derive(Debug, Clone)]
pub struct Written {
    pub by: usize,
    pub op: u64,
    pub path: String,
    pub fate: Fate,
}

/// Every content the test wrote, by hash (contents are unique by construction).
#[derive(Default)]
pub struct Ledger {
    pub contents: HashMap<ContentHash, Written>,
}

impl Ledger {
    pub fn wrote(&mut self, data: &[u8], by: usize, op: u64, path: &str) {
        self.contents.insert(
            ContentHash::of(data),
            Written {
                by,
                op,
                path: path.to_owned(),
                fate: Fate::Live,
            },
        );
    }

    pub fn destroyed(&mut self, data: &[u8]) {
        if let Some(w) = self.contents.get_mut(&ContentHash::of(data)) {
            w.fate = Fate::Destroyed;
        }
    }

    pub fn orphaned(&mut self, data: &[u8]) {
        if let Some(w) = self.contents.get_mut(&ContentHash::of(data)) {
            w.fate = Fate::Orphaned;
        }
    }
}

#[derive(Default, Debug)]
pub struct Counts {
    pub ops: u64,
    pub creates: u64,
    pub modifies: u64,
    pub appends: u64,
    pub deletes: u64,
    pub mkdirs: u64,
    pub rmdirs: u64,
    pub renames: u64,
    pub moves: u64,
    pub dir_moves: u64,
    pub concurrent: u64,
    pub orphaned_writes: u64,
    pub skipped: u64,
    pub mtime_rewrites: u64,
    pub renames_over: u64,
    pub hard_links: u64,
    pub future_mtimes: u64,
    pub type_changes: u64,
    pub editor_saves: u64,
    pub append_bursts: u64,
    pub client_terms: u64,
    pub client_kills: u64,
    pub server_terms: u64,
    pub server_kills: u64,
}
