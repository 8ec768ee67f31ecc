//! A protocol client over a blocking socket that speaks through our own
//! codec ([`WireClient`]): typed requests and replies for the server tests
//! that check behaviour rather than bytes (those use [`super::raw`]).

use super::conn::Conn;
use super::raw::{read_some, Filled};
use cloudservice::chunk::chunk_reader;
use cloudservice::protocol::{
    ChangeBatch, ChangeEntry, ChunkData, ChunkRanges, ContentHash, ErrorCode, ErrorReport,
    FileBegin, Frame, FrameDecoder, Hello, HelloMode, Message, PushAck, PushStatus, SetMode,
    Status, UserId, Welcome, WirePath,
};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A raw protocol client over a blocking socket (inside TLS unless the
/// server is a plaintext one, see [`Conn`]).
pub struct WireClient {
    pub stream: Conn,
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
        Self::over(Conn::connect(addr))
    }

    /// Connects with frames on TCP whatever the server speaks (what a
    /// server refusing before TLS sends, R-12.4.5).
    pub fn connect_plain(addr: SocketAddr) -> WireClient {
        Self::over(Conn::connect_plain(addr))
    }

    fn over(stream: Conn) -> WireClient {
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

    /// Sends frames without panicking when the server has closed (the
    /// caller reads what it said before closing).
    pub fn try_send_frames(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
        self.stream.write_all(&bytes)
    }

    /// A fresh request ID, for [`WireClient::try_send_frames`].
    pub fn next_request_id(&mut self) -> u32 {
        let rid = self.next_id;
        self.next_id += 1;
        rid
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
            match read_some(&mut self.stream, &mut self.pending, deadline) {
                Filled::More => {}
                Filled::Closed => return Read1::Closed,
                Filled::Timeout => return Read1::Timeout,
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

    /// Reads the ChunksNeeded (`rid`) answer of a delta upload to its last
    /// frame (§13.3): the chunk indexes asked for, in order; `Err` with the
    /// first other message (an Error, ListBaseUnknown, …).
    pub fn chunks_needed(&mut self, rid: u32) -> Result<Vec<u32>, Message> {
        let mut needed = Vec::new();
        loop {
            match self.reply(rid) {
                Message::ChunksNeeded(ChunkRanges { last, ranges }) => {
                    for r in ranges {
                        needed.extend(r.first..r.first + r.count);
                    }
                    if last {
                        return Ok(needed);
                    }
                }
                other => return Err(other),
            }
        }
    }

    /// Ends a delta upload (§13.3): a ChunkData (`rid`) for each index of
    /// `needed`, cut from `content` by the reference chunker, then FileEnd.
    /// Returns the chunk bytes sent and the server's answer.
    pub fn send_chunks_and_end(
        &mut self,
        rid: u32,
        content: &[u8],
        needed: &[u32],
    ) -> (u64, Message) {
        let chunks: Vec<Vec<u8>> = chunk_reader(content).map(|x| x.expect("read").1).collect();
        let mut sent = 0;
        for &index in needed {
            let data = chunks[index as usize].clone();
            sent += data.len() as u64;
            self.send_with(rid, Message::ChunkData(ChunkData { index, data }));
        }
        self.send_with(rid, Message::FileEnd);
        (sent, self.reply(rid))
    }

    /// Sets or clears the executable bit of `path` on `base` (SetMode,
    /// §15.3), which must be Applied; the new version.
    pub fn set_mode(&mut self, path: &str, base: u64, executable: bool) -> u64 {
        let ack = self
            .push(Message::SetMode(SetMode {
                base_version: base,
                executable,
                path: WirePath::new(path).expect("path"),
            }))
            .expect("SetMode answered with a PushAck");
        assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
        ack.version
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

/// Asserts a message is an Error with `code`.
pub fn assert_error(message: &Message, code: ErrorCode) {
    match message {
        Message::Error(e) => assert_eq!(e.code, code, "error text: {}", e.message),
        other => panic!("expected Error {code:?}, got {other:?}"),
    }
}
