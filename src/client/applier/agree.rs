//! "The server still holds what this device last synced": the test that
//! lets a local change (a deletion, an edit, a type change) wait for the
//! push instead of being overwritten or turned into a conflict copy.

use super::{Applied, Applier};
use crate::protocol::{ContentHash, WirePath};

impl Applier<'_> {
    /// True when the server's entry at `path` (`server`: its content hash, or
    /// `None` for a directory) is what the index says was synced there. The
    /// version alone does not say so: a rename gives what it moves its own
    /// version, content another device changed included. When it holds, the
    /// index takes the server's `version` (the push of the local change is
    /// then based on it) and the path is marked for pushing.
    pub(super) fn agrees(
        &mut self,
        path: &WirePath,
        server: Option<ContentHash>,
        version: u64,
        out: &mut Applied,
    ) -> bool {
        let Some(mut entry) = self.index.get(path).copied() else {
            return false;
        };
        if entry.hash() != server {
            return false;
        }
        entry.version = version;
        self.index.insert(path.clone(), entry);
        out.dirty.insert(path.clone());
        true
    }
}
