//! A loopback relay between clients and a server that counts the bytes each
//! way (what a real link carries, TLS included), and can play an older
//! server: on a plaintext link it answers the first frame of a chosen kind
//! with a closing Error, as a server that does not know that kind does.
//! It can also lose a frame, play a slow uplink, or go silent; a shaped
//! relay slows both ways to a rate set at any time, and stalls (carries
//! nothing, reads nothing: TCP backs up to the sender, whose sends block)
//! and resumes without losing a byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running relay; it lives as long as the test process.
pub struct Relay {
    /// Where clients connect.
    pub port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    /// Set: every connection open now, and every one made while it stays
    /// set, carries nothing more either way, for good, and is not closed
    /// (a path that went silent: no reset, no FIN). Only relays made by
    /// [`Relay::silenceable`] look at it.
    silent: Arc<AtomicBool>,
    /// The knobs of a [`Relay::shaped`] (unused by the others).
    shape: Arc<Shape>,
}

/// What a [`Relay::shaped`] does now: carry at most `rate` bytes per
/// second each way (0: as fast as it can), or nothing while `stalled`.
#[derive(Default)]
pub struct Shape {
    rate: AtomicU64,
    stalled: AtomicBool,
}

/// The receive buffer of a shaped relay's sockets: small, so that what a
/// stalled or slow relay holds is little and the sender's own socket
/// buffer is what backs up (loopback buffers grow to megabytes otherwise).
const SHAPED_BUFFER: libc::c_int = 128 * 1024;
/// The segment size a shaped relay announces (an Ethernet-sized one).
const SHAPED_SEGMENT: libc::c_int = 1400;

/// What the relay answers to a frame of `kind` (plaintext links only):
/// Error `code` with `text`, request ID 0, then it closes both sides.
#[derive(Clone, Copy)]
pub struct Refuse {
    /// The frame kind refused.
    pub kind: u8,
    /// The Error code sent.
    pub code: u16,
    /// Its text.
    pub text: &'static str,
}

impl Relay {
    /// A counting relay to `target` (at most 256 connections).
    pub fn start(target: u16) -> Relay {
        Relay::with(target, None, u8::MAX)
    }

    /// A relay to a plaintext `target` that refuses `refuse.kind`, and
    /// plays a server of protocol version 3: frames under header byte 04
    /// or later are refused as such a server does.
    pub fn refusing(target: u16, refuse: Refuse) -> Relay {
        Relay::with(target, Some(refuse), 3)
    }

    /// A relay to a plaintext `target` that plays a server of protocol
    /// version `newest`: the first frame under a later header byte is
    /// refused as such a server does (Error BadFrame, request ID 0,
    /// "unsupported protocol version N", then both sides closed).
    pub fn older(target: u16, newest: u8) -> Relay {
        let none = Refuse {
            kind: 0xff,
            code: 1,
            text: "no frame has this kind",
        };
        Relay::with(target, Some(none), newest)
    }

    /// A relay to a plaintext `target` that loses the first frame of
    /// `kind` a client sends (across all its connections): the server never
    /// sees it, so never answers it, and everything else goes through (what
    /// a server actor that dropped a request did, stall14).
    pub fn losing(target: u16, kind: u8) -> Relay {
        let lost = Arc::new(AtomicBool::new(false));
        Relay::accepting(target, move |(client, server), (c2, s2), (u, d)| {
            let lost = lost.clone();
            std::thread::spawn(move || lose_once(client, server, u, kind, lost));
            std::thread::spawn(move || pump(s2, c2, d));
        })
    }

    /// A relay to a plaintext `target` that loses the first frame of
    /// `kind` the server sends (across all connections): the client never
    /// sees that reply, and everything else goes through (a ChangeBatch
    /// lost on the way, s15).
    pub fn losing_reply(target: u16, kind: u8) -> Relay {
        let lost = Arc::new(AtomicBool::new(false));
        Relay::accepting(target, move |(client, server), (c2, s2), (u, d)| {
            let lost = lost.clone();
            std::thread::spawn(move || pump(client, server, u));
            std::thread::spawn(move || lose_once(s2, c2, d, kind, lost));
        })
    }

