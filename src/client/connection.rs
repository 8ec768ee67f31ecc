//! One TCP connection to the server. A reader thread turns the byte stream
//! into frames (with the shared incremental decoder) and hands them over a
//! channel, so the client's loop can wait on the server, the watcher and its
//! timers at once; the writer side encodes frames straight onto the socket.
//! The channel holds at most [`INBOUND_BYTES`] of frames: past that the
//! reader stops reading and TCP holds the server back, so a server that
//! floods cannot grow the client's memory without bound.

use super::address::ServerAddress;
use super::error::{is_timeout, ClientError, Waited};
use super::link_watch::{kernel_gave_up, LinkWatch};
use super::pace::{self, Pace};
use super::secure::{self, Dial, ReadHalf, WriteHalf};
use super::sliced::{SendEvent, Sliced, SEND_SLICE};
use crate::protocol::message::put_header;
use crate::protocol::{
    ErrorCode, Frame, FrameDecoder, Hello, KeyHello, KeyWelcome, Kind, Message, Status, Welcome,
};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connect may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to answer the `Hello` (its own limit is 10 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Most bytes of frames (wire size plus `FRAME_OVERHEAD` each) waiting in
/// the reader channel. Well above what the client ever asks for at once —
/// a fetch window (`pull::FETCH_WINDOW_BYTES`, 8 MiB), the batch of a pull
/// reply being read (at most one 1 MiB payload), push acks and Notifies — so
/// in normal operation the reader never waits and the socket is always
/// drained even while the session thread is busy writing an upload.
pub const INBOUND_BYTES: usize = 16 * 1024 * 1024;
/// What a frame costs in the channel beyond its wire bytes (the decoded
/// value and its slot), so a flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;
/// How often a reader that is at [`INBOUND_BYTES`] looks again.
const FULL_POLL: Duration = Duration::from_millis(2);

/// What the reader thread reports.
#[derive(Debug)]
pub enum Inbound {
    /// A decoded frame.
    Frame(Frame),
    /// The connection ended (EOF, I/O error or undecodable bytes).
    Closed(String),
    /// The kernel gave the connection up (ETIMEDOUT): what it sent was
    /// never acknowledged ([`kernel_gave_up`] says it).
    TimedOut,
}

/// A live connection: the write half, and the channel the reader fills.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    writer: WriteHalf,
    rx: Receiver<Inbound>,
    reader: Option<JoinHandle<()>>,
    /// Tells a reader waiting for room in the channel to end.
    stop: Arc<AtomicBool>,
    next_id: u32,
    out: Vec<u8>,
    last_send: Instant,
    /// The server's signs of life and what this side waits for (the
    /// liveness rule, R-4.3.6), applied between the slices of every send.
    watch: LinkWatch,
    /// Frames read while waiting for one reply ([`Connection::wait_for`]),
    /// handed to the session before anything newer.
    early: std::collections::VecDeque<Frame>,
    /// What to record of the server's certificate once it accepts the
    /// Hello (taken then).
    trust: Option<secure::PendingTrust>,
    /// The server as `host:port`, for the errors that name it.
    address: String,
}

