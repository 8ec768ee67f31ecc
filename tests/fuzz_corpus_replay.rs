//! Replays the fuzz seed corpus and every saved fuzz crash through the same
//! property checks as the fuzz targets, on stable, in every `cargo test`.
//!
//! The seed corpus is written by the ignored test `write_seed_corpus`:
//! `cargo test --test fuzz_corpus_replay -- --ignored write_seed_corpus`.

mod common;
#[path = "../fuzz/src/lib.rs"]
mod properties;

use cloudservice::chunk::ChunkEntry;
use cloudservice::protocol::limits::MAX_PAYLOAD;
use cloudservice::protocol::message::put_header;
use cloudservice::protocol::{
    decode_all, ChangeBatch, ChangeEntry, ChunkData, ChunkRange, ChunkRanges, ContentHash, Delete,
    EntryState, ErrorCode, ErrorReport, Fetch, FetchManifest, FileBegin, FileManifest, Frame,
    Hello, HelloMode, KeyHello, KeyWelcome, Kind, Message, PushAck, PushStatus, RemoveDir, Rename,
    Secret, SetMode, ShortChunkEntry, UserId, Welcome, WirePath,
};
use cloudservice::protocol::{
    Cause, KeptKind, KeptVersion, ListVersions, Restore, RestoreAt, VersionList,
};
use cloudservice::protocol::{ChunkListDelta, FetchManifestSince, ListOp};
use cloudservice::protocol::{History, PartialAck, PullChecked, StreamBegin, StreamEnd};
use cloudservice::protocol::{LostEntry, LostList};
use common::raw::frame as frame_bytes;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Every kind byte the codec knows (§3.2), asked of the codec itself so a
/// kind added later cannot be missed by these checks.
fn every_kind() -> Vec<Kind> {
    (0..=u8::MAX)
        .filter_map(|b| Kind::from_byte(b).ok())
        .collect()
}

/// Every Error code the codec names (`ErrorCode::from_u16`), and one it does
/// not (decoded as `Unknown`, §1.4.1).
fn every_error_code() -> Vec<u16> {
    let mut codes: Vec<u16> = (0..=1024u16)
        .filter(|&c| ErrorCode::from_u16(c).is_some())
        .collect();
    codes.push(999);
    codes
}

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(sub)
}

/// Every input file in `dir` (dot files such as `.gitkeep` skipped), sorted.
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn replay(dir: &Path, check: fn(&[u8])) -> usize {
    let files = inputs(dir);
    for (name, data) in &files {
        let outcome = std::panic::catch_unwind(|| check(data));
        assert!(outcome.is_ok(), "property broken by {name}");
    }
    files.len()
}

#[test]
fn seed_corpus_keeps_the_properties() {
    let n = replay(
        &fuzz_dir("corpus/frame_parser"),
        properties::check_frame_parser,
    );
    assert!(n >= every_kind().len(), "only {n} seed files");
}

#[test]
fn chunk_list_corpus_keeps_the_properties() {
    let n = replay(
        &fuzz_dir("corpus/chunk_list"),
        properties::chunk_list::check_chunk_list,
    );
    assert!(n >= 4, "only {n} chunk_list seed files");
    replay(
        &fuzz_dir("regressions/chunk_list"),
        properties::chunk_list::check_chunk_list,
    );
}

#[test]
fn proxy_header_corpus_keeps_the_properties() {
    let n = replay(
        &fuzz_dir("corpus/proxy_header"),
        properties::proxy_header::check_proxy_header,
    );
    assert_eq!(
        n,
        proxy_header_seeds().len(),
        "proxy_header seeds stale: run write_seed_corpus"
    );
    for (name, bytes) in proxy_header_seeds() {
        let on_disk = fs::read(fuzz_dir("corpus/proxy_header").join(&name)).unwrap_or_default();
        assert_eq!(on_disk, bytes, "{name} stale: run write_seed_corpus");
    }
    replay(
        &fuzz_dir("regressions/proxy_header"),
        properties::proxy_header::check_proxy_header,
    );
}

