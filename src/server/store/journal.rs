//! The user's append-only journal: every applied change and registry event,
//! one checksummed record each, replayed at start to rebuild the tree.
//!
//! ```text
//! record: body_len u32 | check [4] (first 4 bytes of BLAKE3(body)) | body
//! body:   type u8 | fields (big-endian, paths as u16 length + UTF-8)
//! ```
//! A record that is cut short or fails its check ends the journal: it and
//! everything after it are dropped (a torn tail from a crash mid-append).
//! A record that passes its check but has a type (or layout) this version
//! does not know is not a torn tail: the journal is refused, untouched, so
//! an older server never cuts off a newer one's history.

use crate::protocol::wire::{put_path, put_u32, put_u64, FieldReader};
use crate::protocol::{ClientId, ContentHash, FrameError, WirePath};
use crate::server::metrics::metrics;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A file was stored at `path`.
    PutFile {
        /// Sequence number.
        seq: u64,
        /// Where.
        path: WirePath,
        /// Bytes.
        size: u64,
        /// BLAKE3 of the content.
        hash: ContentHash,
        /// Modification time of the stored file (ns).
        mtime_ns: i64,
    },
    /// A directory was made (with parents).
    MakeDir {
        /// Sequence number.
        seq: u64,
        /// Where.
        path: WirePath,
    },
    /// A file or a whole directory tree was removed.
    Remove {
        /// Sequence number.
        seq: u64,
        /// What.
        path: WirePath,
    },
    /// A file or directory was moved.
    Rename {
        /// Sequence number.
        seq: u64,
        /// Old path.
        from: WirePath,
        /// New path.
        to: WirePath,
    },
    /// A device joined the user.
    ClientAdded {
        /// Its number.
        client: ClientId,
    },
    /// First record of a compacted journal: the head it was written at, and
    /// the first sequence number whose changes are all still known (a client
    /// with an older cursor gets a full listing).
    Snapshot {
        /// The head when the journal was compacted.
        head: u64,
        /// Changes from this sequence number on are represented.
        history_from: u64,
    },
    /// A path removed (or moved away) at `seq`, kept by compaction so pulls
    /// still report the deletion.
    Tombstone {
        /// Sequence number of the removal.
        seq: u64,
        /// The path that is gone.
        path: WirePath,
    },
    /// Change `seq` was pushed by `client` (written after the change's own
    /// records; a change without one has an unknown author, 0, as have
    /// changes found by a re-scan and journals written before this record).
    Author {
        /// The change.
        seq: u64,
        /// The device that pushed it.
        client: ClientId,
    },
    /// `client`'s push is about to change `path` on disk (written out
    /// before the change, its records after it): a re-scan after a crash
    /// attributes what it finds there to that device (§7.2), since at most
    /// the one change after the last intent can be on disk unjournaled.
    Intent {
        /// The device that pushed the change.
        client: ClientId,
        /// Where the change puts something (an upload's or rename's target).
        path: WirePath,
    },
    /// Written right after a rename's [`Record::Intent`] (type 12): the
    /// change it announces also takes `from` away. After a crash, a path
    /// the folder lacks is journaled removed only when the last intent
    /// names it (its target, or this source); every other missing path is
    /// lost, not deleted (PROTOCOL.md R-10.5, breaker24 F6).
    MoveIntent {
        /// The rename's source.
        from: WirePath,
    },
    /// Change `seq` set or cleared the executable bit of the file at
    /// `path` (PROTOCOL.md §15.3; type 20). A `PutFile` over a file keeps
    /// that file's bit; a new file starts without it.
    SetMode {
        /// Sequence number.
        seq: u64,
        /// The file.
        path: WirePath,
        /// The file is executable from now on.
        executable: bool,
    },
    /// Written by compaction (type 11): change `seq` had tag `tag` in the
    /// history a snapshot replaces (PROTOCOL.md §5.8), so a client's check
    /// of it still holds, and later changes chain on from the newest.
    Chain {
        /// The change.
        seq: u64,
        /// Its tag.
        tag: u64,
    },
    /// The server's copy of the file at `path`, at version `seq`, was
    /// found damaged (`damaged`: the journaled size and mtime, other bytes,
    /// R-10.6), or was put back as journaled (`!damaged`, R-10.10) (type
    /// 21; not a change). Kept so a restart, whose comparison reads only
    /// size and mtime, does not forget a damage it cannot see (R-10.5).
    Damaged {
        /// The version found damaged.
        seq: u64,
        /// The file.
        path: WirePath,
        /// Damaged (true) or put back (false).
        damaged: bool,
    },
    /// A device acknowledged a pull up to `cursor`.
    Cursor {
        /// Which device.
        client: ClientId,
        /// Its new cursor.
        cursor: u64,
    },
}

