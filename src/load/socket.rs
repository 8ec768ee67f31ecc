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
    //! offers for TCP clients; these are the libc calls std itself links.

    use std::io;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const AF_INET: i32 = 2;
    const SOCK_STREAM: i32 = 1;
    const SOCK_NONBLOCK: i32 = 0o4000;
    const SOCK_CLOEXEC: i32 = 0o2000000;
    const EINPROGRESS: i32 = 115;

    /// `struct sockaddr_in`: port and address in network byte order.
    #[repr(C)]
    struct SockAddrIn {
        family: u16,
        port: [u8; 2],
        addr: [u8; 4],
        zero: [u8; 8],
    }

    extern "C" {
        fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
        fn bind(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
        fn connect(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
    }

    fn sockaddr(ip: Ipv4Addr, port: u16) -> SockAddrIn {
        SockAddrIn {
            family: AF_INET as u16,
            port: port.to_be_bytes(),
            addr: ip.octets(),
            zero: [0; 8],
        }
    }

    pub fn connect_v4(
        source: Ipv4Addr,
        ip: Ipv4Addr,
        port: u16,
    ) -> io::Result<mio::net::TcpStream> {
        // SAFETY: plain syscall with constant arguments; a negative result is an error.
        let fd = unsafe { socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns; OwnedFd closes it on every path.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let local = sockaddr(source, 0);
        let len = std::mem::size_of::<SockAddrIn>() as u32;
        // SAFETY: `local` is a valid sockaddr_in of `len` bytes that outlives the call.
        if unsafe { bind(owned.as_raw_fd(), &local, len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sockaddr(ip, port);
        // SAFETY: as above, for the server's address.
        if unsafe { connect(owned.as_raw_fd(), &remote, len) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(mio::net::TcpStream::from_std(std::net::TcpStream::from(
            owned,
        )))
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
