//! Delta downloads (PROTOCOL.md §13.4) in the user's actor: `FetchManifest`
//! pins the file's current content (its open descriptor) and its chunk list
//! (from the chunk index, or cut from that descriptor); `FetchChunks` is
//! answered with `ChunkData` frames read from the pinned content, then
//! `FileEnd` after the last one. A chunk is re-hashed before it leaves
//! unless the file is provably unchanged since the manifest ([`Stamp`],
//! the client checks every chunk anyway.
//!
//! The replies are bulk jobs ([`super::peer::Job`]) produced within the
//! connection's credit (`flow::PeerFlow`), so a slow reader holds at most a
//! credit window of chunk bytes in memory; a connection holds at most
//! [`MAX_OPEN_DOWNLOADS`] pinned files and chunk lists. The reactor never
//! sees a byte of it.

use super::peer::Job;
use super::Actor;
use crate::chunk::manifest::MAX_MANIFEST_CHUNKS;
use crate::chunk::{manifest_of_reader, IdLen, Manifest};
use crate::protocol::delta::{
    ShortChunkEntry, MAX_LIST_ENTRIES, MAX_SHORT_LIST_ENTRIES, SHORT_ENTRY_WIRE_LEN,
};
use crate::protocol::list_delta::diff;
use crate::protocol::message::put_header;
use crate::protocol::wire::put_u32;
use crate::protocol::{
    ChunkListDelta, ChunkRange, ChunkRanges, ContentHash, ErrorCode, FetchManifest, FileManifest,
    Frame, Kind, Message, WirePath,
};
use crate::server::bus::ConnRef;
use crate::server::store::StoreError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most delta downloads one connection may have open at once (from
/// `FetchManifest` to the `FileEnd` after its last `FetchChunks`, §13.4):
/// each holds a descriptor and its chunk list (36 bytes plus an 8-byte
/// offset per chunk: 0.7 MB for a 1 GiB file at the average chunk size).
pub const MAX_OPEN_DOWNLOADS: usize = crate::protocol::limits::MAX_OPEN_DELTA_DOWNLOADS;

/// How old a file's mtime and ctime must be at the manifest for its
/// chunks to be served without re-hashing: several ticks of the
/// kernel's coarse file clock (at most 10 ms at HZ=100), so any write after
/// the manifest gives a later time than the one recorded.
pub const SETTLED: Duration = Duration::from_millis(100);

/// What the pinned descriptor's inode says about its content: a write, a
/// truncation or a chmod in place changes one of these (size, mtime,
/// ctime, each time in nanoseconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i128,
    ctime: i128,
}

impl Stamp {
    /// The descriptor's `fstat`.
    fn of(file: &File) -> io::Result<Stamp> {
        let m = file.metadata()?;
        let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        Ok(Stamp {
            size: m.len(),
            mtime: nanos(m.mtime(), m.mtime_nsec()),
            ctime: nanos(m.ctime(), m.ctime_nsec()),
        })
    }

    /// The stamp of a file that may be served without re-hashing: its size
    /// is the manifest's and both its times are at least [`SETTLED`] older
    /// than `now` (a file written just now could be written again within
    /// the same clock tick without its times moving). `None`: every chunk
    /// is re-hashed.
    fn settled(file: &File, size: u64, now: SystemTime) -> Option<Stamp> {
        let stamp = Stamp::of(file).ok()?;
        let limit = now.checked_sub(SETTLED)?.duration_since(UNIX_EPOCH).ok()?;
        let limit = i128::try_from(limit.as_nanos()).ok()?;
        (stamp.size == size && stamp.mtime < limit && stamp.ctime < limit).then_some(stamp)
    }
}

/// A file being served as chunks on one connection.
pub struct Served {
    path: WirePath,
    version: u64,
    /// The content announced: `None` once a read failed (§13.4: the
    /// download is over; its later `FetchChunks` get no reply).
    file: Option<File>,
    manifest: Manifest,
    /// The list's form on the wire: `ChunkList` (after `FetchManifest`) or
    /// `ShortChunkList` (after `FetchShortManifest`, §13.6).
    id_len: IdLen,
    /// After `FetchManifestSince` whose base list the index holds: the
    /// list as one `ChunkListDelta` frame instead (§13.7).
    delta: Option<ChunkListDelta>,
    /// Byte offset of each chunk.
    offsets: Vec<u64>,
    /// The file's [`Stamp`] at the manifest when it was settled then: a
    /// chunk read while the descriptor still shows it is sent as read,
    /// without re-hashing. `None`: every chunk is re-hashed.
    unchanged: Option<Stamp>,
    /// The smallest index a later run may start at (runs of all the
    /// download's `FetchChunks` increase, R-13.4.3).
    floor: u64,
    /// A `FetchChunks` with `last` = 1 was received.
    ended: bool,
}

