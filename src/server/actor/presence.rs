//! When each device was last seen: `last_seen` in the user's device table
//! (`devices.json`, shown as LAST SEEN by `cloud-server devices`, README
//! "Devices"). It moves at every accepted handshake, at requests the actor
//! answers and when a connection goes, written back at most once per
//! [`TOUCH_EVERY_SECS`] per device so an active device costs one small file
//! write a minute, not one per request.

use super::Actor;
use crate::protocol::ClientId;
use crate::server::devices::{self, DeviceBook};

/// `last_seen` is written back at most this often per device (seconds).
pub(super) const TOUCH_EVERY_SECS: u64 = 60;

/// Whether a stored `last_seen` (Unix seconds) is old enough at `now` to be
/// written again.
pub(super) fn is_stale(stored: u64, now: u64) -> bool {
    now.saturating_sub(stored) >= TOUCH_EVERY_SECS
}

impl Actor {
    /// Records that device `client` was active now; writes the device
    /// table when its stored `last_seen` is [`TOUCH_EVERY_SECS`] old. A
    /// failure is logged and changes nothing else: presence is a hint for
    /// the operator, never a reason to refuse a request.
    pub(super) fn note_seen(&mut self, client: ClientId) {
        let now = devices::unix_now();
        if self
            .seen
            .get(&client)
            .is_some_and(|&stored| !is_stale(stored, now))
        {
            return;
        }
        let result = DeviceBook::load(&self.ctx.paths, &self.user).and_then(|mut book| {
            let known = book.devices().any(|d| d.id == client);
            if known {
                book.touch(client, now);
                book.save_with(false)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.seen.insert(client, now);
            }
            Err(e) => log::warn!("user {}: recording device {client} as seen: {e}", self.user),
        }
    }

    /// Records every connected device as seen (the actor is about to
    /// retire or stop; the reactor answers their idle pulls meanwhile).
    pub(super) fn note_all_seen(&mut self) {
        let clients: Vec<ClientId> = self.peers.values().filter_map(|p| p.client).collect();
        for client in clients {
            self.note_seen(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seen_is_written_once_a_minute_at_most() {
        assert!(!is_stale(1_000, 1_000));
        assert!(!is_stale(1_000, 1_059));
        assert!(is_stale(1_000, 1_060));
        // A clock that went back does not write.
        assert!(!is_stale(1_000, 900));
    }
}
