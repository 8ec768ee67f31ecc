//! Which message a client may send when (PROTOCOL.md §9): one pure function,
//! [`judge`], that the reactor (before the handshake, and for kinds only a
//! server sends) and the actor (an open upload) both rely on, so the two
//! threads can never disagree on the rules.
//!
//! ```text
//! stage        Hello      server-only kinds   Pong     FileChunk/FileEnd       anything else
//! AwaitHello   Handshake  Refuse              Refuse   Refuse                  Refuse (ExpectedHello)
//! Attached     Refuse     Refuse (ServerOnly) Ignore   Request                 Request
//! NoUpload     Refuse     Refuse              Ignore   Refuse (…WithoutBegin)  Request
//! Uploading r  Refuse     Refuse              Ignore   Request if its ID is r  Refuse (UploadOpen), Ping allowed
//! ```

use crate::protocol::{ErrorCode, Kind};

/// Where a connection stands, as far as legality goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No `Hello` yet (the reactor).
    AwaitHello,
    /// After `Hello`, as the reactor sees it: whether an upload is open is
    /// the actor's to judge.
    Attached,
    /// At the actor, with no upload open.
    NoUpload,
    /// At the actor, with the upload opened by `FileBegin` `request_id` open.
    Uploading {
        /// The `FileBegin`'s request ID; its chunks and end carry it.
        request_id: u32,
    },
    /// At the actor, with the delta upload opened by `FileManifest`
    /// `request_id` open (PROTOCOL.md §13.3).
    DeltaUploading {
        /// The `FileManifest`'s request ID; its list, chunks and end carry it.
        request_id: u32,
    },
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start the handshake.
    Handshake,
    /// Handle it as a request.
    Request,
    /// Drop it silently (a `Pong`: keep-alive answers need nothing).
    Ignore,
    /// Answer `WrongPhase` and close.
    Refuse(Refusal),
}

/// Why a message is not legal now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Anything but `Hello` before the handshake.
    ExpectedHello(Kind),
    /// A kind only a server sends.
    ServerOnly(Kind),
    /// Anything but the open upload's chunks and end (or a keep-alive).
    UploadOpen,
    /// A `FileChunk` with no upload open.
    ChunkWithoutBegin,
    /// A `FileEnd` with no upload open.
    EndWithoutBegin,
    /// A `ChunkList`, `ShortChunkList`, `ChunkListDelta` or `ChunkData` with no
    /// delta upload open.
    ChunkWithoutManifest,
}

impl Refusal {
    /// The error code sent (always `WrongPhase`, §3.3).
    pub fn code(self) -> ErrorCode {
        ErrorCode::WrongPhase
    }

    /// The text of the Error frame.
    pub fn message(self) -> String {
        match self {
            Refusal::ExpectedHello(kind) => format!("expected Hello, got {kind:?}"),
            Refusal::ServerOnly(kind) => format!("{kind:?} is not allowed from a client here"),
            Refusal::UploadOpen => "only FileChunk/FileEnd of the open upload are allowed".into(),
            Refusal::ChunkWithoutBegin => "FileChunk without FileBegin".into(),
            Refusal::EndWithoutBegin => "FileEnd/StreamEnd without FileBegin/StreamBegin".into(),
            Refusal::ChunkWithoutManifest => "ChunkList/ChunkData without FileManifest".into(),
        }
    }

    /// The text of the connection-log line.
    pub fn log_text(self) -> String {
        match self {
            Refusal::UploadOpen => "message not allowed while a file upload is open".into(),
            other => other.message(),
        }
    }
}

/// Kinds only a server sends.
fn server_only(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Hello
            | Kind::KeyHello
            | Kind::Welcome
            | Kind::KeyWelcome
            | Kind::ChangeBatch
            | Kind::ModeBatch
            | Kind::Notify
            | Kind::Error
            | Kind::PushAck
            | Kind::VersionList
            | Kind::ListBaseUnknown
            | Kind::History
            | Kind::LostList
    )
}

