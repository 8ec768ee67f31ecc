//! Raw-frame helpers for the conformance suite (`tests/conformance_*.rs`):
//! frames built byte by byte from the spec's tables, and replies read as
//! bytes, so that a test checks what is on the wire and not what our codec
//! makes of it.

use super::conn::Conn;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One frame as it came off the wire: header fields and the payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub rid: u32,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The whole frame's bytes (header and payload).
    pub fn bytes(&self) -> Vec<u8> {
        frame(self.kind, self.rid, &self.payload)
    }

    /// The code of an Error frame (`None` for another kind).
    pub fn error_code(&self) -> Option<u16> {
        (self.kind == ERROR && self.payload.len() >= 4)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// The `u64` at `offset` of the payload.
    pub fn u64_at(&self, offset: usize) -> u64 {
        let bytes: [u8; 8] = self.payload[offset..offset + 8]
            .try_into()
            .expect("8 bytes");
        u64::from_be_bytes(bytes)
    }
}

/// What one read from a socket brought.
pub enum Filled {
    /// Some bytes (appended).
    More,
    /// The peer closed (or the connection broke).
    Closed,
    /// Nothing before the deadline.
    Timeout,
}

/// Reads once from `stream` into `buf`, waiting at most until `deadline`:
/// the one socket read of both test protocol clients (this file's [`Raw`]
/// and [`super::wire::WireClient`]).
pub fn read_some(stream: &mut Conn, buf: &mut Vec<u8>, deadline: Instant) -> Filled {
    let now = Instant::now();
    if now >= deadline {
        return Filled::Timeout;
    }
    stream.set_read_timeout(Some(deadline - now)).ok();
    let mut chunk = [0u8; 65536];
    match stream.read(&mut chunk) {
        Ok(0) => Filled::Closed,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Filled::More
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Filled::Timeout
        }
        Err(_) => Filled::Closed,
    }
}

/// Kind bytes of §3.2.
pub const HELLO: u8 = 0x01;
pub const WELCOME: u8 = 0x02;
pub const PING: u8 = 0x03;
pub const PONG: u8 = 0x04;
pub const ERROR: u8 = 0x05;
pub const KEY_HELLO: u8 = 0x06;
pub const KEY_WELCOME: u8 = 0x07;
pub const PULL: u8 = 0x10;
pub const PULL_MODES: u8 = 0x18;
pub const MODE_BATCH: u8 = 0x19;
pub const CHANGE_BATCH: u8 = 0x11;
pub const ACK: u8 = 0x12;
/// Version 7: sent under header byte 07.
pub const PARTIAL_ACK: u8 = 0x1B;
/// Version 8 (§5.8): sent under header byte 08.
pub const PULL_CHECKED: u8 = 0x1C;
/// Version 8 (§5.8): the first frame of the reply to `PULL_CHECKED`.
pub const HISTORY: u8 = 0x1D;
/// Version 9 (§10.2): which files has the server lost?
pub const LIST_LOST: u8 = 0x1E;
/// Version 9 (§10.2): the answer to `LIST_LOST`.
pub const LOST_LIST: u8 = 0x1F;
pub const NOTIFY: u8 = 0x13;
pub const FETCH: u8 = 0x14;
pub const FILE_BEGIN: u8 = 0x20;
pub const FILE_CHUNK: u8 = 0x21;
pub const FILE_END: u8 = 0x22;
pub const MAKE_DIR: u8 = 0x30;
pub const DELETE: u8 = 0x31;
pub const REMOVE_DIR: u8 = 0x32;
pub const RENAME: u8 = 0x33;
pub const PUSH_ACK: u8 = 0x34;

/// Error codes of §4.5.
pub const BAD_FRAME: u16 = 1;
pub const BAD_PATH: u16 = 2;
pub const WRONG_PHASE: u16 = 3;
pub const UNKNOWN_USER: u16 = 4;
pub const UNKNOWN_CLIENT: u16 = 5;
pub const HASH_MISMATCH: u16 = 6;
pub const SIZE_MISMATCH: u16 = 7;
pub const BUSY: u16 = 8;
pub const TIMEOUT: u16 = 10;
pub const NOT_FOUND: u16 = 11;
pub const SHUTTING_DOWN: u16 = 12;
pub const REVOKED: u16 = 14;
pub const BAD_CREDENTIAL: u16 = 15;
pub const TOO_MANY_ATTEMPTS: u16 = 28;
pub const DEVICE_IN_USE: u16 = 29;

