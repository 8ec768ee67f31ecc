//! The connection's life seen from the session: lost (everything in flight
//! is forgotten and planned again), re-established with backoff (timers:
//! [`crate::client::schedule::Timers`]), and closed at shutdown after a
//! short wait for outstanding acknowledgements.

use super::start::{check_welcome, identity_after, resume_hello};
use super::Session;
use crate::client::connection::{Connection, Inbound};
use crate::client::error::ClientError;
use crate::client::pace::Pace;
use crate::client::scanner::Op;
use crate::protocol::ErrorCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At shutdown, how long to wait for outstanding acknowledgements.
const DRAIN: Duration = Duration::from_secs(5);
/// At shutdown, the longest wait for the next frame of the server while
/// acknowledgements are outstanding.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Refusals `DeviceInUse` in a row after which the client says the device
/// is in use elsewhere: the first two (0.5 s and 1 s of backoff)
/// cover a restart racing its own old connection.
const IN_USE_QUIET: u32 = 3;

/// What the session waits for on the network, as it stands, for the
/// line a stop says (README: "`stopping: asked to stop while …`" names
/// the wait; outside tester breaker20 F5). `None`: it waits for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Waits {
    /// A connection is up.
    pub connected: bool,
    /// Files the current pull still has to download.
    pub downloads: u64,
    /// The current pull awaits the server's listing or a fetch's answer.
    pub pull_awaited: bool,
    /// Pushes sent and not answered.
    pub pushes: usize,
    /// The server has been silent while something awaits it (a ping
    /// included): R-4.3.6's wait.
    pub silent: Option<Duration>,
}

/// The wait `w` names, most specific first: a download, a pull's answer,
/// pushes' answers, any other silence of the server (a ping), or the
/// connection being made again. `None` when nothing waits.
pub(super) fn waiting_on(w: Waits) -> Option<String> {
    let silent = w.silent.map_or_else(String::new, |d| {
        format!(", no answer for {} s", d.as_secs())
    });
    if !w.connected {
        return Some("waiting to connect to the server again".to_owned());
    }
    if w.downloads > 0 {
        return Some(format!(
            "waiting for the server (a download, {} file(s) to come{silent})",
            w.downloads
        ));
    }
    if w.pull_awaited {
        return Some(format!(
            "waiting for the server (the answer to a pull{silent})"
        ));
    }
    if w.pushes > 0 {
        return Some(format!(
            "waiting for the server (the answer to {} push(es){silent})",
            w.pushes
        ));
    }
    w.silent.map(|d| {
        format!(
            "waiting for the server (the answer to a ping, no answer for {} s)",
            d.as_secs()
        )
    })
}

