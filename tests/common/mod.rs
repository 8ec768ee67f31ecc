//! Shared helpers for the end-to-end tests: start and stop the real
//! `cloud-server` binary on loopback, a raw protocol client written from the
//! spec, and tree comparison by content.
#![allow(dead_code)]

pub mod procs;
pub mod raw;
// Each test crate uses a different subset of these.
#[allow(unused_imports)]
pub use procs::{signal, tree as tree_of, wait_timeout, Tree};

use cloudservice::protocol::{
    ChangeBatch, ChangeEntry, ContentHash, ErrorCode, ErrorReport, FileBegin, Frame, FrameDecoder,
    Hello, HelloMode, Message, PushAck, Status, UserId, Welcome, WirePath,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `cloud-server` in its own temporary data directory.
pub struct ServerProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub data: PathBuf,
    stdout: mpsc::Receiver<String>,
    _dir: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

impl ServerProc {
    /// Starts a server on 127.0.0.1 with a fresh data directory.
    pub fn start() -> ServerProc {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> ServerProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().to_path_buf();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut proc = Self::spawn(&data, &extra);
        proc._dir = Some(dir);
        proc
    }

    /// Starts a server on an existing data directory that the caller owns.
    pub fn start_in(data: &Path, extra: &[&str]) -> ServerProc {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(data, &extra)
    }

    fn spawn(data: &Path, extra: &[String]) -> ServerProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
            .arg("0")
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--data-dir")
            .arg(data)
            // The raw client below speaks frames on TCP: TLS is tested by
            // the real client's end-to-end tests and tests/e2e_tls.rs.
            .arg("--insecure-plaintext")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cloud-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server printed its listening line");
        let addr = line
            .strip_prefix("cloud-server listening on ")
            .expect("listening line")
            .parse()
            .expect("address");
        ServerProc {
            child,
            addr,
            data: data.to_path_buf(),
            stdout: rx,
            _dir: None,
            extra: extra.to_vec(),
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        signal(self.child.id(), "TERM");
        let status = wait_timeout(&mut self.child, Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "server exits cleanly on SIGTERM"
        );
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new server process on the same data directory (new port).
    pub fn restart(&mut self) {
        let dir = self._dir.take();
        let fresh = Self::spawn(&self.data, &self.extra);
        let old = std::mem::replace(self, fresh);
        drop(old);
        self._dir = dir;
    }

    /// The next line the server printed on stdout.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// A user's visible folder on the server.
    pub fn user_dir(&self, user: &UserId) -> PathBuf {
        self.data.join("AllClients").join(user.to_string())
    }

    /// The connection log's text.
    pub fn conn_log(&self) -> String {
        std::fs::read_to_string(self.data.join("connectionLog.txt")).unwrap_or_default()
    }

    /// Waits until the connection log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.conn_log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never contained {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw protocol client over a blocking socket.
pub struct WireClient {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    pending: Vec<u8>,
    next_id: u32,
    pub user: UserId,
    pub client: u64,
    /// Notify frames seen while waiting for other replies.
    pub notifies: Vec<u64>,
}

/// The result of reading from a connection.
#[derive(Debug)]
pub enum Read1 {
    Frame(Frame),
    Closed,
    Timeout,
}

impl WireClient {
    /// Connects without a handshake.
    pub fn connect(addr: SocketAddr) -> WireClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        WireClient {
            stream,
            decoder: FrameDecoder::new(),
            pending: Vec::new(),
            next_id: 1,
            user: UserId::NONE,
            client: 0,
            notifies: Vec::new(),
        }
    }

    /// Connects and registers a new user.
    pub fn new_user(addr: SocketAddr) -> WireClient {
        let mut c = Self::connect(addr);
        c.hello(HelloMode::NewUser, UserId::NONE, 0)
            .expect("welcome");
        c
    }

    /// Connects as a new device of `user`.
    pub fn new_client(addr: SocketAddr, user: UserId) -> WireClient {
        let mut c = Self::connect(addr);
        c.hello(HelloMode::NewClient, user, 0).expect("welcome");
        c
    }

    /// Connects as a known device.
    pub fn resume(addr: SocketAddr, user: UserId, client: u64) -> WireClient {
        let mut c = Self::connect(addr);
        c.hello(HelloMode::Resume, user, client).expect("welcome");
        c
    }

    /// Sends a Hello and returns the Welcome or the Error report.
    pub fn hello(
        &mut self,
        mode: HelloMode,
        user: UserId,
        client: u64,
    ) -> Result<Welcome, ErrorReport> {
        let rid = self.send(Message::Hello(Hello {
            mode,
            user_id: user,
            client_id: client,
        }));
        match self.reply(rid) {
            Message::Welcome(w) => {
                self.user = w.user_id;
                self.client = w.client_id;
                Ok(w)
            }
            Message::Error(e) => Err(e),
            other => panic!("unexpected reply to Hello: {other:?}"),
        }
    }

    /// Sends a message with a fresh request ID; returns the ID.
    pub fn send(&mut self, message: Message) -> u32 {
        let rid = self.next_id;
        self.next_id += 1;
        self.send_with(rid, message);
        rid
    }

    /// Sends a message with a given request ID.
    pub fn send_with(&mut self, rid: u32, message: Message) {
        let bytes = Frame::new(rid, message).to_bytes();
        self.stream.write_all(&bytes).expect("send");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// Reads the next frame within `timeout`.
    pub fn read(&mut self, timeout: Duration) -> Read1 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut input: &[u8] = &self.pending;
            let status = self.decoder.feed(&mut input);
            let used = self.pending.len() - input.len();
            self.pending.drain(..used);
            match status {
                Ok(Status::Complete(frame)) => return Read1::Frame(frame),
                Ok(Status::Partial) => {}
                Err(e) => panic!("server sent a bad frame: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Read1::Timeout;
            }
            self.stream.set_read_timeout(Some(deadline - now)).ok();
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return Read1::Closed,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Read1::Timeout
                }
                Err(_) => return Read1::Closed,
            }
        }
    }

    /// The next frame, skipping (and remembering) Notify frames.
    pub fn next(&mut self) -> Frame {
        loop {
            match self.read(Duration::from_secs(10)) {
                Read1::Frame(Frame {
                    message: Message::Notify { head },
                    ..
                }) => self.notifies.push(head),
                Read1::Frame(frame) => return frame,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next reply, which must carry `rid`.
    pub fn reply(&mut self, rid: u32) -> Message {
        let frame = self.next();
        assert_eq!(
            frame.request_id, rid,
            "reply for the wrong request: {frame:?}"
        );
        frame.message
    }

    /// Waits for the server to close the connection (after any frames), and
    /// returns the frames it sent first.
    pub fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.read(Duration::from_secs(10)) {
                Read1::Frame(f) => frames.push(f),
                Read1::Closed => return frames,
                Read1::Timeout => panic!("server did not close; got {frames:?}"),
            }
        }
    }

    /// Uploads a whole file and returns the server's answer.
    pub fn put(&mut self, path: &str, content: &[u8], base: u64) -> Result<PushAck, ErrorReport> {
        let rid = self.send(Message::FileBegin(FileBegin {
            version: base,
            size: content.len() as u64,
            hash: ContentHash::of(content),
            path: p(path),
        }));
        for chunk in content.chunks(256 * 1024) {
            self.send_with(rid, Message::FileChunk(chunk.to_vec()));
        }
        self.send_with(rid, Message::FileEnd);
        match self.reply(rid) {
            Message::PushAck(a) => Ok(a),
            Message::Error(e) => Err(e),
            other => panic!("unexpected reply to an upload: {other:?}"),
        }
    }

    /// Sends one push message and returns the answer.
    pub fn push(&mut self, message: Message) -> Result<PushAck, ErrorReport> {
        let rid = self.send(message);
        match self.reply(rid) {
            Message::PushAck(a) => Ok(a),
            Message::Error(e) => Err(e),
            other => panic!("unexpected reply to a push: {other:?}"),
        }
    }

    /// Pulls after `cursor`: returns (head, full, entries).
    pub fn pull(&mut self, cursor: u64) -> (u64, bool, Vec<ChangeEntry>) {
        let rid = self.send(Message::Pull { cursor });
        let mut entries = Vec::new();
        loop {
            match self.reply(rid) {
                Message::ChangeBatch(ChangeBatch {
                    head,
                    full,
                    last,
                    entries: more,
                }) => {
                    entries.extend(more);
                    if last {
                        return (head, full, entries);
                    }
                }
                other => panic!("unexpected reply to a pull: {other:?}"),
            }
        }
    }

    /// Fetches a file: its bytes and the FileBegin, or the error.
    pub fn fetch(&mut self, path: &str) -> Result<(FileBegin, Vec<u8>), ErrorReport> {
        let rid = self.send(Message::Fetch(cloudservice::protocol::Fetch {
            version: 0,
            path: p(path),
        }));
        let begin = match self.reply(rid) {
            Message::FileBegin(b) => b,
            Message::Error(e) => return Err(e),
            other => panic!("unexpected reply to a fetch: {other:?}"),
        };
        let mut data = Vec::new();
        loop {
            match self.reply(rid) {
                Message::FileChunk(chunk) => data.extend_from_slice(&chunk),
                Message::FileEnd => return Ok((begin, data)),
                other => panic!("unexpected frame in a fetch reply: {other:?}"),
            }
        }
    }

    /// Waits for a Notify (or returns one already seen).
    pub fn wait_notify(&mut self, timeout: Duration) -> Option<u64> {
        if let Some(head) = self.notifies.pop() {
            return Some(head);
        }
        match self.read(timeout) {
            Read1::Frame(Frame {
                message: Message::Notify { head },
                ..
            }) => Some(head),
            _ => None,
        }
    }
}

/// A WirePath from a literal.
pub fn p(path: &str) -> WirePath {
    WirePath::new(path).expect("valid test path")
}

/// Encodes a frame by hand, for payloads the typed encoder refuses to build.
pub fn raw_frame(kind: u8, rid: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = b"CS\x01".to_vec();
    out.push(kind);
    out.extend_from_slice(&rid.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A path field with arbitrary bytes.
pub fn raw_path(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Asserts a message is an Error with `code`.
pub fn assert_error(message: &Message, code: ErrorCode) {
    match message {
        Message::Error(e) => assert_eq!(e.code, code, "error text: {}", e.message),
        other => panic!("expected Error {code:?}, got {other:?}"),
    }
}

/// Polls `check` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