impl Record {
    /// The change's sequence number, for tree-changing records.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Record::PutFile { seq, .. }
            | Record::MakeDir { seq, .. }
            | Record::Remove { seq, .. }
            | Record::Rename { seq, .. }
            | Record::SetMode { seq, .. }
            | Record::Tombstone { seq, .. } => Some(*seq),
            Record::Snapshot { head, .. } => Some(*head),
            Record::ClientAdded { .. }
            | Record::Cursor { .. }
            | Record::Author { .. }
            | Record::Chain { .. }
            | Record::Damaged { .. }
            | Record::Intent { .. }
            | Record::MoveIntent { .. } => None,
        }
    }

    /// The record's checksummed body, as the journal holds it: what the
    /// history tags chain over (§5.8).
    pub(super) fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_body(&mut out);
        out
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Record::PutFile {
                seq,
                path,
                size,
                hash,
                mtime_ns,
            } => {
                out.push(1);
                put_u64(out, *seq);
                put_u64(out, *size);
                out.extend_from_slice(&hash.0);
                put_u64(out, *mtime_ns as u64);
                put_path(out, path);
            }
            Record::MakeDir { seq, path } => {
                out.push(2);
                put_u64(out, *seq);
                put_path(out, path);
            }
            Record::Remove { seq, path } => {
                out.push(3);
                put_u64(out, *seq);
                put_path(out, path);
            }
            Record::Rename { seq, from, to } => {
                out.push(4);
                put_u64(out, *seq);
                put_path(out, from);
                put_path(out, to);
            }
            Record::ClientAdded { client } => {
                out.push(5);
                put_u64(out, *client);
            }
            Record::Cursor { client, cursor } => {
                out.push(6);
                put_u64(out, *client);
                put_u64(out, *cursor);
            }
            Record::Snapshot { head, history_from } => {
                out.push(7);
                put_u64(out, *head);
                put_u64(out, *history_from);
            }
            Record::Tombstone { seq, path } => {
                out.push(8);
                put_u64(out, *seq);
                put_path(out, path);
            }
            Record::Author { seq, client } => {
                out.push(9);
                put_u64(out, *seq);
                put_u64(out, *client);
            }
            Record::Chain { seq, tag } => {
                out.push(11);
                put_u64(out, *seq);
                put_u64(out, *tag);
            }
            Record::Intent { client, path } => {
                out.push(10);
                put_u64(out, *client);
                put_path(out, path);
            }
            Record::MoveIntent { from } => {
                out.push(12);
                put_path(out, from);
            }
            Record::SetMode {
                seq,
                path,
                executable,
            } => {
                out.push(20);
                put_u64(out, *seq);
                out.push(u8::from(*executable));
                put_path(out, path);
            }
            Record::Damaged { seq, path, damaged } => {
                out.push(21);
                put_u64(out, *seq);
                out.push(u8::from(*damaged));
                put_path(out, path);
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Record, FrameError> {
        let mut r = FieldReader::new(body);
        let record = match r.u8()? {
            1 => {
                let seq = r.u64()?;
                let size = r.u64()?;
                let hash = ContentHash(r.array()?);
                let mtime_ns = r.u64()? as i64;
                Record::PutFile {
                    seq,
                    path: r.path()?,
                    size,
                    hash,
                    mtime_ns,
                }
            }
            2 => Record::MakeDir {
                seq: r.u64()?,
                path: r.path()?,
            },
            3 => Record::Remove {
                seq: r.u64()?,
                path: r.path()?,
            },
            4 => Record::Rename {
                seq: r.u64()?,
                from: r.path()?,
                to: r.path()?,
            },
            5 => Record::ClientAdded { client: r.u64()? },
            6 => Record::Cursor {
                client: r.u64()?,
                cursor: r.u64()?,
            },
            7 => Record::Snapshot {
                head: r.u64()?,
                history_from: r.u64()?,
            },
            8 => Record::Tombstone {
                seq: r.u64()?,
                path: r.path()?,
            },
            9 => Record::Author {
                seq: r.u64()?,
                client: r.u64()?,
            },
            10 => Record::Intent {
                client: r.u64()?,
                path: r.path()?,
            },
            12 => Record::MoveIntent { from: r.path()? },
            11 => Record::Chain {
                seq: r.u64()?,
                tag: r.u64()?,
            },
            21 => {
                let seq = r.u64()?;
                let damaged = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::BadValue),
                };
                Record::Damaged {
                    seq,
                    path: r.path()?,
                    damaged,
                }
            }
            20 => {
                let seq = r.u64()?;
                let executable = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::BadValue),
                };
                Record::SetMode {
                    seq,
                    path: r.path()?,
                    executable,
                }
            }
            _ => return Err(FrameError::BadValue),
        };
        r.finish()?;
        Ok(record)
    }
}

