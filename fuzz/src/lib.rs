//! Properties of the frame codec, checked by the fuzz targets and, on stable,
//! by `tests/fuzz_corpus_replay.rs`, which includes this very file.
//!
//! Every check panics on a broken property, so libFuzzer records the input
//! as a crash and the replay test fails on it.
//!
//! # Input of `frame_parser`
//! ```text
//! plan_len u8 (taken mod 9) | plan [plan_len] | stream (the bytes the decoder sees)
//! ```
//! Each plan byte `b` is a read size of `1 + b*b` bytes (1 to 65,026); the
//! plan is repeated until the stream is used up. An empty plan (or an empty
//! input) feeds the stream one byte at a time.

use cloudservice::chunk::ChunkEntry;
use cloudservice::protocol::credential::device_name;
use cloudservice::protocol::limits::{
    HEADER_LEN, MAX_DEVICE_NAME_BYTES, MAX_MESSAGE_BYTES, MAX_PAYLOAD,
};
use cloudservice::protocol::{
    decode_all, ChangeBatch, ChangeEntry, ChunkData, ChunkRange, ChunkRanges, ContentHash, Delete,
    EntryState, ErrorCode, ErrorReport, Fetch, FetchManifest, FileBegin, FileManifest, Frame,
    FrameDecoder, FrameError, FrameFill, Hello, HelloMode, KeyHello, KeyWelcome, Message, PushAck,
    PushStatus, RemoveDir, Rename, Secret, SetMode, ShortChunkEntry, Status, UserId, Welcome,
    WirePath,
};
use cloudservice::protocol::{
    Cause, KeptKind, KeptVersion, ListVersions, Restore, RestoreAt, VersionList,
};
use cloudservice::protocol::{ChunkListDelta, FetchManifestSince, ListOp};
use cloudservice::protocol::{History, PartialAck, PullChecked, StreamBegin, StreamEnd};
use cloudservice::protocol::{LostEntry, LostList};

pub mod chunk_list;
pub mod proxy_header;

/// Most chunk sizes one `frame_parser` input can name.
pub const MAX_PLAN: usize = 8;

/// Largest number of bytes a decoder may hold: one header and one full payload.
pub const MAX_BUFFERED: usize = HEADER_LEN + MAX_PAYLOAD as usize;

/// What ended a decoded stream, as `decode_all` reports it.
pub type End = Result<Status<()>, FrameError>;

/// Splits a `frame_parser` input into its read sizes and its stream.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (vec![1], data);
    };
    let n = (usize::from(first) % (MAX_PLAN + 1)).min(rest.len());
    let (plan, stream) = rest.split_at(n);
    let mut sizes: Vec<usize> = plan.iter().map(|&b| 1 + usize::from(b).pow(2)).collect();
    if sizes.is_empty() {
        sizes.push(1);
    }
    (sizes, stream)
}

/// Builds a `frame_parser` input from plan bytes (at most [`MAX_PLAN`] are
/// used) and a stream; the inverse of [`split_input`].
pub fn make_input(plan: &[u8], stream: &[u8]) -> Vec<u8> {
    let plan = &plan[..plan.len().min(MAX_PLAN)];
    let mut out = Vec::with_capacity(1 + plan.len() + stream.len());
    out.push(plan.len() as u8);
    out.extend_from_slice(plan);
    out.extend_from_slice(stream);
    out
}

/// The `frame_parser` properties for one fuzz input.
///
/// # Panics
/// When a property does not hold.
pub fn check_frame_parser(data: &[u8]) {
    let (plan, stream) = split_input(data);
    let _ = check_stream(stream, &plan);
}