    /// A relay to `target` whose client-to-server direction carries at
    /// most `up_bytes_per_s` (a slow uplink: uploads take long; the
    /// client's writes block while its socket buffer is full). The other
    /// direction is not slowed.
    pub fn slow(target: u16, up_bytes_per_s: u64) -> Relay {
        Relay::accepting(target, move |(client, server), (c2, s2), (u, d)| {
            std::thread::spawn(move || pump_slow(client, server, u, up_bytes_per_s));
            std::thread::spawn(move || pump(s2, c2, d));
        })
    }

    /// A relay to `target` that goes silent while [`Relay::silence`] says
    /// so: what each connection open then, or made then, sends is read and
    /// dropped, and nothing is closed. Connections made after the silence
    /// ends work.
    pub fn silenceable(target: u16) -> Relay {
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        let mut relay = Relay::accepting(target, move |(client, server), (c2, s2), (u, d)| {
            let dead = Arc::new(AtomicBool::new(flag.load(Ordering::SeqCst)));
            let (f1, f2, d1, d2) = (flag.clone(), flag.clone(), dead.clone(), dead);
            std::thread::spawn(move || pump_unless(client, server, u, (f1, d1)));
            std::thread::spawn(move || pump_unless(s2, c2, d, (f2, d2)));
        });
        relay.silent = silent;
        relay
    }

    /// A relay to `target` whose links carry at most [`Relay::rate`] bytes
    /// per second each way and carry nothing while [`Relay::stall`] says
    /// so (neither side is closed, nothing is lost: the bytes wait in the
    /// senders' socket buffers).
    pub fn shaped(target: u16) -> Relay {
        let shape = Arc::new(Shape::default());
        let knobs = shape.clone();
        let mut relay = Relay::accepting_with(
            target,
            SHAPED_BUFFER,
            move |(client, server), (c2, s2), (u, d)| {
                let (k1, k2) = (knobs.clone(), knobs.clone());
                std::thread::spawn(move || pump_shaped(client, server, u, k1));
                std::thread::spawn(move || pump_shaped(s2, c2, d, k2));
            },
        );
        relay.shape = shape;
        relay
    }

    /// Sets the rate of a [`Relay::shaped`], bytes per second each way (0:
    /// unlimited).
    pub fn rate(&self, bytes_per_s: u64) {
        self.shape.rate.store(bytes_per_s, Ordering::SeqCst);
    }

    /// Stalls ([`true`]) or resumes a [`Relay::shaped`].
    pub fn stall(&self, on: bool) {
        self.shape.stalled.store(on, Ordering::SeqCst);
    }

    /// Starts ([`true`]) or ends the silence of a [`Relay::silenceable`].
    pub fn silence(&self, on: bool) {
        self.silent.store(on, Ordering::SeqCst);
    }

    fn with(target: u16, refuse: Option<Refuse>, newest: u8) -> Relay {
        Relay::accepting(
            target,
            move |(client, server), (c2, s2), (u, d)| match refuse {
                None => {
                    std::thread::spawn(move || pump(client, server, u));
                    std::thread::spawn(move || pump(s2, c2, d));
                }
                Some(r) => {
                    // Whole frames each way, one writer at a time towards
                    // the client, so the Error never splits a frame.
                    let to_client = Arc::new(Mutex::new(c2));
                    let refused = Arc::new(AtomicBool::new(false));
                    let (tc, rf) = (to_client.clone(), refused.clone());
                    std::thread::spawn(move || filter(client, server, u, (r, newest), (tc, rf)));
                    std::thread::spawn(move || frames_down(s2, to_client, d, refused));
                }
            },
        )
    }

    /// The accept loop every relay shares (at most 256 connections): each
    /// client is connected to `target` and `serve` gets both streams, a
    /// clone of each, and the up/down byte counters.
    fn accepting(
        target: u16,
        serve: impl Fn(Streams, Streams, (Arc<AtomicU64>, Arc<AtomicU64>)) + Send + 'static,
    ) -> Relay {
        Relay::accepting_with(target, 0, serve)
    }

