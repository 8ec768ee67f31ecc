//! The hex examples in protocol-spec/PROTOCOL.md come from the real encoder.
//!
//! Every fenced block tagged ```` ```hex example=NAME ```` in the spec must hold
//! exactly the bytes that [`Frame::encode`] produces for the frame [`examples`]
//! builds under NAME, and those bytes must decode back to the same frame.
//! A block without a builder, a builder without a block, or a name used twice
//! fails the test.
//!
//! To (re)generate the blocks after changing an example, run
//! `SPEC_EXAMPLES_BLESS=1 cargo test --test spec_examples` and review the diff
//! of PROTOCOL.md; never type example bytes by hand.

use cloudservice::protocol::limits;
use cloudservice::protocol::{
    conflict_path, decode_all, ChangeBatch, ChangeEntry, ContentHash, Delete, EntryState,
    ErrorCode, ErrorReport, Fetch, FileBegin, Frame, FrameDecoder, Hello, HelloMode, History,
    KeyHello, KeyWelcome, Message, PartialAck, PullChecked, PushAck, PushStatus, RemoveDir, Rename,
    Secret, Status, UserId, Welcome,
};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

#[path = "spec_examples/delta.rs"]
mod delta;
#[path = "spec_examples/hash.rs"]
mod hash;
#[path = "spec_examples/kinds.rs"]
mod kinds;
#[path = "spec_examples/modes.rs"]
mod modes;
#[path = "spec_examples/shards.rs"]
mod shards;
#[path = "spec_examples/versions.rs"]
mod versions;

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol-spec/PROTOCOL.md");

/// The example user of every example: `9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1`.
const USER: UserId = UserId([
    0x9f, 0x1c, 0x2a, 0x7e, 0x4b, 0x6d, 0x80, 0x53, 0xc1, 0xe9, 0xf2, 0xa4, 0xb6, 0xc8, 0xd0, 0xe1,
]);

/// The join code of the §4.6 examples: bytes 00 01 02 … 1f.
const JOIN_CODE: Secret = Secret([
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
]);

/// The device key of the §4.6 examples: bytes a0 a1 … bf.
const DEVICE_KEY: Secret = Secret([
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
]);

/// Content of the file of the example exchange (§11).
const HELLO_TXT: &[u8] = b"hello\n";

/// 2026-11-26 10:12:33 UTC, the time of the conflict examples (§7.4).
const CONFLICT_TIME_SECS: u64 = 1_795_687_953;

fn path(text: &str) -> cloudservice::protocol::WirePath {
    cloudservice::protocol::WirePath::new(text).expect("example path obeys §6")
}

fn frame(request_id: u32, message: Message) -> Frame {
    Frame::new(request_id, message)
}

fn file_begin(request_id: u32, version: u64, content: &[u8], at: &str) -> Frame {
    frame(
        request_id,
        Message::FileBegin(FileBegin {
            version,
            size: content.len() as u64,
            hash: ContentHash::of(content),
            path: path(at),
        }),
    )
}

fn push_ack(request_id: u32, status: PushStatus, version: u64, at: &str) -> Frame {
    frame(
        request_id,
        Message::PushAck(PushAck {
            status,
            version,
            path: path(at),
        }),
    )
}

fn entry(at: &str, version: u64, state: EntryState) -> ChangeEntry {
    ChangeEntry {
        path: path(at),
        version,
        state,
        executable: false,
    }
}

fn file_state(content: &[u8]) -> EntryState {
    EntryState::File {
        size: content.len() as u64,
        hash: ContentHash::of(content),
    }
}

