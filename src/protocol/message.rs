//! The message enum, kind codes, and whole-frame encoding (header + payload).

use super::credential::{KeyHello, KeyWelcome};
use super::delta::{
    decode_chunk_list, decode_short_chunk_list, encode_chunk_list, encode_short_chunk_list,
    ChunkData, ChunkRanges, FetchManifest, FileManifest, ShortChunkEntry,
};
use super::error::FrameError;
use super::history::{History, PullChecked};
use super::limits::{
    DELTA_PROTOCOL_VERSION, HEADER_LEN, MAGIC, MAX_PAYLOAD, MODE_PROTOCOL_VERSION,
    PROTOCOL_VERSION, V4_PROTOCOL_VERSION, V5_PROTOCOL_VERSION, V6_PROTOCOL_VERSION,
    V7_PROTOCOL_VERSION, V8_PROTOCOL_VERSION, V9_PROTOCOL_VERSION,
};
use super::list_delta::{ChunkListDelta, FetchManifestSince};
use super::lost::LostList;
use super::partial_ack::PartialAck;
use super::path::WirePath;
use super::push::{Delete, PushAck, RemoveDir, Rename, SetMode};
use super::session::{ErrorReport, Hello, Welcome};
use super::sync::{ChangeBatch, Fetch};
use super::transfer::{FileBegin, StreamBegin, StreamEnd};
use super::versions::{ListVersions, Restore, RestoreAt, VersionList};
use super::wire::{put_path, put_u32, put_u64, FieldReader};
use crate::chunk::ChunkEntry;

/// Every message kind and its byte on the wire (PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client's first frame.
    Hello = 0x01,
    /// Server's answer to `Hello`.
    Welcome = 0x02,
    /// Keep-alive request (either side).
    Ping = 0x03,
    /// Keep-alive answer.
    Pong = 0x04,
    /// Error report.
    Error = 0x05,
    /// Client's first frame, with a device key or join code (§4.6).
    KeyHello = 0x06,
    /// Server's answer to `KeyHello`, with the device's key (§4.6).
    KeyWelcome = 0x07,
    /// Ask for changes after a cursor.
    Pull = 0x10,
    /// One frame of a pull reply.
    ChangeBatch = 0x11,
    /// The client applied everything up to a cursor.
    Ack = 0x12,
    /// Version 7: the client applied a pull reply up to a cursor but for
    /// the paths it names (§5.3).
    PartialAck = 0x1B,
    /// Version 8: a pull naming the change the client last saw (§5.8).
    PullChecked = 0x1C,
    /// Version 8: the first frame of the reply to `PullChecked` (§5.8).
    History = 0x1D,
    /// Version 9: which files has the server lost (§10.2)?
    ListLost = 0x1E,
    /// Version 9: the answer to `ListLost` (§10.2).
    LostList = 0x1F,
    /// Server: changes are waiting.
    Notify = 0x13,
    /// Ask for a file's content.
    Fetch = 0x14,
    /// Opens a file transfer.
    FileBegin = 0x20,
    /// File bytes.
    FileChunk = 0x21,
    /// Closes a file transfer.
    FileEnd = 0x22,
    /// Push: make a directory.
    MakeDir = 0x30,
    /// Push: delete a file.
    Delete = 0x31,
    /// Push: delete a directory tree.
    RemoveDir = 0x32,
    /// Push: move a file or directory.
    Rename = 0x33,
    /// Server's answer to a push.
    PushAck = 0x34,
    /// Version 2: ask for a file's chunk list (delta download).
    FetchManifest = 0x15,
    /// Version 2: the chunk indexes a downloading client needs.
    FetchChunks = 0x16,
    /// Version 2: opens a delta transfer with the file's size, hash and chunk count.
    FileManifest = 0x23,
    /// Version 2: entries of the open transfer's chunk list.
    ChunkList = 0x24,
    /// Version 2: the chunk indexes the server lacks for an upload.
    ChunksNeeded = 0x25,
    /// Version 2: one chunk's bytes.
    ChunkData = 0x26,
    /// Version 4: ask for a file's chunk list with 16-byte IDs (§13.6).
    FetchShortManifest = 0x17,
    /// Version 4: entries of the open transfer's chunk list, 16-byte IDs (§13.6).
    ShortChunkList = 0x27,
    /// Version 5: ask for a file's chunk list relative to the content the
    /// client holds (§13.7).
    FetchManifestSince = 0x1A,
    /// Version 5: a whole chunk list as runs of a base list plus new
    /// entries (§13.7).
    ChunkListDelta = 0x28,
    /// Version 5: the server does not hold the base list a `ChunkListDelta`
    /// names; the client sends the whole list (§13.7).
    ListBaseUnknown = 0x29,
    /// Version 6: opens an upload whose hash follows its bytes (§13.8).
    StreamBegin = 0x2A,
    /// Version 6: closes it with the hash, or abandons it (§13.8).
    StreamEnd = 0x2B,
    /// Client → server: a pull whose reply carries each file's mode (§15).
    PullModes = 0x18,
    /// Server → client: a batch of the reply to `PullModes` (§15).
    ModeBatch = 0x19,
    /// Client → server: set a file's executable bit (a push, §15).
    SetMode = 0x35,
    /// Ask for kept versions (§14).
    ListVersions = 0x40,
    /// A page of kept versions (§14).
    VersionList = 0x41,
    /// Restore a kept version as a new change (§14).
    Restore = 0x42,
    /// Restore a path as it was at a moment, as new changes (§14).
    RestoreAt = 0x43,
}

