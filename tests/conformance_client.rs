//! Conformance of the real `cloud-client` with the client requirements of
//! PROTOCOL.md: the test plays a fake server on loopback, written from the
//! spec, and sends the client what a broken or unusual server could send.

mod common;

use common::raw::*;
use common::{Client, Verbosity};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// A quiet `cloud-client` against the fake server on `port` (stderr discarded).
fn start_client(port: u16, folder: &Path, rate: &str, user: Option<&str>) -> Client {
    // The fake server speaks frames on TCP.
    Client::options(port, folder)
        .plaintext()
        .rate(rate)
        .user(user)
        .verbosity(Verbosity::Quiet)
        .stderr_null()
        .start()
}

/// The next connection to the fake server, within `limit`.
fn accept(listener: &TcpListener, limit: Duration) -> Raw {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                return Raw::from_stream(stream);
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the client did not connect: {e}"),
        }
    }
}

const USER: [u8; 16] = [
    0x9f, 0x1c, 0x2a, 0x7e, 0x4b, 0x6d, 0x80, 0x53, 0xc1, 0xe9, 0xf2, 0xa4, 0xb6, 0xc8, 0xd0, 0xe1,
];

/// The device key the fake server hands out (§4.6).
const KEY: [u8; 32] = [0x5a; 32];

/// Reads the client's KeyHello and answers KeyWelcome(USER, client 1,
/// head, KEY for a new device, zero for a Resume); returns the KeyHello.
fn handshake(c: &mut Raw, head: u64) -> RawFrame {
    let h = c.next();
    assert_eq!(h.kind, KEY_HELLO, "{h:?}");
    let mut p = USER.to_vec();
    p.extend_from_slice(&1u64.to_be_bytes());
    p.extend_from_slice(&head.to_be_bytes());
    p.extend_from_slice(&if h.payload[0] == 3 { [0; 32] } else { KEY });
    c.send(&frame(KEY_WELCOME, h.rid, &p));
    h
}

/// The client's next frame that is not a Ping, or `None` if it closed.
fn next_request(c: &mut Raw) -> Option<RawFrame> {
    loop {
        match c.read(Duration::from_secs(15)) {
            Got::Frame(f) if f.kind == PING => c.send(&frame(PONG, f.rid, &[])),
            Got::Frame(f) => return Some(f),
            Got::Closed => return None,
            Got::Timeout => panic!("the client went silent"),
        }
    }
}

/// The client must close the connection, sending neither Error nor Ack.
fn expect_client_closes(c: &mut Raw) {
    while let Some(f) = next_request(c) {
        assert!(
            f.kind != ERROR && f.kind != ACK,
            "client sent {f:?} before closing"
        );
    }
}

/// Whether `f` asks for changes: a Pull, or the PullModes (§15.2) a
/// version 3 client sends instead, or the PullChecked (§5.8) of version 8.
fn is_pull(f: &RawFrame) -> bool {
    f.kind == PULL || f.kind == PULL_MODES || f.kind == PULL_CHECKED
}

/// The tag this fake server gives every head.
const TAG: u64 = 0x0123_4567_89ab_cdef;

/// The History frame (§5.8) a version 8 server sends first in reply to
/// the PullChecked `pull`: head `head`, tag [`TAG`], not diverged.
fn history(pull: &RawFrame, head: u64) -> Vec<u8> {
    let mut p = head.to_be_bytes().to_vec();
    p.extend_from_slice(&TAG.to_be_bytes());
    p.extend_from_slice(&pull.payload[..8]);
    p.push(0);
    let mut f = frame(HISTORY, pull.rid, &p);
    f[2] = 8;
    f
}

