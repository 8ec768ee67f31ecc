//! Whether the folder agrees with the server, as the session's own facts
//! tell: what "last sync", `--once`'s exit and the status's "in sync" rest
//! on, and what is left behind when it does not.

use super::Session;

impl Session<'_> {
    /// The folder agrees with the server now, as `cloud-client status`
    /// would call it in sync: connected and caught up with nothing pending
    /// ([`Session::converged`]), no server change that failed to apply,
    /// nothing held back for space, no entry the scan found it cannot sync
    /// (a path too deep or too long, an unreadable file, a symlink) and no
    /// server file held back by something in its way.
    /// Only then does "last sync" move, and does `--once` exit 0 (outside
    /// tester breaker15 F10: a held-back upload moved it and exited 0).
    pub(super) fn agrees(&self) -> bool {
        self.converged()
            && !self.publisher.pull_failed
            && !self.publisher.reconciling
            && !self.holding()
            && self.nothing_left()
    }

    /// [`Session::left_behind`] is 0 (without counting), and no removal
    /// waits for a file system gone from inside the folder (R-5.6.9:
    /// `status` lists its mount point as not synced).
    pub(super) fn nothing_left(&self) -> bool {
        self.scanner.not_synced().next().is_none()
            && self.publisher.apply_failures.is_empty()
            && self.push.space.is_empty()
            && self.pull.space.is_empty()
            && self.index.held_back().next().is_none()
            && self.push.gone_mounts.is_empty()
            && self.push.parked.is_empty()
    }

    /// Entries `status` lists as not synced or held back: the scan's
    /// skipped paths, the pull's failed ones, the held-back uploads,
    /// downloads and server files, and the changes parked under a file
    /// system gone from (or replaced inside) the folder.
    pub(super) fn left_behind(&self) -> usize {
        self.scanner.not_synced().count()
            + self.publisher.apply_failures.len()
            + self.push.space.iter().count()
            + self.pull.space.iter().count()
            + self.index.held_back().count()
            + self.push.parked.paths.len()
    }

    /// Something waits for space: an upload the server has no
    /// room for, or a download that does not fit here.
    pub(super) fn holding(&self) -> bool {
        !self.push.space.is_empty() || !self.pull.space.is_empty()
    }
}