/// A v2 header (PROTOCOL.md §17): `command` 0 LOCAL / 1 PROXY, `family`
/// the family and protocol byte, then the payload.
fn proxy_v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// Seeds of the `proxy_header` target: every header form HAProxy sends
/// (v1 TCP4/TCP6/UNKNOWN; v2 IPv4, IPv6 with TLVs, LOCAL, unspecified,
/// AF_UNIX), each followed by a ClientHello's first bytes, fed byte by byte
/// (empty plan) or in 3- and 7-byte pieces; and the refusals: truncated,
/// oversized, a wrong version, no signature.
fn proxy_header_seeds() -> Vec<(String, Vec<u8>)> {
    let tls: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let v4 = [192u8, 0, 2, 7, 127, 0, 0, 1, 0xc7, 0x38, 0x1b, 0x58];
    let mut v6 = [0u8; 36];
    v6[0] = 0x20;
    v6[1] = 0x01;
    v6[15] = 7;
    v6[31] = 1;
    let tlvs = [
        &[0x02u8, 0x00, 0x05][..],
        b"r00ab",
        &[0x04, 0x00, 0x02, 0, 0],
    ]
    .concat();
    let mut wrong_version = proxy_v2(1, 0x11, &v4);
    wrong_version[12] = 0x11;
    let headers: Vec<(&str, Vec<u8>)> = vec![
        (
            "v1-tcp4",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 7000\r\n".to_vec(),
        ),
        (
            "v1-tcp6",
            b"PROXY TCP6 2001:db8::7 ::1 51000 7000\r\n".to_vec(),
        ),
        ("v1-unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v1-bad-port",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 \r\n".to_vec(),
        ),
        ("v1-too-long", [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat()),
        ("v2-ipv4", proxy_v2(1, 0x11, &v4)),
        (
            "v2-ipv6-tlvs",
            proxy_v2(1, 0x21, &[&v6[..], &tlvs].concat()),
        ),
        ("v2-local", proxy_v2(0, 0x00, &[])),
        ("v2-unspec", proxy_v2(1, 0x00, &tlvs)),
        ("v2-unix", proxy_v2(1, 0x31, &[b'/'; 216])),
        ("v2-truncated", proxy_v2(1, 0x11, &v4)[..20].to_vec()),
        ("v2-oversized", proxy_v2(1, 0x11, &[0; 2000])[..40].to_vec()),
        ("v2-wrong-version", wrong_version),
        ("no-signature", tls.to_vec()),
    ];
    let mut seeds = Vec::new();
    for (name, header) in headers {
        let stream = [&header[..], tls].concat();
        seeds.push((format!("seed-{name}"), [&[0u8][..], &stream].concat()));
        seeds.push((
            format!("seed-{name}-pieces"),
            [&[2u8, 3, 7][..], &stream].concat(),
        ));
    }
    seeds
}

#[test]
fn regressions_keep_the_properties() {
    replay(
        &fuzz_dir("regressions/frame_parser"),
        properties::check_frame_parser,
    );
    replay(
        &fuzz_dir("regressions/roundtrip"),
        properties::check_roundtrip,
    );
}

#[test]
fn seed_corpus_has_every_message_kind_and_error_code() {
    let mut kinds = BTreeSet::new();
    let mut codes = BTreeSet::new();
    for (_, data) in inputs(&fuzz_dir("corpus/frame_parser")) {
        let (_, stream) = properties::split_input(&data);
        for frame in decode_all(stream).0 {
            kinds.insert(frame.message.kind() as u8);
            if let Message::Error(e) = &frame.message {
                codes.insert(e.code.to_u16());
            }
        }
    }
    let kinds_known = every_kind();
    assert_eq!(kinds_known.len(), 45, "a kind was added: give it a seed");
    for kind in kinds_known {
        assert!(
            kinds.contains(&(kind as u8)),
            "no seed holds a {kind:?} frame; add one to sample_frames and regenerate with \
             `cargo test --test fuzz_corpus_replay -- --ignored write_seed_corpus`"
        );
    }
    for code in every_error_code() {
        assert!(
            codes.contains(&code),
            "no seed holds an Error with code {code}"
        );
    }
}

/// The roundtrip target's message builder reaches every kind.
#[test]
fn roundtrip_generator_builds_every_kind() {
    let mut built = BTreeSet::new();
    for selector in 0..=u8::MAX {
        let mut data = vec![selector];
        data.extend([1u8; 200]);
        if let Some(m) = properties::ByteSource::new(&data).message() {
            built.insert(m.kind() as u8);
        }
    }
    for kind in every_kind() {
        assert!(
            built.contains(&(kind as u8)),
            "roundtrip never builds {kind:?}"
        );
    }
}

#[test]
fn seed_corpus_matches_the_generator() {
    let dir = fuzz_dir("corpus/frame_parser");
    for (name, bytes) in seeds() {
        let on_disk = fs::read(dir.join(&name)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{name} is missing or stale: the encoding changed? Regenerate with \
             `cargo test --test fuzz_corpus_replay -- --ignored write_seed_corpus`"
        );
    }
}

/// Rewrites `fuzz/corpus/frame_parser/seed-*` from [`seeds`] and
/// `fuzz/corpus/proxy_header/seed-*` from [`proxy_header_seeds`].
#[test]
#[ignore = "writes files; run by hand after a wire-format change"]
fn write_seed_corpus() {
    replace_seeds("corpus/frame_parser", seeds());
    replace_seeds("corpus/proxy_header", proxy_header_seeds());
}

/// Replaces the `seed-*` files of the corpus directory `dir` (under fuzz/)
/// with `seeds`; files the fuzzer found (other names) stay.
fn replace_seeds(dir: &str, seeds: Vec<(String, Vec<u8>)>) {
    let dir = fuzz_dir(dir);
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            fs::remove_file(path).unwrap();
        }
    }
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