/// The reply to `pull` carrying the ChangeBatch payload `change_batch`
/// (§5.2): a ChangeBatch for a Pull; for a PullModes the same batch as a
/// ModeBatch (§15.2: version 3 header, a mode byte 0 after each entry's
/// state), as a version 3 server answers.
fn batch(pull: &RawFrame, change_batch: &[u8]) -> Vec<u8> {
    if pull.kind == PULL_CHECKED {
        // History first, then the batch as for PullModes.
        let head = u64::from_be_bytes(change_batch[..8].try_into().expect("head"));
        let as_modes = RawFrame {
            kind: PULL_MODES,
            ..pull.clone()
        };
        let mut out = history(pull, head);
        out.extend(batch(&as_modes, change_batch));
        return out;
    }
    if pull.kind != PULL_MODES {
        return frame(CHANGE_BATCH, pull.rid, change_batch);
    }
    let count = u16::from_be_bytes([change_batch[9], change_batch[10]]);
    let mut p = change_batch[..11].to_vec();
    let mut at = 11;
    for _ in 0..count {
        // state u8 | version u64 | size u64 | hash [32] | path_len u16 | path
        let path_len = u16::from_be_bytes([change_batch[at + 49], change_batch[at + 50]]) as usize;
        let end = at + 51 + path_len;
        p.push(change_batch[at]);
        p.push(0);
        p.extend_from_slice(&change_batch[at + 1..end]);
        at = end;
    }
    assert_eq!(at, change_batch.len(), "a whole ChangeBatch payload");
    let mut f = frame(MODE_BATCH, pull.rid, &p);
    f[2] = 3;
    f
}

/// A ChangeBatch (head 1, full, last) with one File entry of `content`,
/// answering `pull`.
fn listing(pull: &RawFrame, path: &[u8], content: &[u8]) -> Vec<u8> {
    let mut p = 1u64.to_be_bytes().to_vec();
    p.extend_from_slice(&[3, 0, 1, FILE]);
    p.extend_from_slice(&1u64.to_be_bytes());
    p.extend_from_slice(&(content.len() as u64).to_be_bytes());
    p.extend_from_slice(blake3::hash(content).as_bytes());
    p.extend_from_slice(&path_field(path));
    batch(pull, &p)
}