/// Journal write buffer: enough for a burst of records, small because every
/// running actor holds one.
const JOURNAL_BUFFER: usize = 8 * 1024;

/// Largest record body accepted on replay (two maximal paths and some fields).
const MAX_BODY: usize = 16 * 1024;

fn check(body: &[u8]) -> [u8; 4] {
    let hash = blake3::hash(body);
    let mut out = [0u8; 4];
    out.copy_from_slice(&hash.as_bytes()[..4]);
    out
}

/// The open journal file, appending.
pub struct Journal {
    out: BufWriter<File>,
    scratch: Vec<u8>,
}

/// What `Journal::open` found.
pub struct Replay {
    /// The journal, positioned at its end for appending.
    pub journal: Journal,
    /// Every good record, in order.
    pub records: Vec<Record>,
    /// Bytes of a torn or corrupt tail that were cut off (0 when clean).
    pub dropped_bytes: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, reads every good record and
    /// cuts off a torn tail (a record cut short or failing its check).
    ///
    /// # Errors
    /// The file cannot be opened, read or truncated; or it holds a complete,
    /// checked record this version cannot decode (`InvalidData`: a newer
    /// version's journal is refused, never cut).
    pub fn open(path: &Path) -> io::Result<Replay> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let mut records = Vec::new();
        let mut pos = 0usize;
        loop {
            match parse_record(&raw, pos) {
                Parsed::Record(record, next) => {
                    records.push(record);
                    pos = next;
                }
                Parsed::End => break,
                // Not a torn tail: cutting it off would throw away a newer
                // version's history. Refuse to open instead.
                Parsed::Unreadable(kind) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        // No server path: the text reaches the client.
                        format!(
                            "the journal's record at byte {pos} (type {kind}) passes its check \
                             but this version cannot read it (written by a newer \
                             cloud-server?); not opened, nothing cut off"
                        ),
                    ));
                }
            }
        }
        let dropped_bytes = (raw.len() - pos) as u64;
        if dropped_bytes > 0 {
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(pos as u64))?;
        Ok(Replay {
            journal: Journal {
                out: BufWriter::with_capacity(JOURNAL_BUFFER, file),
                scratch: Vec::new(),
            },
            records,
            dropped_bytes,
        })
    }

    /// Writes `records` as a complete new journal at `path`, durably, and
    /// then atomically puts it in place of the old one.
    ///
    /// # Errors
    /// Creating, writing, syncing or renaming failed; the old journal is then
    /// untouched.
    pub fn replace_with(path: &Path, records: &[Record]) -> io::Result<()> {
        let fresh = path.with_extension("compact");
        let file = File::create(&fresh)?;
        let mut journal = Journal {
            out: BufWriter::with_capacity(JOURNAL_BUFFER, file),
            scratch: Vec::new(),
        };
        for record in records {
            journal.append(record)?;
        }
        journal.flush(true)?;
        drop(journal);
        std::fs::rename(&fresh, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Appends a record to the buffer; it reaches the file at the next `flush`.
    ///
    /// # Errors
    /// Writing the buffer out failed.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        self.scratch.clear();
        record.encode_body(&mut self.scratch);
        let mut head = Vec::with_capacity(8);
        put_u32(&mut head, self.scratch.len() as u32);
        head.extend_from_slice(&check(&self.scratch));
        self.out.write_all(&head)?;
        self.out.write_all(&self.scratch)
    }

    /// Hands buffered records to the kernel (survives a process crash) and,
    /// with `durable`, to the disk (survives power loss).
    ///
    /// # Errors
    /// The write or fsync failed.
    pub fn flush(&mut self, durable: bool) -> io::Result<()> {
        let start = Instant::now();
        self.out.flush()?;
        let written = start.elapsed();
        let fsync = if durable {
            let start = Instant::now();
            self.out.get_ref().sync_data()?;
            Some(start.elapsed())
        } else {
            None
        };
        metrics().journal_flushed(written, fsync);
        Ok(())
    }
}