impl Kind {
    /// The kind for a byte.
    ///
    /// # Errors
    /// [`FrameError::UnknownKind`] for a byte the spec does not define.
    pub fn from_byte(byte: u8) -> Result<Kind, FrameError> {
        Ok(match byte {
            0x01 => Kind::Hello,
            0x02 => Kind::Welcome,
            0x03 => Kind::Ping,
            0x04 => Kind::Pong,
            0x05 => Kind::Error,
            0x06 => Kind::KeyHello,
            0x07 => Kind::KeyWelcome,
            0x10 => Kind::Pull,
            0x11 => Kind::ChangeBatch,
            0x12 => Kind::Ack,
            0x1B => Kind::PartialAck,
            0x1C => Kind::PullChecked,
            0x1D => Kind::History,
            0x1E => Kind::ListLost,
            0x1F => Kind::LostList,
            0x13 => Kind::Notify,
            0x14 => Kind::Fetch,
            0x20 => Kind::FileBegin,
            0x21 => Kind::FileChunk,
            0x22 => Kind::FileEnd,
            0x30 => Kind::MakeDir,
            0x31 => Kind::Delete,
            0x32 => Kind::RemoveDir,
            0x33 => Kind::Rename,
            0x34 => Kind::PushAck,
            0x15 => Kind::FetchManifest,
            0x16 => Kind::FetchChunks,
            0x23 => Kind::FileManifest,
            0x24 => Kind::ChunkList,
            0x25 => Kind::ChunksNeeded,
            0x26 => Kind::ChunkData,
            0x17 => Kind::FetchShortManifest,
            0x27 => Kind::ShortChunkList,
            0x1A => Kind::FetchManifestSince,
            0x28 => Kind::ChunkListDelta,
            0x29 => Kind::ListBaseUnknown,
            0x2A => Kind::StreamBegin,
            0x2B => Kind::StreamEnd,
            0x18 => Kind::PullModes,
            0x19 => Kind::ModeBatch,
            0x35 => Kind::SetMode,
            0x40 => Kind::ListVersions,
            0x41 => Kind::VersionList,
            0x42 => Kind::Restore,
            0x43 => Kind::RestoreAt,
            other => return Err(FrameError::UnknownKind(other)),
        })
    }

    /// The header version byte this kind travels under (PROTOCOL.md §13.1,
    /// §13.6, §15.1): 2 for the delta kinds, 3 for the mode kinds, 4 for
    /// the kinds of version 4, 5 for those of version 5, 1 for the rest, so
    /// an older peer refuses a newer frame as UnsupportedVersion and every
    /// other frame is unchanged.
    pub fn version(self) -> u8 {
        if self.is_v9() {
            V9_PROTOCOL_VERSION
        } else if self.is_v8() {
            V8_PROTOCOL_VERSION
        } else if self.is_v7() {
            V7_PROTOCOL_VERSION
        } else if self.is_v6() {
            V6_PROTOCOL_VERSION
        } else if self.is_v5() {
            V5_PROTOCOL_VERSION
        } else if self.is_v4() {
            V4_PROTOCOL_VERSION
        } else if self.is_delta() {
            DELTA_PROTOCOL_VERSION
        } else if self.is_mode() {
            MODE_PROTOCOL_VERSION
        } else {
            PROTOCOL_VERSION
        }
    }

