//! The status file when no session publishes it: what the connection
//! attempts at start-up say, why a client stopped, why a first run failed.
//! Written straight into the state folder, so that `cloud-client status`
//! can tell after (or before) the session's [`super::publish::Publisher`]
//! runs.

use crate::client::state::Identity;
use crate::client::status::{self, rfc3339, Status};
use crate::client::Config;
use std::path::Path;
use std::time::SystemTime;

/// What the connection attempts at start-up tell `status` (before the
/// session and its [`Publisher`] exist): the status file written again with
/// the attempt's wait as its pending work (`connecting to the server: no
/// answer for N s`, [`crate::client::pace`]), not connected, not caught up,
/// by this process; "last sync", the last error and the rule errors are the
/// earlier run's (README "Last sync"), its counts are not this run's. A
/// folder with an identity only (`identity`): one that has none is "not
/// joined" whatever is pending. Outside tester live20: the first attempt
/// wrote no status line.
pub(super) fn starting_note(
    state: &Path,
    config: &Config,
    identity: Identity,
) -> crate::client::pace::Note {
    let (state, server) = (state.to_path_buf(), config.server.to_string());
    Box::new(move |line| {
        let earlier = status::read(&state).ok().flatten();
        let s = Status {
            last_sync: earlier.as_ref().and_then(|s| s.last_sync.clone()),
            last_error: earlier.as_ref().and_then(|s| s.last_error.clone()),
            rule_errors: earlier.map(|s| s.rule_errors).unwrap_or_default(),
            pending: Some(line),
            ..Status::offline(server.clone(), identity.user.to_string(), identity.client)
        };
        if let Err(e) = status::write(&state, &s) {
            log::debug!("cannot write the status file: {e}");
        }
    })
}

/// Leaves in the status file why the client stopped: the last status (or a
/// new one for `identity`) marked not connected, with `why` as its last
/// error, so `cloud-client status` can tell after the client is gone (a
/// refused identity, a server unreachable at start, a safety stop).
pub(super) fn record_failure(state: &Path, config: &Config, identity: Identity, why: &str) {
    let mut s = match status::read(state) {
        Ok(Some(s)) => s,
        _ => Status::offline(
            config.server.to_string(),
            identity.user.to_string(),
            identity.client,
        ),
    };
    s.connected = false;
    s.pid = Some(std::process::id());
    s.last_error = Some(why.to_owned());
    s.updated = rfc3339(SystemTime::now());
    if let Err(e) = status::write(state, &s) {
        log::debug!("cannot write the status file: {e}");
    }
}

/// Leaves in the status file why a first run (a join, or a new user)
/// failed before the folder had an identity: device 0, the user it tried to
/// join (empty for a new user), not connected, `why` as its last error.
/// `cloud-client status` then reports the folder as not joined.
pub(super) fn record_not_joined(state: &Path, config: &Config, why: &str) {
    let s = Status {
        last_error: Some(why.to_owned()),
        ..Status::offline(
            config.server.to_string(),
            config.user.map(|u| u.to_string()).unwrap_or_default(),
            0,
        )
    };
    if let Err(e) = status::write(state, &s) {
        log::debug!("cannot write the status file: {e}");
    }
}
