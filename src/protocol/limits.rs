//! Every number the protocol fixes (PROTOCOL.md §8), in one place.

/// First two bytes of every frame: ASCII `CS`.
pub const MAGIC: [u8; 2] = *b"CS";
/// The protocol version this implementation speaks (header byte 2).
pub const PROTOCOL_VERSION: u8 = 1;
/// The version that adds delta transfer (PROTOCOL.md §13): the header byte
/// of the delta kinds, and of a Hello/Welcome that offers/accepts them.
pub const DELTA_PROTOCOL_VERSION: u8 = 2;
/// The version that adds the executable bit (PROTOCOL.md §15): the header
/// byte of `PullModes`, `ModeBatch` and `SetMode`.
pub const MODE_PROTOCOL_VERSION: u8 = 3;
/// Protocol version 4: the header byte of the kinds version 4 adds, among
/// them `FetchShortManifest` and `ShortChunkList` (16-byte chunk IDs,
/// PROTOCOL.md §13.6).
pub const V4_PROTOCOL_VERSION: u8 = 4;
/// Protocol version 5: the header byte of the kinds version 5 adds, among
/// them `FetchManifestSince`, `ChunkListDelta` and `ListBaseUnknown`
/// (chunk lists relative to a base version's list, PROTOCOL.md §13.7).
pub const V5_PROTOCOL_VERSION: u8 = 5;
/// Protocol version 6: the header byte of `StreamBegin` and `StreamEnd`
/// (an upload whose whole-file hash follows its bytes, PROTOCOL.md §13.8).
pub const V6_PROTOCOL_VERSION: u8 = 6;
/// Protocol version 7: the header byte of `PartialAck` (an Ack that names
/// the paths the client left to its push, PROTOCOL.md §5.3, R-5.3.4).
pub const V7_PROTOCOL_VERSION: u8 = 7;
/// Protocol version 8: the header byte of `PullChecked` and `History` (a
/// pull that names the change the client last saw, so a server restored
/// from an older backup is found out, PROTOCOL.md §5.8).
pub const V8_PROTOCOL_VERSION: u8 = 8;
/// Protocol version 9: the header byte of `ListLost` and `LostList` (the
/// files whose server copy is lost, so a device holding them uploads them
/// again, PROTOCOL.md §10.2).
pub const V9_PROTOCOL_VERSION: u8 = 9;
/// Most paths one `PartialAck` names. A client that left more to
/// its push sends no Ack for that reply.
pub const MAX_HELD_PATHS: usize = 1024;
/// Bit 0 of a `mode` field (§15): the file is executable. The other bits
/// are reserved and must be 0.
pub const MODE_EXECUTABLE: u8 = 0x01;
/// Bytes in the fixed frame header.
pub const HEADER_LEN: usize = 12;
/// Largest payload a frame may declare: 1 MiB. Larger files travel as chunks.
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// Largest payload the first frame of a connection may declare, before
/// the server knows who is speaking: the largest `KeyHello` (61 bytes and
/// a 64-byte name); a `Hello` is 28. A larger header before the Hello is
/// FrameTooLong at once, so an unidentified peer never makes the server
/// hold more than this (PROTOCOL.md ).
pub const MAX_FIRST_PAYLOAD: u32 = 61 + MAX_DEVICE_NAME_BYTES as u32;
/// Largest data field of one `FileChunk`: the whole payload.
pub const MAX_CHUNK: usize = MAX_PAYLOAD as usize;
/// Chunk size senders use for file data: 256 KiB.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Largest path, in UTF-8 bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Largest path component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Most components in one path.
pub const MAX_PATH_DEPTH: usize = 64;
/// Largest error message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Most entries in one `ChangeBatch` frame.
pub const MAX_BATCH_ENTRIES: usize = 4096;
/// Seconds a connection may take to send its `Hello`.
pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Seconds a ready connection may stay idle (no frame received, no queued
/// byte written: PROTOCOL.md §8, R-8.2) before the server closes it.
pub const IDLE_TIMEOUT_SECS: u64 = 300;
/// Name of the client's state folder at the root of a synced folder; never synced.
pub const STATE_DIR_NAME: &str = ".cloudservice";
/// Byte offset of the user ID in a connection's first frame (the `Hello`), for routing.
pub const ROUTING_OFFSET: usize = 16;
/// Largest device name in a `KeyHello`, in UTF-8 bytes (PROTOCOL.md §4.6).
pub const MAX_DEVICE_NAME_BYTES: usize = 64;
/// Bytes of a device key or a join code (PROTOCOL.md §4.6): 256 bits.
pub const SECRET_BYTES: usize = 32;
/// Most delta downloads one connection may have open at once, from
/// `FetchManifest` to the `FileEnd` after its last `FetchChunks`
/// (PROTOCOL.md §13.4, R-13.4.4): a client waits for one to end before it
/// opens another.
pub const MAX_OPEN_DELTA_DOWNLOADS: usize = 4;