/// Every example of the spec, by the name its hex block carries.
fn examples() -> BTreeMap<&'static str, Frame> {
    let conflict_name = conflict_path(
        &path("docs/report.txt"),
        2,
        UNIX_EPOCH + Duration::from_secs(CONFLICT_TIME_SECS),
        1,
    );
    let list: Vec<(&'static str, Frame)> = vec![
        // §4: session messages.
        (
            "hello-resume",
            frame(
                1,
                Message::Hello(Hello {
                    mode: HelloMode::Resume,
                    user_id: USER,
                    client_id: 2,
                }),
            ),
        ),
        (
            "welcome-resume",
            frame(
                1,
                Message::Welcome(Welcome {
                    user_id: USER,
                    client_id: 2,
                    head: 17,
                }),
            ),
        ),
        // §4.6: device credentials.
        (
            "key-hello-new-client",
            frame(
                1,
                Message::KeyHello(KeyHello {
                    mode: HelloMode::NewClient,
                    user_id: USER,
                    client_id: 0,
                    secret: JOIN_CODE,
                    name: "laptop".to_owned(),
                }),
            ),
        ),
        (
            "key-welcome-new-client",
            frame(
                1,
                Message::KeyWelcome(KeyWelcome {
                    user_id: USER,
                    client_id: 3,
                    head: 17,
                    device_key: DEVICE_KEY,
                }),
            ),
        ),
        (
            "key-hello-resume",
            frame(
                1,
                Message::KeyHello(KeyHello {
                    mode: HelloMode::Resume,
                    user_id: USER,
                    client_id: 3,
                    secret: DEVICE_KEY,
                    name: "laptop".to_owned(),
                }),
            ),
        ),
        (
            "key-welcome-resume",
            frame(
                1,
                Message::KeyWelcome(KeyWelcome {
                    user_id: USER,
                    client_id: 3,
                    head: 17,
                    device_key: Secret::NONE,
                }),
            ),
        ),
        (
            "error-revoked",
            frame(
                0,
                Message::Error(ErrorReport {
                    code: ErrorCode::Revoked,
                    message: "revoked".to_owned(),
                }),
            ),
        ),
        (
            "error-bad-credential",
            frame(
                1,
                Message::Error(ErrorReport {
                    code: ErrorCode::BadCredential,
                    message: "bad device key".to_owned(),
                }),
            ),
        ),
        ("ping", frame(9, Message::Ping)),
        ("pong", frame(9, Message::Pong)),
        ("notify", frame(0, Message::Notify { head: 1 })),
        (
            "error-not-found",
            frame(
                7,
                Message::Error(ErrorReport {
                    code: ErrorCode::NotFound,
                    message: "not found".to_owned(),
                }),
            ),
        ),
        (
            "error-timeout",
            frame(
                0,
                Message::Error(ErrorReport {
                    code: ErrorCode::Timeout,
                    message: String::new(),
                }),
            ),
        ),
        (
            "error-bad-path",
            frame(
                7,
                Message::Error(ErrorReport {
                    code: ErrorCode::BadPath,
                    message: "bad path".to_owned(),
                }),
            ),
        ),
        (
            "error-unknown-code",
            frame(
                11,
                Message::Error(ErrorReport {
                    code: ErrorCode::Unknown(999),
                    message: String::new(),
                }),
            ),
        ),
        (
            "error-device-in-use",
            frame(
                1,
                Message::Error(ErrorReport {
                    code: ErrorCode::DeviceInUse,
                    message: "device 3 of this user is connected from 203.0.113.7:51234 since \
                              2026-12-02 11:20:03 UTC; one live connection per device"
                        .to_owned(),
                }),
            ),
        ),
        // §5: sync messages.
        ("pull", frame(5, Message::Pull { cursor: 17 })),
        (
            "changebatch-incremental",
            frame(
                5,
                Message::ChangeBatch(ChangeBatch {
                    head: 21,
                    full: false,
                    last: true,
                    entries: vec![
                        entry("old", 18, EntryState::Deleted),
                        entry("photos", 20, EntryState::Dir),
                        entry("photos/cat.txt", 21, file_state(b"meow\n")),
                    ],
                }),
            ),
        ),
        (
            "changebatch-empty",
            frame(
                8,
                Message::ChangeBatch(ChangeBatch {
                    head: 21,
                    full: false,
                    last: true,
                    entries: Vec::new(),
                }),
            ),
        ),
        ("ack", frame(6, Message::Ack { cursor: 21 })),
        (
            "partial-ack",
            frame(
                6,
                Message::PartialAck(PartialAck {
                    cursor: 21,
                    held: vec![path("photos/cat.txt")],
                }),
            ),
        ),
        (
            "pull-checked",
            frame(
                5,
                Message::PullChecked(PullChecked {
                    cursor: 17,
                    check_seq: 17,
                    check_tag: 0x3a9f_5c0e_7b21_d4a6,
                }),
            ),
        ),
        (
            "history",
            frame(
                5,
                Message::History(History {
                    head: 12,
                    head_tag: 0x8c41_d07e_22b9_f315,
                    common: 10,
                    diverged: true,
                }),
            ),
        ),
        (
            "makedir",
            frame(
                10,
                Message::MakeDir {
                    path: path("photos"),
                },
            ),
        ),
        (
            "delete",
            frame(
                11,
                Message::Delete(Delete {
                    base_version: 4,
                    path: path("old.txt"),
                }),
            ),
        ),
        (
            "removedir",
            frame(
                12,
                Message::RemoveDir(RemoveDir {
                    cursor: 21,
                    path: path("tmp"),
                }),
            ),
        ),
        (
            "rename",
            frame(
                13,
                Message::Rename(Rename {
                    base_version: 9,
                    from: path("draft.txt"),
                    to: path("docs/final.txt"),
                }),
            ),
        ),
        (
            "pushack-applied",
            push_ack(10, PushStatus::Applied, 22, "photos"),
        ),
        (
            "pushack-conflict",
            push_ack(14, PushStatus::Conflict, 23, conflict_name.as_str()),
        ),
        (
            "pushack-stale",
            push_ack(11, PushStatus::Stale, 6, "old.txt"),
        ),
        (
            "fetch",
            frame(
                15,
                Message::Fetch(Fetch {
                    version: 21,
                    path: path("photos/cat.txt"),
                }),
            ),
        ),
        ("filebegin-empty", file_begin(16, 0, b"", "empty.txt")),
        ("fileend-empty", frame(16, Message::FileEnd)),
        // §11: the example exchange. Client A is a new user.
        (
            "x-a-hello",
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
            "x-a-welcome",
            frame(
                1,
                Message::Welcome(Welcome {
                    user_id: USER,
                    client_id: 1,
                    head: 0,
                }),
            ),
        ),
        ("x-a-filebegin", file_begin(2, 0, HELLO_TXT, "hello.txt")),
        (
            "x-a-filechunk",
            frame(2, Message::FileChunk(HELLO_TXT.to_vec())),
        ),
        ("x-a-fileend", frame(2, Message::FileEnd)),
        (
            "x-a-pushack",
            push_ack(2, PushStatus::Applied, 1, "hello.txt"),
        ),
        // Client B joins the same user.
        (
            "x-b-hello",
            frame(
                1,
                Message::Hello(Hello {
                    mode: HelloMode::NewClient,
                    user_id: USER,
                    client_id: 0,
                }),
            ),
        ),
        (
            "x-b-welcome",
            frame(
                1,
                Message::Welcome(Welcome {
                    user_id: USER,
                    client_id: 2,
                    head: 1,
                }),
            ),
        ),
        ("x-b-pull", frame(2, Message::Pull { cursor: 0 })),
        (
            "x-b-changebatch",
            frame(
                2,
                Message::ChangeBatch(ChangeBatch {
                    head: 1,
                    full: true,
                    last: true,
                    entries: vec![entry("hello.txt", 1, file_state(HELLO_TXT))],
                }),
            ),
        ),
        (
            "x-b-fetch",
            frame(
                3,
                Message::Fetch(Fetch {
                    version: 1,
                    path: path("hello.txt"),
                }),
            ),
        ),
        ("x-b-filebegin", file_begin(3, 1, HELLO_TXT, "hello.txt")),
        (
            "x-b-filechunk",
            frame(3, Message::FileChunk(HELLO_TXT.to_vec())),
        ),
        ("x-b-fileend", frame(3, Message::FileEnd)),
        ("x-b-ack", frame(4, Message::Ack { cursor: 1 })),
        ("list-lost", frame(9, Message::ListLost)),
        (
            "lost-list",
            frame(
                9,
                Message::LostList(cloudservice::protocol::LostList {
                    more: false,
                    entries: vec![cloudservice::protocol::LostEntry {
                        version: 4,
                        size: HELLO_TXT.len() as u64,
                        hash: ContentHash::of(HELLO_TXT),
                        path: path("notes.txt"),
                    }],
                }),
            ),
        ),
    ];
    let mut map = BTreeMap::new();
    for (name, frame) in list
        .into_iter()
        .chain(hash::examples())
        .chain(delta::examples())
        .chain(modes::examples())
        .chain(shards::examples())
        .chain(versions::examples())
    {
        assert!(
            map.insert(name, frame).is_none(),
            "builder {name} defined twice"
        );
    }
    map
}

