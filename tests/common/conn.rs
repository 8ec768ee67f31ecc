//! The byte channel of the kit's protocol clients ([`super::raw::Raw`],
//! [`super::wire::WireClient`]): TLS 1.3 as the real client speaks it
//! (rustls, ALPN `cloudservice/1`, the SNI of a new user, PROTOCOL.md §12),
//! or frames straight on TCP for a server this process started with
//! `--insecure-plaintext` ([`super::server::is_plaintext`]).
//!
//! A test client trusts whatever certificate the server presents, as
//! `cloud-load` does: these tests check the frame protocol; trust has its
//! own tests (tests/e2e_tls.rs).

use cloudservice::tls::config::client_config;
use cloudservice::tls::routing::sni_for;
use cloudservice::tls::trust::{TrustPolicy, TrustVerifier};
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A connection to the server under test.
pub enum Conn {
    /// Frames on TCP (`--insecure-plaintext`).
    Plain(TcpStream),
    /// Frames inside TLS.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// The kit's one TLS client configuration (trusts any certificate).
fn config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let verifier = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
        client_config(Arc::new(verifier)).expect("TLS client configuration")
    }))
}

impl Conn {
    /// Connects to `addr`: TLS unless this process started that server
    /// with `--insecure-plaintext`.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        if super::server::is_plaintext(addr.port()) {
            Conn::Plain(stream)
        } else {
            Conn::tls(stream)
        }
    }

    /// Connects to `addr` with frames on TCP whatever the server speaks
    /// (a test of what a plaintext peer gets).
    pub fn connect_plain(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        Conn::Plain(stream)
    }

    /// A TCP connection to `addr` from the loopback address `source`
    /// (127.0.0.2, 127.0.0.3, …: distinct clients on one machine), by
    /// bind(2) before connect(2), which std does not offer.
    pub fn tcp_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> TcpStream {
        use rustix::net::{ipproto, AddressFamily, SocketType};
        let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, Some(ipproto::TCP))
            .expect("socket");
        rustix::net::bind(&fd, &std::net::SocketAddrV4::new(source, 0)).expect("bind source");
        rustix::net::connect(&fd, &addr).expect("connect");
        let stream = TcpStream::from(fd);
        stream.set_nodelay(true).ok();
        stream
    }

    /// TLS over a connected socket; the handshake happens with the first
    /// write or read.
    pub fn tls(stream: TcpStream) -> Conn {
        let name = ServerName::try_from(sni_for(None)).expect("SNI");
        let tls = rustls::ClientConnection::new(config(), name).expect("TLS client");
        Conn::Tls(Box::new(rustls::StreamOwned::new(tls, stream)))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    /// Caps the socket's receive buffer at `bytes` (SO_RCVBUF, socket(7);
    /// the kernel doubles it and stops autotuning it): what the server
    /// sees of a slow reader then depends on the reader, not on how large
    /// the kernel grew the buffer (up to `tcp_rmem`'s maximum, 32 MiB on
    /// some machines: a whole reply could sit unread in it).
    pub fn limit_receive_buffer(&self, bytes: usize) {
        use std::os::fd::AsRawFd;
        let size = libc::c_int::try_from(bytes).expect("buffer size fits an int");
        // SAFETY: the fd is this open socket for the duration of the call;
        // SO_RCVBUF reads one int from the valid pointer and length given.
        let rc = unsafe {
            libc::setsockopt(
                self.tcp().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "setsockopt SO_RCVBUF: {}",
            io::Error::last_os_error()
        );
    }

    /// True under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// Sets the socket's read timeout (a TLS record cut by it is kept and
    /// completed by the next read).
    pub fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(limit)
    }

    /// Sets the socket's write timeout.
    pub fn set_write_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(limit)
    }

    /// A second handle on a plaintext connection, to write from another
    /// thread; TLS state cannot be shared, so tests that need this ask for
    /// a plaintext server.
    pub fn try_clone(&self) -> io::Result<Conn> {
        match self {
            Conn::Plain(s) => s.try_clone().map(Conn::Plain),
            Conn::Tls(_) => Err(io::Error::other(
                "a TLS connection cannot be cloned: start the server with .plaintext()",
            )),
        }
    }

    /// Shuts down both directions of the socket.
    pub fn shutdown(&self) {
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => match t.read(buf) {
                // The server closed without close_notify (it closes right
                // after an Error frame, as over TCP): the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}