/// Decodes `stream` whole and in reads of the `plan` sizes and checks:
/// (a) both give the same frames and the same end (error or partial frame);
/// (b) the frames re-encode to exactly the bytes they came from;
/// (c) no payload exceeds `MAX_PAYLOAD` and the decoder never holds more than
///     [`MAX_BUFFERED`] bytes. Returns the frames and the end.
///
/// # Panics
/// When a property does not hold.
pub fn check_stream(stream: &[u8], plan: &[usize]) -> (Vec<Frame>, End) {
    let (frames, end) = decode_all(stream);
    let (fed_frames, fed_end, fed_buffered) = decode_chunked(stream, plan);
    assert_eq!(
        frames, fed_frames,
        "chunked feeding (plan {plan:?}) changed the frames"
    );
    assert_eq!(
        end, fed_end,
        "chunked feeding (plan {plan:?}) changed the end"
    );
    let (filled_frames, filled_end) = decode_filled(stream, plan);
    assert_eq!(
        frames, filled_frames,
        "filling one frame at a time (plan {plan:?}) changed the frames"
    );
    assert_eq!(
        end, filled_end,
        "filling one frame at a time (plan {plan:?}) changed the end"
    );

    let mut offset = 0;
    for (index, frame) in frames.iter().enumerate() {
        let bytes = frame.to_bytes();
        assert!(
            bytes.len() - HEADER_LEN <= MAX_PAYLOAD as usize,
            "frame {index} has a payload of {} bytes",
            bytes.len() - HEADER_LEN
        );
        assert!(
            stream.get(offset..offset + bytes.len()) == Some(&bytes[..]),
            "frame {index} at offset {offset} does not re-encode to its bytes: {frame:?}"
        );
        offset += bytes.len();
    }
    let left = stream.len() - offset;
    match end {
        Ok(Status::Complete(())) => assert_eq!(left, 0, "complete end with bytes left"),
        Ok(Status::Partial) => {
            assert!(left > 0, "partial end with no bytes left");
            assert_eq!(fed_buffered, left, "partial frame not fully buffered");
        }
        Err(_) => assert!(left > 0, "an error with no bytes left to blame"),
    }
    (frames, end)
}

/// Feeds `stream` to one decoder in reads of the `plan` sizes (repeated),
/// checking the decoder's own contract at every step. Returns the frames, the
/// end, and the bytes the decoder holds at the end.
///
/// # Panics
/// When the decoder breaks its contract.
pub fn decode_chunked(stream: &[u8], plan: &[usize]) -> (Vec<Frame>, End, usize) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = plan.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (mut read, tail) = rest.split_at(size);
        rest = tail;
        loop {
            let result = decoder.feed(&mut read);
            let buffered = decoder.buffered();
            assert!(buffered <= MAX_BUFFERED, "decoder holds {buffered} bytes");
            match result {
                Ok(Status::Complete(frame)) => {
                    frames.push(frame);
                    if read.is_empty() {
                        break;
                    }
                }
                Ok(Status::Partial) => {
                    assert!(read.is_empty(), "Partial left {} bytes unread", read.len());
                    // Feeding nothing changes nothing.
                    assert_eq!(decoder.feed(&mut &[][..]), Ok(Status::Partial));
                    assert_eq!(decoder.buffered(), buffered);
                    break;
                }
                Err(e) => {
                    // The first error sticks, whatever comes next.
                    let mut more: &[u8] = b"CS\x01\x03\0\0\0\0\0\0\0\0";
                    assert_eq!(decoder.feed(&mut more), Err(e), "error did not stick");
                    return (frames, Err(e), buffered);
                }
            }
        }
    }
    let end = if decoder.is_idle() {
        Status::Complete(())
    } else {
        Status::Partial
    };
    (frames, Ok(end), decoder.buffered())
}

/// Feeds `stream` to one decoder through [`FrameFill`]s, as the server's
/// TLS reads do (one frame per fill at most, the rest of the read kept for
/// the next; told how many bytes arrived ahead), in reads of the `plan`
/// sizes (repeated). Returns the frames and the end.
///
/// # Panics
/// When a fill takes bytes past its frame, leaves bytes of a partial
/// frame untaken, or the decoder holds more than [`MAX_BUFFERED`].
pub fn decode_filled(stream: &[u8], plan: &[usize]) -> (Vec<Frame>, End) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = plan.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (mut read, tail) = rest.split_at(size);
        rest = tail;
        // Bounded: each turn takes a byte, ends a frame or fails.
        for _ in 0..=2 * size + 1 {
            let mut fill = FrameFill::new(&mut decoder, size);
            fill.arriving(read.len() + rest.len().min(size));
            let taken = fill.append(read);
            assert!(taken <= read.len(), "a fill took more than it was given");
            read = &read[taken..];
            let done = fill.take();
            let buffered = decoder.buffered();
            assert!(buffered <= MAX_BUFFERED, "decoder holds {buffered} bytes");
            match done {
                Some(Ok(frame)) => frames.push(frame),
                Some(Err(e)) => return (frames, Err(e)),
                None => assert!(read.is_empty(), "a partial frame left {} bytes", read.len()),
            }
            if read.is_empty() {
                break;
            }
        }
        assert!(read.is_empty(), "a read was not used up");
    }
    let end = if decoder.is_idle() {
        Status::Complete(())
    } else {
        Status::Partial
    };
    (frames, Ok(end))
}

