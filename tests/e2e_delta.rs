//! Delta upload end to end (issue 11): the real `cloud-client` and
//! `cloud-server` on loopback, with a relay between them that counts the
//! bytes the client sends. After 1 MiB is overwritten in the middle of a
//! 32 MiB file, far less than the file crosses, and the server's copy and a
//! second device's equal the edited file by content.

mod common;

use common::{new_user, run_once, tree, Server};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const MIB: usize = 1 << 20;

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// A loopback relay to `target` that counts the bytes clients send through
/// it. Each connection is served by two copying threads; the relay lives
/// as long as the test process.
struct Relay {
    port: u16,
    upstream_bytes: Arc<AtomicU64>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let counter = upstream_bytes.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let up = counter.clone();
                std::thread::spawn(move || pump(client, server, Some(up)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Relay {
            port,
            upstream_bytes,
        }
    }

    fn sent(&self) -> u64 {
        self.upstream_bytes.load(Ordering::SeqCst)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(c) = &count {
                    c.fetch_add(n as u64, Ordering::SeqCst);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[test]
fn a_1_mib_edit_in_a_32_mib_file_sends_about_1_mib() {
    // TLS, as deployed: the relay counts the bytes a real link carries.
    let server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let original = data(32 * MIB, 11);
    std::fs::write(a.path().join("disk.img"), &original).expect("write");
    let user = new_user(relay.port, a.path());
    let first = relay.sent();
    assert!(first >= original.len() as u64, "first upload sent {first}");

    let mut edited = original.clone();
    let mid = 16 * MIB + 12_345;
    edited[mid..mid + MIB].copy_from_slice(&data(MIB, 12));
    std::fs::write(a.path().join("disk.img"), &edited).expect("write");
    let out = run_once(relay.port, a.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delta = relay.sent() - first;
    eprintln!("1 MiB edit of a 32 MiB file: {delta} bytes sent by the client");
    assert!(delta < 2 * MIB as u64, "the edit sent {delta} bytes");
    assert!(delta >= MIB as u64, "the edit itself must cross: {delta}");

    let stored = std::fs::read(server.user_dir(&user).join("disk.img")).expect("stored");
    assert!(
        stored == edited,
        "the server's copy differs from the edited file"
    );
    let b = tempfile::tempdir().expect("temp dir");
    let out = run_once(server.port, b.path(), Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ta, tb) = (tree(a.path()), tree(b.path()));
    assert!(ta == tb, "the two devices differ");
}