    /// Whether the kind exists only in version 9 (the files whose server
    /// copy is lost, §10.2).
    pub fn is_v9(self) -> bool {
        matches!(self, Kind::ListLost | Kind::LostList)
    }

    /// Whether the kind exists only in version 8 (the pull that names the
    /// change the client last saw, and its reply's first frame, §5.8).
    pub fn is_v8(self) -> bool {
        matches!(self, Kind::PullChecked | Kind::History)
    }

    /// Whether the kind exists only in version 7 (the Ack that names the
    /// paths left to the push, §5.3).
    pub fn is_v7(self) -> bool {
        matches!(self, Kind::PartialAck)
    }

    /// Whether the kind exists only in version 6 (the whole-file hash after
    /// the data, §13.8).
    pub fn is_v6(self) -> bool {
        matches!(self, Kind::StreamBegin | Kind::StreamEnd)
    }

    /// Whether the kind exists only in version 5 (chunk lists relative to a
    /// base list, §13.7).
    pub fn is_v5(self) -> bool {
        matches!(
            self,
            Kind::FetchManifestSince | Kind::ChunkListDelta | Kind::ListBaseUnknown
        )
    }

    /// Whether the kind exists only in version 4 (16-byte chunk IDs, §13.6).
    pub fn is_v4(self) -> bool {
        matches!(self, Kind::FetchShortManifest | Kind::ShortChunkList)
    }

    /// Whether the kind exists only in version 3 (the executable bit, §15).
    pub fn is_mode(self) -> bool {
        matches!(self, Kind::PullModes | Kind::ModeBatch | Kind::SetMode)
    }

    /// Whether the kind exists only in version 2 (delta transfer).
    pub fn is_delta(self) -> bool {
        matches!(
            self,
            Kind::FetchManifest
                | Kind::FetchChunks
                | Kind::FileManifest
                | Kind::ChunkList
                | Kind::ChunksNeeded
                | Kind::ChunkData
        )
    }

    /// Whether a header with version byte `version` may carry this kind:
    /// each kind has exactly one encoding ([`Kind::version`]).
    pub fn allowed_under(self, version: u8) -> bool {
        version == self.version()
    }
}