/// The open delta downloads of a connection, by request ID.
pub type ServedFiles = HashMap<u32, Served>;

impl Actor {
    /// `FetchManifest` (R), or `FetchShortManifest` (R) with `id_len`
    /// [`IdLen::Short`] (§13.6), or `FetchManifestSince` (R) with the base
    /// content's hash `since` (§13.7): pins the file and queues its manifest
    /// reply; `NotFound`/`Storage` on an open connection when it cannot.
    pub(super) fn on_fetch_manifest(
        &mut self,
        conn: ConnRef,
        rid: u32,
        ask: FetchManifest,
        cost: usize,
        (id_len, since): (IdLen, Option<ContentHash>),
    ) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let refusal = if peer.served.contains_key(&rid) {
            Some(format!("FetchManifest {rid} while download {rid} is open"))
        } else if peer.served.len() >= MAX_OPEN_DOWNLOADS {
            Some(format!(
                "more than {MAX_OPEN_DOWNLOADS} delta downloads open on one connection"
            ))
        } else {
            None
        };
        if let Some(text) = refusal {
            self.log(conn, "fetch-manifest", Err(&text));
            return self.fail(conn, rid, ErrorCode::WrongPhase, &text);
        }
        let detail = format!("{} v{}", ask.path, ask.version);
        match self.pin(&ask.path) {
            Ok(mut served) => {
                served.id_len = id_len;
                served.delta = since.and_then(|base| self.list_delta(&served, base));
                let what = format!(
                    "{detail}: v{} {} bytes, {} chunks{}",
                    served.version,
                    served.manifest.size,
                    served.manifest.chunks.len(),
                    match (&served.delta, id_len) {
                        (Some(d), _) => format!(
                            " (16-byte IDs, list relative to the held version: {} bytes)",
                            d.wire_len()
                        ),
                        (None, IdLen::Short) => " (16-byte IDs)".to_owned(),
                        (None, IdLen::Full) => String::new(),
                    }
                );
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.served.insert(rid, served);
                    peer.jobs.push_back(Job::Manifest {
                        request_id: rid,
                        sent: None,
                        cost,
                    });
                }
                self.log(conn, "fetch-manifest", Ok(&what));
            }
            Err(e) => {
                let text = format!("{detail}: {e}");
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(rid, e.code(), &text);
                    peer.flow.answered(cost);
                    // Logged with the actor's second look.
                    if matches!(e, StoreError::ChangedOnDisk(_) | StoreError::Lost { .. }) {
                        peer.failed_fetches.push((ask.path, e, "fetch-manifest"));
                        return;
                    }
                }
                self.log(conn, "fetch-manifest", Err(&text));
            }
        }
    }

    /// The served list as a delta against the list of `path`'s content
    /// `base` (current or previous, [`ChunkIndex::list_of`]), when the index
    /// holds it and the delta is smaller than the whole short list and fits
    /// one frame; `None`: the whole list is sent.
    fn list_delta(&self, served: &Served, base: ContentHash) -> Option<ChunkListDelta> {
        let base_list = self.chunks.as_ref()?.list_of(&served.path, base)?;
        let delta = ChunkListDelta {
            base_hash: base,
            ops: diff(&base_list.chunks, &served.manifest.chunks),
        };
        let whole = served.manifest.chunks.len() * SHORT_ENTRY_WIRE_LEN;
        (delta.fits() && delta.wire_len() < whole).then_some(delta)
    }

    /// Opens `path` and finds its chunk list: from the index when it holds
    /// this content's list, else cut from the open descriptor (and recorded).
    fn pin(&mut self, path: &WirePath) -> Result<Served, StoreError> {
        let Some(store) = self.store.as_ref() else {
            return Err(StoreError::NotFound(path.clone()));
        };
        let reader = store.open_file(path)?;
        let (version, size, hash) = (reader.version(), reader.size(), reader.hash());
        let file = reader.into_file();
        let index = super::loaded_chunks(&mut self.chunks, store);
        let manifest = match index.manifest_of(path, hash) {
            Some(m) => m,
            None => {
                let read = |source: io::Error| StoreError::Read {
                    path: path.clone(),
                    source,
                };
                let m = manifest_of_reader(BufReader::new(&file)).map_err(read)?;
                // Changed or damaged behind the server's back.
                if m.hash != hash || m.size != size {
                    return Err(StoreError::ChangedOnDisk(path.clone()));
                }
                index.record(path, &m);
                self.chunks_dirty = true;
                m
            }
        };
        if manifest.chunks.len() > MAX_MANIFEST_CHUNKS {
            let text = format!("more than {MAX_MANIFEST_CHUNKS} chunks: fetch it whole");
            return Err(StoreError::Read {
                path: path.clone(),
                source: io::Error::other(text),
            });
        }
        let offsets = manifest.offsets().map(|(o, _)| o).collect();
        let unchanged = Stamp::settled(&file, manifest.size, SystemTime::now());
        Ok(Served {
            path: path.clone(),
            version,
            file: Some(file),
            manifest,
            id_len: IdLen::Full,
            delta: None,
            offsets,
            unchanged,
            floor: 0,
            ended: false,
        })
    }

    /// `FetchChunks` (R): checks the runs against the open download R and
    /// queues its `ChunkData` reply.
    pub(super) fn on_fetch_chunks(
        &mut self,
        conn: ConnRef,
        rid: u32,
        ask: ChunkRanges,
        cost: usize,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let checked = match peer.served.get_mut(&rid) {
            Some(served) if !served.ended => served.admit(&ask.ranges, ask.last),
            _ => Err((
                ErrorCode::WrongPhase,
                format!("FetchChunks {rid} without an open FetchManifest {rid}"),
            )),
        };
        match checked {
            Ok(count) => {
                peer.jobs.push_back(Job::Chunks {
                    request_id: rid,
                    ranges: ask.ranges,
                    run: 0,
                    within: 0,
                    last: ask.last,
                    cost,
                });
                let detail = format!("{count} chunks{}", if ask.last { ", last" } else { "" });
                self.log(conn, "fetch-chunks", Ok(&detail));
            }
            Err((code, text)) => {
                peer.served.remove(&rid);
                self.log(conn, "fetch-chunks", Err(&text));
                self.fail(conn, rid, code, &text);
            }
        }
    }
}

