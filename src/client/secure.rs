//! The client's side of the TLS layer (PROTOCOL.md §12): connects, shakes
//! hands (blocking, before the reader thread starts), applies the folder's
//! trust (first use recorded in `.cloudservice/known_server`, a pinned
//! fingerprint, or a CA), and splits the connection into a read half for the
//! reader thread and a write half for the session.
//!
//! The halves share the rustls connection under a mutex that is never held
//! across a blocking socket call: the reader thread reads ciphertext without
//! it; the writer encrypts under it, sends what the socket takes at once
//! without blocking (`MSG_DONTWAIT`), copies the rest into a buffer and
//! writes that without it. So the reader never stops draining the socket
//! while a write blocks.

use super::error::ClientError;
use super::pace::Pace;
use super::sliced::{write_sliced, SendEvent, Sliced};
use super::Config;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::{ErrorCode, FrameDecoder, Message, Status, UserId};
use crate::tls::config::client_config;
use crate::tls::routing::sni_for;
use crate::tls::sniff::{sniff, Sniffed};
use crate::tls::trust::{
    load_roots, record_ca, record_fingerprint, recorded_trust, RecordedTrust, TrustPolicy,
    TrustVerifier, KNOWN_SERVER_FILE, TRUSTED_CA_FILE,
};
use crate::tls::Fingerprint;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the connection to the server is protected (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSecurity {
    /// `--insecure-plaintext`: frames straight on TCP.
    Plaintext,
    /// TLS 1.3 (the default).
    Tls {
        /// `--server-fingerprint HEX`: require exactly this certificate.
        pin: Option<Fingerprint>,
        /// `--ca FILE`: require a chain to these roots for the server's name.
        ca: Option<PathBuf>,
    },
}

/// What [`open`] needs to know about this dial.
pub struct Dial<'a> {
    /// Protection.
    pub security: &'a LinkSecurity,
    /// The server's name as typed (checked against a CA-signed certificate).
    pub host: &'a str,
    /// The folder's state directory (where `known_server` lives).
    pub state_dir: PathBuf,
    /// The user, for the SNI routing key (none yet for a new user).
    pub user: Option<UserId>,
}

impl Config {
    /// The dial for a connection of `user` (none for a new user).
    pub fn dial(&self, user: Option<UserId>) -> Dial<'_> {
        Dial {
            security: &self.security,
            host: self.server.host(),
            state_dir: self.folder.join(STATE_DIR_NAME),
            user,
        }
    }
}

/// The reading half (plaintext out).
pub enum ReadHalf {
    /// A clone of the socket.
    Plain(TcpStream),
    /// The socket clone and the shared TLS state.
    Tls(TlsReader),
}

impl std::fmt::Debug for WriteHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteHalf::Plain(_) => "WriteHalf::Plain",
            WriteHalf::Tls { .. } => "WriteHalf::Tls",
        })
    }
}

/// The writing half (plaintext in).
pub enum WriteHalf {
    /// The socket.
    Plain(TcpStream),
    /// The socket and the shared TLS state.
    Tls {
        /// The socket.
        sock: TcpStream,
        /// Shared with the reader.
        tls: Arc<Mutex<ClientConnection>>,
        /// Ciphertext staged outside the lock.
        staged: Vec<u8>,
    },
}

/// The fingerprint a first use saw (no `--server-fingerprint`, no `--ca`,
/// nothing recorded), to record in `known_server` by
/// [`PendingTrust::record`] only once the server accepted the device's
/// Hello (README "Trust on first use", PROTOCOL.md ): a first join
/// the server refuses (a wrong join code, a revoked device, too many
/// attempts) trusts nothing, so pointing the folder at the right server
/// next is a first use again, not "the certificate changed". A trust the
/// user gave (a pin, a CA) is recorded before connecting ([`record_given`]).
#[derive(Debug, Default)]
pub struct PendingTrust {
    state_dir: PathBuf,
    first_use: Option<Fingerprint>,
}

