//! Sparse files downloaded by the real `cloud-client` stay sparse: a
//! 256 MiB file holding 8 KiB of data in islands at random places (one at
//! the very start, one in the last bytes) and a 64 MiB file of zeros only,
//! uploaded by one device and downloaded by a second over loopback, are
//! byte-identical there and take about their data's size on its disk
//! (`st_blocks` x 512), not their length: the download's zero chunks are
//! holes. So on the server, which got them as one-read uploads (§13.8):
//! their FileChunks of zeros are holes.

mod common;

use common::{Client, Server};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// `--once` against `port`; its stdout and stderr.
fn once(port: u16, folder: &Path, user: Option<&str>) -> String {
    let out = Client::options(port, folder)
        .plaintext()
        .user(user)
        .run_once();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

fn user_of(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line")
}

/// Bytes `path` takes on disk.
fn on_disk(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

/// A sparse file of `len` bytes at `path` with `islands` (offset, bytes)
/// written into it; the rest is a hole.
fn sparse(path: &Path, len: u64, islands: &[(u64, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create");
    file.set_len(len).expect("set_len");
    for (at, bytes) in islands {
        file.write_all_at(bytes, *at).expect("write island");
    }
    (&file).flush().expect("flush");
}

#[test]
fn sparse_files_download_sparse_and_identical() {
    let server = Server::options().plaintext().start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let mut rng = common::Rng::new(common::seed("e2e_sparse_download"));
    let len = 256 * MIB;
    // 8 KiB of data in four islands of 2 KiB: at 0, in the last bytes, and
    // two at random offsets.
    let island = 2048u64;
    let mut islands = vec![
        (0, rng.bytes(island as usize)),
        (len - island, rng.bytes(island as usize)),
    ];
    for _ in 0..2 {
        let at = rng.index((len - island) as usize) as u64;
        islands.push((at, rng.bytes(island as usize)));
    }
    let disk = a.path().join("disk.img");
    sparse(&disk, len, &islands);
    let zeros = a.path().join("zeros.img");
    sparse(&zeros, 64 * MIB, &[]);
    assert!(
        on_disk(&disk) < 4 * MIB,
        "the file system under the test's temp dir keeps no holes: {} bytes",
        on_disk(&disk)
    );
    let user = user_of(&once(server.port, a.path(), None));
    once(server.port, b.path(), Some(&user));
    for name in ["disk.img", "zeros.img"] {
        let want = std::fs::read(a.path().join(name)).expect("read the original");
        let stored = server.user_dir(&user).join(name);
        assert!(
            std::fs::read(&stored).expect("stored") == want,
            "{name}: the server's copy differs"
        );
        let got = std::fs::read(b.path().join(name)).expect("read the download");
        assert!(got == want, "{name}: the download differs");
        let (server_use, used) = (on_disk(&stored), on_disk(&b.path().join(name)));
        eprintln!(
            "{name}: {} bytes, {server_use} on the server's disk, {used} on B's",
            want.len()
        );
        // Each island lies in at most two chunks of at most 256 KiB (in at
        // most two FileChunks of the one-read upload, 256 KiB each).
        assert!(
            used <= 2 * MIB,
            "{name} ({} bytes) takes {used} bytes on the downloading device",
            want.len()
        );
        assert!(
            server_use <= 2 * MIB,
            "{name} ({} bytes) takes {server_use} bytes on the server (one-read upload)",
            want.len()
        );
    }
}