impl Served {
    /// Checks `ranges` (increasing within the frame: the decoder saw to
    /// that) against the list and the download's earlier runs; returns the
    /// number of chunks asked.
    fn admit(&mut self, ranges: &[ChunkRange], last: bool) -> Result<u64, (ErrorCode, String)> {
        let count = self.manifest.chunks.len() as u64;
        let mut asked = 0;
        for range in ranges {
            if u64::from(range.first) < self.floor || range.end() > count {
                return Err((
                    ErrorCode::BadFrame,
                    format!(
                        "{}: run {}+{} overlaps an earlier run or passes the {count} chunks",
                        self.path, range.first, range.count
                    ),
                ));
            }
            self.floor = range.end();
            asked += u64::from(range.count);
        }
        self.ended = last;
        Ok(asked)
    }

    /// Appends `ChunkData` (R) for chunk `index`, read from the pinned
    /// content and checked against its ID, unless the descriptor's
    /// [`Stamp`], taken after the read, is still the settled one of the
    /// manifest (R-13.4.2: a write in place updates the times before it
    /// copies its bytes, so a chunk read during or after one is re-hashed).
    fn encode_chunk(&self, out: &mut Vec<u8>, rid: u32, index: u32) -> Result<(), StoreError> {
        let fail = |source: io::Error| StoreError::Read {
            path: self.path.clone(),
            source,
        };
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| fail(io::Error::other("download failed earlier")))?;
        let (Some(entry), Some(&offset)) = (
            self.manifest.chunks.get(index as usize),
            self.offsets.get(index as usize),
        ) else {
            return Err(fail(io::Error::other("chunk index out of range")));
        };
        let start = out.len();
        put_header(out, Kind::ChunkData, rid, 4 + entry.len);
        put_u32(out, index);
        let data_at = out.len();
        let read = read_onto(out, file, entry.len as usize, offset);
        let checked = read.and_then(|()| {
            let unchanged = match self.unchanged {
                Some(stamp) => Stamp::of(file)? == stamp,
                None => false,
            };
            if unchanged || ContentHash::of(&out[data_at..]) == entry.id {
                Ok(())
            } else {
                Err(io::Error::other(
                    "the file changed on disk behind the server",
                ))
            }
        });
        checked.map_err(|e| {
            out.truncate(start);
            fail(e)
        })
    }
}

