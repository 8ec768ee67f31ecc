//! Examples of PROTOCOL.md §14 (version history): listing the versions kept
//! under `docs`, one page of them, restoring one, and the error for a
//! version that is not kept.

use cloudservice::protocol::{
    Cause, ContentHash, ErrorCode, ErrorReport, Frame, KeptKind, KeptVersion, ListVersions,
    Message, Restore, RestoreAt, VersionList, WirePath,
};

fn path(text: &str) -> WirePath {
    WirePath::new(text).expect("example path")
}

/// 2026-11-26 10:12:33 UTC in milliseconds, the time of the examples.
const TIME_MS: u64 = 1_795_687_953_000;

/// The examples, by name.
pub fn examples() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "versions-list-first",
            Frame::new(
                30,
                Message::ListVersions(ListVersions {
                    after_seq: 0,
                    after: None,
                    under: Some(path("docs")),
                }),
            ),
        ),
        (
            "versions-page",
            Frame::new(
                30,
                Message::VersionList(VersionList {
                    more: false,
                    entries: vec![
                        KeptVersion {
                            seq: 7,
                            since: 2,
                            time_ms: TIME_MS,
                            cause: Cause::Overwritten,
                            kind: KeptKind::File {
                                size: 6,
                                hash: ContentHash::of(b"hello\n"),
                                mtime_ns: 1_795_687_000_000_000_000,
                                executable: false,
                            },
                            path: path("docs/a.txt"),
                        },
                        KeptVersion {
                            seq: 9,
                            since: 4,
                            time_ms: TIME_MS + 4_000,
                            cause: Cause::Deleted,
                            kind: KeptKind::Dir,
                            path: path("docs/old"),
                        },
                    ],
                }),
            ),
        ),
        (
            "versions-restore",
            Frame::new(
                31,
                Message::Restore(Restore {
                    seq: 7,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "versions-restore-at",
            Frame::new(
                33,
                Message::RestoreAt(RestoreAt {
                    time_ms: 1_764_583_200_000,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "versions-no-such-version",
            Frame::new(
                32,
                Message::Error(ErrorReport {
                    code: ErrorCode::NoSuchVersion,
                    message: String::new(),
                }),
            ),
        ),
    ]
}
