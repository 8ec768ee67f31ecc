//! The revocation watcher: a thread of its own (the reactor never touches
//! the disk) that lists `.cloudservice-server/revoked/` every
//! [`POLL_EVERY`] and tells the reactor which devices were revoked or
//! reinstated since the last look, so `cloud-server revoke`, run by the
//! operator against the data directory, closes the device's connections on
//! the running server within a second (PROTOCOL.md §4.6). One directory
//! listing per period, whatever the number of users.

use super::bus::FromActor;
use super::devices;
use super::store::DataPaths;
use crate::protocol::{ClientId, UserId};
use crossbeam_channel::Sender;
use mio::Waker;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How often the directory is listed: a revocation takes effect within
/// this plus the reactor's next turn.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// One revoked device.
pub type DeviceRef = (UserId, ClientId);

/// What changed between two listings: (revoked now, reinstated now).
pub fn diff(
    before: &BTreeSet<DeviceRef>,
    now: &BTreeSet<DeviceRef>,
) -> (Vec<DeviceRef>, Vec<DeviceRef>) {
    (
        now.difference(before).copied().collect(),
        before.difference(now).copied().collect(),
    )
}

/// Starts the watcher. It reports every revocation already on disk first.
/// It ends when the reactor's inbox is gone.
///
/// # Errors
/// The thread could not be started.
pub fn start(paths: DataPaths, out: Sender<FromActor>, waker: Arc<Waker>) -> std::io::Result<()> {
    super::dir_watch::start(
        "cloud-server-revocations",
        "the revoked devices",
        POLL_EVERY,
        move || devices::all_revoked(&paths),
        |known, now| {
            let (revoked, reinstated) = diff(known, now);
            let revoked = revoked
                .into_iter()
                .map(|(user, client)| FromActor::Revoked { user, client });
            let reinstated = reinstated
                .into_iter()
                .map(|(user, client)| FromActor::Reinstated { user, client });
            revoked.chain(reinstated).collect()
        },
        out,
        waker,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_both_directions() {
        let u = UserId([1; 16]);
        let before: BTreeSet<_> = [(u, 1), (u, 2)].into();
        let now: BTreeSet<_> = [(u, 2), (u, 3)].into();
        assert_eq!(diff(&before, &now), (vec![(u, 3)], vec![(u, 1)]));
        assert_eq!(diff(&now, &now), (vec![], vec![]));
    }
}