/// A TCP connection to the first of `addresses` that answers within
/// [`CONNECT_TIMEOUT`] each (as `TcpStream::connect` tries a name's
/// addresses), or the last one's error.
fn dial_first(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for address in addresses {
        match TcpStream::connect_timeout(address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Connection {
    /// Connects, shakes hands at the TLS layer (unless `dial` says
    /// plaintext) and starts the reader thread.
    ///
    /// The name is looked up at each call ([`ServerAddress::resolve`]), and
    /// the addresses it gives are tried in order.
    ///
    /// # Errors
    /// `Unreachable` with the lookup's or the last connect's I/O error; the
    /// TLS errors of [`secure::open`].
    ///
    /// Every wait (the connect, the TLS handshake) goes in slices of
    /// [`pace::SLICE`] with `pace` between them: the heartbeat beats, a stop
    /// request ends the attempt ([`ClientError::Stopping`]), `status` says
    /// the client is connecting; each step keeps its own limit.
    pub fn connect(
        server: &ServerAddress,
        dial: &Dial<'_>,
        pace: &mut Pace,
    ) -> Result<Connection, ClientError> {
        pace.start();
        let address = server.to_string();
        let unreachable = |cause| ClientError::Unreachable {
            address: server.to_string(),
            cause,
        };
        let timed_out = |during, after| ClientError::TimedOut {
            during,
            address: server.to_string(),
            after,
        };
        let addresses = server.resolve()?;
        let stream = pace::on_thread(pace, "connecting to the server", move || {
            dial_first(&addresses)
        })?
        .map_err(|e| {
            if is_timeout(&e) {
                timed_out(Waited::Connect, CONNECT_TIMEOUT)
            } else {
                unreachable(e)
            }
        })?;
        stream.set_nodelay(true).map_err(unreachable)?;
        // The TLS handshake waits in slices (`pace`), HANDSHAKE_TIMEOUT in all.
        stream
            .set_write_timeout(Some(pace::SLICE))
            .map_err(unreachable)?;
        stream
            .set_read_timeout(Some(pace::SLICE))
            .map_err(unreachable)?;
        let limit = Instant::now() + HANDSHAKE_TIMEOUT;
        let (read_half, writer, trust) =
            secure::open(&stream, dial, pace, limit).map_err(|e| match e {
                // secure::open knows the limit, not the port.
                ClientError::TimedOut { during, .. } => timed_out(during, HANDSHAKE_TIMEOUT),
                other => other,
            })?;
        stream.set_read_timeout(None).map_err(unreachable)?;
        // From now on every send is cut into slices (`sliced`): between
        // them the liveness rule runs and the heartbeat beats.
        stream
            .set_write_timeout(Some(SEND_SLICE))
            .map_err(unreachable)?;
        let watch_sock = stream.try_clone().map_err(unreachable)?;
        // Bounded in bytes by the reader itself (`InboundBudget`), not by
        // the channel: a frame-count bound would allow 1 MiB frames by the
        // thousand, and the session takes frames with `select!`, so it
        // cannot tell the reader when it took one.
        let (tx, rx) = crossbeam_channel::unbounded();
        let frames = rx.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let reader_stop = Arc::clone(&stop);
        let born = Instant::now();
        let heard_ms = Arc::new(AtomicU64::new(0));
        let heard = Heard {
            born,
            ms: Arc::clone(&heard_ms),
        };
        let reader = std::thread::Builder::new()
            .name("cloud-client-reader".into())
            .spawn(move || read_loop(read_half, tx, &reader_stop, &heard))
            .map_err(|e| ClientError::ConnectionLost(format!("reader thread: {e}")))?;
        Ok(Connection {
            stream,
            writer,
            rx,
            reader: Some(reader),
            stop,
            next_id: 1,
            out: Vec::with_capacity(64 * 1024),
            last_send: Instant::now(),
            watch: LinkWatch::new(watch_sock, born, heard_ms, frames),
            early: std::collections::VecDeque::new(),
            trust: Some(trust),
            address,
        })
    }

    /// Records the server's trust this dial saw ([`secure::PendingTrust`]):
    /// called when the server accepted the Hello, never before.
    fn trust_accepted(&mut self) -> Result<(), ClientError> {
        match self.trust.take() {
            Some(trust) => trust.record(),
            None => Ok(()),
        }
    }

    /// The connection's liveness watch (signs of the server, what this
    /// side waits for).
    pub fn watch(&self) -> &LinkWatch {
        &self.watch
    }

    /// The same, to note pings, frames taken and what is awaited.
    pub fn watch_mut(&mut self) -> &mut LinkWatch {
        &mut self.watch
    }

    /// Sends a Ping and notes it in the watch; returns its request ID.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn ping(&mut self) -> Result<u32, ClientError> {
        let id = self.request(Message::Ping)?;
        self.watch.ping_sent(id, Instant::now());
        Ok(id)
    }

    /// [`kernel_gave_up`] for this connection, now.
    pub fn kernel_gave_up(&self) -> String {
        kernel_gave_up(self.watch.silent_for(Instant::now()))
    }

    /// The frames from the server.
    pub fn inbound(&self) -> &Receiver<Inbound> {
        &self.rx
    }

    /// The oldest frame read early by [`Connection::wait_for`], if any: the
    /// session takes these before reading the channel, so order is kept.
    pub fn take_early(&mut self) -> Option<Frame> {
        self.early.pop_front()
    }

    /// Puts a frame at the end of the early frames (a reply `wait_for` took
    /// that the session must still see).
    pub fn push_early(&mut self, request_id: u32, message: Message) {
        self.early.push_back(Frame::new(request_id, message));
    }

    /// The early frames, oldest first.
    pub fn early_frames(&self) -> impl Iterator<Item = &Frame> {
        self.early.iter()
    }

    /// Reads frames until one for `request_id` arrives and returns it; every
    /// other frame is kept, in order, for [`Connection::take_early`]. Used by
    /// a delta upload, which must see `ChunksNeeded` before it can go on.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] when the connection ends or nothing
    /// comes within `timeout`.
    pub fn wait_for(&mut self, request_id: u32, timeout: Duration) -> Result<Frame, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::ConnectionLost(format!(
                    "no reply to request {request_id} within {timeout:?}"
                )));
            }
            // In slices: the session loop does not turn meanwhile, so the
            // watch beats and applies the liveness rule between them.
            match self.rx.recv_timeout(left.min(SEND_SLICE)) {
                Ok(Inbound::Frame(frame)) => {
                    self.watch.frame_taken(Instant::now());
                    if frame.request_id == request_id {
                        return Ok(frame);
                    }
                    self.early.push_back(frame);
                }
                Ok(Inbound::Closed(why)) => return Err(ClientError::ConnectionLost(why)),
                Ok(Inbound::TimedOut) => {
                    return Err(ClientError::ConnectionLost(self.kernel_gave_up()))
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.watch.between_slices(true)?
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::ConnectionLost("reader stopped".into()))
                }
            }
        }
    }

    /// When the client last sent anything (for keep-alive pings).
    pub fn last_send(&self) -> Instant {
        self.last_send
    }

    /// A fresh request ID (never 0, which `Notify` uses).
    pub fn next_request_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Sends a message under a fresh request ID and returns the ID.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] when the write fails.
    pub fn request(&mut self, message: Message) -> Result<u32, ClientError> {
        let id = self.next_request_id();
        self.send(id, &message)?;
        Ok(id)
    }

    /// Sends a message under a given request ID.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] when the write fails.
    pub fn send(&mut self, request_id: u32, message: &Message) -> Result<(), ClientError> {
        self.out.clear();
        Frame::new(request_id, message.clone()).encode(&mut self.out);
        self.flush_out()
    }

    /// Sends file bytes as a `FileChunk` without copying them into a message.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] when the write fails.
    pub fn send_chunk(&mut self, request_id: u32, data: &[u8]) -> Result<(), ClientError> {
        self.out.clear();
        put_header(
            &mut self.out,
            Kind::FileChunk,
            request_id,
            data.len() as u32,
        );
        let watch = &mut self.watch;
        let mut on = |ev: SendEvent| watch.on_send(ev);
        // Header and data as one stream: over TLS one run of records and
        // one send, not a record and a send for the 12 header bytes.
        let sent = self.writer.write_frame(&self.out, data, &mut on);
        if let Err(e) = sent {
            return Err(self.write_error(e));
        }
        self.last_send = Instant::now();
        Ok(())
    }

    fn flush_out(&mut self) -> Result<(), ClientError> {
        let watch = &mut self.watch;
        let sent = self
            .writer
            .write_all(&self.out, &mut |ev| watch.on_send(ev));
        if let Err(e) = sent {
            return Err(self.write_error(e));
        }
        self.last_send = Instant::now();
        Ok(())
    }

    /// A failed write as the user reads it: the liveness rule's own line
    /// when it gave the connection up ([`LinkWatch::on_send`]), the
    /// client's words when the kernel did (ETIMEDOUT), never EAGAIN's text.
    fn write_error(&self, e: Sliced<ClientError>) -> ClientError {
        match e {
            Sliced::Stopped(e) => e,
            Sliced::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                ClientError::ConnectionLost(self.kernel_gave_up())
            }
            Sliced::Io(e) => ClientError::ConnectionLost(format!("write: {e}")),
        }
    }

    /// Sends `hello` and waits for the `Welcome`.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the server answers with an error (unknown
    /// user or client, busy, shutting down); `ConnectionLost` or `Protocol`
    /// for anything else.
    pub fn handshake(&mut self, hello: Hello, pace: &mut Pace) -> Result<Welcome, ClientError> {
        match self.exchange(Message::Hello(hello), pace)? {
            Message::Welcome(welcome) => {
                self.trust_accepted()?;
                Ok(welcome)
            }
            other => Err(unexpected("Welcome", &other)),
        }
    }

    /// Sends a `KeyHello` (PROTOCOL.md §4.6) and waits for the `KeyWelcome`.
    ///
    /// # Errors
    /// As [`Connection::handshake`]; a revoked device or a refused key is
    /// [`ClientError::Refused`] with code `Revoked` or `BadCredential`.
    pub fn handshake_key(
        &mut self,
        hello: KeyHello,
        pace: &mut Pace,
    ) -> Result<KeyWelcome, ClientError> {
        match self.exchange(Message::KeyHello(hello), pace)? {
            Message::KeyWelcome(welcome) => {
                self.trust_accepted()?;
                Ok(welcome)
            }
            other => Err(unexpected("KeyWelcome", &other)),
        }
    }

    /// Sends a handshake frame; returns the answer with the same request
    /// ID, or the Error the server refused it with. The answer is awaited
    /// in slices ([`Pace::slice`] between them), [`HANDSHAKE_TIMEOUT`] in all.
    fn exchange(&mut self, hello: Message, pace: &mut Pace) -> Result<Message, ClientError> {
        let id = self.next_request_id();
        self.send(id, &hello)?;
        let limit = Instant::now() + HANDSHAKE_TIMEOUT;
        let frame = loop {
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::TimedOut {
                    during: Waited::HelloAnswer,
                    address: self.address.clone(),
                    after: HANDSHAKE_TIMEOUT,
                });
            }
            match self.rx.recv_timeout(left.min(pace::SLICE)) {
                Ok(Inbound::Frame(frame)) => break frame,
                Ok(Inbound::Closed(why)) => return Err(ClientError::ConnectionLost(why)),
                Ok(Inbound::TimedOut) => {
                    return Err(ClientError::ConnectionLost(self.kernel_gave_up()))
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    pace.slice("waiting for the server to answer the Hello")?
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::ConnectionLost("reader stopped".into()))
                }
            }
        };
        match frame.message {
            Message::Error(report) => Err(ClientError::Refused {
                code: report.code,
                message: report.message,
            }),
            other if frame.request_id == id => Ok(other),
            other => Err(unexpected("an answer to the handshake", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &Message) -> ClientError {
    ClientError::Protocol(format!("expected {wanted}, got {:?}", got.kind()))
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.writer.close();
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// True for server error codes after which the server closes the connection.
pub fn closes_connection(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::HashMismatch
            | ErrorCode::SizeMismatch
            | ErrorCode::Storage
            | ErrorCode::NoSpace
            | ErrorCode::NotFound
            | ErrorCode::Unstorable
            | ErrorCode::NoSuchVersion
    )
}

/// The bytes of frames the reader put into the channel that the session
/// has not taken yet. The channel is FIFO, so when it holds `n` messages
/// they are the last `n` sent: the sizes of older ones are given back.
#[derive(Debug, Default)]
struct InboundBudget {
    sizes: VecDeque<usize>,
    bytes: usize,
}

impl InboundBudget {
    /// Forgets the frames the session has taken (`in_channel` still wait).
    fn settle(&mut self, in_channel: usize) {
        while self.sizes.len() > in_channel {
            if let Some(size) = self.sizes.pop_front() {
                self.bytes -= size;
            }
        }
    }

    /// Whether a frame of `size` fits now (one always fits an empty channel).
    fn has_room(&self, size: usize) -> bool {
        self.bytes == 0 || self.bytes + size <= INBOUND_BYTES
    }

    /// A frame of `size` went into the channel.
    fn sent(&mut self, size: usize) {
        self.sizes.push_back(size);
        self.bytes += size;
    }
}

/// Sends one frame of `size` bytes, first waiting (without reading the
/// socket) until the channel has room. Returns false when the reader must
/// end: the session is gone or the connection is being dropped.
fn deliver(
    tx: &Sender<Inbound>,
    budget: &mut InboundBudget,
    frame: Frame,
    size: usize,
    stop: &AtomicBool,
) -> bool {
    budget.settle(tx.len());
    while !budget.has_room(size) {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(FULL_POLL);
        budget.settle(tx.len());
    }
    budget.sent(size);
    tx.send(Inbound::Frame(frame)).is_ok()
}

/// Where the reader thread notes when it read the last byte.
struct Heard {
    born: Instant,
    ms: Arc<AtomicU64>,
}

impl Heard {
    fn now(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ms.store(ms, Ordering::Relaxed);
    }
}

fn read_loop(mut stream: ReadHalf, tx: Sender<Inbound>, stop: &AtomicBool, heard: &Heard) {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut budget = InboundBudget::default();
    // Wire bytes of the frame being decoded so far.
    let mut frame_bytes = 0usize;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Inbound::Closed("server closed the connection".into()));
                return;
            }
            Ok(n) => {
                heard.now();
                n
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // The kernel gave up (its retransmissions or probes went
                // unanswered): the session says so in its own words.
                let _ = tx.send(Inbound::TimedOut);
                return;
            }
            Err(e) => {
                let _ = tx.send(Inbound::Closed(format!("read: {e}")));
                return;
            }
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            let before = input.len();
            let status = decoder.feed(&mut input);
            frame_bytes += before - input.len();
            match status {
                Ok(Status::Complete(frame)) => {
                    let size = std::mem::take(&mut frame_bytes) + FRAME_OVERHEAD;
                    if !deliver(&tx, &mut budget, frame, size, stop) {
                        return;
                    }
                }
                Ok(Status::Partial) => break,
                Err(e) => {
                    // The session ends the connection (and the socket) on this.
                    let _ = tx.send(Inbound::Closed(format!("bad frame from server: {e}")));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::secure::LinkSecurity;
    use std::io::Write;

    fn plaintext_dial(state: &std::path::Path) -> Dial<'static> {
        Dial {
            security: &LinkSecurity::Plaintext,
            host: "127.0.0.1",
            state_dir: state.to_owned(),
            user: None,
        }
    }
    use crate::protocol::{HelloMode, UserId};
    use std::net::TcpListener;

    #[test]
    fn handshake_and_frames_split_anyhow() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut decoder = FrameDecoder::new();
            let mut buf = [0u8; 256];
            let hello = loop {
                let n = sock.read(&mut buf).unwrap();
                let mut input = &buf[..n];
                if let Ok(Status::Complete(f)) = decoder.feed(&mut input) {
                    break f;
                }
            };
            let welcome = Frame::new(
                hello.request_id,
                Message::Welcome(Welcome {
                    user_id: UserId([9; 16]),
                    client_id: 4,
                    head: 12,
                }),
            )
            .to_bytes();
            let notify = Frame::new(0, Message::Notify { head: 13 }).to_bytes();
            let all = [welcome, notify].concat();
            // One byte at a time: the reader must reassemble.
            for b in all {
                sock.write_all(&[b]).unwrap();
            }
        });
        let state = tempfile::tempdir().unwrap();
        let mut conn = Connection::connect(
            &ServerAddress::new("127.0.0.1", addr.port()),
            &plaintext_dial(state.path()),
            &mut Pace::default(),
        )
        .unwrap();
        let welcome = conn
            .handshake(
                Hello {
                    mode: HelloMode::NewUser,
                    user_id: UserId::NONE,
                    client_id: 0,
                },
                &mut Pace::default(),
            )
            .unwrap();
        assert_eq!(welcome.client_id, 4);
        match conn.inbound().recv_timeout(Duration::from_secs(5)).unwrap() {
            Inbound::Frame(f) => assert_eq!(f.message, Message::Notify { head: 13 }),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
        assert!(matches!(
            conn.inbound().recv_timeout(Duration::from_secs(5)).unwrap(),
            Inbound::Closed(_)
        ));
    }

    /// A server that sends and sends (here 256 KiB FileChunks) to a client
    /// whose session is busy: the client takes at most `INBOUND_BYTES` plus
    /// what the kernel buffers hold, then TCP stops the server; once the
    /// session reads again, every frame arrives, in order.
    #[test]
    fn a_flooding_server_cannot_grow_the_reader_channel_without_bound() {
        const FLOOD: usize = 256 * 1024 * 1024;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frame = |i: usize| Frame::new(1, Message::FileChunk(vec![i as u8; 256 * 1024]));
        let frame_len = frame(0).to_bytes().len();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_write_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut written = 0usize;
            let mut i = 0usize;
            'flood: while written < FLOOD {
                let bytes = frame(i).to_bytes();
                let mut at = 0;
                while at < bytes.len() {
                    match sock.write(&bytes[at..]) {
                        Ok(n) => at += n,
                        // Blocked for 2 s: the client stopped reading.
                        Err(_) => break 'flood,
                    }
                }
                written += bytes.len();
                i += 1;
            }
            written
        });
        let state = tempfile::tempdir().unwrap();
        let conn = Connection::connect(
            &ServerAddress::new("127.0.0.1", addr.port()),
            &plaintext_dial(state.path()),
            &mut Pace::default(),
        )
        .unwrap();
        let written = server.join().unwrap();
        let slack = 48 * 1024 * 1024; // loopback socket buffers, both ends
        assert!(
            written <= INBOUND_BYTES + slack,
            "the server wrote {} MiB into a client that was not reading",
            written >> 20
        );
        // Nothing lost: every complete frame arrives, in order.
        let mut got = 0usize;
        loop {
            match conn.inbound().recv_timeout(Duration::from_secs(10)) {
                Ok(Inbound::Frame(f)) => {
                    assert_eq!(f.message, frame(got).message, "frame {got}");
                    got += 1;
                }
                Ok(Inbound::Closed(_) | Inbound::TimedOut) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, written / frame_len);
    }

    #[test]
    fn the_budget_gives_back_what_the_session_took() {
        let mut budget = InboundBudget::default();
        assert!(
            budget.has_room(INBOUND_BYTES * 2),
            "an empty channel takes any frame"
        );
        budget.sent(INBOUND_BYTES / 2);
        budget.sent(INBOUND_BYTES / 2);
        assert!(!budget.has_room(1));
        budget.settle(1);
        assert!(budget.has_room(INBOUND_BYTES / 2));
        assert!(!budget.has_room(INBOUND_BYTES / 2 + 1));
        budget.settle(0);
        assert_eq!(budget.bytes, 0);
    }
}