impl PendingTrust {
    /// Writes the first use's fingerprint into the folder's state directory.
    ///
    /// # Errors
    /// [`ClientError::CorruptState`] naming the file that could not be written.
    pub fn record(self) -> Result<(), ClientError> {
        if let Some(seen) = self.first_use {
            record_fingerprint(&self.state_dir, seen).map_err(|e| ClientError::CorruptState {
                file: self.state_dir.join(KNOWN_SERVER_FILE),
                detail: e.to_string(),
            })?;
            log::info!("trusting the server's certificate {seen} from now on (first use)");
        }
        Ok(())
    }
}

/// Records the trust given on the command line (`--server-fingerprint`,
/// `--ca`) in the folder's state directory `state_dir`, before the first
/// connection (README "Trust on first use", PROTOCOL.md ): a user
/// who typed a pin expects it enforced by the next run too, whatever this
/// one meets. Recorded only at the handshake, a first run that could not
/// reach the server, was refused, or met another certificate (the very
/// case a pin is for) kept nothing, and the next run without the option
/// trusted on first use whatever answered (breaker13's L1). Nothing for
/// plaintext, or when neither option was given.
///
/// # Errors
/// [`ClientError::Tls`] when the `--ca` file cannot be read or holds no
/// certificate; [`ClientError::CorruptState`] naming the state file that
/// could not be written.
pub fn record_given(state_dir: &Path, security: &LinkSecurity) -> Result<(), ClientError> {
    let LinkSecurity::Tls { pin, ca } = security else {
        return Ok(());
    };
    if let Some(pin) = pin {
        return record_fingerprint(state_dir, *pin).map_err(|e| ClientError::CorruptState {
            file: state_dir.join(KNOWN_SERVER_FILE),
            detail: e.to_string(),
        });
    }
    if let Some(ca) = ca {
        load_roots(ca).map_err(|e| ClientError::Tls(e.to_string()))?;
        let pem =
            std::fs::read(ca).map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
        record_ca(state_dir, &pem).map_err(|e| ClientError::CorruptState {
            file: state_dir.join(TRUSTED_CA_FILE),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// Shakes hands on a connected blocking socket (when TLS) and splits it;
/// records a pin or a CA given on the command line, and returns the first
/// use's fingerprint to record once the Hello is accepted ([`PendingTrust`];
/// nothing for plaintext).
///
/// # Errors
/// `Untrusted` when the certificate fails the folder's trust;
/// `TransportMismatch` when the server answers in plaintext;
/// `TimedOut` when the server says nothing for the socket's read timeout;
/// `ConnectionLost` for anything else (retried while running).
///
/// The socket's timeouts are slices ([`crate::client::pace::SLICE`]): the
/// handshake waits until `limit`, with `pace` between the slices (a stop
/// request ends it: [`ClientError::Stopping`]).
pub fn open(
    stream: &TcpStream,
    dial: &Dial<'_>,
    pace: &mut Pace,
    limit: Instant,
) -> Result<(ReadHalf, WriteHalf, PendingTrust), ClientError> {
    let clone = || {
        stream
            .try_clone()
            .map_err(|e| ClientError::ConnectionLost(format!("socket: {e}")))
    };
    let LinkSecurity::Tls { pin, ca } = dial.security else {
        refuse_plaintext_if_tls_trusted(&dial.state_dir)?;
        return Ok((
            ReadHalf::Plain(clone()?),
            WriteHalf::Plain(clone()?),
            PendingTrust::default(),
        ));
    };
    let (policy, ca_pem) = policy(dial, *pin, ca.as_deref())?;
    let first_use = matches!(policy, TrustPolicy::FirstUse { known: None });
    let verifier = Arc::new(TrustVerifier::new(policy));
    let config = client_config(verifier.clone()).map_err(tls_lost)?;
    let sni =
        ServerName::try_from(sni_for(dial.user.as_ref())).map_err(|e| tls_lost(e.to_string()))?;
    let mut tls = ClientConnection::new(config, sni).map_err(tls_lost)?;
    tls.set_buffer_limit(None);
    let mut recorder = Recorder {
        sock: clone()?,
        first: Vec::new(),
        pace,
        limit,
        stopped: None,
    };
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut recorder) {
            if let Some(stopped) = recorder.stopped.take() {
                return Err(stopped);
            }
            return Err(handshake_error(e, &verifier, &recorder.first));
        }
    }
    // What the user said to trust is recorded now; what a
    // first use saw waits for the server's Welcome.
    if let (Some(_), Some(seen)) = (pin, verifier.seen()) {
        record_fingerprint(&dial.state_dir, seen).map_err(|e| ClientError::CorruptState {
            file: dial.state_dir.join(KNOWN_SERVER_FILE),
            detail: e.to_string(),
        })?;
    }
    if let Some(pem) = ca_pem {
        record_ca(&dial.state_dir, &pem).map_err(|e| ClientError::CorruptState {
            file: dial.state_dir.join(TRUSTED_CA_FILE),
            detail: e.to_string(),
        })?;
    }
    let pending = PendingTrust {
        state_dir: dial.state_dir.clone(),
        first_use: verifier.seen().filter(|_| first_use),
    };
    let tls = Arc::new(Mutex::new(tls));
    let reader = TlsReader {
        sock: clone()?,
        tls: Arc::clone(&tls),
        raw: vec![0; 64 * 1024],
        start: 0,
        end: 0,
    };
    let writer = WriteHalf::Tls {
        sock: clone()?,
        tls,
        staged: Vec::new(),
    };
    Ok((ReadHalf::Tls(reader), writer, pending))
}

/// The trust this dial applies, and the CA file's bytes to record once the
/// handshake succeeded (`--ca` given). The command line wins; without it,
/// what the folder recorded (a CA, or a fingerprint); with nothing
/// recorded, first use.
fn policy(
    dial: &Dial<'_>,
    pin: Option<Fingerprint>,
    ca: Option<&Path>,
) -> Result<(TrustPolicy, Option<Vec<u8>>), ClientError> {
    if let Some(pin) = pin {
        return Ok((TrustPolicy::Pinned(pin), None));
    }
    if let Some(ca) = ca {
        let pem =
            std::fs::read(ca).map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
        return Ok((ca_policy(dial, ca)?, Some(pem)));
    }
    let recorded = recorded_trust(&dial.state_dir).map_err(|e| ClientError::CorruptState {
        file: dial.state_dir.join(KNOWN_SERVER_FILE),
        detail: e.to_string(),
    })?;
    Ok(match recorded {
        RecordedTrust::Ca(path) => (ca_policy(dial, &path)?, None),
        RecordedTrust::Fingerprint(known) => (TrustPolicy::FirstUse { known: Some(known) }, None),
        RecordedTrust::Nothing => (TrustPolicy::FirstUse { known: None }, None),
    })
}

/// A chain to the CA certificates in `pem_file` for the dialled name.
fn ca_policy(dial: &Dial<'_>, pem_file: &Path) -> Result<TrustPolicy, ClientError> {
    let roots = load_roots(pem_file).map_err(|e| ClientError::Tls(e.to_string()))?;
    let host = ServerName::try_from(dial.host.to_owned())
        .map_err(|e| ClientError::Tls(format!("server name {:?}: {e}", dial.host)))?;
    Ok(TrustPolicy::Ca {
        roots: Arc::new(roots),
        host,
    })
}

/// A folder that trusts a TLS server (it recorded a fingerprint or a CA)
/// never speaks plaintext: its first frame would carry the user ID and the
/// device key in clear to whoever listens (an impostor, or a sniffer).
///
/// # Errors
/// [`ClientError::TransportMismatch`] (fatal: exit 1) saying what to remove
/// if the server really changed to `--insecure-plaintext`.
fn refuse_plaintext_if_tls_trusted(state_dir: &Path) -> Result<(), ClientError> {
    let file = match recorded_trust(state_dir) {
        Ok(RecordedTrust::Nothing) => return Ok(()),
        Ok(RecordedTrust::Ca(path)) => path,
        Ok(RecordedTrust::Fingerprint(_)) | Err(_) => state_dir.join(KNOWN_SERVER_FILE),
    };
    Err(ClientError::TransportMismatch(format!(
        "this folder talks to its server over TLS ({} records how the server is trusted); \
         refusing --insecure-plaintext, which would send its user ID and device key in clear. \
         If the server really runs without TLS now, delete that file and run again",
        file.display()
    )))
}

fn tls_lost(e: impl std::fmt::Display) -> ClientError {
    ClientError::ConnectionLost(format!("TLS: {e}"))
}

/// Explains a failed handshake: an untrusted certificate, a plaintext
/// server (its first bytes are a frame, perhaps an `Error` saying why), or
/// the transport's own error.
fn handshake_error(e: io::Error, verifier: &TrustVerifier, first: &[u8]) -> ClientError {
    if let Some(failure) = verifier.failure() {
        return ClientError::Untrusted(failure);
    }
    if super::error::is_timeout(&e) && sniff(first) != Sniffed::Plaintext {
        // Nothing (or part of a handshake) came back within the socket's
        // read timeout: a black hole, or a server stuck part-way.
        // Connection::connect fills in the address and the limit.
        return ClientError::TimedOut {
            during: super::error::Waited::TlsHandshake,
            address: String::new(),
            after: Duration::ZERO,
        };
    }
    if sniff(first) == Sniffed::Plaintext {
        let mut decoder = FrameDecoder::new();
        let mut input = first;
        let report = match decoder.feed(&mut input) {
            Ok(Status::Complete(frame)) => match frame.message {
                Message::Error(report) => Some(report),
                _ => None,
            },
            _ => None,
        };
        // A TLS server at its connection limit (or shutting down) answers
        // before any handshake, in plaintext: that is a refusal to retry,
        // not a server without TLS.
        if let Some(report) = &report {
            if matches!(report.code, ErrorCode::Busy | ErrorCode::ShuttingDown) {
                return ClientError::Refused {
                    code: report.code,
                    message: report.message.clone(),
                };
            }
        }
        let said = report.map_or_else(String::new, |r| format!(" (saying: {})", r.message));
        return ClientError::TransportMismatch(format!(
            "the server answered in plaintext, not TLS{said}; it runs with \
             --insecure-plaintext, and a client talks to it only with the same option"
        ));
    }
    tls_lost(e)
}

/// Reads through to the socket, keeping the first bytes received. The
/// socket's timeouts are slices: a slice that ends with nothing moved is
/// waited again, with `pace` between (a beat, the stop request), until
/// `limit`; then the timeout goes to rustls (and [`handshake_error`]).
struct Recorder<'p> {
    sock: TcpStream,
    first: Vec<u8>,
    pace: &'p mut Pace,
    limit: Instant,
    /// Set when `pace` said to stop (the I/O error rustls gets is a stand-in).
    stopped: Option<ClientError>,
}

impl Recorder<'_> {
    /// `op` on the socket, slice after slice (bounded by `limit`).
    fn sliced(
        &mut self,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match op(&mut self.sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if super::error::is_timeout(&e) && Instant::now() < self.limit => {
                    if let Err(stop) = self.pace.slice("waiting for the TLS handshake") {
                        self.stopped = Some(stop);
                        return Err(io::Error::other("stop requested"));
                    }
                }
                other => return other,
            }
        }
    }
}