    /// [`Relay::accepting`], the sockets' receive buffers set to `buffer`
    /// bytes (0: the system's, growing as it likes).
    fn accepting_with(
        target: u16,
        buffer: libc::c_int,
        serve: impl Fn(Streams, Streams, (Arc<AtomicU64>, Arc<AtomicU64>)) + Send + 'static,
    ) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        if buffer > 0 {
            // Accepted sockets take the listener's buffer size, and the
            // segment size it announces: a small one, so the window opens
            // as the relay reads, not in loopback's 64 KiB steps.
            set_rcvbuf(&listener, buffer);
            set_int(
                &listener,
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                SHAPED_SEGMENT,
            );
        }
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (u, d) = (up.clone(), down.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().take(256).flatten() {
                let Ok(server) = connect_with(target, buffer) else {
                    continue;
                };
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                serve((client, server), (c2, s2), (u.clone(), d.clone()));
            }
        });
        Relay {
            port,
            up,
            down,
            silent: Arc::new(AtomicBool::new(false)),
            shape: Arc::new(Shape::default()),
        }
    }

    /// Bytes clients sent so far.
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    /// Bytes the server sent so far.
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }
}

/// A client stream and its server stream.
type Streams = (TcpStream, TcpStream);

fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// [`pump`], except that once `silent` is seen set (or `dead` was set when
/// the connection was made) the bytes are dropped for good, both ways.
fn pump_unless(
    mut from: TcpStream,
    mut to: TcpStream,
    count: Arc<AtomicU64>,
    (silent, dead): (Arc<AtomicBool>, Arc<AtomicBool>),
) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if silent.load(Ordering::SeqCst) {
                    dead.store(true, Ordering::SeqCst);
                }
                if dead.load(Ordering::SeqCst) {
                    continue;
                }
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    if dead.load(Ordering::SeqCst) {
        // One end gave the silent connection up: the other end is closed
        // too (the server then frees the device for its next connection,
        // as its own probe of a vanished peer would, R-4.6.16).
        let _ = to.shutdown(Shutdown::Both);
    } else {
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// [`pump`] at `rate` bytes per second at most: reads 16 KiB at a time and
/// sleeps until the bytes moved so far are due.
fn pump_slow(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>, rate: u64) {
    let mut buf = vec![0u8; 16 * 1024];
    let started = std::time::Instant::now();
    let mut moved = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                moved += n as u64;
                let due = std::time::Duration::from_secs_f64(moved as f64 / rate.max(1) as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

type ToClient = (Arc<Mutex<TcpStream>>, Arc<AtomicBool>);

/// Sets `SO_RCVBUF` of `socket` to `bytes`.
fn set_rcvbuf(socket: &impl std::os::fd::AsRawFd, bytes: libc::c_int) {
    set_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
}

/// Sets the int socket option `name` at `level` of `socket` to `value`.
fn set_int(
    socket: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) {
    // SAFETY: a valid descriptor borrowed for the call; the option value
    // is one int, passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt {level}/{name}");
}

/// A connection to the server on loopback port `target`, its receive
/// buffer set to `buffer` bytes before it connects (0: the system's).
fn connect_with(target: u16, buffer: libc::c_int) -> std::io::Result<TcpStream> {
    if buffer == 0 {
        return TcpStream::connect(("127.0.0.1", target));
    }
    // SAFETY: plain socket(2); the descriptor is owned at once below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket this function owns from here on.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set_rcvbuf(&sock, buffer);
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: target.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in for the call, with its size.
    let rc = unsafe {
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpStream::from(sock))
}

/// [`pump`] as `shape` says: nothing read or written while stalled
/// (looked at again every 10 ms), and at most its rate once it moves (reads of a twentieth
/// of a second's worth, so the pace is even).
fn pump_shaped(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>, shape: Arc<Shape>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut paced_from = std::time::Instant::now();
    let (mut moved, mut rate_seen) = (0u64, 0u64);
    loop {
        if shape.stalled.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            paced_from = std::time::Instant::now();
            moved = 0;
            continue;
        }
        let rate = shape.rate.load(Ordering::SeqCst);
        if rate != rate_seen {
            (paced_from, moved, rate_seen) = (std::time::Instant::now(), 0, rate);
        }
        let most = if rate == 0 {
            buf.len()
        } else {
            (rate / 20).clamp(1, buf.len() as u64) as usize
        };
        let n = match from.read(&mut buf[..most]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read just before a stall began: held until it ends, not lost.
        while shape.stalled.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            paced_from = std::time::Instant::now();
            moved = 0;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if rate > 0 {
            moved += n as u64;
            let due = std::time::Duration::from_secs_f64(moved as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(paced_from.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Reads one frame (header and payload) from `from`.
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; 12];
    from.read_exact(&mut frame).ok()?;
    let len = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
    frame.resize(12 + len.min(1 << 20), 0);
    from.read_exact(&mut frame[12..]).ok()?;
    Some(frame)
}

fn frames_down(
    mut server: TcpStream,
    client: Arc<Mutex<TcpStream>>,
    count: Arc<AtomicU64>,
    refused: Arc<AtomicBool>,
) {
    while let Some(frame) = read_frame(&mut server) {
        let Ok(mut c) = client.lock() else { return };
        if refused.load(Ordering::SeqCst) {
            return;
        }
        count.fetch_add(frame.len() as u64, Ordering::SeqCst);
        if c.write_all(&frame).is_err() {
            return;
        }
    }
    if let Ok(c) = client.lock() {
        let _ = c.shutdown(Shutdown::Write);
    }
}

fn filter(
    mut client: TcpStream,
    mut server: TcpStream,
    count: Arc<AtomicU64>,
    (r, newest): (Refuse, u8),
    (to_client, refused): ToClient,
) {
    let mut header = [0u8; 12];
    while client.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let mut payload = vec![0u8; len.min(1 << 20)];
        if client.read_exact(&mut payload).is_err() {
            break;
        }
        count.fetch_add((12 + payload.len()) as u64, Ordering::SeqCst);
        // The relay plays a server of protocol version `newest`: a frame
        // under a later header byte is refused as such a server does
        // (R-13.6.5, R-13.7.5: BadFrame, request ID 0, "unsupported
        // protocol version N").
        let newer = header[2] > newest;
        if header[3] == r.kind || newer {
            let unsupported = format!("unsupported protocol version {}", header[2]);
            let (rid, code, text) = if newer {
                ([0; 4], 1u16, unsupported.as_str())
            } else {
                ([header[4], header[5], header[6], header[7]], r.code, r.text)
            };
            let mut err = vec![0x43, 0x53, 1, 0x05];
            err.extend_from_slice(&rid);
            err.extend_from_slice(&((4 + text.len()) as u32).to_be_bytes());
            err.extend_from_slice(&code.to_be_bytes());
            err.extend_from_slice(&(text.len() as u16).to_be_bytes());
            err.extend_from_slice(text.as_bytes());
            if let Ok(mut c) = to_client.lock() {
                refused.store(true, Ordering::SeqCst);
                let _ = c.write_all(&err);
                let _ = c.shutdown(Shutdown::Both);
            }
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(&header).is_err() || server.write_all(&payload).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

/// Forwards whole frames from `client` to `server` (or the other way), except
/// the first of `kind` (`lost` says whether it went already), which is dropped.
fn lose_once(
    mut client: TcpStream,
    mut server: TcpStream,
    count: Arc<AtomicU64>,
    kind: u8,
    lost: Arc<AtomicBool>,
) {
    while let Some(frame) = read_frame(&mut client) {
        count.fetch_add(frame.len() as u64, Ordering::SeqCst);
        if frame[3] == kind && !lost.swap(true, Ordering::SeqCst) {
            continue;
        }
        if server.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}
