//! Delta upload of one file (PROTOCOL.md §13.3): the chunk list first, then
//! only the chunks the server asks for.
//!
//! The upload is a barrier in the push pipeline: the server accepts nothing
//! but this upload's frames until its FileEnd, so the sender waits for
//! `ChunksNeeded` here (other replies that arrive meanwhile are kept for the
//! session, in order) and sends the chunks before the next operation.

use super::connection::Connection;
use super::error::ClientError;
use super::fsutil::Stat;
use crate::chunk::manifest::MAX_MANIFEST_CHUNKS;
use crate::chunk::{manifest_of_reader, Manifest, MIN_CHUNK};
use crate::protocol::delta::{MAX_LIST_ENTRIES, MAX_SHORT_LIST_ENTRIES};
use crate::protocol::{
    ChunkData, ChunkRanges, ContentHash, ErrorCode, FileManifest, Message, ShortChunkEntry,
    WirePath,
};
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// How long the server may take to answer a chunk list: it re-reads and
/// re-hashes every chunk it already has, about 1 s per GiB.
const NEEDED_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the server takes delta uploads, and in which list form. A
/// version 1 server refuses the first delta frame ("unsupported protocol
/// version 2", §13.1): from then on this session sends whole files. A
/// version 2 or 3 server refuses the first `ShortChunkList` ("unsupported
/// protocol version 4", R-13.6.5): from then on lists go as `ChunkList`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeltaSupport {
    /// Not refused so far: deltas with `ShortChunkList` (16-byte IDs, §13.6).
    #[default]
    Short,
    /// Deltas with `ChunkList` (32-byte IDs): the server is version 2 or 3,
    /// or a short-list upload failed its whole-file check.
    Full,
    /// The server speaks version 1 only.
    No,
}

impl DeltaSupport {
    /// Whether a file of `size` bytes should go as a delta upload: larger
    /// than one minimum chunk and a server that takes them.
    pub fn wants(self, size: u64) -> bool {
        self != DeltaSupport::No && size > u64::from(MIN_CHUNK)
    }

    /// After an upload answered `HashMismatch`: a short list is not used
    /// again in this run, so a 16-byte ID collision costs one
    /// more upload, never a loop.
    pub fn after_hash_mismatch(&mut self) {
        if *self == DeltaSupport::Short {
            log::warn!(
                "an upload failed its whole-file check: sending 32-byte chunk IDs from now on"
            );
            *self = DeltaSupport::Full;
        }
    }
}

/// What one file upload needs.
pub struct DeltaFile<'a> {
    /// Where it goes.
    pub path: &'a WirePath,
    /// Base version.
    pub base: u64,
    /// The hash the scan found (the index records it on the PushAck).
    pub hash: ContentHash,
    /// The file's stat when the scan read it.
    pub stat: Stat,
    /// The chunk list the scan cut in the same read
    /// ([`crate::client::scanner::Scanner::take_manifest`]); `None`: the
    /// file is read for it here.
    pub manifest: Option<Manifest>,
}

/// What became of a delta upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaSent {
    /// Sent under this request ID (its answer comes to the session), or
    /// `None` when the content no longer has the scanned hash (changed
    /// since; planned again).
    Sent(Option<u32>),
    /// Nothing sent: the chunk list would be over the protocol's limit
    /// the file must go whole.
    TooManyChunks,
}