/// A decoded message, without its request ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// Keep-alive; answered by `Pong` with the same request ID.
    Ping,
    /// Keep-alive answer.
    Pong,
    /// See [`ErrorReport`].
    Error(ErrorReport),
    /// See [`KeyHello`].
    KeyHello(KeyHello),
    /// See [`KeyWelcome`].
    KeyWelcome(KeyWelcome),
    /// Changes after `cursor`, please. `payload: cursor u64`.
    Pull {
        /// The newest sequence number the client has applied (0: nothing yet).
        cursor: u64,
    },
    /// See [`ChangeBatch`].
    ChangeBatch(ChangeBatch),
    /// The client applied a pull reply up to `cursor`. `payload: cursor u64`.
    Ack {
        /// The `head` of the applied reply.
        cursor: u64,
    },
    /// See [`PartialAck`] (version 7).
    PartialAck(PartialAck),
    /// See [`PullChecked`] (version 8).
    PullChecked(PullChecked),
    /// See [`History`] (version 8).
    History(History),
    /// Version 9, client → server: which files has the server lost
    /// (§10.2)? No payload; answered by one `LostList`.
    ListLost,
    /// See [`LostList`] (version 9).
    LostList(LostList),
    /// Server → client: the user's journal reached `head`. `payload: head u64`.
    Notify {
        /// Newest sequence number on the server.
        head: u64,
    },
    /// See [`Fetch`].
    Fetch(Fetch),
    /// See [`FileBegin`].
    FileBegin(FileBegin),
    /// Bytes of the open transfer. `payload: data` (all of it).
    FileChunk(Vec<u8>),
    /// Closes the open transfer. Empty payload.
    FileEnd,
    /// Make a directory (and missing parents). `payload: path_len u16 | path`.
    MakeDir {
        /// The directory.
        path: WirePath,
    },
    /// See [`Delete`].
    Delete(Delete),
    /// See [`RemoveDir`].
    RemoveDir(RemoveDir),
    /// See [`Rename`].
    Rename(Rename),
    /// See [`PushAck`].
    PushAck(PushAck),
    /// See [`FetchManifest`].
    FetchManifest(FetchManifest),
    /// See [`ChunkRanges`]: the chunks a downloading client needs.
    FetchChunks(ChunkRanges),
    /// See [`FileManifest`].
    FileManifest(FileManifest),
    /// Entries of the open delta transfer's chunk list, in order:
    /// `payload: (len u32 | id [32]) × n`, 1 ≤ n ≤ 29127.
    ChunkList(Vec<ChunkEntry>),
    /// See [`ChunkRanges`]: the chunks the server lacks for an upload.
    ChunksNeeded(ChunkRanges),
    /// A delta download asking for the list with 16-byte IDs (§13.6);
    /// same fields as [`FetchManifest`].
    FetchShortManifest(FetchManifest),
    /// Entries of the open delta transfer's chunk list with 16-byte IDs
    /// (§13.6): `payload: (len u24 | id [16]) × n`, 1 ≤ n ≤ 55188.
    ShortChunkList(Vec<ShortChunkEntry>),
    /// See [`FetchManifestSince`].
    FetchManifestSince(FetchManifestSince),
    /// See [`ChunkListDelta`].
    ChunkListDelta(ChunkListDelta),
    /// Server → client: the base list a `ChunkListDelta` (R) names is not
    /// held; send the whole list (§13.7). Empty payload.
    ListBaseUnknown,
    /// See [`StreamBegin`].
    StreamBegin(StreamBegin),
    /// See [`StreamEnd`].
    StreamEnd(StreamEnd),
    /// See [`ChunkData`].
    ChunkData(ChunkData),
    /// Changes after `cursor`, with each file's mode (§15). `payload: cursor u64`.
    PullModes {
        /// The newest sequence number the client has applied (0: nothing yet).
        cursor: u64,
    },
    /// A batch of the reply to `PullModes`: a [`ChangeBatch`] whose
    /// entries carry their mode byte (§15.2).
    ModeBatch(ChangeBatch),
    /// See [`SetMode`].
    SetMode(SetMode),
    /// See [`ListVersions`].
    ListVersions(ListVersions),
    /// See [`VersionList`].
    VersionList(VersionList),
    /// See [`Restore`].
    Restore(Restore),
    /// See [`RestoreAt`].
    RestoreAt(RestoreAt),
}

/// One frame: a message and the request ID that pairs requests with replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the requester, echoed by every reply frame; 0 for `Notify`.
    pub request_id: u32,
    /// The message.
    pub message: Message,
}

