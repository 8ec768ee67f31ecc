//! Sparse files on the real `cloud-server`: a delta upload of a file that
//! is zeros but for a few KiB is stored sparse (the server leaves its zero
//! chunks as holes of the new build), byte-identical, and an edit of it
//! stays sparse too.

mod common;

use cloudservice::chunk::manifest_of_reader;
use cloudservice::protocol::{FileManifest, Message, PushStatus};
use common::{p, Server, WireClient};
use std::os::unix::fs::MetadataExt;

const MIB: usize = 1 << 20;

/// A delta upload of `content` at `at` on `base`; the new version.
fn put(c: &mut WireClient, at: &str, content: &[u8], base: u64) -> u64 {
    let m = manifest_of_reader(content).expect("in-memory read");
    let rid = c.send(Message::FileManifest(FileManifest {
        version: base,
        size: m.size,
        hash: m.hash,
        chunk_count: m.chunks.len() as u32,
        path: p(at),
    }));
    for part in m.chunks.chunks(1000) {
        c.send_with(rid, Message::ChunkList(part.to_vec()));
    }
    let needed = c.chunks_needed(rid).expect("ChunksNeeded");
    match c.send_chunks_and_end(rid, content, &needed) {
        (_, Message::PushAck(a)) => {
            assert_eq!(a.status, PushStatus::Applied);
            a.version
        }
        (_, other) => panic!("expected a PushAck, got {other:?}"),
    }
}

#[test]
fn a_sparse_file_is_stored_sparse() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut content = vec![0u8; 256 * MIB];
    content[100 * MIB..100 * MIB + 4096].fill(0x5a);
    let v = put(&mut c, "disk.img", &content, 0);
    content[200 * MIB..200 * MIB + 4096].fill(0xa5);
    put(&mut c, "disk.img", &content, v);
    let stored = server.user_dir(&c.user).join("disk.img");
    assert!(std::fs::read(&stored).expect("stored") == content);
    let on_disk = std::fs::metadata(&stored).expect("stat").blocks() * 512;
    eprintln!("256 MiB sparse file: {on_disk} bytes on disk");
    assert!(on_disk < 8 * MIB as u64, "{on_disk} bytes on disk");
}