/// A bad frame, a bad path in a pull reply and a fetch reply for another
/// path each make the client close without Ack (and without sending
/// Error); it then reconnects with Resume and the identity the Welcome
/// gave; a correct reply is applied and acknowledged.
#[test]
///
///
///
fn r_3_3_6_the_client_closes_on_a_bad_frame_without_ack() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("sync");
    std::fs::create_dir(&folder).expect("folder");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let client = start_client(port, &folder, "1000", None);

    // 1: a frame with a bad magic in answer to the Pull.
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = handshake(&mut c, 1);
    assert_eq!((h.payload[0], h.rid), (1, 1), "NewUser Hello, request 1");
    let pull = next_request(&mut c).expect("a Pull");
    assert!(is_pull(&pull), "{pull:?}");
    assert!(pull.rid > h.rid, "requests are numbered upwards from 1");
    c.send(b"XX\x01\x11\x00\x00\x00\x02\x00\x00\x00\x00");
    expect_client_closes(&mut c);

    // 2: a path that breaks §6 in a pull reply.
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = handshake(&mut c, 1);
    assert_eq!(h.payload[0], 3, "Resume after a NewUser Welcome");
    assert_eq!(&h.payload[4..20], &USER);
    assert_eq!(&h.payload[20..28], &1u64.to_be_bytes());
    assert_eq!(&h.payload[28..60], &KEY, "R-4.6.3: the key it was given");
    let pull = next_request(&mut c).expect("a Pull");
    c.send(&listing(&pull, b"../evil.txt", b"abc"));
    expect_client_closes(&mut c);
    assert!(!dir.path().join("evil.txt").exists());

    // 3: a fetch reply naming another path.
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 1);
    let pull = next_request(&mut c).expect("a Pull");
    c.send(&listing(&pull, b"f.txt", b"abc"));
    let fetch = next_request(&mut c).expect("a Fetch");
    assert_eq!(fetch.kind, FETCH);
    let mut reply = file_begin(fetch.rid, 1, b"abc", "g.txt");
    reply.extend_from_slice(&frame(FILE_CHUNK, fetch.rid, b"abc"));
    reply.extend_from_slice(&frame(FILE_END, fetch.rid, &[]));
    c.send(&reply);
    expect_client_closes(&mut c);
    assert!(!folder.join("f.txt").exists() && !folder.join("g.txt").exists());

    // 3b: content that does not match the announced hash.
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 1);
    let pull = next_request(&mut c).expect("a Pull");
    c.send(&listing(&pull, b"f.txt", b"abc"));
    let fetch = next_request(&mut c).expect("a Fetch");
    let mut reply = file_begin(fetch.rid, 1, b"abc", "f.txt");
    reply.extend_from_slice(&frame(FILE_CHUNK, fetch.rid, b"abX"));
    reply.extend_from_slice(&frame(FILE_END, fetch.rid, &[]));
    c.send(&reply);
    // It closes or retries; it never acknowledges. (5 s of silence ends it.)
    while let Got::Frame(f) = c.read(Duration::from_secs(5)) {
        assert!(f.kind != ACK, "no Ack after a hash mismatch: {f:?}");
        if f.kind == FETCH || is_pull(&f) {
            break; // retrying is allowed
        }
    }
    drop(c);
    assert!(
        !folder.join("f.txt").exists(),
        "a bad download never becomes visible"
    );

    // 4: a correct reply (with a Notify inside it) is applied and
    // acknowledged with the head; the Pull still carries cursor 0.
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 1);
    let pull = next_request(&mut c).expect("a Pull");
    assert_eq!(pull.payload[..8], 0u64.to_be_bytes());
    c.send(&listing(&pull, b"f.txt", b"abc"));
    let fetch = next_request(&mut c).expect("a Fetch");
    let mut reply = file_begin(fetch.rid, 1, b"abc", "f.txt");
    reply.extend_from_slice(&frame(NOTIFY, 0, &1u64.to_be_bytes()));
    reply.extend_from_slice(&frame(FILE_CHUNK, fetch.rid, b"abc"));
    reply.extend_from_slice(&frame(FILE_END, fetch.rid, &[]));
    c.send(&reply);
    let ack = next_request(&mut c).expect("an Ack");
    assert_eq!(
        (ack.kind, ack.payload.clone()),
        (ACK, 1u64.to_be_bytes().to_vec())
    );
    assert_eq!(
        std::fs::read(folder.join("f.txt")).ok(),
        Some(b"abc".to_vec())
    );

    // 5: the cursor is kept locally: after a restart the Pull carries 1.
    drop(client);
    drop(c);
    let _client = start_client(port, &folder, "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    assert_eq!(handshake(&mut c, 1).payload[0], 3);
    let pull = next_request(&mut c).expect("a Pull");
    assert!(is_pull(&pull), "{pull:?}");
    // a PullChecked names the head and tag of the reply applied.
    let mut want = 1u64.to_be_bytes().to_vec();
    want.extend_from_slice(&1u64.to_be_bytes());
    want.extend_from_slice(&TAG.to_be_bytes());
    assert_eq!((pull.kind, pull.payload), (PULL_CHECKED, want));
}

/// A Welcome naming another user than the NewClient Hello's: the client
/// closes and sends nothing more.
#[test]
fn r_4_2_1_the_client_checks_the_welcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let other = "00112233445566778899aabbccddeeff";
    let mut client = start_client(port, dir.path(), "1000", Some(other));
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = handshake(&mut c, 0);
    assert_eq!(h.payload[0], 2);
    assert_ne!(&h.payload[4..20], &USER);
    expect_client_closes(&mut c);
    let status = client.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "start-up error exits non-zero"
    );
}