/// Reads values from fuzz bytes; once they run out every value is zero, so
/// any input builds something.
pub struct ByteSource<'a> {
    rest: &'a [u8],
}

impl<'a> ByteSource<'a> {
    /// A source over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteSource { rest: data }
    }

    /// True when every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Up to `n` bytes (fewer when the input runs out).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// A fixed-size array, zero-padded.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let src = self.bytes(N);
        out[..src.len()].copy_from_slice(src);
        out
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// A string of up to `max` bytes of source, made valid UTF-8 lossily.
    pub fn text(&mut self, max: usize) -> String {
        let len = usize::from(self.u16()) % (max + 1);
        String::from_utf8_lossy(self.bytes(len)).into_owned()
    }

    /// A path: mostly from a small alphabet (so `.`, `..` and unicode come up
    /// often), sometimes raw text. `None` when it breaks a path rule.
    pub fn path(&mut self) -> Option<WirePath> {
        const ALPHABET: [char; 12] = ['a', 'Z', '0', '.', '-', ' ', '_', 'é', '📁', '~', '(', ')'];
        let selector = self.u8();
        if selector & 0x80 != 0 {
            return WirePath::new(&self.text(300)).ok();
        }
        let depth = 1 + usize::from(selector % 4);
        let mut parts = Vec::with_capacity(depth);
        for _ in 0..depth {
            let len = 1 + usize::from(self.u8() % 12);
            let part: String = self
                .bytes(len)
                .iter()
                .map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()])
                .collect();
            parts.push(part);
        }
        WirePath::new(&parts.join("/")).ok()
    }

    /// One of the four Hello modes (§4.1), for Hello and KeyHello alike.
    fn hello_mode(&mut self) -> HelloMode {
        [
            HelloMode::NewUser,
            HelloMode::NewClient,
            HelloMode::Resume,
            HelloMode::Visit,
        ][usize::from(self.u8() % 4)]
    }

    /// A message of any kind, with valid fields; `None` when a path drawn
    /// for it breaks a path rule.
    pub fn message(&mut self) -> Option<Message> {
        Some(match self.u8() % 46 {
            0 => Message::Hello(Hello {
                mode: self.hello_mode(),
                user_id: UserId(self.array()),
                client_id: self.u64(),
            }),
            1 => Message::Welcome(Welcome {
                user_id: UserId(self.array()),
                client_id: self.u64(),
                head: self.u64(),
            }),
            2 => Message::Ping,
            3 => Message::Pong,
            4 => Message::Error(ErrorReport {
                code: ErrorCode::from_wire(u16::from_be_bytes([self.u8(), self.u8()])),
                message: self.text(MAX_MESSAGE_BYTES + 200),
            }),
            5 => Message::Pull { cursor: self.u64() },
            6 => Message::ChangeBatch(self.batch(false)?),
            7 => Message::Ack { cursor: self.u64() },
            8 => Message::Notify { head: self.u64() },
            9 => Message::Fetch(Fetch {
                version: self.u64(),
                path: self.path()?,
            }),
            10 => Message::FileBegin(FileBegin {
                version: self.u64(),
                size: self.u64(),
                hash: ContentHash(self.array()),
                path: self.path()?,
            }),
            11 => {
                let len = usize::from(self.u16()) % 4096;
                Message::FileChunk(self.bytes(len).to_vec())
            }
            12 => Message::FileEnd,
            13 => Message::MakeDir { path: self.path()? },
            14 => Message::Delete(Delete {
                base_version: self.u64(),
                path: self.path()?,
            }),
            15 => Message::RemoveDir(RemoveDir {
                cursor: self.u64(),
                path: self.path()?,
            }),
            16 => Message::Rename(Rename {
                base_version: self.u64(),
                from: self.path()?,
                to: self.path()?,
            }),
            18 => Message::FetchManifest(FetchManifest {
                version: self.u64(),
                path: self.path()?,
            }),
            19 => Message::FetchChunks(self.ranges()),
            20 => Message::ChunksNeeded(self.ranges()),
            21 => Message::FileManifest(FileManifest {
                version: self.u64(),
                size: self.u64(),
                hash: ContentHash(self.array()),
                chunk_count: self.u32(),
                path: self.path()?,
            }),
            22 => {
                let n = 1 + usize::from(self.u8() % 8);
                let entries = (0..n)
                    .map(|_| ChunkEntry {
                        len: self.u32(),
                        id: ContentHash(self.array()),
                    })
                    .collect();
                Message::ChunkList(entries)
            }
            23 => {
                let len = 1 + usize::from(self.u16()) % 4096;
                Message::ChunkData(ChunkData {
                    index: self.u32(),
                    data: self.bytes(len).to_vec(),
                })
            }
            24 => Message::PullModes { cursor: self.u64() },
            25 => Message::ModeBatch(self.batch(true)?),
            26 => Message::SetMode(SetMode {
                base_version: self.u64(),
                executable: self.u8() & 1 != 0,
                path: self.path()?,
            }),
            27 => Message::ListVersions(ListVersions {
                after_seq: self.u64(),
                after: if self.u8() & 1 == 0 {
                    None
                } else {
                    Some(self.path()?)
                },
                under: if self.u8() & 1 == 0 {
                    None
                } else {
                    Some(self.path()?)
                },
            }),
            28 => {
                let more = self.u8() & 1 != 0;
                let n = usize::from(self.u8() % 4);
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(self.kept()?);
                }
                Message::VersionList(VersionList { more, entries })
            }
            29 => Message::Restore(Restore {
                seq: self.u64(),
                path: self.path()?,
            }),
            30 => Message::KeyHello(KeyHello {
                mode: self.hello_mode(),
                user_id: UserId(self.array()),
                client_id: self.u64(),
                secret: Secret(self.array()),
                name: device_name(&self.text(MAX_DEVICE_NAME_BYTES)).to_owned(),
            }),
            31 => Message::KeyWelcome(KeyWelcome {
                user_id: UserId(self.array()),
                client_id: self.u64(),
                head: self.u64(),
                device_key: Secret(self.array()),
            }),
            32 => Message::RestoreAt(RestoreAt {
                time_ms: self.u64(),
                path: self.path()?,
            }),
            33 => Message::FetchShortManifest(FetchManifest {
                version: self.u64(),
                path: self.path()?,
            }),
            34 => {
                let n = 1 + usize::from(self.u8() % 8);
                let entries = (0..n)
                    .map(|_| ShortChunkEntry {
                        // A u24 on the wire (§13.6).
                        len: self.u32() >> 8,
                        id: self.array(),
                    })
                    .collect();
                Message::ShortChunkList(entries)
            }
            35 => Message::FetchManifestSince(FetchManifestSince {
                version: self.u64(),
                base_hash: ContentHash(self.array()),
                path: self.path()?,
            }),
            36 => {
                // Runs that increase without overlap, and new entries (§13.7).
                let n = 1 + usize::from(self.u8() % 8);
                let mut floor = 0u32;
                let mut ops = Vec::new();
                for _ in 0..n {
                    if self.u8().is_multiple_of(2) {
                        let first = floor.saturating_add(u32::from(self.u8()));
                        let count = 1 + u32::from(self.u16());
                        if u64::from(first) + u64::from(count) > u64::from(u32::MAX) {
                            break;
                        }
                        floor = first + count;
                        ops.push(ListOp::Copy { first, count });
                    } else {
                        ops.push(ListOp::New(ShortChunkEntry {
                            len: self.u32() >> 8,
                            id: self.array(),
                        }));
                    }
                }
                if ops.is_empty() {
                    return None;
                }
                Message::ChunkListDelta(ChunkListDelta {
                    base_hash: ContentHash(self.array()),
                    ops,
                })
            }
            37 => Message::ListBaseUnknown,
            38 => Message::StreamBegin(StreamBegin {
                version: self.u64(),
                size: self.u64(),
                path: self.path()?,
            }),
            39 => Message::StreamEnd(match self.u8() & 1 {
                0 => StreamEnd::Sealed(ContentHash(self.array())),
                _ => StreamEnd::Abandoned,
            }),
            40 => {
                // Distinct paths, at least one (R-5.3.4).
                let n = 1 + usize::from(self.u8() % 4);
                let mut held: Vec<WirePath> = Vec::new();
                for _ in 0..n {
                    let path = self.path()?;
                    if !held.contains(&path) {
                        held.push(path);
                    }
                }
                Message::PartialAck(PartialAck {
                    cursor: self.u64(),
                    held,
                })
            }
            41 => Message::PullChecked(PullChecked {
                cursor: self.u64(),
                check_seq: self.u64(),
                check_tag: self.u64(),
            }),
            42 => {
                let head = self.u64();
                Message::History(History {
                    head,
                    head_tag: self.u64(),
                    common: self.u64().min(head),
                    diverged: self.u8() & 1 == 1,
                })
            }
            43 => Message::ListLost,
            44 => {
                // Distinct paths, at most a few (R-10.8).
                let n = usize::from(self.u8() % 4);
                let mut entries: Vec<LostEntry> = Vec::new();
                for _ in 0..n {
                    let entry = LostEntry {
                        version: self.u64(),
                        size: self.u64(),
                        hash: ContentHash(self.array()),
                        path: self.path()?,
                    };
                    if !entries.iter().any(|e| e.path == entry.path) {
                        entries.push(entry);
                    }
                }
                Message::LostList(LostList {
                    more: self.u8() & 1 == 1,
                    entries,
                })
            }
            _ => Message::PushAck(PushAck {
                status: [
                    PushStatus::Applied,
                    PushStatus::Conflict,
                    PushStatus::Stale,
                    PushStatus::Unchanged,
                ][usize::from(self.u8() % 4)],
                version: self.u64(),
                path: self.path()?,
            }),
        })
    }

    /// A kept version (§14) with valid fields.
    pub fn kept(&mut self) -> Option<KeptVersion> {
        let seq = self.u64();
        let since = self.u64();
        let time_ms = self.u64();
        let cause =
            [Cause::Overwritten, Cause::Deleted, Cause::RenamedAway][usize::from(self.u8() % 3)];
        let kind = if self.u8() & 1 == 0 {
            KeptKind::Dir
        } else {
            KeptKind::File {
                size: self.u64(),
                hash: ContentHash(self.array()),
                mtime_ns: self.u64() as i64,
                executable: self.u8() & 1 != 0,
            }
        };
        Some(KeptVersion {
            seq,
            since,
            time_ms,
            cause,
            kind,
            path: self.path()?,
        })
    }

    /// Increasing, non-overlapping, non-empty chunk ranges (what the codec
    /// accepts), up to 8 of them.
    pub fn ranges(&mut self) -> ChunkRanges {
        let last = self.u8() & 1 != 0;
        let n = usize::from(self.u8() % 9);
        let mut floor = 0u64;
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let first = floor + u64::from(self.u16());
            let count = 1 + u64::from(self.u16());
            if first + count > u64::from(u32::MAX) {
                break;
            }
            ranges.push(ChunkRange {
                first: first as u32,
                count: count as u32,
            });
            floor = first + count;
        }
        ChunkRanges { last, ranges }
    }

    /// A batch; with `modes` (a ModeBatch, §15.2) files may be executable.
    fn batch(&mut self, modes: bool) -> Option<ChangeBatch> {
        let head = self.u64();
        let flags = self.u8();
        let count = usize::from(self.u8() % 8);
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let state = match self.u8() % 3 {
                0 => EntryState::File {
                    size: self.u64(),
                    hash: ContentHash(self.array()),
                },
                1 => EntryState::Dir,
                _ => EntryState::Deleted,
            };
            let executable =
                modes && matches!(state, EntryState::File { .. }) && self.u8() & 1 != 0;
            entries.push(ChangeEntry {
                path: self.path()?,
                version: self.u64(),
                state,
                executable,
            });
        }
        Some(ChangeBatch {
            head,
            full: flags & 1 != 0,
            last: flags & 2 != 0,
            entries,
        })
    }
}

