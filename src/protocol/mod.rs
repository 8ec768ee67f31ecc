//! The wire protocol (protocol-spec/PROTOCOL.md): frames, their codec, the
//! incremental decoder and the path rules shared by server and client.

pub mod conflict;
pub mod credential;
pub mod decoder;
pub mod delta;
pub mod error;
pub mod history;
pub mod ids;
pub mod limits;
pub mod list_delta;
pub mod lost;
pub mod message;
pub mod partial_ack;
pub mod path;
pub mod push;
pub mod session;
pub mod sync;
pub mod transfer;
pub mod versions;
pub mod wire;

pub use conflict::conflict_path;
pub use credential::{KeyHello, KeyWelcome, Secret};
pub use decoder::{decode_all, FrameDecoder, FrameFill, Status};
pub use delta::{ChunkData, ChunkRange, ChunkRanges, FetchManifest, FileManifest, ShortChunkEntry};
pub use error::{FrameError, PathError};
pub use history::{History, PullChecked};
pub use ids::{ClientId, ContentHash, UserId};
pub use list_delta::{ChunkListDelta, FetchManifestSince, ListOp};
pub use lost::{LostEntry, LostList};
pub use message::{Frame, Kind, Message};
pub use partial_ack::PartialAck;
pub use path::WirePath;
pub use push::{Delete, PushAck, PushStatus, RemoveDir, Rename, SetMode};
pub use session::{ErrorCode, ErrorReport, Hello, HelloMode, Welcome};
pub use sync::{ChangeBatch, ChangeEntry, EntryState, Fetch};
pub use transfer::{FileBegin, StreamBegin, StreamEnd};
pub use versions::{Cause, KeptKind, KeptVersion, ListVersions, Restore, RestoreAt, VersionList};
