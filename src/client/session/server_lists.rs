//! The session's side of [`crate::client::server_list`]: asks the server
//! for the chunk lists of large one-read uploads (behind their
//! `StreamEnd`), routes the answers, and records each list in the folder's
//! chunk index (§13.8, §13.7).

use super::Session;
use crate::chunk::index::ChunkIndex;
use crate::client::connection::Connection;
use crate::client::error::ClientError;
use crate::client::pull::PullJob;
use crate::client::server_list::{ServerLists, Step, Violation};
use crate::protocol::{FetchManifest, Message};

/// Sends `FetchManifest` for the wanted lists while the connection's open
/// delta downloads allow, and tells the running pull how many
/// the lists hold.
///
/// # Errors
/// `ConnectionLost` when a write fails.
pub(super) fn ask(
    conn: &mut Connection,
    lists: &mut ServerLists,
    pull: Option<&mut PullJob>,
) -> Result<(), ClientError> {
    let pull_open = pull.as_ref().map_or(0, |job| job.open_deltas());
    // Bounded: each turn opens one of at most MAX_OPEN_LISTS.
    while let Some((path, hash)) = lists.next(pull_open) {
        let ask = FetchManifest {
            version: 0,
            path: path.clone(),
        };
        let id = conn.request(Message::FetchManifest(ask))?;
        log::debug!("asked the server for the chunk list of {path} (request {id})");
        lists.opened(id, path, hash);
    }
    if let Some(job) = pull {
        job.set_reserved(lists.reserved());
    }
    Ok(())
}

impl Session<'_> {
    /// [`ask`] on this session's connection.
    pub(super) fn ask_server_lists(&mut self) -> Result<(), ClientError> {
        match self.conn.as_mut() {
            Some(conn) => ask(conn, &mut self.push.server_lists, self.pull.job.as_mut()),
            None => Ok(()),
        }
    }

    /// A frame of a list download ([`crate::client::server_list::ServerLists::owns`]).
    ///
    /// # Errors
    /// `Protocol` for a frame §13.4 does not allow there (the connection is
    /// made again); `ConnectionLost` when a write fails.
    pub(super) fn on_server_list_frame(
        &mut self,
        id: u32,
        message: Message,
    ) -> Result<(), ClientError> {
        match self.push.server_lists.on_frame(id, message) {
            Ok(Step::Nothing) => {}
            Ok(Step::Send(message)) => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.send(id, &message)?;
                }
            }
            Ok(Step::Record(path, list)) => {
                let file = self.state.chunk_index_file();
                let index = self
                    .pull
                    .chunks
                    .get_or_insert_with(|| ChunkIndex::load(&file));
                index.record(&path, &list);
                if let Err(e) = index.save(&file) {
                    log::warn!("saving the chunk index: {e}");
                }
                log::debug!(
                    "recorded the server's chunk list of {path} ({} chunks)",
                    list.chunks.len()
                );
            }
            Err(Violation(why)) => return Err(ClientError::Protocol(why)),
        }
        self.ask_server_lists()
    }
}