/// The record starting at `pos`, and where the next one starts.
/// What the bytes at one position of the journal are.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A good record, and where the next one starts.
    Record(Record, usize),
    /// The end: nothing more, or a record cut short or failing its check
    /// (a torn tail).
    End,
    /// A complete record that passes its check but that this version cannot
    /// decode (a record type of a newer version, the first body byte).
    Unreadable(u8),
}

fn parse_record(raw: &[u8], pos: usize) -> Parsed {
    let Some(head) = pos.checked_add(8).and_then(|end| raw.get(pos..end)) else {
        return Parsed::End;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_BODY {
        return Parsed::End;
    }
    let Some(body) = raw.get(pos + 8..pos + 8 + len) else {
        return Parsed::End;
    };
    if check(body) != head[4..8] {
        return Parsed::End;
    }
    match Record::decode_body(body) {
        Ok(record) => Parsed::Record(record, pos + 8 + len),
        Err(_) => Parsed::Unreadable(body.first().copied().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of an unknown type (a newer version's) followed by more
    /// records: the journal is refused and not a byte is cut off.
    #[test]
    fn an_unknown_record_type_is_refused_not_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut replay = Journal::open(&path).unwrap();
        replay
            .journal
            .append(&Record::ClientAdded { client: 1 })
            .unwrap();
        replay.journal.flush(true).unwrap();
        drop(replay);
        let mut raw = std::fs::read(&path).unwrap();
        let body = [200u8, 1, 2, 3];
        raw.extend_from_slice(&(body.len() as u32).to_be_bytes());
        raw.extend_from_slice(&check(&body));
        raw.extend_from_slice(&body);
        std::fs::write(&path, &raw).unwrap();
        let err = Journal::open(&path).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("type 200"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), raw, "nothing cut off");
    }

    #[test]
    fn replay_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let records = vec![
            Record::ClientAdded { client: 1 },
            Record::PutFile {
                seq: 1,
                path: WirePath::new("a/b.txt").unwrap(),
                size: 5,
                hash: ContentHash::of(b"hello"),
                mtime_ns: -3,
            },
            Record::Rename {
                seq: 2,
                from: WirePath::new("a").unwrap(),
                to: WirePath::new("z").unwrap(),
            },
            Record::Intent {
                client: 1,
                path: WirePath::new("z/b.txt").unwrap(),
            },
            Record::MoveIntent {
                from: WirePath::new("a/b.txt").unwrap(),
            },
            Record::Cursor {
                client: 1,
                cursor: 2,
            },
        ];
        {
            let mut j = Journal::open(&path).unwrap().journal;
            for r in &records {
                j.append(r).unwrap();
            }
            j.flush(true).unwrap();
        }
        let full_len = std::fs::metadata(&path).unwrap().len();
        let replay = Journal::open(&path).unwrap();
        assert_eq!(replay.records, records);
        assert_eq!(replay.dropped_bytes, 0);
        drop(replay);
        // Cut into the last record: it must vanish, the others stay.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full_len - 3).unwrap();
        drop(file);
        let mut replay = Journal::open(&path).unwrap();
        let last = records.len() - 1;
        assert_eq!(replay.records, records[..last].to_vec());
        assert!(replay.dropped_bytes > 0);
        // Appending after the cut continues a well-formed journal.
        replay.journal.append(&records[last]).unwrap();
        replay.journal.flush(false).unwrap();
        drop(replay);
        assert_eq!(Journal::open(&path).unwrap().records, records);
    }
}