impl Read for Recorder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sliced(|sock| sock.read(buf))?;
        let keep = n.min(4096usize.saturating_sub(self.first.len()));
        self.first.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl Write for Recorder<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sliced(|sock| sock.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// The reader thread's end of a TLS connection.
pub struct TlsReader {
    sock: TcpStream,
    tls: Arc<Mutex<ClientConnection>>,
    raw: Vec<u8>,
    start: usize,
    end: usize,
}

fn lock(tls: &Mutex<ClientConnection>) -> io::Result<MutexGuard<'_, ClientConnection>> {
    tls.lock()
        .map_err(|_| io::Error::other("TLS state poisoned by a panic"))
}

impl Read for TlsReader {
    /// Plaintext; `Ok(0)` at the end (close_notify or a closed socket).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut tls = lock(&self.tls)?;
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    let mut pending = &self.raw[self.start..self.end];
                    let taken = tls.read_tls(&mut pending)?;
                    self.start += taken;
                    tls.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            // Without the lock: the writer may encrypt meanwhile.
            let n = self.sock.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.start = 0;
            self.end = n;
        }
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(sock) => sock.read(buf),
            ReadHalf::Tls(reader) => reader.read(buf),
        }
    }
}

/// Plaintext encrypted per call, at most this much at a time (plus a
/// frame's header in front of the first step, [`WriteHalf::write_frame`]).
const ENCRYPT_STEP: usize = 256 * 1024;