/// A KeyWelcome that gives a new device no key: the client closes, exits
/// non-zero and does not register the folder.
#[test]
fn r_4_6_8_a_new_device_must_be_given_a_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let mut client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = c.next();
    assert_eq!((h.kind, h.payload[0]), (KEY_HELLO, 1), "{h:?}");
    let mut p = USER.to_vec();
    p.extend_from_slice(&1u64.to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes());
    p.extend_from_slice(&[0; 32]);
    c.send(&frame(KEY_WELCOME, h.rid, &p));
    expect_client_closes(&mut c);
    let status = client.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "exits with an error");
    assert!(!dir.path().join(".cloudservice/identity").exists());
}

/// A client on a fresh folder that completed its first handshake (user
/// USER, device 1) and sent its first Pull, so the folder remembers both.
fn known_client(listener: &TcpListener, port: u16, folder: &Path) -> (Client, Raw) {
    let client = start_client(port, folder, "1000", None);
    let mut c = accept(listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    next_request(&mut c).expect("a Pull");
    (client, c)
}

/// Reads a Resume Hello and answers a Welcome for USER but device 2.
fn welcome_another_device(c: &mut Raw) {
    let h = c.next();
    assert_eq!((h.kind, h.payload[0]), (KEY_HELLO, 3), "a Resume: {h:?}");
    let mut p = USER.to_vec();
    p.extend_from_slice(&2u64.to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes());
    p.extend_from_slice(&[0; 32]);
    c.send(&frame(KEY_WELCOME, h.rid, &p));
}

/// A Welcome to a Resume naming another device than the folder's: the
/// client closes, sends nothing more on it, and (a joined folder) retries.
#[test]
fn r_4_2_1_the_client_checks_the_welcome_device_on_resume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    drop(known_client(&listener, port, dir.path()));
    let mut client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    welcome_another_device(&mut c);
    expect_client_closes(&mut c);
    // A joined folder treats it as a failed connection: it keeps
    // running and tries again, checking the next Welcome the same way.
    let mut c = accept(&listener, Duration::from_secs(20));
    welcome_another_device(&mut c);
    expect_client_closes(&mut c);
    assert!(client.is_running(), "the client retries");
    client.stop();
}

/// The same check when a running client reconnects: the connection with
/// the wrong Welcome is closed with nothing sent on it, and the client
/// tries again later (it is still running).
#[test]
fn r_4_2_1_a_reconnecting_client_checks_the_welcome_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let (mut client, c) = known_client(&listener, port, dir.path());
    drop(c);
    let mut c = accept(&listener, Duration::from_secs(20));
    welcome_another_device(&mut c);
    expect_client_closes(&mut c);
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = c.next();
    assert_eq!((h.kind, h.payload[0]), (KEY_HELLO, 3), "tried again: {h:?}");
    assert!(client.exited().is_none(), "still running");
}

/// A reply that matches no request (a PushAck nobody asked for): the
/// client must close the connection.
#[test]
fn r_9_2_2_the_client_closes_on_an_unexpected_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let pull = next_request(&mut c).expect("a Pull");
    c.send(&batch(&pull, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]));
    assert_eq!(
        c.read(Duration::from_secs(1)),
        Got::Timeout,
        "connected until then"
    );
    c.send(&frame(PUSH_ACK, 999, &push_ack_payload(0, 1, "x")));
    expect_client_closes(&mut c);
}

