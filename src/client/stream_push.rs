//! The first upload of a file in one read (protocol version 6, PROTOCOL.md
//! §13.8): `StreamBegin`, the file's bytes in `FileChunk`s as they are
//! read, then `StreamEnd` with the BLAKE3 of exactly those bytes.
//!
//! Two threads share the work on a 2-core machine: this one reads a block
//! (256 KiB) and sends it (encryption included), then hands the same
//! buffer to a hashing thread that hashes the whole file and cuts the
//! blocks into chunks and hashes each ([`hash_blocks`]). The chunk list so
//! made is what the chunk index records at the PushAck (§13.7). A file of
//! at least [`super::server_list::SERVER_LIST_FROM`] whose blocks go out
//! fast (the upload is bound by the CPU, not the link:
//! [`crate::chunk::blocks::leaves_cut`]) stops being cut: the server cuts
//! and hashes the chunks of what it receives anyway, and the
//! session asks it for that list afterwards ([`super::server_list`]), so
//! the same cut is not made twice (about 0.8 CPU-s per GiB on this side).
//!
//! Nothing is vouched for that is not one state of the file:
//! the file's stat before the first read and after the last must be the
//! one the scan planned the upload at (size, mtime, ctime, device, inode),
//! and the read must yield exactly `size` bytes; else the upload is
//! abandoned (`StreamEnd` state 1: the server stores nothing) and the path
//! is looked at again.

use super::connection::Connection;
use super::connection::Inbound;
use super::error::ClientError;
use super::fsutil::{check_path, Local, Stat};
use crate::chunk::blocks::{hash_blocks, Hashed};
use crate::chunk::Manifest;
use crate::protocol::limits::CHUNK_SIZE;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::ErrorCode;
use crate::protocol::{Message, StreamBegin, StreamEnd, WirePath};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Blocks between the reader and the hashing thread: 8 × 256 KiB = 2 MiB,
/// enough for the hasher to never wait on a send while memory stays small.
const IN_FLIGHT: usize = 8;

/// What became of a one-read upload.
#[derive(Debug)]
pub enum Streamed {
    /// Sent and sealed under this request ID: the whole-file hash of
    /// exactly the bytes sent, and their chunk list when it was cut here
    /// (`left`: it is the server's to ask for, [`super::server_list`]).
    Sealed(u32, Hashed),
    /// Sent under this request ID and abandoned (the file changed while it
    /// was read, R-13.8.4): the server answers `HashMismatch`, stores
    /// nothing, and the path must be looked at again.
    Abandoned(u32),
    /// The server refused `StreamBegin` as a version it does not speak
    /// and closed: no version 6 kinds to it again.
    Refused,
}

/// Where a one-read upload of `path` in the folder `root` is marked as in
/// flight: `.cloudservice/streaming/<32 hex digits of BLAKE3(path)>`,
/// written before `StreamBegin` and removed once `StreamEnd` is sent. A
/// marker left by a connection (or a client) that ended mid-upload makes
/// the next upload of the path go hashed first as a delta, which the
/// server fills from the bytes it kept of the cut one: only the
/// rest crosses again.
pub fn marker(root: &Path, path: &WirePath) -> PathBuf {
    let tag = blake3::hash(path.as_str().as_bytes()).to_hex();
    root.join(STATE_DIR_NAME).join("streaming").join(&tag[..32])
}

/// How long a failed write waits for the refusal that may explain it.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);

/// Uploads `file` (open at `path` in `root`, planned at `stat`, a new path:
/// base version 0) in one read; its chunks are cut and hashed here too,
/// unless `may_leave` and the blocks go out fast ([`hash_blocks`]).
///
/// # Errors
/// [`ClientError::ConnectionLost`] when a write fails.
pub fn send_stream(
    conn: &mut Connection,
    root: &Path,
    (path, file): (&WirePath, File),
    (stat, may_leave): (Stat, bool),
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Streamed, ClientError> {
    match stream(conn, root, (path, file), (stat, may_leave), on_bytes) {
        // A stop asked for is not waited on (breaker19 G6).
        Err(e) if !matches!(e, ClientError::Stopping(_)) && refused_v6(conn) => {
            log::warn!(
                "the server does not take uploads with the hash after the data (protocol version 6): hashing before sending ({e})"
            );
            Ok(Streamed::Refused)
        }
        other => other,
    }
}

/// Whether the frames that came before the connection closed hold the
/// refusal of a version 6 kind (Error BadFrame, request ID 0, "unsupported
/// protocol version 6", R-13.8.6); other frames are kept for the session.
/// Bounded by [`REFUSAL_WAIT`].
fn refused_v6(conn: &mut Connection) -> bool {
    let is_refusal = |message: &Message| {
        matches!(message, Message::Error(r) if r.code == ErrorCode::BadFrame
            && r.message.contains("unsupported protocol version 6"))
    };
    if conn.early_frames().any(|f| is_refusal(&f.message)) {
        return true;
    }
    let deadline = Instant::now() + REFUSAL_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.inbound().recv_timeout(left) {
            Ok(Inbound::Frame(frame)) if is_refusal(&frame.message) => return true,
            Ok(Inbound::Frame(frame)) => conn.push_early(frame.request_id, frame.message),
            Ok(Inbound::Closed(_) | Inbound::TimedOut) | Err(_) => return false,
        }
    }
}

