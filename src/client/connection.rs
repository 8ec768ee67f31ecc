//! One TCP connection to the server. A reader thread turns the byte stream
//! into frames (with the shared incremental decoder) and hands them over a
//! channel, so the client's loop can wait on the server, the watcher and its
//! timers at once; the writer side encodes frames straight onto the socket.

use super::error::ClientError;
use super::secure::{self, Dial, ReadHalf, WriteHalf};
use crate::protocol::message::put_header;
use crate::protocol::{ErrorCode, Frame, FrameDecoder, Hello, Kind, Message, Status, Welcome};
use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connect may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to answer the `Hello` (its own limit is 10 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// A write blocked this long means the server is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the reader thread reports.
#[derive(Debug)]
pub enum Inbound {
    /// A decoded frame.
    Frame(Frame),
    /// The connection ended (EOF, I/O error or undecodable bytes).
    Closed(String),
}

/// A live connection: the write half, and the channel the reader fills.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    writer: WriteHalf,
    rx: Receiver<Inbound>,
    reader: Option<JoinHandle<()>>,
    next_id: u32,
    out: Vec<u8>,
    last_send: Instant,
}

impl Connection {
    /// Connects, shakes hands at the TLS layer (unless `dial` says
    /// plaintext) and starts the reader thread.
    ///
    /// # Errors
    /// `Unreachable` with the connect's I/O error; the TLS errors of
    /// [`secure::open`].
    pub fn connect(addr: SocketAddr, dial: &Dial<'_>) -> Result<Connection, ClientError> {
        let unreachable = |cause| ClientError::Unreachable {
            address: addr.to_string(),
            cause,
        };
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(unreachable)?;
        // The TLS handshake must not wait forever on a silent peer.
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(unreachable)?;
        let (read_half, writer) = secure::open(&stream, dial)?;
        stream.set_read_timeout(None).map_err(unreachable)?;
        // Unbounded on purpose: the reader must never stop draining the socket
        // (the server could then stop reading ours and both would wait). What
        // can pile up is bounded by what the client asked for: push acks, one
        // pull reply, and a window of fetches (see `pull::FETCH_WINDOW_BYTES`).
        let (tx, rx) = crossbeam_channel::unbounded();
        let reader = std::thread::Builder::new()
            .name("cloud-client-reader".into())
            .spawn(move || read_loop(read_half, tx))
            .map_err(|e| ClientError::ConnectionLost(format!("reader thread: {e}")))?;
        Ok(Connection {
            stream,
            writer,
            rx,
            reader: Some(reader),
            next_id: 1,
            out: Vec::with_capacity(64 * 1024),
            last_send: Instant::now(),
        })
    }

    /// The frames from the server.
    pub fn inbound(&self) -> &Receiver<Inbound> {
        &self.rx
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
        self.writer
            .write_all(&self.out)
            .and_then(|()| self.writer.write_all(data))
            .map_err(|e| ClientError::ConnectionLost(format!("write: {e}")))?;
        self.last_send = Instant::now();
        Ok(())
    }

    fn flush_out(&mut self) -> Result<(), ClientError> {
        self.writer
            .write_all(&self.out)
            .map_err(|e| ClientError::ConnectionLost(format!("write: {e}")))?;
        self.last_send = Instant::now();
        Ok(())
    }

    /// Sends `hello` and waits for the `Welcome`.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the server answers with an error (unknown
    /// user or client, busy, shutting down); `ConnectionLost` or `Protocol`
    /// for anything else.
    pub fn handshake(&mut self, hello: Hello) -> Result<Welcome, ClientError> {
        let id = self.next_request_id();
        self.send(id, &Message::Hello(hello))?;
        let frame = match self.rx.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Inbound::Frame(frame)) => frame,
            Ok(Inbound::Closed(why)) => return Err(ClientError::ConnectionLost(why)),
            Err(_) => {
                return Err(ClientError::ConnectionLost(
                    "no answer to the handshake".into(),
                ))
            }
        };
        match frame.message {
            Message::Welcome(welcome) if frame.request_id == id => Ok(welcome),
            Message::Error(report) => Err(ClientError::Refused {
                code: report.code,
                message: report.message,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected Welcome, got {:?}",
                other.kind()
            ))),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
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
            | ErrorCode::NotFound
            | ErrorCode::Unstorable
    )
}

fn read_loop(mut stream: ReadHalf, tx: Sender<Inbound>) {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Inbound::Closed("server closed the connection".into()));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Inbound::Closed(format!("read: {e}")));
                return;
            }
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            match decoder.feed(&mut input) {
                Ok(Status::Complete(frame)) => {
                    if tx.send(Inbound::Frame(frame)).is_err() {
                        return;
                    }
                }
                Ok(Status::Partial) => break,
                Err(e) => {
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
    use crate::protocol::{HelloMode, UserId};
    use std::io::Write;
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
        let dial = Dial {
            security: &LinkSecurity::Plaintext,
            host: "127.0.0.1",
            state_dir: state.path().to_owned(),
            user: None,
        };
        let mut conn = Connection::connect(addr, &dial).unwrap();
        let welcome = conn
            .handshake(Hello {
                mode: HelloMode::NewUser,
                user_id: UserId::NONE,
                client_id: 0,
            })
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
}