/// Within 60 s without sending, the client sends a Ping: the
/// reference client after 15 s (R-4.3.6's idle ping, so a dead idle link is
/// noticed within 20 s); a Ping from the server gets a Pong with its ID.
#[test]
///
fn r_4_3_2_the_client_pings_within_60_seconds_of_silence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let pull = c.next();
    assert!(is_pull(&pull), "{pull:?}");
    c.send(&batch(&pull, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]));
    c.send(&frame(PING, 4242, &[]));
    assert_eq!(c.next().bytes(), frame(PONG, 4242, &[]));
    let quiet = Instant::now();
    let ping = match c.read(Duration::from_secs(61)) {
        Got::Frame(f) => f,
        other => panic!("no Ping within 61 s: {other:?}"),
    };
    assert_eq!(ping.kind, PING, "{ping:?}");
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_secs(14) && waited <= Duration::from_secs(20),
        "pinged after {waited:?}, not about 15 s (R-4.3.6)"
    );
    // A late Pong is not a dead connection while frames keep coming.
    for _ in 0..10 {
        c.send(&frame(NOTIFY, 0, &0u64.to_be_bytes()));
        match c.read(Duration::from_secs(2)) {
            Got::Closed => panic!("the client closed while the server was talking"),
            Got::Frame(f) => assert_eq!(f.kind, PING, "{f:?}"),
            Got::Timeout => {}
        }
    }
    c.send(&frame(PONG, ping.rid, &[]));
    // A Notify beyond the cursor makes it pull at once.
    c.send(&frame(NOTIFY, 0, &3u64.to_be_bytes()));
    let pull = next_request(&mut c).expect("a Pull");
    assert!(is_pull(&pull), "{pull:?}");
    assert_eq!(pull.payload[..8], 0u64.to_be_bytes());
}

/// A refusal that needs a person (UnknownClient) ends the client instead
/// of a reconnection loop.
#[test]
///
fn r_4_5_6_the_client_does_not_retry_an_unknown_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let user = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1";
    let mut client = start_client(port, dir.path(), "1000", Some(user));
    let mut c = accept(&listener, Duration::from_secs(20));
    let h = c.next();
    assert_eq!(h.kind, KEY_HELLO);
    c.send(&frame(ERROR, h.rid, &[0, 4, 0, 0]));
    expect_client_closes(&mut c);
    let status = client.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "exits with an error");
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "no new attempt");
}

/// Local names the protocol cannot carry are never pushed; a new file is
/// uploaded with base version 0, chunks and end only, under one request ID.
#[test]
///
fn r_6_2_2_the_client_never_pushes_an_illegal_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("back\\slash"), b"no").expect("write");
    std::fs::write(dir.path().join("new\nline"), b"no").expect("write");
    std::fs::write(dir.path().join("ok.txt"), b"yes").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let f = match c.read(Duration::from_millis(500)) {
            Got::Frame(f) => f,
            Got::Timeout => continue,
            Got::Closed => break,
        };
        match f.kind {
            PULL | PULL_MODES | PULL_CHECKED => {
                c.send(&batch(&f, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]))
            }
            FILE_END => c.send(&frame(PUSH_ACK, f.rid, &push_ack_payload(0, 1, "ok.txt"))),
            _ => {}
        }
        seen.push(f);
    }
    let begin = seen
        .iter()
        .position(|f| f.kind == FILE_BEGIN)
        .expect("an upload");
    let b = &seen[begin];
    assert_eq!(b.u64_at(0), 0, "base version 0 for a new file");
    assert_eq!(&b.payload[48..], &path_field(b"ok.txt")[..]);
    assert_eq!(
        seen.iter().filter(|f| f.kind == FILE_BEGIN).count(),
        1,
        "{seen:?}"
    );
    assert_eq!(seen[begin + 1].kind, FILE_CHUNK);
    assert_eq!(
        (seen[begin + 2].kind, seen[begin + 2].rid),
        (FILE_END, b.rid)
    );
    assert_eq!(seen[begin + 1].rid, b.rid);
    for f in &seen {
        let text = String::from_utf8_lossy(&f.payload);
        assert!(
            !text.contains("slash") && !text.contains("line"),
            "pushed {f:?}"
        );
    }
}

