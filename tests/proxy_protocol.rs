//! `--proxy-protocol` on the real server binary over loopback, without a
//! load balancer (PROTOCOL.md §17): the test plays the trusted proxy
//! (127.0.0.1) and writes the PROXY headers itself, in pieces, in both
//! versions, then speaks TLS on the same connection. Through real HAProxy:
//! tests/haproxy_shards.rs.

mod common;

use common::raw::{self, Raw};
use common::{Conn, Server};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A v2 header (proxy-protocol.txt §2.2): `command` 0 LOCAL, 1 PROXY.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&u16::try_from(payload.len()).expect("short").to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A v2 PROXY header for the IPv4 client `ip:port`.
fn v2_ipv4(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut p = ip.to_vec();
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&7000u16.to_be_bytes());
    v2(1, 0x11, &p)
}

/// A connection from the trusted proxy (127.0.0.1) that has sent `header`
/// in `pieces` writes 50 ms apart.
fn proxied(server: &Server, header: &[u8], pieces: usize) -> TcpStream {
    let addr: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let mut stream = Conn::tcp_from(Ipv4Addr::LOCALHOST, addr);
    let size = header.len().div_ceil(pieces.max(1));
    for (n, piece) in header.chunks(size).enumerate() {
        if n > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        stream.write_all(piece).expect("header");
    }
    stream
}

/// Makes a new user over TLS on a connection whose header was sent.
fn new_user(stream: TcpStream) -> Raw {
    let mut c = Raw::from_conn(Conn::tls(stream));
    c.send(&raw::hello(1, 1, [0; 16], 0));
    c.expect(raw::WELCOME, 1);
    c
}

fn server() -> Server {
    Server::start_with(&[
        "--proxy-protocol",
        "127.0.0.1",
        "--max-handshakes-per-address",
        "1",
        "--handshake-timeout",
        "2",
    ])
}

/// v1 and v2 headers arriving in pieces, a v2 one with IPv6 and TLVs: the
/// client's address is the connection's in connectionLog.txt; LOCAL and
/// UNKNOWN keep the proxy's.
#[test]
fn headers_in_pieces_give_the_clients_address() {
    let server = server();
    let _a = new_user(proxied(
        &server,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 7000\r\n",
        5,
    ));
    server.wait_log("peer=192.0.2.7:51000 user=");
    let mut p = vec![0x20, 0x01, 0x0d, 0xb8];
    p.extend_from_slice(&[0; 11]);
    p.push(7);
    p.extend_from_slice(&[0; 15]);
    p.push(1);
    p.extend_from_slice(&51001u16.to_be_bytes());
    p.extend_from_slice(&7000u16.to_be_bytes());
    // TLVs: an authority and a NOOP.
    p.extend_from_slice(&[0x02, 0x00, 0x05]);
    p.extend_from_slice(b"r00ab");
    p.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
    let _b = new_user(proxied(&server, &v2(1, 0x21, &p), 7));
    server.wait_log("peer=[2001:db8::7]:51001 user=");
    let local = proxied(&server, &v2(0, 0x00, &[]), 1);
    let local_addr = local.local_addr().expect("local");
    let _c = new_user(local);
    let unknown = proxied(&server, b"PROXY UNKNOWN\r\n", 2);
    let unknown_addr = unknown.local_addr().expect("local");
    let _d = new_user(unknown);
    let log = server.wait_log(&format!("peer={unknown_addr} "));
    for (who, addr) in [("LOCAL", local_addr), ("UNKNOWN", unknown_addr)] {
        assert!(
            log.contains(&format!("peer={addr} user=")) && log.contains("request=new-user"),
            "{who} keeps the proxy's address {addr}:\n{log}"
        );
    }
    assert_eq!(
        log.matches("request=new-user outcome=ok").count(),
        4,
        "{log}"
    );
}