fn stream(
    conn: &mut Connection,
    root: &Path,
    (path, file): (&WirePath, File),
    (stat, may_leave): (Stat, bool),
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Streamed, ClientError> {
    let mark = marker(root, path);
    // Without a marker (it could not be written) a cut-off upload is
    // sent whole again: slower, never wrong.
    let _ = mark
        .parent()
        .map(crate::private_dir::create_all)
        .map(|_| std::fs::write(&mark, path.as_str()));
    let id = conn.next_request_id();
    let begin = StreamBegin {
        version: 0,
        size: stat.size,
        path: path.clone(),
    };
    conn.send(id, &Message::StreamBegin(begin))?;
    let before_ok = file.metadata().is_ok_and(|m| Stat::of(&m) == stat);
    let (to_hasher, blocks) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    // Blocks the hasher is done with, back for the next reads.
    let (spent_tx, spent) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT + 2);
    let (sent, hashed) = std::thread::scope(|scope| {
        let hasher = scope.spawn(move || hash_blocks(blocks, Some(spent_tx), may_leave));
        let channels = (&to_hasher, &spent);
        let sent = if before_ok {
            read_and_send(conn, id, file, stat.size, channels, on_bytes)
        } else {
            Ok(ReadOutcome::Short)
        };
        drop(to_hasher);
        (sent, hasher.join())
    });
    let complete = matches!(sent?, ReadOutcome::Whole);
    let unchanged = matches!(check_path(root, path), Ok(Local::File(after)) if after == stat);
    match hashed {
        Ok(hashed) if complete && unchanged && hashed.size == stat.size => {
            conn.send(id, &Message::StreamEnd(StreamEnd::Sealed(hashed.hash)))?;
            let _ = std::fs::remove_file(&mark);
            log::debug!("sent {path} ({} bytes) in one read", stat.size);
            Ok(Streamed::Sealed(id, hashed))
        }
        _ => {
            conn.send(id, &Message::StreamEnd(StreamEnd::Abandoned))?;
            let _ = std::fs::remove_file(&mark);
            log::debug!("{path} changed while it was read and sent: abandoned, looked at again");
            Ok(Streamed::Abandoned(id))
        }
    }
}

/// How far reading went.
enum ReadOutcome {
    /// Exactly `size` bytes were read and sent.
    Whole,
    /// The file ended early, or a read failed: abandon.
    Short,
}

/// Reads `size` bytes of `file` block by block, sending each as a
/// `FileChunk` and then handing it to the hasher. Stops at the first short
/// or failed read (nothing more is sent: the upload is abandoned). Reads
/// go into blocks the hasher gave back on `spent` when there is one (no
/// allocation, no zeroing), else into a new one.
///
/// # Errors
/// `ConnectionLost` when a write fails.
fn read_and_send(
    conn: &mut Connection,
    id: u32,
    mut file: File,
    size: u64,
    (to_hasher, spent): (
        &crossbeam_channel::Sender<Vec<u8>>,
        &crossbeam_channel::Receiver<Vec<u8>>,
    ),
    on_bytes: &mut dyn FnMut(u64),
) -> Result<ReadOutcome, ClientError> {
    let mut left = size;
    // Bounded by `size`: each turn sends at least one byte or stops.
    while left > 0 {
        let want = left.min(CHUNK_SIZE as u64) as usize;
        let mut block = spent.try_recv().unwrap_or_default();
        // A given-back block is CHUNK_SIZE long: no byte is written here
        // but for the last, shorter block (read_exact fills all of it).
        block.resize(want, 0);
        if file.read_exact(&mut block).is_err() {
            return Ok(ReadOutcome::Short);
        }
        conn.send_chunk(id, &block)?;
        on_bytes(want as u64);
        left -= want as u64;
        if to_hasher.send(block).is_err() {
            return Ok(ReadOutcome::Short);
        }
    }
    Ok(ReadOutcome::Whole)
}

/// Whether a new file planned as a one-read upload goes so after all.
#[derive(Debug)]
pub enum HashFirst {
    /// Its first chunk is not one this device knows: send it in one read.
    Stream,
    /// Its first chunk is in the chunk index (a copy, or an edit of a copy,
    /// of a file this device uploaded or downloaded): its chunk list, read
    /// now, so it goes as a delta and the server's copies of its chunks
    /// do not cross again.
    Hashed(Manifest),
    /// It changed while read, or is gone: look at it again.
    Changed,
}

/// Cuts the first chunk of the file at `path` (at most 256 KiB read) and
/// looks it up in `index`; reads the whole file for its list only when
/// the index knows that chunk ([`HashFirst`]). A file whose stat is not
/// `stat` before and after is [`HashFirst::Changed`].
pub fn hash_first_if_known(
    root: &Path,
    path: &WirePath,
    stat: Stat,
    index: &crate::chunk::index::ChunkIndex,
) -> HashFirst {
    use crate::chunk::stream::chunk_reader;
    let Ok(file) = super::fsutil::open_in(root, path) else {
        return HashFirst::Changed;
    };
    let head = (&file).take(u64::from(crate::chunk::MAX_CHUNK));
    let first = chunk_reader(head).next();
    let known = matches!(first, Some(Ok((span, _))) if index.locate(&span.id).is_some());
    if !known {
        return HashFirst::Stream;
    }
    let Ok(file) = super::fsutil::open_in(root, path) else {
        return HashFirst::Changed;
    };
    let read = crate::chunk::manifest_of_reader_sized(
        std::io::BufReader::with_capacity(1 << 20, file),
        stat.size,
    );
    match (read, check_path(root, path)) {
        (Ok(manifest), Ok(Local::File(after))) if after == stat && manifest.size == stat.size => {
            HashFirst::Hashed(manifest)
        }
        _ => HashFirst::Changed,
    }
}