/// Starts a client with `-v` on an empty folder against a fake server that
/// creates a user; returns the folder, the client's log and the mode of
/// `.cloudservice/identity`.
fn identity_and_log() -> (tempfile::TempDir, String, u32) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let mut client = Client::options(port, dir.path())
        .plaintext()
        .rate("1000")
        .verbosity(Verbosity::Verbose)
        .capture_stderr()
        .start();
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let pull = c.next();
    c.send(&batch(&pull, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]));
    // The identity is written whole (temp file, then rename), so once the
    // name exists its mode is final.
    let identity = dir.path().join(".cloudservice/identity");
    assert!(
        common::wait::eventually(Duration::from_secs(20), || identity.is_file()),
        "no identity file"
    );
    let mode = std::fs::metadata(&identity)
        .expect("identity file")
        .permissions()
        .mode();
    client.terminate();
    let log = client.stderr_lines().join("\n");
    (dir, log, mode)
}

/// The identity file holds a bearer secret: only its owner may read it.
#[test]
fn r_2_2_3_the_identity_is_private_to_its_owner() {
    let (_dir, _, mode) = identity_and_log();
    assert_eq!(mode & 0o077, 0, "identity mode {mode:o}");
}

/// The log does not show the user ID (it is printed once on stdout, for
/// its owner, by design).
#[test]
fn r_2_2_3_the_log_does_not_name_the_user() {
    let (_dir, log, _) = identity_and_log();
    let hex: String = USER.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!log.contains(&hex), "the log shows the user ID");
}

/// An Error code the client does not know (a newer server) is taken as a
/// closing Error: the client closes and comes back with Resume.
#[test]
/// Covers: R-1.4.1.1
fn r_4_5_8_an_unknown_error_code_is_a_closing_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let pull = next_request(&mut c).expect("a Pull");
    c.send(&batch(&pull, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]));
    c.send(&frame(ERROR, 0, &[0x03, 0xe7, 0, 2, b'h', b'i']));
    expect_client_closes(&mut c);
    let mut again = accept(&listener, Duration::from_secs(20));
    let h = again.next();
    assert_eq!(
        (h.kind, h.payload[0]),
        (KEY_HELLO, 3),
        "Resume after the close"
    );
}

/// A push answered `Unstorable` (13) is not sent again unchanged, while a
/// push answered `Storage` (9) may be retried.
#[test]
fn r_4_5_7_an_unstorable_push_is_not_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("never.txt"), b"n").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let mut begins = 0;
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        let f = match c.read(Duration::from_millis(500)) {
            Got::Frame(f) => f,
            Got::Timeout => continue,
            Got::Closed => {
                // Closing is allowed; pushing the same file again is not.
                c = accept(&listener, Duration::from_secs(20));
                handshake(&mut c, 0);
                continue;
            }
        };
        match f.kind {
            PULL | PULL_MODES | PULL_CHECKED => {
                c.send(&batch(&f, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]))
            }
            FILE_BEGIN => begins += 1,
            FILE_END => c.send(&frame(ERROR, f.rid, &[0, 13, 0, 0])),
            PING => c.send(&frame(PONG, f.rid, &[])),
            _ => {}
        }
    }
    assert_eq!(begins, 1, "the unstorable upload was sent {begins} times");
}

/// The same when the server also holds a newer version of the path: the
/// pull that lists it waits for the push (§7.2), and the push is answered
/// `Unstorable`. The pull must then neither upload the file again at every
/// repetition nor hold the cursor back for good: one upload, and the
/// reply's head is acknowledged (before the fix: an upload every 2 s and
/// no Ack).
#[test]
fn r_4_5_7_an_unstorable_push_does_not_hold_the_pull_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("never.txt"), b"mine").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let (mut begins, mut acked) = (0, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let f = match c.read(Duration::from_millis(500)) {
            Got::Frame(f) => f,
            Got::Timeout => continue,
            Got::Closed => panic!("the client closed the connection"),
        };
        match f.kind {
            PULL | PULL_MODES | PULL_CHECKED => c.send(&listing(&f, b"never.txt", b"theirs")),
            FILE_BEGIN => begins += 1,
            FILE_END => c.send(&frame(ERROR, f.rid, &[0, 13, 0, 0])),
            ACK => acked = Some(f.u64_at(0)),
            PING => c.send(&frame(PONG, f.rid, &[])),
            _ => {}
        }
    }
    assert_eq!(begins, 1, "the unstorable upload was sent {begins} times");
    assert_eq!(acked, Some(1), "the pull's head is acknowledged");
    assert_eq!(
        std::fs::read(dir.path().join("never.txt")).ok().as_deref(),
        Some(&b"mine"[..]),
        "the local version stays"
    );
}