/// The rule: what to do with a message of `kind` carrying `request_id` from
/// a client at `stage`. (`Hello` counts as server-only once attached: a
/// connection shakes hands once.)
pub fn judge(stage: Stage, kind: Kind, request_id: u32) -> Verdict {
    let refuse = Verdict::Refuse;
    match stage {
        Stage::AwaitHello if matches!(kind, Kind::Hello | Kind::KeyHello) => Verdict::Handshake,
        Stage::AwaitHello => refuse(Refusal::ExpectedHello(kind)),
        _ if server_only(kind) => refuse(Refusal::ServerOnly(kind)),
        _ if kind == Kind::Pong => Verdict::Ignore,
        Stage::Attached => Verdict::Request,
        Stage::NoUpload => match kind {
            Kind::FileChunk => refuse(Refusal::ChunkWithoutBegin),
            Kind::FileEnd | Kind::StreamEnd => refuse(Refusal::EndWithoutBegin),
            Kind::ChunkList | Kind::ShortChunkList | Kind::ChunkListDelta | Kind::ChunkData => {
                refuse(Refusal::ChunkWithoutManifest)
            }
            _ => Verdict::Request,
        },
        Stage::Uploading { request_id: open } => match kind {
            Kind::Ping => Verdict::Request,
            // Which end closes the upload (FileEnd after FileBegin,
            // StreamEnd after StreamBegin) is the actor's to check, R-13.8.2.
            Kind::FileChunk | Kind::FileEnd | Kind::StreamEnd if request_id == open => {
                Verdict::Request
            }
            _ => refuse(Refusal::UploadOpen),
        },
        Stage::DeltaUploading { request_id: open } => match kind {
            Kind::Ping => Verdict::Request,
            Kind::ChunkList
            | Kind::ShortChunkList
            | Kind::ChunkListDelta
            | Kind::ChunkData
            | Kind::FileEnd
                if request_id == open =>
            {
                Verdict::Request
            }
            _ => refuse(Refusal::UploadOpen),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 45] = [
        Kind::Hello,
        Kind::KeyHello,
        Kind::Welcome,
        Kind::KeyWelcome,
        Kind::Ping,
        Kind::Pong,
        Kind::Error,
        Kind::Pull,
        Kind::ChangeBatch,
        Kind::Ack,
        Kind::PartialAck,
        Kind::PullChecked,
        Kind::History,
        Kind::ListLost,
        Kind::LostList,
        Kind::Notify,
        Kind::Fetch,
        Kind::FileBegin,
        Kind::FileChunk,
        Kind::FileEnd,
        Kind::MakeDir,
        Kind::Delete,
        Kind::RemoveDir,
        Kind::Rename,
        Kind::PushAck,
        Kind::FetchManifest,
        Kind::FetchChunks,
        Kind::FileManifest,
        Kind::ChunkList,
        Kind::ChunksNeeded,
        Kind::ChunkData,
        Kind::FetchShortManifest,
        Kind::ShortChunkList,
        Kind::FetchManifestSince,
        Kind::ChunkListDelta,
        Kind::ListBaseUnknown,
        Kind::PullModes,
        Kind::ModeBatch,
        Kind::SetMode,
        Kind::ListVersions,
        Kind::VersionList,
        Kind::Restore,
        Kind::RestoreAt,
        Kind::StreamBegin,
        Kind::StreamEnd,
    ];

    /// One row per kind: the verdict at AwaitHello, Attached, NoUpload,
    /// Uploading with the same request ID, Uploading with another ID,
    /// DeltaUploading with the same request ID, DeltaUploading with another.
    fn expected(kind: Kind) -> [Verdict; 7] {
        use Refusal::*;
        use Verdict::{Handshake as H, Ignore as I, Refuse as R, Request as Q};
        let eh = R(ExpectedHello(kind));
        let so = R(ServerOnly(kind));
        let uo = R(UploadOpen);
        match kind {
            Kind::Hello | Kind::KeyHello => [H, so, so, so, so, so, so],
            Kind::Welcome
            | Kind::KeyWelcome
            | Kind::Error
            | Kind::ChangeBatch
            | Kind::ModeBatch
            | Kind::Notify
            | Kind::PushAck
            | Kind::VersionList
            | Kind::History
            | Kind::LostList
            | Kind::ListBaseUnknown => [eh, so, so, so, so, so, so],
            // Server → client only, but not refused as server-only: a
            // client sending one gets "not a request" from the actor.
            Kind::ChunksNeeded => [eh, Q, Q, uo, uo, uo, uo],
            Kind::Pong => [eh, I, I, I, I, I, I],
            Kind::Ping => [eh, Q, Q, Q, Q, Q, Q],
            Kind::FileChunk => [eh, Q, R(ChunkWithoutBegin), Q, uo, uo, uo],
            Kind::FileEnd => [eh, Q, R(EndWithoutBegin), Q, uo, Q, uo],
            Kind::StreamEnd => [eh, Q, R(EndWithoutBegin), Q, uo, uo, uo],
            Kind::ChunkList | Kind::ShortChunkList | Kind::ChunkListDelta | Kind::ChunkData => {
                [eh, Q, R(ChunkWithoutManifest), uo, uo, Q, uo]
            }
            Kind::Pull
            | Kind::Ack
            | Kind::PartialAck
            | Kind::Fetch
            | Kind::FileBegin
            | Kind::StreamBegin
            | Kind::MakeDir
            | Kind::Delete
            | Kind::RemoveDir
            | Kind::Rename
            | Kind::FetchManifest
            | Kind::FetchShortManifest
            | Kind::FetchManifestSince
            | Kind::FetchChunks
            | Kind::FileManifest
            | Kind::PullModes
            | Kind::PullChecked
            | Kind::ListLost
            | Kind::SetMode
            | Kind::ListVersions
            | Kind::Restore
            | Kind::RestoreAt => [eh, Q, Q, uo, uo, uo, uo],
        }
    }

    #[test]
    fn legality_table() {
        let stages = [
            Stage::AwaitHello,
            Stage::Attached,
            Stage::NoUpload,
            Stage::Uploading { request_id: 7 },
            Stage::Uploading { request_id: 8 },
            Stage::DeltaUploading { request_id: 7 },
            Stage::DeltaUploading { request_id: 8 },
        ];
        for kind in ALL {
            let want = expected(kind);
            for (stage, want) in stages.iter().zip(want) {
                assert_eq!(judge(*stage, kind, 7), want, "{kind:?} at {stage:?}");
            }
        }
    }

    #[test]
    fn every_refusal_is_wrong_phase_with_the_texts_clients_saw_before() {
        let cases = [
            (
                Refusal::ExpectedHello(Kind::Pull),
                "expected Hello, got Pull",
            ),
            (
                Refusal::ServerOnly(Kind::Welcome),
                "Welcome is not allowed from a client here",
            ),
            (
                Refusal::UploadOpen,
                "only FileChunk/FileEnd of the open upload are allowed",
            ),
            (Refusal::ChunkWithoutBegin, "FileChunk without FileBegin"),
            (
                Refusal::EndWithoutBegin,
                "FileEnd/StreamEnd without FileBegin/StreamBegin",
            ),
        ];
        for (refusal, text) in cases {
            assert_eq!(refusal.code(), ErrorCode::WrongPhase);
            assert_eq!(refusal.message(), text);
        }
        assert_eq!(
            Refusal::UploadOpen.log_text(),
            "message not allowed while a file upload is open"
        );
    }

    #[test]
    fn every_kind_byte_is_in_the_table() {
        let listed: std::collections::HashSet<u8> = ALL.iter().map(|k| *k as u8).collect();
        for byte in 0..=u8::MAX {
            if let Ok(kind) = Kind::from_byte(byte) {
                assert!(listed.contains(&(kind as u8)), "{kind:?} missing");
            }
        }
    }
}