impl WriteHalf {
    /// Writes all of `data` in slices of the socket's write timeout
    /// ([`write_sliced`]), telling `on` of each step; `on` may stop it.
    ///
    /// # Errors
    /// The socket's, rustls's, or what `on` returned.
    pub fn write_all<E>(
        &mut self,
        data: &[u8],
        on: &mut dyn FnMut(SendEvent) -> Result<(), E>,
    ) -> Result<(), Sliced<E>> {
        self.write_frame(&[], data, on)
    }

    /// Writes `head` and then `data` as [`WriteHalf::write_all`] of the two
    /// one after the other would, but over TLS as one stream of records:
    /// a FileChunk's 12-byte header shares its first record with the data
    /// and goes out in the same system call, instead of being a record of
    /// its own (34 bytes on the wire, an AEAD seal and a TCP segment under
    /// TCP_NODELAY) per 256 KiB (issue 12, BENCHMARKS.md "TLS upload: one
    /// send per frame"). A record boundary is not part of the protocol
    /// (PROTOCOL.md §12 carries frames in any split of the TLS stream).
    ///
    /// # Errors
    /// The socket's, rustls's, or what `on` returned.
    pub fn write_frame<E>(
        &mut self,
        head: &[u8],
        data: &[u8],
        on: &mut dyn FnMut(SendEvent) -> Result<(), E>,
    ) -> Result<(), Sliced<E>> {
        match self {
            WriteHalf::Plain(sock) => {
                write_sliced(sock, head, on)?;
                write_sliced(sock, data, on)
            }
            WriteHalf::Tls { sock, tls, staged } => {
                let mut steps = data.chunks(ENCRYPT_STEP);
                let first = steps.next().unwrap_or(&[]);
                seal_and_send(sock, tls, staged, head, first, on)?;
                for step in steps {
                    seal_and_send(sock, tls, staged, &[], step, on)?;
                }
                if staged.capacity() > 2 * ENCRYPT_STEP {
                    *staged = Vec::new();
                }
                Ok(())
            }
        }
    }