fn path(text: &str) -> WirePath {
    WirePath::new(text).unwrap()
}

fn frame(request_id: u32, message: Message) -> Frame {
    Frame::new(request_id, message)
}

/// One valid frame of every message kind (some kinds several times).
fn sample_frames() -> Vec<(&'static str, Frame)> {
    let user = UserId([
        0x9f, 0x1c, 0x3a, 0x77, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ]);
    let hash = ContentHash::of(b"hello world\n");
    vec![
        (
            "hello-new-user",
            frame(
                1,
                Message::Hello(Hello {
                    mode: HelloMode::NewUser,
                    user_id: UserId::NONE,
                    client_id: 0,
                }),
            ),
        ),
        (
            "hello-new-client",
            frame(
                1,
                Message::Hello(Hello {
                    mode: HelloMode::NewClient,
                    user_id: user,
                    client_id: 0,
                }),
            ),
        ),
        (
            "hello-resume",
            frame(
                1,
                Message::Hello(Hello {
                    mode: HelloMode::Resume,
                    user_id: user,
                    client_id: 2,
                }),
            ),
        ),
        (
            "welcome",
            frame(
                1,
                Message::Welcome(Welcome {
                    user_id: user,
                    client_id: 2,
                    head: 41,
                }),
            ),
        ),
        (
            "key-hello-resume",
            frame(
                1,
                Message::KeyHello(KeyHello {
                    mode: HelloMode::Resume,
                    user_id: user,
                    client_id: 2,
                    secret: Secret([0xa5; 32]),
                    name: "laptop".to_owned(),
                }),
            ),
        ),
        (
            "key-welcome",
            frame(
                1,
                Message::KeyWelcome(KeyWelcome {
                    user_id: user,
                    client_id: 3,
                    head: 41,
                    device_key: Secret([0x5a; 32]),
                }),
            ),
        ),
        ("ping", frame(7, Message::Ping)),
        ("pong", frame(7, Message::Pong)),
        (
            "error-not-found",
            frame(
                9,
                Message::Error(ErrorReport {
                    code: ErrorCode::NotFound,
                    message: "no such file: docs/a.txt".into(),
                }),
            ),
        ),
        (
            "error-unicode",
            frame(
                3,
                Message::Error(ErrorReport {
                    code: ErrorCode::WrongPhase,
                    message: "état inattendu 📁".into(),
                }),
            ),
        ),
        (
            "error-unstorable",
            frame(
                11,
                Message::Error(ErrorReport {
                    code: ErrorCode::Unstorable,
                    message: "path too long below its conflict directory".into(),
                }),
            ),
        ),
        (
            // A code from a later revision decodes (PROTOCOL.md §1.4.1).
            "error-unknown-code",
            frame(
                12,
                Message::Error(ErrorReport {
                    code: ErrorCode::Unknown(999),
                    message: String::new(),
                }),
            ),
        ),
        ("pull-full", frame(2, Message::Pull { cursor: 0 })),
        ("pull", frame(2, Message::Pull { cursor: 40 })),
        (
            "change-batch",
            frame(
                2,
                Message::ChangeBatch(ChangeBatch {
                    head: 44,
                    full: false,
                    last: true,
                    entries: vec![
                        ChangeEntry {
                            path: path("old/gone.txt"),
                            version: 42,
                            state: EntryState::Deleted,
                            executable: false,
                        },
                        ChangeEntry {
                            path: path("docs"),
                            version: 43,
                            state: EntryState::Dir,
                            executable: false,
                        },
                        ChangeEntry {
                            path: path("docs/naïve café.txt"),
                            version: 44,
                            state: EntryState::File { size: 12, hash },
                            executable: false,
                        },
                    ],
                }),
            ),
        ),
        (
            "change-batch-empty",
            frame(
                2,
                Message::ChangeBatch(ChangeBatch {
                    head: 44,
                    full: true,
                    last: true,
                    entries: vec![],
                }),
            ),
        ),
        ("ack", frame(5, Message::Ack { cursor: 44 })),
        (
            "partial-ack",
            frame(
                5,
                Message::PartialAck(PartialAck {
                    cursor: 44,
                    held: vec![
                        WirePath::new("notes.txt").expect("path"),
                        WirePath::new("d/x").expect("path"),
                    ],
                }),
            ),
        ),
        (
            "pull-checked",
            frame(
                5,
                Message::PullChecked(PullChecked {
                    cursor: 44,
                    check_seq: 44,
                    check_tag: 0x3a9f_5c0e_7b21_d4a6,
                }),
            ),
        ),
        (
            "history",
            frame(
                5,
                Message::History(History {
                    head: 44,
                    head_tag: 0x8c41_d07e_22b9_f315,
                    common: 40,
                    diverged: true,
                }),
            ),
        ),
        ("list-lost", frame(5, Message::ListLost)),
        (
            "lost-list",
            frame(
                5,
                Message::LostList(LostList {
                    more: true,
                    entries: vec![LostEntry {
                        version: 44,
                        size: 6,
                        hash: ContentHash([0x5a; 32]),
                        path: WirePath::new("notes.txt").expect("path"),
                    }],
                }),
            ),
        ),
        ("notify", frame(0, Message::Notify { head: 45 })),
        (
            "fetch",
            frame(
                6,
                Message::Fetch(Fetch {
                    version: 44,
                    path: path("docs/naïve café.txt"),
                }),
            ),
        ),
        (
            "file-begin",
            frame(
                8,
                Message::FileBegin(FileBegin {
                    version: 0,
                    size: 12,
                    hash,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "file-chunk",
            frame(8, Message::FileChunk(b"hello world\n".to_vec())),
        ),
        (
            "file-chunk-300",
            frame(
                8,
                Message::FileChunk((0..300u16).map(|i| i as u8).collect()),
            ),
        ),
        ("file-chunk-empty", frame(8, Message::FileChunk(Vec::new()))),
        ("file-end", frame(8, Message::FileEnd)),
        (
            "make-dir",
            frame(
                10,
                Message::MakeDir {
                    path: path("a/b/c"),
                },
            ),
        ),
        (
            "delete",
            frame(
                11,
                Message::Delete(Delete {
                    base_version: 44,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "remove-dir",
            frame(
                12,
                Message::RemoveDir(RemoveDir {
                    cursor: 44,
                    path: path("old"),
                }),
            ),
        ),
        (
            "rename",
            frame(
                13,
                Message::Rename(Rename {
                    base_version: 43,
                    from: path("docs"),
                    to: path("papers/docs"),
                }),
            ),
        ),
        (
            "push-ack-conflict",
            frame(
                8,
                Message::PushAck(PushAck {
                    status: PushStatus::Conflict,
                    version: 46,
                    path: path("docs/a (conflict 2 2026-11-26 101233).txt"),
                }),
            ),
        ),
        (
            "push-ack-applied",
            frame(
                10,
                Message::PushAck(PushAck {
                    status: PushStatus::Applied,
                    version: 47,
                    path: path("a/b/c"),
                }),
            ),
        ),
        (
            "file-manifest",
            frame(
                14,
                Message::FileManifest(FileManifest {
                    version: 47,
                    size: 70_000,
                    hash,
                    chunk_count: 2,
                    path: path("big/disk.img"),
                }),
            ),
        ),
        (
            "chunk-list",
            frame(
                14,
                Message::ChunkList(vec![
                    ChunkEntry {
                        len: 65_536,
                        id: ContentHash::of(b"one"),
                    },
                    ChunkEntry {
                        len: 4_464,
                        id: ContentHash::of(b"two"),
                    },
                ]),
            ),
        ),
        (
            "chunks-needed",
            frame(
                14,
                Message::ChunksNeeded(ChunkRanges {
                    last: true,
                    ranges: vec![ChunkRange { first: 1, count: 1 }],
                }),
            ),
        ),
        (
            "chunk-data",
            frame(
                14,
                Message::ChunkData(ChunkData {
                    index: 1,
                    data: b"two".to_vec(),
                }),
            ),
        ),
        (
            "list-versions",
            frame(
                16,
                Message::ListVersions(ListVersions {
                    after_seq: 12,
                    after: Some(path("docs/a.txt")),
                    under: Some(path("docs")),
                }),
            ),
        ),
        (
            "version-list",
            frame(
                16,
                Message::VersionList(VersionList {
                    more: false,
                    entries: vec![
                        KeptVersion {
                            seq: 12,
                            since: 3,
                            time_ms: 1_795_687_953_000,
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
                            seq: 14,
                            since: 5,
                            time_ms: 1_795_687_960_000,
                            cause: Cause::Deleted,
                            kind: KeptKind::Dir,
                            path: path("docs/old"),
                        },
                    ],
                }),
            ),
        ),
        (
            "restore",
            frame(
                17,
                Message::Restore(Restore {
                    seq: 12,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "restore-at",
            frame(
                17,
                Message::RestoreAt(RestoreAt {
                    time_ms: 1_795_687_953_000,
                    path: path("docs/a.txt"),
                }),
            ),
        ),
        (
            "error-no-such-version",
            frame(
                17,
                Message::Error(ErrorReport {
                    code: ErrorCode::NoSuchVersion,
                    message: "no kept version of docs/b.txt displaced by change 3".into(),
                }),
            ),
        ),
        (
            "error-wrong-shard",
            frame(
                1,
                Message::Error(ErrorReport {
                    code: ErrorCode::WrongShard,
                    message: "this server does not hold this user".into(),
                }),
            ),
        ),
        (
            "error-moving",
            frame(
                0,
                Message::Error(ErrorReport {
                    code: ErrorCode::Moving,
                    message: "this user is being moved to another server".into(),
                }),
            ),
        ),
        (
            "error-too-many-attempts",
            frame(
                1,
                Message::Error(ErrorReport {
                    code: ErrorCode::TooManyAttempts,
                    message: "too many failed attempts from this address; retry in 42 s".into(),
                }),
            ),
        ),
        (
            "error-device-in-use",
            frame(
                1,
                Message::Error(ErrorReport {
                    code: ErrorCode::DeviceInUse,
                    message: "device 2 of this user is connected from 203.0.113.7:51234 since \
                              2026-12-02 11:20:03 UTC; one live connection per device"
                        .into(),
                }),
            ),
        ),
        (
            "key-hello-visit",
            frame(
                1,
                Message::KeyHello(KeyHello {
                    mode: HelloMode::Visit,
                    user_id: UserId([0x9f; 16]),
                    client_id: 2,
                    secret: Secret([0xa5; 32]),
                    name: String::new(),
                }),
            ),
        ),
        (
            "fetch-manifest",
            frame(
                15,
                Message::FetchManifest(FetchManifest {
                    version: 47,
                    path: path("big/disk.img"),
                }),
            ),
        ),
        (
            "fetch-short-manifest",
            frame(
                16,
                Message::FetchShortManifest(FetchManifest {
                    version: 47,
                    path: path("big/disk.img"),
                }),
            ),
        ),
        (
            "short-chunk-list",
            frame(
                16,
                Message::ShortChunkList(vec![
                    ShortChunkEntry {
                        len: 65_536,
                        id: [0x11; 16],
                    },
                    ShortChunkEntry {
                        len: 4_464,
                        id: [0x22; 16],
                    },
                ]),
            ),
        ),
        (
            "fetch-manifest-since",
            frame(
                18,
                Message::FetchManifestSince(FetchManifestSince {
                    version: 48,
                    base_hash: hash,
                    path: path("big/disk.img"),
                }),
            ),
        ),
        (
            "chunk-list-delta",
            frame(
                18,
                Message::ChunkListDelta(ChunkListDelta {
                    base_hash: hash,
                    ops: vec![
                        ListOp::Copy {
                            first: 0,
                            count: 6_500,
                        },
                        ListOp::New(ShortChunkEntry {
                            len: 70_000,
                            id: [0x33; 16],
                        }),
                        ListOp::Copy {
                            first: 6_502,
                            count: 6_553,
                        },
                    ],
                }),
            ),
        ),
        ("list-base-unknown", frame(19, Message::ListBaseUnknown)),
        (
            "stream-begin",
            frame(
                24,
                Message::StreamBegin(StreamBegin {
                    version: 0,
                    size: 70_000,
                    path: WirePath::new("big.bin").expect("path"),
                }),
            ),
        ),
        (
            "stream-end",
            frame(24, Message::StreamEnd(StreamEnd::Sealed(hash))),
        ),
        (
            "stream-end-abandoned",
            frame(24, Message::StreamEnd(StreamEnd::Abandoned)),
        ),
        (
            "fetch-chunks",
            frame(
                15,
                Message::FetchChunks(ChunkRanges {
                    last: true,
                    ranges: vec![
                        ChunkRange { first: 0, count: 3 },
                        ChunkRange { first: 9, count: 1 },
                    ],
                }),
            ),
        ),
        ("pull-modes", frame(16, Message::PullModes { cursor: 41 })),
        (
            "mode-batch",
            frame(
                16,
                Message::ModeBatch(ChangeBatch {
                    head: 44,
                    full: false,
                    last: true,
                    entries: vec![
                        ChangeEntry {
                            path: path("bin"),
                            version: 42,
                            state: EntryState::Dir,
                            executable: false,
                        },
                        ChangeEntry {
                            path: path("bin/run.sh"),
                            version: 44,
                            state: EntryState::File { size: 12, hash },
                            executable: true,
                        },
                    ],
                }),
            ),
        ),
        (
            "set-mode",
            frame(
                17,
                Message::SetMode(SetMode {
                    base_version: 43,
                    executable: true,
                    path: path("bin/run.sh"),
                }),
            ),
        ),
    ]
}

fn concat(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        f.encode(&mut out);
    }
    out
}

/// Every seed file: name and content (`plan_len | plan | stream`).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let samples = sample_frames();
    let mut out = Vec::new();
    for (name, f) in &samples {
        // An empty plan: fed one byte at a time.
        out.push((
            format!("seed-{name}"),
            properties::make_input(&[], &f.to_bytes()),
        ));
    }
    let by_name = |n: &str| samples.iter().find(|(s, _)| *s == n).unwrap().1.clone();
    let session = concat(
        &[
            "hello-resume",
            "welcome",
            "make-dir",
            "file-begin",
            "file-chunk",
            "file-end",
            "push-ack-applied",
            "pull",
            "change-batch",
            "fetch",
            "file-begin",
            "file-chunk-300",
            "file-end",
            "ack",
            "notify",
            "ping",
            "pong",
        ]
        .map(by_name),
    );
    out.push((
        "seed-stream-session".into(),
        properties::make_input(&[1, 4, 9], &session),
    ));
    out.push((
        "seed-stream-session-whole".into(),
        properties::make_input(&[255], &session),
    ));
    let delta = concat(
        &[
            "file-manifest",
            "chunk-list",
            "chunks-needed",
            "chunk-data",
            "file-end",
            "push-ack-applied",
            "fetch-manifest",
            "file-manifest",
            "chunk-list",
            "fetch-chunks",
            "chunk-data",
            "file-end",
        ]
        .map(by_name),
    );
    out.push((
        "seed-stream-delta".into(),
        properties::make_input(&[2, 6], &delta),
    ));
    let hello = by_name("hello-resume").to_bytes();
    out.push((
        "seed-partial-header".into(),
        properties::make_input(&[2], &hello[..5]),
    ));
    out.push((
        "seed-partial-payload".into(),
        properties::make_input(&[3], &hello[..hello.len() - 1]),
    ));
    let mut declared_max = Vec::new();
    put_header(&mut declared_max, Kind::FileChunk, 8, MAX_PAYLOAD);
    declared_max.extend_from_slice(&[0xab; 64]);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("bad-magic", b"XS\x01\x03\0\0\0\x01\0\0\0\0".to_vec()),
        ("bad-version", b"CS\x02\x03\0\0\0\x01\0\0\0\0".to_vec()),
        ("unknown-kind", frame_bytes(0x7f, 1, &[])),
        ("too-long", b"CS\x01\x21\0\0\0\x08\xff\xff\xff\xff".to_vec()),
        ("declared-max-payload", declared_max),
        (
            "truncated-pull",
            frame_bytes(Kind::Pull as u8, 2, &[0, 0, 0, 1]),
        ),
        ("trailing-ping", frame_bytes(Kind::Ping as u8, 2, &[0])),
        (
            "error-bad-utf8",
            frame_bytes(Kind::Error as u8, 3, b"\0\x01\0\x02\xc3\x28"),
        ),
        (
            "make-dir-dotdot",
            frame_bytes(Kind::MakeDir as u8, 4, b"\0\x04../x"),
        ),
        (
            "hello-bad-mode",
            frame_bytes(Kind::Hello as u8, 1, &[9; 28]),
        ),
        // A delta kind under version 1 is unknown to version 1 (§13.1).
        (
            "chunk-data-v1",
            frame_bytes(Kind::ChunkData as u8, 1, &[0, 0, 0, 0, 1]),
        ),
        (
            "chunks-needed-overlap",
            frame(
                1,
                Message::ChunksNeeded(ChunkRanges {
                    last: true,
                    ranges: vec![
                        ChunkRange { first: 0, count: 3 },
                        ChunkRange { first: 9, count: 1 },
                    ],
                }),
            )
            .to_bytes()
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 12 + 1 + 8 + 3 { 2 } else { b })
            .collect(),
        ),
    ];
    // One Error frame per code the codec names, and one it does not (§1.4.1).
    let errors: Vec<Frame> = every_error_code()
        .into_iter()
        .map(|code| {
            frame(
                u32::from(code),
                Message::Error(ErrorReport {
                    code: ErrorCode::from_wire(code),
                    message: format!("code {code}"),
                }),
            )
        })
        .collect();
    out.push((
        "seed-error-every-code".into(),
        properties::make_input(&[], &concat(&errors)),
    ));
    for (name, stream) in bad {
        out.push((format!("seed-{name}"), properties::make_input(&[], &stream)));
    }
    out
}