impl Message {
    /// This message's kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Welcome(_) => Kind::Welcome,
            Message::Ping => Kind::Ping,
            Message::Pong => Kind::Pong,
            Message::Error(_) => Kind::Error,
            Message::KeyHello(_) => Kind::KeyHello,
            Message::KeyWelcome(_) => Kind::KeyWelcome,
            Message::Pull { .. } => Kind::Pull,
            Message::ChangeBatch(_) => Kind::ChangeBatch,
            Message::Ack { .. } => Kind::Ack,
            Message::PartialAck(_) => Kind::PartialAck,
            Message::PullChecked(_) => Kind::PullChecked,
            Message::History(_) => Kind::History,
            Message::ListLost => Kind::ListLost,
            Message::LostList(_) => Kind::LostList,
            Message::Notify { .. } => Kind::Notify,
            Message::Fetch(_) => Kind::Fetch,
            Message::FileBegin(_) => Kind::FileBegin,
            Message::FileChunk(_) => Kind::FileChunk,
            Message::FileEnd => Kind::FileEnd,
            Message::MakeDir { .. } => Kind::MakeDir,
            Message::Delete(_) => Kind::Delete,
            Message::RemoveDir(_) => Kind::RemoveDir,
            Message::Rename(_) => Kind::Rename,
            Message::PushAck(_) => Kind::PushAck,
            Message::FetchManifest(_) => Kind::FetchManifest,
            Message::FetchChunks(_) => Kind::FetchChunks,
            Message::FileManifest(_) => Kind::FileManifest,
            Message::ChunkList(_) => Kind::ChunkList,
            Message::ChunksNeeded(_) => Kind::ChunksNeeded,
            Message::FetchShortManifest(_) => Kind::FetchShortManifest,
            Message::ShortChunkList(_) => Kind::ShortChunkList,
            Message::FetchManifestSince(_) => Kind::FetchManifestSince,
            Message::ChunkListDelta(_) => Kind::ChunkListDelta,
            Message::ListBaseUnknown => Kind::ListBaseUnknown,
            Message::StreamBegin(_) => Kind::StreamBegin,
            Message::StreamEnd(_) => Kind::StreamEnd,
            Message::ChunkData(_) => Kind::ChunkData,
            Message::PullModes { .. } => Kind::PullModes,
            Message::ModeBatch(_) => Kind::ModeBatch,
            Message::SetMode(_) => Kind::SetMode,
            Message::ListVersions(_) => Kind::ListVersions,
            Message::VersionList(_) => Kind::VersionList,
            Message::Restore(_) => Kind::Restore,
            Message::RestoreAt(_) => Kind::RestoreAt,
        }
    }

    /// Decodes a payload of the given kind. Takes the payload by value so a
    /// chunk's bytes move into the message without a copy.
    ///
    /// # Errors
    /// A field that is truncated, undefined, over its limit, or a bad path.
    pub fn decode(kind: Kind, payload: Vec<u8>) -> Result<Message, FrameError> {
        match kind {
            Kind::FileChunk => return Ok(Message::FileChunk(payload)),
            Kind::ChunkData => return Ok(Message::ChunkData(ChunkData::decode_owned(payload)?)),
            _ => {}
        }
        let mut r = FieldReader::new(&payload);
        let message = match kind {
            Kind::Hello => Message::Hello(Hello::decode(&mut r)?),
            Kind::Welcome => Message::Welcome(Welcome::decode(&mut r)?),
            Kind::Ping => Message::Ping,
            Kind::Pong => Message::Pong,
            Kind::Error => Message::Error(ErrorReport::decode(&mut r)?),
            Kind::KeyHello => Message::KeyHello(KeyHello::decode(&mut r)?),
            Kind::KeyWelcome => Message::KeyWelcome(KeyWelcome::decode(&mut r)?),
            Kind::Pull => Message::Pull { cursor: r.u64()? },
            Kind::ChangeBatch => Message::ChangeBatch(ChangeBatch::decode(&mut r, false)?),
            Kind::ModeBatch => Message::ModeBatch(ChangeBatch::decode(&mut r, true)?),
            Kind::PullModes => Message::PullModes { cursor: r.u64()? },
            Kind::SetMode => Message::SetMode(SetMode::decode(&mut r)?),
            Kind::Ack => Message::Ack { cursor: r.u64()? },
            Kind::PartialAck => Message::PartialAck(PartialAck::decode(&mut r)?),
            Kind::PullChecked => Message::PullChecked(PullChecked::decode(&mut r)?),
            Kind::History => Message::History(History::decode(&mut r)?),
            Kind::ListLost => Message::ListLost,
            Kind::LostList => Message::LostList(LostList::decode(&mut r)?),
            Kind::Notify => Message::Notify { head: r.u64()? },
            Kind::Fetch => Message::Fetch(Fetch::decode(&mut r)?),
            Kind::FileBegin => Message::FileBegin(FileBegin::decode(&mut r)?),
            Kind::FileEnd => Message::FileEnd,
            Kind::MakeDir => Message::MakeDir { path: r.path()? },
            Kind::Delete => Message::Delete(Delete::decode(&mut r)?),
            Kind::RemoveDir => Message::RemoveDir(RemoveDir::decode(&mut r)?),
            Kind::Rename => Message::Rename(Rename::decode(&mut r)?),
            Kind::PushAck => Message::PushAck(PushAck::decode(&mut r)?),
            Kind::FetchManifest => Message::FetchManifest(FetchManifest::decode(&mut r)?),
            Kind::FetchChunks => Message::FetchChunks(ChunkRanges::decode(&mut r)?),
            Kind::FileManifest => Message::FileManifest(FileManifest::decode(&mut r)?),
            Kind::ChunkList => Message::ChunkList(decode_chunk_list(&mut r)?),
            Kind::ChunksNeeded => Message::ChunksNeeded(ChunkRanges::decode(&mut r)?),
            Kind::FetchShortManifest => Message::FetchShortManifest(FetchManifest::decode(&mut r)?),
            Kind::ShortChunkList => Message::ShortChunkList(decode_short_chunk_list(&mut r)?),
            Kind::FetchManifestSince => {
                Message::FetchManifestSince(FetchManifestSince::decode(&mut r)?)
            }
            Kind::ChunkListDelta => Message::ChunkListDelta(ChunkListDelta::decode(&mut r)?),
            Kind::ListBaseUnknown => Message::ListBaseUnknown,
            Kind::StreamBegin => Message::StreamBegin(StreamBegin::decode(&mut r)?),
            Kind::StreamEnd => Message::StreamEnd(StreamEnd::decode(&mut r)?),
            Kind::ListVersions => Message::ListVersions(ListVersions::decode(&mut r)?),
            Kind::VersionList => Message::VersionList(VersionList::decode(&mut r)?),
            Kind::Restore => Message::Restore(Restore::decode(&mut r)?),
            Kind::RestoreAt => Message::RestoreAt(RestoreAt::decode(&mut r)?),
            Kind::FileChunk | Kind::ChunkData => return Err(FrameError::BadValue),
        };
        r.finish()?;
        Ok(message)
    }

    /// Appends this message's payload bytes to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::Hello(m) => m.encode(out),
            Message::Welcome(m) => m.encode(out),
            Message::Ping
            | Message::Pong
            | Message::FileEnd
            | Message::ListBaseUnknown
            | Message::ListLost => {}
            Message::Error(m) => m.encode(out),
            Message::KeyHello(m) => m.encode(out),
            Message::KeyWelcome(m) => m.encode(out),
            Message::Pull { cursor } | Message::Ack { cursor } | Message::PullModes { cursor } => {
                put_u64(out, *cursor)
            }
            Message::PartialAck(m) => m.encode(out),
            Message::PullChecked(m) => m.encode(out),
            Message::History(m) => m.encode(out),
            Message::LostList(m) => m.encode(out),
            Message::Notify { head } => put_u64(out, *head),
            Message::ChangeBatch(m) => m.encode(out, false),
            Message::ModeBatch(m) => m.encode(out, true),
            Message::SetMode(m) => m.encode(out),
            Message::Fetch(m) => m.encode(out),
            Message::FileBegin(m) => m.encode(out),
            Message::FileChunk(data) => out.extend_from_slice(data),
            Message::MakeDir { path } => put_path(out, path),
            Message::Delete(m) => m.encode(out),
            Message::RemoveDir(m) => m.encode(out),
            Message::Rename(m) => m.encode(out),
            Message::PushAck(m) => m.encode(out),
            Message::FetchManifest(m) | Message::FetchShortManifest(m) => m.encode(out),
            Message::ShortChunkList(entries) => encode_short_chunk_list(entries, out),
            Message::FetchManifestSince(m) => m.encode(out),
            Message::ChunkListDelta(m) => m.encode(out),
            Message::StreamBegin(m) => m.encode(out),
            Message::StreamEnd(m) => m.encode(out),
            Message::FetchChunks(m) | Message::ChunksNeeded(m) => m.encode(out),
            Message::FileManifest(m) => m.encode(out),
            Message::ChunkList(entries) => encode_chunk_list(entries, out),
            Message::ChunkData(m) => m.encode(out),
            Message::ListVersions(m) => m.encode(out),
            Message::VersionList(m) => m.encode(out),
            Message::Restore(m) => m.encode(out),
            Message::RestoreAt(m) => m.encode(out),
        }
    }
}

/// Writes a frame header for a payload of `len` bytes, under the version
/// its kind travels under ([`Kind::version`]).
pub fn put_header(out: &mut Vec<u8>, kind: Kind, request_id: u32, len: u32) {
    out.extend_from_slice(&MAGIC);
    out.push(kind.version());
    out.push(kind as u8);
    put_u32(out, request_id);
    put_u32(out, len);
}

impl Frame {
    /// A frame from its parts.
    pub fn new(request_id: u32, message: Message) -> Frame {
        Frame {
            request_id,
            message,
        }
    }

    /// Appends the whole frame (header and payload) to `out`.
    ///
    /// Messages built by this crate never exceed `MAX_PAYLOAD`: paths, texts
    /// and batches are bounded, and chunk senders cut at `MAX_CHUNK`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        put_header(out, self.message.kind(), self.request_id, 0);
        self.message.encode_payload(out);
        let len = (out.len() - start - HEADER_LEN) as u32;
        debug_assert!(len <= MAX_PAYLOAD);
        out[start + 8..start + 12].copy_from_slice(&len.to_be_bytes());
    }

    /// The whole frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}