    /// Sends a close_notify (best effort).
    pub fn close(&mut self) {
        if let WriteHalf::Tls { sock, tls, staged } = self {
            staged.clear();
            if let Ok(mut tls) = lock(tls) {
                tls.send_close_notify();
                while tls.wants_write() {
                    if tls.write_tls(staged).is_err() {
                        break;
                    }
                }
            }
            // Short: on a link that takes nothing (a stop, a connection given
            // up) the close_notify would only hold the caller up.
            let _ = sock.set_write_timeout(Some(Duration::from_millis(250)));
            let _ = sock.write_all(staged);
        }
    }
}

/// Encrypts `head` then `body` as one run of records and sends them.
///
/// Under the lock, what the socket's send buffer takes at once goes
/// straight from rustls's records to the kernel (`MSG_DONTWAIT`, never
/// blocking, so the reader thread waits microseconds at most, as the
/// module doc requires); only what it does not take is copied into
/// `staged` and written outside the lock in slices, as before. On loopback
/// and fast links that saves a copy of every byte sent.
fn seal_and_send<E>(
    sock: &mut TcpStream,
    tls: &Mutex<ClientConnection>,
    staged: &mut Vec<u8>,
    head: &[u8],
    body: &[u8],
    on: &mut dyn FnMut(SendEvent) -> Result<(), E>,
) -> Result<(), Sliced<E>> {
    staged.clear();
    let direct = {
        let mut tls = lock(tls).map_err(Sliced::Io)?;
        seal(&mut tls.writer(), head, body).map_err(Sliced::Io)?;
        let mut direct = 0;
        let mut now = SendNow(sock);
        while tls.wants_write() {
            match tls.write_tls(&mut now) {
                Ok(0) => break,
                Ok(n) => direct += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Sliced::Io(e)),
            }
        }
        while tls.wants_write() {
            tls.write_tls(staged).map_err(Sliced::Io)?;
        }
        direct
    };
    if direct > 0 {
        on(SendEvent::Wrote(direct)).map_err(Sliced::Stopped)?;
    }
    write_sliced(sock, staged, on)
}

