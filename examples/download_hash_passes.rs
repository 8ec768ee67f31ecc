//! What the two BLAKE3 passes of a download cost, and what cutting a
//! streamed upload's chunk list as its bytes arrive costs (BENCHMARKS.md
//! "First download after a stream upload"), on one core, in memory, for
//! 1 GiB of pseudo-random bytes handed over in 256 KiB pieces (the
//! reference client's FileChunk size):
//!
//! - the client's check of every chunk against its ID (a BLAKE3 per chunk,
//!   ) and its whole-file hash of the bytes as written
//!   ([`TreeHasher`], R-13.4.2): two BLAKE3 trees over the same bytes;
//! - the server's whole-file hash of a stream upload alone (before), and
//!   with [`ChunkFeed`] cutting and hashing the chunks in the same pass
//!   (after), against [`manifest_of_reader`] of the stored bytes (what the
//!   first download paid before).
//!
//! Run: `cargo run --release --example download_hash_passes` (CPU seconds
//! of this thread; best of 3).

use cloudservice::chunk::tree_hash::{TreeHasher, BLOCK_LEN};
use cloudservice::chunk::{manifest_of_reader, ChunkFeed};
use cloudservice::protocol::ContentHash;

const GIB: usize = 1 << 30;
const PIECE: usize = 256 * 1024;

/// CPU seconds of this thread so far.
fn cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The best CPU time of three runs of `f`.
fn best(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = cpu();
            f();
            cpu() - t
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let data = cloudservice::chunk::test_bytes(GIB, 12);
    let m = manifest_of_reader(&data[..]).expect("in memory");
    let chunk_ids = best(|| {
        let mut at = 0usize;
        for c in &m.chunks {
            let end = at + c.len as usize;
            assert_eq!(ContentHash::of(&data[at..end]), c.id);
            at = end;
        }
    });
    let whole_as_written = best(|| {
        let mut h = TreeHasher::with_blocks(GIB as u64, BLOCK_LEN, 8);
        let mut at = 0usize;
        for c in &m.chunks {
            let end = at + c.len as usize;
            h.write(at as u64, &data[at..end]);
            at = end;
        }
        let hash = h.finish(|_, _| Ok(())).expect("written whole");
        assert_eq!(hash, m.hash);
    });
    let whole_only = best(|| {
        let mut h = blake3::Hasher::new();
        for piece in data.chunks(PIECE) {
            h.update(piece);
        }
        assert_eq!(ContentHash(*h.finalize().as_bytes()), m.hash);
    });
    let whole_and_feed = best(|| {
        let mut h = blake3::Hasher::new();
        let mut feed = ChunkFeed::new();
        for piece in data.chunks(PIECE) {
            h.update(piece);
            feed.feed(piece);
        }
        let list = feed.finish(ContentHash(*h.finalize().as_bytes()));
        assert_eq!(list.as_ref(), Some(&m));
    });
    let cut_stored = best(|| {
        let again = manifest_of_reader(&data[..]).expect("in memory");
        assert_eq!(again, m);
    });
    println!("1 GiB, CPU seconds (best of 3), {} chunks", m.chunks.len());
    println!("client: chunk IDs checked        {chunk_ids:.3}");
    println!("client: whole hash as written    {whole_as_written:.3}");
    println!("server upload: whole hash only   {whole_only:.3}");
    println!("server upload: whole + ChunkFeed {whole_and_feed:.3}");
    println!("server: manifest of stored bytes {cut_stored:.3}");
}