/// `--max-handshakes-per-address 1` applies to each client behind the
/// proxy, not to the proxy: three clients waiting for their Hello at once
/// through it all stay; a second connection of one of them evicts that
/// client's first only.
#[test]
fn the_per_address_limit_applies_to_each_client_not_to_the_proxy() {
    let server = server();
    let waiting: Vec<TcpStream> = (1..=3u8)
        .map(|n| proxied(&server, &v2_ipv4([10, 0, 0, n], 1000 + u16::from(n)), 1))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let _again = proxied(&server, &v2_ipv4([10, 0, 0, 1], 2001), 1);
    let log = server.wait_log("evicted before its Hello");
    let evicted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("evicted before its Hello"))
        .collect();
    assert_eq!(evicted.len(), 1, "{log}");
    assert!(
        evicted[0].contains("peer=10.0.0.1:1001 ")
            && evicted[0].contains("--max-handshakes-per-address"),
        "{log}"
    );
    // The other two are still open and get in.
    for stream in waiting.into_iter().skip(1) {
        new_user(stream);
    }
    let log = server.wait_log("peer=10.0.0.3:1003 user=");
    assert!(log.contains("peer=10.0.0.2:1002 user="), "{log}");
}

/// A header that stops part-way is closed at the handshake timeout, and
/// a trusted connection with a wrong header at once, each with a
/// `request=proxy` line saying why.
#[test]
fn a_stalled_or_wrong_header_closes_with_a_line() {
    let server = server();
    let mut stalled = proxied(&server, b"PROXY TCP4 192.0.2", 1);
    let mut wrong = proxied(&server, b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n", 1);
    let wrong_addr = wrong.local_addr().expect("local");
    let log = server.wait_log(&format!("peer={wrong_addr} "));
    assert!(
        log.contains("request=proxy outcome=error detail=\"invalid PROXY protocol v1 header"),
        "{log}"
    );
    let log = server.wait_log("no whole PROXY protocol header within 2 s");
    let line = log
        .lines()
        .find(|l| l.contains("no whole PROXY"))
        .expect("line");
    assert!(
        line.contains(&format!("peer={} ", stalled.local_addr().expect("local")))
            && line.contains("request=proxy outcome=error"),
        "{line}"
    );
    for s in [&mut stalled, &mut wrong] {
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 64];
        let got = std::io::Read::read(s, &mut buf);
        assert!(
            matches!(got, Ok(0) | Err(_)),
            "closed without a frame: {got:?}"
        );
    }
}

/// proxy22's leftover: a proxy that sends part of a header and then ends
/// its side (a FIN the server cannot see by peeking behind the bytes) was
/// kept until the handshake timeout and logged as late. It is refused when
/// the end arrives, with a line saying so.
#[test]
fn a_header_cut_short_by_the_end_of_the_connection_is_refused_as_such() {
    // A long handshake timeout: a line naming the end cannot be the sweep's.
    let server =
        Server::start_with(&["--proxy-protocol", "127.0.0.1", "--handshake-timeout", "60"]);
    let v2_half = &v2_ipv4([192, 0, 2, 7], 4242)[..20];
    // The end with the bytes (one readable event) and after them (two).
    let cases = [
        (&b"PROXY TCP4 192.0.2"[..], 0),
        (v2_half, 0),
        (v2_half, 100),
    ];
    for (half, pause_ms) in cases {
        let mut cut = proxied(&server, half, 1);
        let addr = cut.local_addr().expect("local");
        std::thread::sleep(Duration::from_millis(pause_ms));
        cut.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let log = server.wait_log(&format!("peer={addr} "));
        let line = log
            .lines()
            .find(|l| l.contains(&format!("peer={addr} ")))
            .expect("line");
        assert!(
            line.contains("request=proxy outcome=error")
                && line.contains(&format!(
                    "the connection ended after {} bytes of a PROXY protocol header",
                    half.len()
                )),
            "{line}"
        );
        cut.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 64];
        let got = std::io::Read::read(&mut cut, &mut buf);
        // Closed with the header's bytes unread: a reset, or an end.
        assert!(
            matches!(&got, Ok(0))
                || got
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "closed without a frame: {got:?}"
        );
    }
}