/// Uploads `file` as a delta. The scan's chunk list is used when the
/// open file still has the stat it was read at; otherwise (or without one)
/// the file is read for it. Either way the server checks every chunk and
/// the whole file against the list's hashes (§13.3), so a file changed
/// after its list was cut stores nothing.
///
/// # Errors
/// [`ClientError::ConnectionLost`] when writing fails, the connection ends
/// or the server does not answer; `support` becomes [`DeltaSupport::No`]
/// when the server turned out to be version 1.
pub fn send_delta(
    conn: &mut Connection,
    file: &File,
    what: DeltaFile<'_>,
    support: &mut DeltaSupport,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<DeltaSent, ClientError> {
    let unchanged = file.metadata().is_ok_and(|m| Stat::of(&m) == what.stat);
    let known = what.manifest.filter(|_| unchanged);
    let manifest = match known {
        Some(manifest) => manifest,
        None => match manifest_of_reader(BufReader::with_capacity(1 << 20, file)) {
            Ok(manifest) => manifest,
            Err(_) => return Ok(DeltaSent::Sent(None)),
        },
    };
    if manifest.hash != what.hash {
        return Ok(DeltaSent::Sent(None));
    }
    if manifest.chunks.len() > MAX_MANIFEST_CHUNKS {
        return Ok(DeltaSent::TooManyChunks);
    }
    let id = conn.next_request_id();
    let header = FileManifest {
        version: what.base,
        size: manifest.size,
        hash: manifest.hash,
        chunk_count: manifest.chunks.len() as u32,
        path: what.path.clone(),
    };
    conn.send(id, &Message::FileManifest(header))?;
    if *support == DeltaSupport::Short {
        for part in manifest.chunks.chunks(MAX_SHORT_LIST_ENTRIES) {
            let entries = part.iter().map(ShortChunkEntry::of).collect();
            conn.send(id, &Message::ShortChunkList(entries))?;
        }
    } else {
        for part in manifest.chunks.chunks(MAX_LIST_ENTRIES) {
            conn.send(id, &Message::ChunkList(part.to_vec()))?;
        }
    }
    let offsets: Vec<u64> = manifest.offsets().map(|(o, _)| o).collect();
    let mut reused = manifest.size;
    loop {
        let frame = match conn.wait_for(id, NEEDED_TIMEOUT) {
            Ok(frame) => frame,
            Err(e) => {
                note_version_refusal(conn, support);
                return Err(e);
            }
        };
        let ChunkRanges { last, ranges } = match frame.message {
            Message::ChunksNeeded(needed) => needed,
            // An Error ends the upload: the session handles it as the
            // answer to this request.
            Message::Error(report) => {
                conn.push_early(frame.request_id, Message::Error(report));
                return Ok(DeltaSent::Sent(Some(id)));
            }
            other => {
                return Err(ClientError::ConnectionLost(format!(
                    "expected ChunksNeeded, got {:?}",
                    other.kind()
                )))
            }
        };
        let sent = send_needed(conn, file, id, &manifest, &offsets, &ranges, on_bytes)?;
        reused = reused.saturating_sub(sent);
        if last {
            break;
        }
    }
    conn.send(id, &Message::FileEnd)?;
    on_bytes(reused);
    log::debug!(
        "sent {} as a delta: {} of {} bytes were already on the server",
        what.path,
        reused,
        manifest.size
    );
    Ok(DeltaSent::Sent(Some(id)))
}

/// Sends a `ChunkData` for every index in `ranges`, read from `file` at its
/// offset; returns the bytes sent. A file that shrank meanwhile leaves
/// zeros: the server then refuses the chunk (HashMismatch) and nothing is
/// stored.
///
/// # Errors
/// `ConnectionLost` when a write fails or the server names an index the
/// list does not have.
fn send_needed(
    conn: &mut Connection,
    file: &File,
    id: u32,
    manifest: &crate::chunk::Manifest,
    offsets: &[u64],
    ranges: &[crate::protocol::ChunkRange],
    on_bytes: &mut dyn FnMut(u64),
) -> Result<u64, ClientError> {
    let mut sent = 0;
    for range in ranges {
        for index in range.first..range.first.saturating_add(range.count) {
            let (Some(&offset), Some(entry)) = (
                offsets.get(index as usize),
                manifest.chunks.get(index as usize),
            ) else {
                return Err(ClientError::ConnectionLost(format!(
                    "server asked for chunk {index} of {}",
                    manifest.chunks.len()
                )));
            };
            let mut data = vec![0u8; entry.len as usize];
            let _ = file.read_exact_at(&mut data, offset);
            conn.send(id, &Message::ChunkData(ChunkData { index, data }))?;
            on_bytes(u64::from(entry.len));
            sent += u64::from(entry.len);
        }
    }
    Ok(sent)
}

/// A version 1 server answers the first delta frame with Error BadFrame
/// naming the version and closes (§13.1), a version 2 or 3 server the first
/// `ShortChunkList`: remember it for this session.
fn note_version_refusal(conn: &mut Connection, support: &mut DeltaSupport) {
    let refused = conn.early_frames().find_map(|f| match &f.message {
        Message::Error(r)
            if r.code == ErrorCode::BadFrame
                && r.message.contains("unsupported protocol version") =>
        {
            Some(r.message.contains("version 4"))
        }
        _ => None,
    });
    match refused {
        Some(true) if *support == DeltaSupport::Short => {
            log::warn!("the server does not take 16-byte chunk IDs: sending 32-byte ones");
            *support = DeltaSupport::Full;
        }
        Some(false) => {
            log::warn!("the server speaks protocol version 1: uploading whole files");
            *support = DeltaSupport::No;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a file of at most one minimum chunk goes whole (FileBegin),
    /// and nothing goes as a delta to a version 1 server.
    #[test]
    fn r_13_3_4_small_files_and_old_servers_get_whole_files() {
        let min = u64::from(MIN_CHUNK);
        assert!(!DeltaSupport::Short.wants(0));
        assert!(!DeltaSupport::Short.wants(min));
        assert!(DeltaSupport::Short.wants(min + 1));
        assert!(DeltaSupport::Full.wants(min + 1));
        assert!(!DeltaSupport::No.wants(1 << 30));
    }

    /// a HashMismatch after a short list goes to 32-byte IDs for
    /// good; it never turns deltas back on or short lists back on.
    #[test]
    fn r_13_6_4_a_hash_mismatch_ends_short_lists_for_the_run() {
        let mut s = DeltaSupport::Short;
        s.after_hash_mismatch();
        assert_eq!(s, DeltaSupport::Full);
        s.after_hash_mismatch();
        assert_eq!(s, DeltaSupport::Full);
        let mut s = DeltaSupport::No;
        s.after_hash_mismatch();
        assert_eq!(s, DeltaSupport::No);
    }
}