/// Hands `head` and `body` to rustls in calls that each see both (one run
/// of records across them), not one call each (a record each).
fn seal(writer: &mut rustls::Writer<'_>, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let n = if head.is_empty() {
            writer.write(body)?
        } else if body.is_empty() {
            writer.write(head)?
        } else {
            writer.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// The socket as a writer that never blocks: `send`/`sendmsg` with
/// `MSG_DONTWAIT` (EAGAIN when the send buffer is full) and
/// `MSG_NOSIGNAL`; vectored, so rustls's records go out in one call.
struct SendNow<'a>(&'a TcpStream);

const SEND_NOW: rustix::net::SendFlags =
    rustix::net::SendFlags::DONTWAIT.union(rustix::net::SendFlags::NOSIGNAL);

impl Write for SendNow<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::net::send(self.0, buf, SEND_NOW)?)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut control = rustix::net::SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(self.0, bufs, &mut control, SEND_NOW)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorReport, Frame};

    fn error_bytes(code: ErrorCode, text: &str) -> Vec<u8> {
        let report = ErrorReport {
            code,
            message: text.to_owned(),
        };
        Frame::new(0, Message::Error(report)).to_bytes()
    }

    fn explain(first: &[u8]) -> ClientError {
        let verifier = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
        handshake_error(io::ErrorKind::InvalidData.into(), &verifier, first)
    }

    #[test]
    fn the_sni_carries_the_routing_key_of_a_known_user() {
        use crate::tls::config::{server_config, CertSlot};
        use crate::tls::identity::load_or_create;
        use std::net::TcpListener;
        let dir = tempfile::tempdir().expect("temp dir");
        let (identity, _) = load_or_create(dir.path()).expect("identity");
        let fingerprint = identity.fingerprint;
        let config = server_config(Arc::new(CertSlot::new(identity).expect("slot"))).expect("cfg");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().expect("accept");
            let mut tls = rustls::ServerConnection::new(config).expect("server");
            while tls.is_handshaking() {
                tls.complete_io(&mut sock).expect("handshake");
            }
            tls.server_name().map(str::to_owned)
        });
        let user = UserId([0x42; 16]);
        let security = LinkSecurity::Tls {
            pin: Some(fingerprint),
            ca: None,
        };
        let dial = Dial {
            security: &security,
            host: "127.0.0.1",
            state_dir: dir.path().to_owned(),
            user: Some(user),
        };
        let stream = TcpStream::connect(addr).expect("connect");
        let halves = open(
            &stream,
            &dial,
            &mut Pace::default(),
            Instant::now() + Duration::from_secs(15),
        );
        assert!(halves.is_ok(), "handshake");
        let sni = server.join().expect("server thread");
        assert_eq!(sni, Some(sni_for(Some(&user))));
        assert!(!sni.unwrap_or_default().contains(&user.to_string()));
    }

    /// Frames written with `write_frame` arrive whole and in order, and a
    /// frame's header shares its first record with the data: a frame of up
    /// to one record's plaintext is one record, a 256 KiB FileChunk 17
    /// (never a 12-byte record of its own). Tiny socket buffers and a
    /// server that waits before reading make most sends find the send
    /// buffer full, so the staged path is taken as well as the direct one.
    #[test]
    fn a_frame_header_shares_its_record_and_every_byte_arrives() {
        use crate::tls::config::{server_config, CertSlot};
        use crate::tls::identity::load_or_create;
        use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
        use std::net::TcpListener;
        const RECORD: usize = 16 * 1024;
        let dir = tempfile::tempdir().expect("temp dir");
        let (identity, _) = load_or_create(dir.path()).expect("identity");
        let fingerprint = identity.fingerprint;
        let config = server_config(Arc::new(CertSlot::new(identity).expect("slot"))).expect("cfg");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        set_socket_recv_buffer_size(&listener, 4096).expect("rcvbuf");
        let addr = listener.local_addr().expect("addr");
        // (header, data) of each frame; data lengths around record edges.
        let lens = [
            0usize,
            1,
            RECORD - 12,
            RECORD - 11,
            1000,
            256 * 1024,
            300_000,
            5,
        ];
        let frames: Vec<(Vec<u8>, Vec<u8>)> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let head = vec![i as u8 ^ 0xa5; 12];
                let data = (0..n).map(|b| (b * 7 + i) as u8).collect();
                (head, data)
            })
            .collect();
        let (shaken, handshaken) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().expect("accept");
            let mut tls = rustls::ServerConnection::new(config).expect("server");
            while tls.is_handshaking() {
                tls.complete_io(&mut sock).expect("handshake");
            }
            // The client writes only now: every record below is a frame's.
            shaken.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(300));
            let mut raw = Vec::new();
            sock.read_to_end(&mut raw).expect("read");
            // Application-data records' lengths as sent (outer type 23).
            let mut sizes = Vec::new();
            let mut at = 0;
            while at + 5 <= raw.len() {
                let len = usize::from(u16::from_be_bytes([raw[at + 3], raw[at + 4]]));
                if raw[at] == 23 {
                    sizes.push(len);
                }
                at += 5 + len;
            }
            let mut plain = Vec::new();
            let mut input = &raw[..];
            while !input.is_empty() {
                tls.read_tls(&mut input).expect("read_tls");
                tls.process_new_packets().expect("records");
                let mut part = Vec::new();
                let _ = tls.reader().read_to_end(&mut part);
                plain.extend_from_slice(&part);
            }
            (sizes, plain)
        });
        let security = LinkSecurity::Tls {
            pin: Some(fingerprint),
            ca: None,
        };
        let dial = Dial {
            security: &security,
            host: "127.0.0.1",
            state_dir: dir.path().to_owned(),
            user: None,
        };
        let stream = TcpStream::connect(addr).expect("connect");
        set_socket_send_buffer_size(&stream, 4096).expect("sndbuf");
        let limit = Instant::now() + Duration::from_secs(15);
        let (_read, mut write, _) =
            open(&stream, &dial, &mut Pace::default(), limit).expect("handshake");
        handshaken
            .recv_timeout(Duration::from_secs(15))
            .expect("server handshake");
        let mut wrote = 0;
        let mut on = |ev: SendEvent| -> Result<(), ()> {
            if let SendEvent::Wrote(n) = ev {
                wrote += n;
            }
            Ok(())
        };
        for (head, data) in &frames {
            write.write_frame(head, data, &mut on).expect("write");
        }
        drop(write);
        drop(_read);
        stream.shutdown(std::net::Shutdown::Both).expect("shutdown");
        let (sizes, plain) = server.join().expect("server thread");
        let want: Vec<u8> = frames
            .iter()
            .flat_map(|(h, d)| [&h[..], &d[..]].concat())
            .collect();
        assert!(plain == want, "plaintext differs");
        // Each record's overhead: its content type and the 16-byte tag.
        let mut expected = Vec::new();
        for n in lens {
            let first = 12 + n.min(ENCRYPT_STEP);
            let mut steps = vec![first];
            steps.extend(
                (ENCRYPT_STEP..n)
                    .step_by(ENCRYPT_STEP)
                    .map(|s| (n - s).min(ENCRYPT_STEP)),
            );
            for step in steps {
                expected.extend(
                    (0..step)
                        .step_by(RECORD)
                        .map(|r| (step - r).min(RECORD) + 17),
                );
            }
        }
        assert_eq!(sizes, expected);
        assert_eq!(wrote, sizes.iter().map(|s| s + 5).sum::<usize>());
    }

    #[test]
    fn a_busy_server_is_a_refusal_to_retry_not_a_plaintext_server() {
        for code in [ErrorCode::Busy, ErrorCode::ShuttingDown] {
            let err = explain(&error_bytes(code, "server at its connection limit"));
            assert!(
                matches!(err, ClientError::Refused { code: c, .. } if c == code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_plaintext_server_is_named_with_what_it_said() {
        let err = explain(&error_bytes(ErrorCode::BadFrame, "does not speak TLS"));
        let text = err.to_string();
        assert!(matches!(err, ClientError::TransportMismatch(_)), "{text}");
        assert!(text.contains("does not speak TLS") && text.contains("--insecure-plaintext"));
        // Other bytes are the transport's own error.
        assert!(matches!(
            explain(b"\x15\x03\x03"),
            ClientError::ConnectionLost(_)
        ));
    }
}