/// One ```` ```hex example=NAME ```` block of the spec.
struct HexBlock {
    name: String,
    /// 1-based line of the opening fence, for messages.
    line: usize,
    /// Byte range of the block's content (between the fences) in the spec text.
    content: std::ops::Range<usize>,
}

fn spec_text() -> String {
    std::fs::read_to_string(SPEC_PATH).unwrap_or_else(|e| panic!("cannot read {SPEC_PATH}: {e}"))
}

/// Finds every hex example block. A ```` ```hex ```` fence without an
/// `example=` name is an error: every hex block in the spec must be checked.
fn hex_blocks(spec: &str) -> Vec<HexBlock> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    let mut open: Option<(String, usize, usize)> = None;
    for (index, line) in spec.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        match &open {
            None if trimmed.starts_with("```hex") => {
                let name = trimmed["```hex".len()..]
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("example="))
                    .unwrap_or_else(|| {
                        panic!("line {}: hex block without example=NAME", index + 1)
                    });
                open = Some((name.to_owned(), index + 1, offset));
            }
            Some((name, fence_line, content_start)) if trimmed == "```" => {
                blocks.push(HexBlock {
                    name: name.clone(),
                    line: *fence_line,
                    content: *content_start..start,
                });
                open = None;
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "unterminated hex block in the spec");
    blocks
}