/// a push answered `NoSpace` (30, the server's disk is full) or
/// `Storage` (9, another failure that may pass) is held back, not sent
/// again at once: the second try of the file comes after the first delay
/// (5 s), and the connection stays. What the client reports says which:
/// a full disk as such, any other failure with the path and the server's
/// text and never as a full disk (before: every `Storage` read "disk full"
/// to the user, and code 30 was an unknown, closing error).
#[test]
fn r_5_6_8_a_full_server_disk_and_another_storage_failure_are_told_apart() {
    let cases: [(u16, &str, &str, &str); 2] = [
        (
            30,
            "big.bin: writing big.bin: No space left on device (os error 28)",
            "the server's disk is full",
            "could not store",
        ),
        (
            9,
            "big.bin: opening big.bin: Permission denied (os error 13)",
            "the server could not store big.bin",
            "disk is full",
        ),
    ];
    for (code, text, said, never) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("big.bin"), b"bytes the server cannot take").expect("write");
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let _client = start_client(port, dir.path(), "1000", None);
        let mut c = accept(&listener, Duration::from_secs(20));
        handshake(&mut c, 0);
        let mut error = code.to_be_bytes().to_vec();
        error.extend_from_slice(&(text.len() as u16).to_be_bytes());
        error.extend_from_slice(text.as_bytes());
        let mut begins = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            let f = match c.read(Duration::from_millis(500)) {
                Got::Frame(f) => f,
                Got::Timeout => continue,
                Got::Closed => panic!("code {code}: the client closed the connection"),
            };
            match f.kind {
                PULL | PULL_MODES | PULL_CHECKED => {
                    c.send(&batch(&f, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]))
                }
                FILE_BEGIN => begins.push(Instant::now()),
                FILE_END => c.send(&frame(ERROR, f.rid, &error)),
                PING => c.send(&frame(PONG, f.rid, &[])),
                _ => {}
            }
        }
        assert_eq!(
            begins.len(),
            2,
            "code {code}: sent {} times in 8 s",
            begins.len()
        );
        let gap = begins[1] - begins[0];
        assert!(
            gap >= Duration::from_millis(4500),
            "code {code}: tried again after {gap:?}"
        );
        let status = std::fs::read_to_string(dir.path().join(".cloudservice/status.json"))
            .expect("status file");
        assert!(status.contains(said), "code {code}: {status}");
        assert!(status.contains("big.bin"), "code {code}: {status}");
        assert!(!status.contains(never), "code {code}: {status}");
        if code == 9 {
            assert!(
                status.contains("Permission denied"),
                "the server's text: {status}"
            );
        }
    }
}

/// A full listing (head 2, full, last) answering `pull`: `mine.txt` with
/// the server's `theirs` and an empty `empty.txt` (made without a fetch).
fn listing_with_an_edit_of_mine(pull: &RawFrame) -> Vec<u8> {
    let mut p = 2u64.to_be_bytes().to_vec();
    p.extend_from_slice(&[3, 0, 2]);
    for (path, content, version) in [
        (&b"mine.txt"[..], &b"theirs"[..], 1u64),
        (b"empty.txt", b"", 2),
    ] {
        p.push(FILE);
        p.extend_from_slice(&version.to_be_bytes());
        p.extend_from_slice(&(content.len() as u64).to_be_bytes());
        p.extend_from_slice(blake3::hash(content).as_bytes());
        p.extend_from_slice(&path_field(path));
    }
    batch(pull, &p)
}