/// Appends the `len` bytes of `file` at `offset` to `out`, read straight
/// into its spare capacity: a `resize` first would zero them (1 GiB of
/// memset per GiB served) only for `pread` to overwrite them.
///
/// # Errors
/// The read's; `UnexpectedEof` when the file ends first. `out` then holds
/// some of the bytes: the caller truncates it.
fn read_onto(out: &mut Vec<u8>, file: &File, len: usize, offset: u64) -> io::Result<()> {
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let spare = &mut out.spare_capacity_mut()[..len - done];
        let at = offset + done as u64;
        let n = match rustix::io::pread(file, spare, at) {
            Ok((read, _)) => read.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than its chunk list",
            ));
        }
        // SAFETY: `pread` initialized the first `n` bytes of the spare
        // capacity (rustix returns them as the initialized part), and
        // `n <= len - done <= capacity - len()`.
        unsafe { out.set_len(out.len() + n) };
        done += n;
    }
    Ok(())
}

/// One step of a manifest reply: `FileManifest`, then one `ChunkList` frame
/// of up to [`MAX_LIST_ENTRIES`] entries (or, for `FetchShortManifest`, one
/// `ShortChunkList` of up to [`MAX_SHORT_LIST_ENTRIES`], §13.6). Returns
/// true when it is complete.
pub fn manifest_step(
    out: &mut Vec<u8>,
    rid: u32,
    sent: &mut Option<usize>,
    served: &ServedFiles,
) -> bool {
    let Some(s) = served.get(&rid) else {
        return true;
    };
    let chunks = &s.manifest.chunks;
    let Some(from) = *sent else {
        let header = FileManifest {
            version: s.version,
            size: s.manifest.size,
            hash: s.manifest.hash,
            chunk_count: chunks.len() as u32,
            path: s.path.clone(),
        };
        Frame::new(rid, Message::FileManifest(header)).encode(out);
        *sent = Some(0);
        return chunks.is_empty();
    };
    if let Some(delta) = &s.delta {
        Frame::new(rid, Message::ChunkListDelta(delta.clone())).encode(out);
        *sent = Some(chunks.len());
        return true;
    }
    let per_frame = match s.id_len {
        IdLen::Full => MAX_LIST_ENTRIES,
        IdLen::Short => MAX_SHORT_LIST_ENTRIES,
    };
    let to = (from + per_frame).min(chunks.len());
    let part = &chunks[from..to];
    let message = match s.id_len {
        IdLen::Full => Message::ChunkList(part.to_vec()),
        IdLen::Short => Message::ShortChunkList(part.iter().map(ShortChunkEntry::of).collect()),
    };
    Frame::new(rid, message).encode(out);
    *sent = Some(to);
    to >= chunks.len()
}

/// Where a chunk reply stands: the runs asked, the run being sent and the
/// position in it, and whether this is the download's last `FetchChunks`.
pub struct ChunkCursor<'a> {
    /// The request ID.
    pub rid: u32,
    /// The runs of this `FetchChunks`.
    pub ranges: &'a [ChunkRange],
    /// Index of the run being sent.
    pub run: &'a mut usize,
    /// Chunks of that run already sent.
    pub within: &'a mut u32,
    /// The `FetchChunks` had `last` = 1: `FileEnd` follows its chunks.
    pub last: bool,
}

/// One step of a chunk reply: one `ChunkData`, or at the end `FileEnd`
/// (after a `last` frame, which also closes the download). A chunk that
/// cannot be read as listed ends the download with Error `Storage` (R).
/// Returns true when this reply is complete.
pub fn chunks_step(out: &mut Vec<u8>, at: ChunkCursor<'_>, served: &mut ServedFiles) -> bool {
    let rid = at.rid;
    let Some(s) = served.get_mut(&rid) else {
        return true;
    };
    if s.file.is_none() {
        if at.last {
            served.remove(&rid);
        }
        return true;
    }
    if let Some(range) = at.ranges.get(*at.run) {
        let index = range.first + *at.within;
        if let Err(e) = s.encode_chunk(out, rid, index) {
            super::peer::error_frame(out, rid, &e);
            s.file = None;
            if at.last {
                served.remove(&rid);
            }
            return true;
        }
        *at.within += 1;
        if *at.within >= range.count {
            *at.run += 1;
            *at.within = 0;
        }
        return false;
    }
    if at.last {
        Frame::new(rid, Message::FileEnd).encode(out);
        served.remove(&rid);
    }
    true
}