/// A user ID as it names the user's folder: 32 lower-case hex digits.
pub fn hex(user: &[u8; 16]) -> String {
    user.iter().map(|b| format!("{b:02x}")).collect()
}

/// A frame: `43 53 01 kind | rid u32 | len u32 | payload` (§3.1).
pub fn frame(kind: u8, rid: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x43, 0x53, 0x01, kind];
    out.extend_from_slice(&rid.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A `path` field: `u16` length and the bytes (§1.4).
pub fn path_field(path: &[u8]) -> Vec<u8> {
    let mut out = (path.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(path);
    out
}

/// Hello payload (§4.1): mode, 3 reserved zero bytes, user ID, client ID.
pub fn hello(rid: u32, mode: u8, user: [u8; 16], client: u64) -> Vec<u8> {
    let mut p = vec![mode, 0, 0, 0];
    p.extend_from_slice(&user);
    p.extend_from_slice(&client.to_be_bytes());
    frame(HELLO, rid, &p)
}

/// KeyHello (§4.6): mode, 3 reserved zero bytes, user ID, client ID,
/// secret (device key or join code), name length (u8) and name.
pub fn key_hello(
    rid: u32,
    mode: u8,
    user: [u8; 16],
    client: u64,
    secret: [u8; 32],
    name: &[u8],
) -> Vec<u8> {
    let mut p = vec![mode, 0, 0, 0];
    p.extend_from_slice(&user);
    p.extend_from_slice(&client.to_be_bytes());
    p.extend_from_slice(&secret);
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    frame(KEY_HELLO, rid, &p)
}

/// The device key of a KeyWelcome payload (bytes 32..64).
pub fn welcome_key(w: &RawFrame) -> [u8; 32] {
    w.payload[32..64].try_into().expect("32 bytes")
}

/// A frame whose payload is a `u64` then a path (Delete, RemoveDir, Fetch).
pub fn u64_path(kind: u8, rid: u32, value: u64, path: &str) -> Vec<u8> {
    let mut p = value.to_be_bytes().to_vec();
    p.extend_from_slice(&path_field(path.as_bytes()));
    frame(kind, rid, &p)
}

/// MakeDir (§5.4).
pub fn make_dir(rid: u32, path: &str) -> Vec<u8> {
    frame(MAKE_DIR, rid, &path_field(path.as_bytes()))
}

/// Rename (§5.4): base version, from, to.
pub fn rename(rid: u32, base: u64, from: &str, to: &str) -> Vec<u8> {
    let mut p = base.to_be_bytes().to_vec();
    p.extend_from_slice(&path_field(from.as_bytes()));
    p.extend_from_slice(&path_field(to.as_bytes()));
    frame(RENAME, rid, &p)
}

/// FileBegin (§5.5): version, size, BLAKE3 hash, path.
pub fn file_begin(rid: u32, version: u64, content: &[u8], path: &str) -> Vec<u8> {
    let mut p = version.to_be_bytes().to_vec();
    p.extend_from_slice(&(content.len() as u64).to_be_bytes());
    p.extend_from_slice(blake3::hash(content).as_bytes());
    p.extend_from_slice(&path_field(path.as_bytes()));
    frame(FILE_BEGIN, rid, &p)
}

/// A whole upload: FileBegin, one FileChunk per `chunk` bytes, FileEnd.
pub fn upload(rid: u32, base: u64, content: &[u8], path: &str, chunk: usize) -> Vec<u8> {
    let mut out = file_begin(rid, base, content, path);
    for piece in content.chunks(chunk.max(1)) {
        out.extend_from_slice(&frame(FILE_CHUNK, rid, piece));
    }
    out.extend_from_slice(&frame(FILE_END, rid, &[]));
    out
}

/// PushAck payload (§5.4): status, version, path.
pub fn push_ack_payload(status: u8, version: u64, path: &str) -> Vec<u8> {
    let mut p = vec![status];
    p.extend_from_slice(&version.to_be_bytes());
    p.extend_from_slice(&path_field(path.as_bytes()));
    p
}

/// What a read from the connection gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Frame(RawFrame),
    Closed,
    Timeout,
}

/// A connection that speaks in bytes (inside TLS unless the server is a
/// plaintext one, see [`Conn`]).
pub struct Raw {
    pub stream: Conn,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to the server.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: Conn::connect(addr),
            buf: Vec::new(),
        }
    }

    /// Connects with frames on TCP whatever the server speaks.
    pub fn connect_plain(addr: SocketAddr) -> Raw {
        Raw {
            stream: Conn::connect_plain(addr),
            buf: Vec::new(),
        }
    }

    /// Connects over TLS from the loopback address `source`
    /// ([`Conn::tcp_from`]); returns the connection and its local address.
    pub fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> (Raw, SocketAddr) {
        let stream = Conn::tcp_from(source, addr);
        let local = stream.local_addr().expect("local address");
        let raw = Raw {
            stream: Conn::tls(stream),
            buf: Vec::new(),
        };
        (raw, local)
    }

    /// Wraps a connection made elsewhere.
    pub fn from_conn(stream: Conn) -> Raw {
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps an accepted connection (a fake plaintext server's side).
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).ok();
        Raw {
            stream: Conn::Plain(stream),
            buf: Vec::new(),
        }
    }

    /// Connects and creates a new user; returns the connection, the user ID
    /// and the client ID of the Welcome.
    pub fn new_user(addr: SocketAddr) -> (Raw, [u8; 16], u64) {
        let mut c = Raw::connect(addr);
        c.send(&hello(1, 1, [0; 16], 0));
        let w = c.expect(WELCOME, 1);
        let user: [u8; 16] = w.payload[0..16].try_into().expect("16 bytes");
        (c, user, w.u64_at(16))
    }

    /// Connects with a KeyHello NewUser; returns the connection, the user
    /// ID, the client ID and the device key of the KeyWelcome.
    pub fn key_new_user(addr: SocketAddr) -> (Raw, [u8; 16], u64, [u8; 32]) {
        let mut c = Raw::connect(addr);
        c.send(&key_hello(1, 1, [0; 16], 0, [0; 32], b"test"));
        let w = c.expect(KEY_WELCOME, 1);
        let user: [u8; 16] = w.payload[0..16].try_into().expect("16 bytes");
        (c, user, w.u64_at(16), welcome_key(&w))
    }

    /// Connects with a KeyHello Resume of device `client` with `key`;
    /// returns the connection and the KeyWelcome (or the Error).
    pub fn key_resume(
        addr: SocketAddr,
        user: [u8; 16],
        client: u64,
        key: [u8; 32],
    ) -> (Raw, RawFrame) {
        let mut c = Raw::connect(addr);
        c.send(&key_hello(1, 3, user, client, key, b""));
        let reply = c.next();
        (c, reply)
    }

    /// Connects as a new client of `user`; returns it and its client ID.
    pub fn join(addr: SocketAddr, user: [u8; 16]) -> (Raw, u64) {
        let mut c = Raw::connect(addr);
        c.send(&hello(1, 2, user, 0));
        let w = c.expect(WELCOME, 1);
        (c, w.u64_at(16))
    }

    /// Writes bytes (a send error means the peer closed: ignored, the next
    /// read reports it).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame within `limit`.
    pub fn read(&mut self, limit: Duration) -> Got {
        let deadline = Instant::now() + limit;
        loop {
            if self.buf.len() >= 12 {
                let len = u32::from_be_bytes(self.buf[8..12].try_into().expect("4")) as usize;
                // The header's version is the one its kind belongs to:
                // 2 for delta transfer (§13.1), 3 for modes (§15.1), 7
                // for PartialAck (§5.3), 8 for PullChecked and History (§5.8).
                let version = match self.buf[3] {
                    0x16 | 0x23..=0x26 => 2,
                    0x18 | 0x19 | 0x35 => 3,
                    PARTIAL_ACK => 7,
                    PULL_CHECKED | HISTORY => 8,
                    LIST_LOST | LOST_LIST => 9,
                    _ => 1,
                };
                assert_eq!(&self.buf[0..3], &[b'C', b'S', version], "frame header");
                assert!(len <= 1_048_576, "server sent payload_len {len}");
                if self.buf.len() >= 12 + len {
                    let f = RawFrame {
                        kind: self.buf[3],
                        rid: u32::from_be_bytes(self.buf[4..8].try_into().expect("4")),
                        payload: self.buf[12..12 + len].to_vec(),
                    };
                    self.buf.drain(..12 + len);
                    if f.kind == LIST_LOST {
                        // A fake server of version 9 has lost nothing
                        // (§10.2): the client's question after each pull
                        // is answered here, so scripted exchanges need
                        // not know of it.
                        let mut answer = vec![b'C', b'S', 9, LOST_LIST];
                        answer.extend_from_slice(&f.rid.to_be_bytes());
                        answer.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0]);
                        self.send(&answer);
                        continue;
                    }
                    return Got::Frame(f);
                }
            }
            match read_some(&mut self.stream, &mut self.buf, deadline) {
                Filled::More => {}
                Filled::Closed => return Got::Closed,
                Filled::Timeout => return Got::Timeout,
            }
        }
    }

    /// The next frame, which must come within 10 s.
    pub fn next(&mut self) -> RawFrame {
        match self.read(Duration::from_secs(10)) {
            Got::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame that is not a Notify.
    pub fn next_reply(&mut self) -> RawFrame {
        loop {
            let f = self.next();
            if f.kind != NOTIFY {
                return f;
            }
        }
    }

    /// The next non-Notify frame, which must be `kind` with `rid`.
    pub fn expect(&mut self, kind: u8, rid: u32) -> RawFrame {
        let f = self.next_reply();
        assert_eq!((f.kind, f.rid), (kind, rid), "unexpected frame {f:?}");
        f
    }

    /// The next non-Notify frame must be an Error with `code` and `rid`.
    pub fn expect_error(&mut self, code: u16, rid: u32) -> RawFrame {
        let f = self.next_reply();
        assert_eq!(
            (f.kind, f.error_code(), f.rid),
            (ERROR, Some(code), rid),
            "expected Error {code} rid {rid}, got {f:?} ({:?})",
            String::from_utf8_lossy(&f.payload)
        );
        f
    }

    /// A PushAck (status, version, path) for `rid`.
    pub fn expect_ack(&mut self, rid: u32) -> (u8, u64, String) {
        let f = self.expect(PUSH_ACK, rid);
        let len = u16::from_be_bytes([f.payload[9], f.payload[10]]) as usize;
        assert_eq!(f.payload.len(), 11 + len, "PushAck payload length");
        let path = String::from_utf8(f.payload[11..].to_vec()).expect("UTF-8 path");
        (f.payload[0], f.u64_at(1), path)
    }

    /// The server must close the connection within 10 s, sending nothing
    /// more but Notify frames.
    pub fn expect_closed(&mut self) {
        loop {
            match self.read(Duration::from_secs(10)) {
                Got::Closed => return,
                Got::Frame(f) if f.kind == NOTIFY => {}
                other => panic!("expected the server to close, got {other:?}"),
            }
        }
    }

    /// Nothing (not even a Notify) must arrive within `limit`; the
    /// connection must stay open.
    pub fn expect_silence(&mut self, limit: Duration) {
        match self.read(limit) {
            Got::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Pulls after `cursor` with request `rid`: every batch of the reply.
    pub fn pull(&mut self, rid: u32, cursor: u64) -> Vec<RawFrame> {
        self.send(&frame(PULL, rid, &cursor.to_be_bytes()));
        let mut batches = Vec::new();
        loop {
            let f = self.expect(CHANGE_BATCH, rid);
            let last = f.payload[8] & 0x02 != 0;
            batches.push(f);
            if last {
                return batches;
            }
        }
    }

    /// The connection is alive and in order: a Ping gets its Pong next.
    pub fn ping_pong(&mut self, rid: u32) {
        self.send(&frame(PING, rid, &[]));
        self.expect(PONG, rid);
    }
}

/// A ChangeBatch entry decoded by hand from §5.2's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub state: u8,
    pub version: u64,
    pub size: u64,
    pub hash: [u8; 32],
    pub path: String,
}

/// The entries of a reply's batches, in order; checks each batch's layout.
pub fn entries(batches: &[RawFrame]) -> Vec<Entry> {
    let mut out = Vec::new();
    for b in batches {
        let count = u16::from_be_bytes([b.payload[9], b.payload[10]]) as usize;
        let mut at = 11;
        for _ in 0..count {
            let p = &b.payload[at..];
            let len = u16::from_be_bytes([p[49], p[50]]) as usize;
            out.push(Entry {
                state: p[0],
                version: u64::from_be_bytes(p[1..9].try_into().expect("8")),
                size: u64::from_be_bytes(p[9..17].try_into().expect("8")),
                hash: p[17..49].try_into().expect("32"),
                path: String::from_utf8(p[51..51 + len].to_vec()).expect("UTF-8"),
            });
            at += 51 + len;
        }
        assert_eq!(at, b.payload.len(), "batch ends after its last entry");
    }
    out
}

/// Entry states of §5.2.
pub const FILE: u8 = 1;
pub const DIR: u8 = 2;
pub const DELETED: u8 = 3;
