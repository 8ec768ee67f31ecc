//! Non-blocking TCP connects, optionally from a chosen local IPv4 address, so
//! several load processes can use 127.0.0.2, 127.0.0.3, … as source addresses.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Starts a non-blocking connect to `server`, from `source` when given (any
/// port). The connect completes later: wait for the socket to be writable and
/// check [`mio::net::TcpStream::peer_addr`].
///
/// # Errors
/// The socket could not be created, bound or started connecting.
pub fn connect_from(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
) -> io::Result<mio::net::TcpStream> {
    match (source, server) {
        (None, _) => mio::net::TcpStream::connect(server),
        (Some(source), SocketAddr::V4(v4)) => sys::connect_v4(source, *v4.ip(), v4.port()),
        (Some(_), SocketAddr::V6(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a source address needs an IPv4 server address",
        )),
    }
}

#[cfg(target_os = "linux")]
mod sys {
    //! Binding before connecting needs `bind(2)`, which neither std nor mio
    //! offers for TCP clients; rustix's safe socket calls do it.

    use rustix::io::Errno;
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4};

    pub fn connect_v4(
        source: Ipv4Addr,
        ip: Ipv4Addr,
        port: u16,
    ) -> io::Result<mio::net::TcpStream> {
        let fd = socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        bind(&fd, &SocketAddrV4::new(source, 0))?;
        match connect(&fd, &SocketAddrV4::new(ip, port)) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(mio::net::TcpStream::from_std(std::net::TcpStream::from(fd)))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::net::Ipv4Addr;

    pub fn connect_v4(_: Ipv4Addr, _: Ipv4Addr, _: u16) -> io::Result<mio::net::TcpStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--source is implemented for Linux only",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    #[test]
    fn a_connect_from_a_chosen_source_arrives_from_that_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let source = Ipv4Addr::new(127, 0, 0, 2);
        let stream = connect_from(listener.local_addr().unwrap(), Some(source)).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stream.peer_addr().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
        assert_eq!(stream.local_addr().unwrap().ip(), source);
    }

    #[test]
    fn a_source_needs_an_ipv4_server() {
        let server: SocketAddr = "[::1]:9".parse().unwrap();
        let err = connect_from(server, Some(Ipv4Addr::LOCALHOST)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn an_unusable_source_is_an_error_not_a_panic() {
        // 192.0.2.1 (TEST-NET-1) is not an address of this host: bind fails.
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = connect_from(server, Some(Ipv4Addr::new(192, 0, 2, 1))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    }
}