/// a reply applied but for a local edit left to the push
/// (`mine.txt`) is acknowledged with a PartialAck (header byte 07, kind
/// 0x1B) of the reply's head naming that path, never with an Ack. A server
/// of version 6 refuses it ("unsupported protocol version 7") and closes:
/// the client comes back and, for the rest of its run, sends neither (as
/// before version 7).
#[test]
fn r_5_3_4_the_client_names_what_it_left_to_its_push() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mine.txt"), b"mine").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut partial = Vec::new();
    for refuse in [true, false] {
        let mut c = accept(&listener, Duration::from_secs(20));
        handshake(&mut c, 2);
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut closed = false;
        while Instant::now() < deadline && !closed {
            let f = match c.read(Duration::from_millis(300)) {
                Got::Frame(f) => f,
                Got::Timeout => continue,
                Got::Closed => panic!("the client closed the connection"),
            };
            match f.kind {
                PULL | PULL_MODES | PULL_CHECKED => c.send(&listing_with_an_edit_of_mine(&f)),
                ACK => panic!("a reply left in part to the push was acknowledged: {f:?}"),
                PARTIAL_ACK => {
                    partial.push((refuse, f.payload.clone()));
                    if refuse {
                        let text = b"unsupported protocol version 7";
                        let mut error = BAD_FRAME.to_be_bytes().to_vec();
                        error.extend_from_slice(&(text.len() as u16).to_be_bytes());
                        error.extend_from_slice(text);
                        c.send(&frame(ERROR, 0, &error));
                        closed = true;
                    }
                }
                PING => c.send(&frame(PONG, f.rid, &[])),
                _ => {}
            }
        }
        assert!(!refuse || closed, "no PartialAck reached the older server");
    }
    let mut want = 2u64.to_be_bytes().to_vec();
    want.extend_from_slice(&[0, 1]);
    want.extend_from_slice(&path_field(b"mine.txt"));
    assert!(!partial.is_empty());
    for (refused, payload) in &partial {
        assert!(refused, "sent again after the refusal: {partial:?}");
        assert_eq!(payload, &want);
    }
    assert_eq!(
        std::fs::read(dir.path().join("empty.txt")).ok().as_deref(),
        Some(&b""[..]),
        "the rest of the reply was applied"
    );
}

/// a server of versions 1 to 7 refuses the PullChecked of a
/// version 8 client ("unsupported protocol version 8") and closes: the
/// client comes back and pulls with PullModes for the rest of its run.
#[test]
fn r_5_8_5_an_older_server_gets_pull_modes_after_refusing_pull_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let _client = start_client(port, dir.path(), "1000", None);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    let pull = next_request(&mut c).expect("a pull");
    assert_eq!(pull.kind, PULL_CHECKED, "a version 8 client: {pull:?}");
    let text = b"unsupported protocol version 8";
    let mut error = BAD_FRAME.to_be_bytes().to_vec();
    error.extend_from_slice(&(text.len() as u16).to_be_bytes());
    error.extend_from_slice(text);
    c.send(&frame(ERROR, 0, &error));
    drop(c);
    let mut c = accept(&listener, Duration::from_secs(20));
    handshake(&mut c, 0);
    for head in [2u64, 3] {
        let pull = next_request(&mut c).expect("a pull");
        assert_eq!(pull.kind, PULL_MODES, "after the refusal: {pull:?}");
        c.send(&batch(&pull, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]));
        // A Notify beyond the cursor makes it pull again at once.
        c.send(&frame(NOTIFY, 0, &head.to_be_bytes()));
    }
}
