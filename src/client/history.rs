//! `cloud-client versions` and `cloud-client restore` (PROTOCOL.md §14):
//! one short connection as the folder's own device, a listing read a page
//! at a time, and a Restore answered like a push. The running client (if
//! any) gets the restored entries by its ordinary pull, as every other
//! device does.

use super::address::ServerAddress;
use super::connection::Connection;
use super::error::ClientError;
use super::secure::{Dial, LinkSecurity};
use super::state::{Identity, StateDir};
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::{
    Hello, HelloMode, KeptKind, KeptVersion, KeyHello, ListVersions, Message, PushAck, Restore,
    RestoreAt, WirePath,
};
use std::path::Path;
use std::time::Duration;

/// How long a listing page or a restore may take before the command gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to the server as the folder's device.
pub struct Remote {
    conn: Connection,
}

impl Remote {
    /// Connects to `server` as the
    /// device `folder` belongs to, trusting what the folder's earlier runs
    /// trusted (`security`).
    ///
    /// # Errors
    /// The folder was never synced (no identity); the server is unreachable,
    /// untrusted, or refuses the device.
    pub fn connect(
        folder: &Path,
        server: &ServerAddress,
        security: &LinkSecurity,
    ) -> Result<Remote, ClientError> {
        let Some(Identity { user, client, key }) = StateDir::existing(folder).load_identity()?
        else {
            return Err(ClientError::MissingFolder(folder.join(STATE_DIR_NAME)));
        };
        let dial = Dial {
            security,
            host: server.host(),
            state_dir: folder.join(STATE_DIR_NAME),
            user: Some(user),
        };
        let mut conn = Connection::connect(server, &dial)?;
        match key {
            // The device's key (PROTOCOL.md §4.6); the answer gives no new
            // key to a device that has one.
            Some(secret) => {
                conn.handshake_key(KeyHello {
                    mode: HelloMode::Resume,
                    user_id: user,
                    client_id: client,
                    secret,
                    name: String::new(),
                })
                .map_err(|e| e.for_folder(folder, client))?;
            }
            // A folder synced before device keys: the plain Hello, so no
            // key is handed to this short connection (the running client
            // asks for one and stores it).
            None => {
                conn.handshake(Hello {
                    mode: HelloMode::Resume,
                    user_id: user,
                    client_id: client,
                })?;
            }
        }
        Ok(Remote { conn })
    }

    /// Calls `each` with every kept version at or below `under` (`None`:
    /// the whole folder), oldest change first, asking page by page.
    ///
    /// # Errors
    /// The connection failed or the server answered with an error.
    pub fn list(
        &mut self,
        under: Option<&WirePath>,
        mut each: impl FnMut(&KeptVersion),
    ) -> Result<(), ClientError> {
        let mut request = ListVersions {
            after_seq: 0,
            after: None,
            under: under.cloned(),
        };
        loop {
            let id = self.conn.request(Message::ListVersions(request.clone()))?;
            let page = match self.conn.wait_for(id, REPLY_TIMEOUT)?.message {
                Message::VersionList(page) => page,
                Message::Error(report) => {
                    return Err(ClientError::RequestRefused {
                        code: report.code,
                        message: report.message,
                    })
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "expected VersionList, got {:?}",
                        other.kind()
                    )))
                }
            };
            page.entries.iter().for_each(&mut each);
            match (page.more, page.entries.last()) {
                (true, Some(last)) => {
                    request.after_seq = last.seq;
                    request.after = Some(last.path.clone());
                }
                _ => return Ok(()),
            }
        }
    }

    /// Restores `path` as it was at `time_ms` (ms since the epoch, UTC):
    /// the server decides which version that was (PROTOCOL.md §14.3,
    /// RestoreAt).
    ///
    /// # Errors
    /// The connection failed, or the server refused (`NoSuchVersion`: the
    /// path did not exist then; `UnknownKind`: a server older than
    /// RestoreAt; a storage error).
    pub fn restore_at(&mut self, time_ms: u64, path: &WirePath) -> Result<PushAck, ClientError> {
        let id = self.conn.request(Message::RestoreAt(RestoreAt {
            time_ms,
            path: path.clone(),
        }))?;
        self.ack(id)
    }

    /// Restores the version of `path` displaced by change `seq`.
    ///
    /// # Errors
    /// The connection failed, or the server refused (`NoSuchVersion`, a
    /// storage error).
    pub fn restore(&mut self, seq: u64, path: &WirePath) -> Result<PushAck, ClientError> {
        let id = self.conn.request(Message::Restore(Restore {
            seq,
            path: path.clone(),
        }))?;
        self.ack(id)
    }

    /// The PushAck (or refusal) answering request `id`.
    fn ack(&mut self, id: u32) -> Result<PushAck, ClientError> {
        match self.conn.wait_for(id, REPLY_TIMEOUT)?.message {
            Message::PushAck(ack) => Ok(ack),
            Message::Error(report) => Err(ClientError::RequestRefused {
                code: report.code,
                message: report.message,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected PushAck, got {:?}",
                other.kind()
            ))),
        }
    }
}

/// One listing line: `N  TIME  CAUSE  SIZE  PATH` (a directory shows `dir`
/// for its size and a trailing `/`).
pub fn render(entry: &KeptVersion) -> String {
    let when = chrono::DateTime::from_timestamp_millis(entry.time_ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| entry.time_ms.to_string());
    let (size, slash) = match entry.kind {
        KeptKind::File { size, .. } => (size.to_string(), ""),
        KeptKind::Dir => ("dir".to_owned(), "/"),
    };
    format!(
        "{:>8}  {when}  {:<12}  {size:>12}  {}{slash}",
        entry.seq,
        entry.cause.word(),
        entry.path
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Cause, ContentHash};

    fn kept(seq: u64, path: &str, time_ms: u64) -> KeptVersion {
        KeptVersion {
            seq,
            since: 0,
            time_ms,
            cause: Cause::Overwritten,
            kind: KeptKind::File {
                size: 1,
                hash: ContentHash::of(&seq.to_be_bytes()),
                mtime_ns: 0,
                executable: false,
            },
            path: WirePath::new(path).expect("test path"),
        }
    }

    #[test]
    fn a_listing_line_shows_number_time_cause_size_and_path() {
        let line = render(&kept(42, "docs/a.txt", 1_764_583_200_000));
        assert_eq!(
            line,
            "      42  2025-12-01T10:00:00.000Z  overwritten              1  docs/a.txt"
        );
    }
}