/// Parses space/newline-separated hex byte pairs.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    text.split_whitespace()
        .map(|pair| {
            if pair.len() != 2 {
                return Err(format!("{pair:?} is not one byte"));
            }
            u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not hex"))
        })
        .collect()
}

/// The spec's layout: the 12 header bytes on one line, then the payload 16
/// bytes per line.
fn format_hex(bytes: &[u8]) -> String {
    let pairs = |chunk: &[u8]| {
        chunk
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let split = bytes.len().min(limits::HEADER_LEN);
    let mut out = pairs(&bytes[..split]);
    out.push('\n');
    for chunk in bytes[split..].chunks(16) {
        out.push_str(&pairs(chunk));
        out.push('\n');
    }
    out
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

#[test]
fn every_hex_example_in_the_spec_matches_the_encoder() {
    let spec = spec_text();
    let blocks = hex_blocks(&spec);
    let examples = examples();
    if std::env::var_os("SPEC_EXAMPLES_BLESS").is_some() {
        bless(&spec, &blocks, &examples);
        return;
    }
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for block in &blocks {
        if let Some(first) = seen.insert(block.name.clone(), block.line) {
            problems.push(format!(
                "line {}: example {} already given at line {first}",
                block.line, block.name
            ));
        }
        let Some(frame) = examples.get(block.name.as_str()) else {
            problems.push(format!(
                "line {}: no builder for example {} in tests/spec_examples.rs",
                block.line, block.name
            ));
            continue;
        };
        let expected = encode(frame);
        match parse_hex(&spec[block.content.clone()]) {
            Ok(found) if found == expected => {}
            Ok(_) => problems.push(format!(
                "line {}: example {} differs from the encoder, which gives:\n{}",
                block.line,
                block.name,
                format_hex(&expected)
            )),
            Err(e) => problems.push(format!("line {}: {e}", block.line)),
        }
    }
    for name in examples.keys() {
        if !seen.contains_key(*name) {
            problems.push(format!("example {name} is missing from the spec"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Rewrites every hex block of the spec from the encoder.
fn bless(spec: &str, blocks: &[HexBlock], examples: &BTreeMap<&str, Frame>) {
    let mut out = String::with_capacity(spec.len());
    let mut copied = 0;
    for block in blocks {
        out.push_str(&spec[copied..block.content.start]);
        match examples.get(block.name.as_str()) {
            Some(frame) => out.push_str(&format_hex(&encode(frame))),
            None => out.push_str(&spec[block.content.clone()]),
        }
        copied = block.content.end;
    }
    out.push_str(&spec[copied..]);
    // Write then rename, so the tests reading the spec in parallel never see
    // a half-written file.
    let temp = format!("{SPEC_PATH}.bless");
    std::fs::write(&temp, out).unwrap_or_else(|e| panic!("cannot write {temp}: {e}"));
    std::fs::rename(&temp, SPEC_PATH).unwrap_or_else(|e| panic!("cannot replace {SPEC_PATH}: {e}"));
}

#[test]
fn every_example_decodes_back_to_its_frame() {
    for (name, frame) in examples() {
        let bytes = encode(&frame);
        let declared = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        assert_eq!(
            declared as usize,
            bytes.len() - limits::HEADER_LEN,
            "{name}: payload_len"
        );

        let mut input = bytes.as_slice();
        let mut decoder = FrameDecoder::new();
        match decoder.feed(&mut input) {
            Ok(Status::Complete(decoded)) => assert_eq!(decoded, frame, "{name}"),
            other => panic!("{name}: whole input gave {other:?}"),
        }
        assert!(input.is_empty(), "{name}: bytes left after the frame");
        assert!(decoder.is_idle(), "{name}: decoder not idle");

        // The same bytes one at a time give the same frame, on the last byte.
        let mut decoder = FrameDecoder::new();
        for (i, byte) in bytes.iter().enumerate() {
            let mut one = std::slice::from_ref(byte);
            match decoder.feed(&mut one) {
                Ok(Status::Partial) if i + 1 < bytes.len() => {}
                Ok(Status::Complete(decoded)) if i + 1 == bytes.len() => {
                    assert_eq!(decoded, frame, "{name}: byte-at-a-time");
                }
                other => panic!("{name}: byte {i} gave {other:?}"),
            }
        }
    }
}

/// The byte streams of §11, one per connection and direction, in order.
const EXCHANGE_STREAMS: [&[&str]; 4] = [
    &["x-a-hello", "x-a-filebegin", "x-a-filechunk", "x-a-fileend"],
    &["x-a-welcome", "x-a-pushack"],
    &["x-b-hello", "x-b-pull", "x-b-fetch", "x-b-ack"],
    &[
        "x-b-welcome",
        "x-b-changebatch",
        "x-b-filebegin",
        "x-b-filechunk",
        "x-b-fileend",
    ],
];

#[test]
fn the_example_exchange_decodes_as_four_streams() {
    let examples = examples();
    let mut used = 0;
    for names in EXCHANGE_STREAMS {
        let frames: Vec<Frame> = names.iter().map(|n| examples[n].clone()).collect();
        let mut stream = Vec::new();
        for frame in &frames {
            frame.encode(&mut stream);
        }
        let (decoded, end) = decode_all(&stream);
        assert_eq!(end, Ok(Status::Complete(())), "{names:?}");
        assert_eq!(decoded, frames, "{names:?}");
        used += names.len();
    }
    let exchange = examples.keys().filter(|n| n.starts_with("x-")).count();
    assert_eq!(used, exchange, "every x- example belongs to one stream");
}

#[test]
fn the_example_file_and_user_are_the_ones_the_spec_names() {
    let examples = examples();
    let Message::FileBegin(begin) = &examples["x-a-filebegin"].message else {
        panic!("x-a-filebegin is not a FileBegin");
    };
    assert_eq!(begin.hash.0, *blake3::hash(b"hello\n").as_bytes());
    hash::check_whole_content_hash();
    assert_eq!(begin.size, 6);
    assert!(
        spec_text().contains(&format!("`{USER}`")),
        "the spec names the example user {USER}"
    );
}

#[test]
fn the_limits_table_matches_limits_rs() {
    let spec = spec_text();
    let rows: Vec<(&str, String)> = vec![
        ("HEADER_LEN", limits::HEADER_LEN.to_string()),
        ("MAX_PAYLOAD", limits::MAX_PAYLOAD.to_string()),
        ("MAX_CHUNK", limits::MAX_CHUNK.to_string()),
        ("CHUNK_SIZE", limits::CHUNK_SIZE.to_string()),
        ("MAX_PATH_BYTES", limits::MAX_PATH_BYTES.to_string()),
        (
            "MAX_COMPONENT_BYTES",
            limits::MAX_COMPONENT_BYTES.to_string(),
        ),
        ("MAX_PATH_DEPTH", limits::MAX_PATH_DEPTH.to_string()),
        ("MAX_MESSAGE_BYTES", limits::MAX_MESSAGE_BYTES.to_string()),
        ("MAX_BATCH_ENTRIES", limits::MAX_BATCH_ENTRIES.to_string()),
        (
            "HANDSHAKE_TIMEOUT_SECS",
            limits::HANDSHAKE_TIMEOUT_SECS.to_string(),
        ),
        ("IDLE_TIMEOUT_SECS", limits::IDLE_TIMEOUT_SECS.to_string()),
        ("STATE_DIR_NAME", format!("`{}`", limits::STATE_DIR_NAME)),
        ("ROUTING_OFFSET", limits::ROUTING_OFFSET.to_string()),
        (
            "MAX_DEVICE_NAME_BYTES",
            limits::MAX_DEVICE_NAME_BYTES.to_string(),
        ),
        ("SECRET_BYTES", limits::SECRET_BYTES.to_string()),
        ("MAX_FIRST_PAYLOAD", limits::MAX_FIRST_PAYLOAD.to_string()),
        ("PROTOCOL_VERSION", limits::PROTOCOL_VERSION.to_string()),
        (
            "DELTA_PROTOCOL_VERSION",
            limits::DELTA_PROTOCOL_VERSION.to_string(),
        ),
        (
            "MODE_PROTOCOL_VERSION",
            limits::MODE_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V4_PROTOCOL_VERSION",
            limits::V4_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V5_PROTOCOL_VERSION",
            limits::V5_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V6_PROTOCOL_VERSION",
            limits::V6_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V7_PROTOCOL_VERSION",
            limits::V7_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V8_PROTOCOL_VERSION",
            limits::V8_PROTOCOL_VERSION.to_string(),
        ),
        (
            "V9_PROTOCOL_VERSION",
            limits::V9_PROTOCOL_VERSION.to_string(),
        ),
    ];
    let mut missing = Vec::new();
    for (name, value) in rows {
        let row = format!("| `{name}` | {value} |");
        if !spec.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "§8 rows not found in the spec:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_conflict_name_examples_match_conflict_rs() {
    let spec = spec_text();
    let when = UNIX_EPOCH + Duration::from_secs(CONFLICT_TIME_SECS);
    let cases = [
        ("report.txt", 2, 1),
        ("report.txt", 2, 2),
        ("docs/report.txt", 2, 1),
        ("archive.tar.gz", 2, 1),
        (".bashrc", 7, 1),
        ("Makefile", 3, 1),
        ("photos.2026", 2, 1),
    ];
    let mut missing = Vec::new();
    for (original, client, attempt) in cases {
        let name = conflict_path(&path(original), client, when, attempt);
        let row = format!("| `{original}` | {client} | {attempt} | `{name}` |");
        if !spec.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "§7.4 rows not found in the spec:\n{}",
        missing.join("\n")
    );
}