/// What a frame is expected to look like after encode → decode: error texts
/// are cut to `MAX_MESSAGE_BYTES` at a character boundary; nothing else changes.
pub fn after_round_trip(frame: &Frame) -> Frame {
    let mut out = frame.clone();
    if let Message::Error(report) = &mut out.message {
        let mut end = report.message.len().min(MAX_MESSAGE_BYTES);
        while !report.message.is_char_boundary(end) {
            end -= 1;
        }
        report.message.truncate(end);
    }
    out
}

/// The `roundtrip` property: up to 8 frames built from `data`, encoded back
/// to back, decode (whole, one byte at a time, and in 7-byte reads) to the
/// same frames, ending cleanly.
///
/// # Panics
/// When a property does not hold.
pub fn check_roundtrip(data: &[u8]) {
    let mut src = ByteSource::new(data);
    let mut frames = Vec::new();
    while !src.is_empty() && frames.len() < 8 {
        let request_id = src.u32();
        if let Some(message) = src.message() {
            frames.push(Frame::new(request_id, message));
        }
    }
    let mut stream = Vec::new();
    for frame in &frames {
        frame.encode(&mut stream);
    }
    let expected: Vec<Frame> = frames.iter().map(after_round_trip).collect();
    for plan in [&[usize::MAX][..], &[1], &[7]] {
        let (decoded, end) = check_stream(&stream, plan);
        assert_eq!(decoded, expected, "round trip changed the frames");
        assert_eq!(
            end,
            Ok(Status::Complete(())),
            "round trip did not end cleanly"
        );
    }
}