impl Session<'_> {
    /// What the session waits for now ([`waiting_on`]).
    pub(super) fn waiting_on(&self) -> Option<String> {
        use crate::client::schedule::liveness::Liveness;
        let now = Instant::now();
        let silent = self.conn.as_ref().and_then(|c| match c.watch().judge(now) {
            Liveness::Waiting(d) | Liveness::Dead(d) => Some(d),
            _ => None,
        });
        let job = self.pull.job.as_ref();
        waiting_on(Waits {
            connected: self.conn.is_some(),
            downloads: job.map_or(0, |j| j.downloads_pending()),
            pull_awaited: job.is_some_and(|j| j.awaits_server()),
            pushes: self.push.inflight.len(),
            silent,
        })
    }

    /// Forgets the connection and everything in flight on it.
    pub(super) fn lost(&mut self, why: &str) {
        if self.conn.is_none() {
            return;
        }
        self.timers.disconnected(Instant::now());
        let backoff = self.timers.backoff.as_secs_f64();
        log::warn!("{why}; reconnecting in {backoff:.1} s");
        self.publisher.last_error = Some(why.to_owned());
        self.drop_connection();
    }

    /// A stop was asked for inside a wait on the network (a blocked send, a
    /// reply awaited, a connection attempt: [`ClientError::Stopping`]):
    /// said at once, and the connection (perhaps cut part-way through a
    /// frame) is dropped without waiting for anything more; what was in
    /// flight is planned again at the next run (outside tester breaker19
    /// G6).
    pub(super) fn stop_asked(&mut self, what: &str) {
        log::info!("stopping: asked to stop while {what}; what was being sent is sent again at the next run");
        self.stop_said = true;
        self.drop_connection();
    }

    /// Drops the connection (if any) and forgets everything in flight on
    /// it: pushes go back to the paths to compare, a pull ends, the index
    /// is saved.
    fn drop_connection(&mut self) {
        if self.conn.take().is_none() {
            return;
        }
        self.push.lists.clear();
        self.push.server_lists.disconnected();
        for (_, op) in self.push.inflight.drain() {
            if let Op::Rename { from, .. } = &op {
                self.push.dirty.add(from.clone());
            }
            self.push.dirty.add(op.path().clone());
        }
        self.pull.owed = false;
        // Asked again after the next connection's first pull. An older
        // server refuses ListLost and closes; its Error may be
        // lost behind a write to the closed socket, so two connections
        // lost in a row with the question unanswered end the asking too.
        if self.pull.lost_asked.take().is_some() {
            self.pull.lost_due = true;
            self.pull.lost_unanswered += 1;
            if self.pull.lost_unanswered >= 2 && self.pull.lost {
                log::warn!(
                    "the server closed twice while asked which files it lost (protocol \
                     version 9): not asked again in this run"
                );
                self.pull.lost = false;
            }
        }
        if let Some(job) = self.pull.job.take() {
            let _ = job.finish();
        }
        self.apply_rewind();
        if let Some(t) = self.push.transfer.take() {
            t.finish();
        }
        let _ = self.index.save(&self.state.index_file());
    }

    /// Lets the connection's watch beat the heartbeat and write "waiting
    /// for the server" to the status file while a send or a wait keeps the
    /// loop from turning ([`crate::client::link_watch`]).
    pub(super) fn attach_watch(&mut self) {
        let Some(heart) = self.publisher.heart.clone() else {
            return;
        };
        let note = self.publisher.wait_note(self.state.path().to_owned());
        let stop = Arc::clone(&self.shutdown);
        if let Some(conn) = self.conn.as_mut() {
            conn.watch_mut().attach(heart, note, stop);
        }
    }

    /// One reconnection attempt. A refusal that needs a person ends the
    /// run ([`ClientError::is_retryable_resume`]); any other failure waits
    /// a longer backoff.
    pub(super) fn reconnect(&mut self) -> Result<(), ClientError> {
        let dial = self.config.dial(Some(self.identity.user));
        // The attempt's waits beat, honour the stop and tell `status` that
        // the client is connecting (breaker19 G3: "not responding" through
        // each 15 s wait for a server that never answers the Hello).
        let mut pace = Pace::new(
            self.publisher.heart.clone(),
            Some(Arc::clone(&self.shutdown)),
            Some(self.publisher.wait_note(self.state.path().to_owned())),
        );
        let pace = &mut pace;
        let attempt = Connection::connect(&self.config.server, &dial, pace).and_then(|mut conn| {
            let hello = resume_hello(&self.identity, self.config.device_name.clone());
            let welcome = conn.handshake_key(hello.clone(), pace)?;
            check_welcome(&hello, &welcome)?;
            Ok((conn, identity_after(&welcome, self.identity.key)))
        });
        match attempt {
            Ok((conn, identity)) => {
                if identity != self.identity {
                    self.state.save_identity(&identity)?;
                    self.identity = identity;
                }
                log::info!("reconnected to {}", self.config.server);
                self.in_use_refusals = 0;
                self.refusal_said = None;
                self.conn = Some(conn);
                self.attach_watch();
                self.timers.connected(Instant::now());
                self.pull.wanted = true;
                self.pull.last_acked = 0;
                // Changes made while disconnected were seen or not.
                self.push.unknown = true;
                self.mark_all(Instant::now());
                Ok(())
            }
            // A refusal that needs a person, a certificate that changed, or
            // a server gone plaintext, is not a network hiccup: stop and say so.
            Err(e) => {
                let e = e
                    .for_folder(&self.config.folder, self.identity.client)
                    .with_rejoin(crate::client::rejoin::command(self.config));
                if !e.is_retryable_resume() {
                    return Err(e);
                }
                self.connect_failed(&e);
                Ok(())
            }
        }
    }

    /// A connection attempt failed in a way worth retrying
    /// ([`ClientError::is_retryable_connect`]): say so (a refusal or a
    /// garbled reply loudly, a still-unreachable server quietly), keep it
    /// for `cloud-client status`, and back off further.
    pub(super) fn connect_failed(&mut self, e: &ClientError) {
        let now = Instant::now();
        self.timers.reconnect_failed(now);
        let wait = self.timers.backoff.as_secs_f64();
        if let ClientError::DeviceInUse { .. } = e {
            // the first refusals are most likely this device's own
            // previous connection, which the server frees within seconds;
            // after IN_USE_QUIET of them, another copy is the likelier cause.
            self.in_use_refusals = self.in_use_refusals.saturating_add(1);
            if self.in_use_refusals < IN_USE_QUIET {
                log::info!(
                    "the server still has a live connection of this device (its previous \
                     connection?); retrying in {wait:.1} s"
                );
                self.publisher.last_error =
                    Some("the server still has a live connection of this device; retrying".into());
                return;
            }
            log::warn!("{e}; retrying in {wait:.1} s");
            self.publisher.last_error = Some(e.to_string());
            return;
        }
        let text = if e.is_unknown_user() {
            // this device joined this user, so the server is the
            // wrong one for now; say what to check, and keep trying.
            format!(
                "{e}. {}",
                crate::client::rejoin::unknown_user_text(self.config)
            )
        } else if e.is_unknown_device() {
            // the server's newer data may come back; the text
            // says what a person does if it does not.
            format!("{e}. Until then this client keeps retrying, in case the server's newer data comes back")
        } else {
            e.to_string()
        };
        match e {
            // A refusal is said once while it lasts (each of a long run of
            // them every 30 s would fill the log), then again when it changes.
            ClientError::Refused { code, .. } if self.refusal_said != Some(*code) => {
                self.refusal_said = Some(*code);
                log::warn!("reconnect failed: {text}; retrying in {wait:.1} s")
            }
            // said once too, while it lasts.
            ClientError::UnknownDevice { .. }
                if self.refusal_said != Some(ErrorCode::UnknownClient) =>
            {
                self.refusal_said = Some(ErrorCode::UnknownClient);
                log::warn!("reconnect failed: {text}; retrying in {wait:.1} s")
            }
            ClientError::Protocol(_) => {
                log::warn!("reconnect failed: {text}; retrying in {wait:.1} s")
            }
            _ => log::debug!("reconnect failed: {text}; retrying in {wait:.1} s"),
        }
        self.publisher.last_error = Some(text);
    }

    /// Finishes what is in flight (briefly), saves the index, closes.
    /// Returns whether the folder agreed with the server at the end.
    pub(super) fn stop(&mut self) -> Result<super::Outcome, ClientError> {
        let deadline = Instant::now() + DRAIN;
        while !self.push.inflight.is_empty() && Instant::now() < deadline {
            let Some(conn) = self.conn.as_ref() else {
                break;
            };
            let rx = conn.inbound().clone();
            // A server that sends nothing for DRAIN_QUIET is not waited
            // for longer: a dead link would hold the stop for all of DRAIN
            // (breaker19 G6); an answer missed is a push made again next run.
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(DRAIN_QUIET)) {
                Ok(Inbound::Frame(frame)) => {
                    if self.on_frame(frame).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.pull.owed = false;
        if let Some(job) = self.pull.job.take() {
            let _ = job.finish();
        }
        if let Some(t) = self.push.transfer.take() {
            t.finish();
        }
        self.check_attached()?;
        self.index.save(&self.state.index_file())?;
        // What only a walk of the folder finds (a symlink, a special file,
        // a path too deep: the scan passes over them without a record),
        // as `cloud-client status` walks it.
        let walked = if self.agrees() {
            crate::client::status::report::walk_not_synced(&self.root, &self.rules, &self.index)
        } else {
            0
        };
        let outcome = if self.agrees() && walked == 0 {
            // Stopping in sync (`--once` done, or SIGTERM while idle): the
            // status says so after the connection is gone.
            self.publisher.synced_now();
            super::Outcome::InSync
        } else {
            super::Outcome::NotInSync {
                left: self.left_behind() + walked,
            }
        };
        self.conn = None;
        self.publish_status(true);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::{waiting_on, Waits};
    use std::time::Duration;

    #[test]
    fn a_stop_names_the_wait_it_ends() {
        let up = Waits {
            connected: true,
            ..Waits::default()
        };
        assert_eq!(waiting_on(up), None, "idle: nothing waits");
        let silent = Some(Duration::from_secs(12));
        let cases = [
            (Waits::default(), "waiting to connect to the server again"),
            (
                Waits {
                    downloads: 1,
                    silent,
                    ..up
                },
                "waiting for the server (a download, 1 file(s) to come, no answer for 12 s)",
            ),
            (
                Waits {
                    downloads: 2,
                    pull_awaited: true,
                    pushes: 3,
                    ..up
                },
                "waiting for the server (a download, 2 file(s) to come)",
            ),
            (
                Waits {
                    pull_awaited: true,
                    ..up
                },
                "waiting for the server (the answer to a pull)",
            ),
            (
                Waits { pushes: 3, ..up },
                "waiting for the server (the answer to 3 push(es))",
            ),
            (
                Waits { silent, ..up },
                "waiting for the server (the answer to a ping, no answer for 12 s)",
            ),
        ];
        for (w, line) in cases {
            assert_eq!(waiting_on(w).as_deref(), Some(line), "{w:?}");
        }
    }
}
