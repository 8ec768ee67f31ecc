//! The applier's side of [`crate::client::held_open`]: a change from the
//! server to a file some program here holds open for writing (or to a file
//! of its SQLite group) is not made; the path is listed as failed with the
//! reason and the pull is repeated until the program closes it.

use super::{Applied, Applier};
use crate::client::held_open::{holds, look, why, Change};
use crate::protocol::WirePath;

impl Applier<'_> {
    /// Whether `change` to `path` waits for a program that writes there
    /// ([`holds`]); if so, the path is recorded as held back in `out`:
    /// listed with the reason ([`Applied::failures`], [`Applied::held_open`])
    /// and the pull is repeated.
    pub(super) fn held_for_writer(
        &mut self,
        path: &WirePath,
        change: Change,
        out: &mut Applied,
    ) -> bool {
        let found = look(path, |p| self.local(p));
        if !holds(change, &found) {
            return false;
        }
        let reason = why(path, &found);
        log::debug!("{path}: {reason}");
        out.failures.insert(path.clone(), reason);
        out.held_open.insert(path.clone());
        out.failed = true;
        true
    }
}
