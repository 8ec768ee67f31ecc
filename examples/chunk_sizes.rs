//! Measures candidate FastCDC sizes for delta transfer (issue 11): for a
//! 128 MiB pseudo-random file, the bytes of new chunks after overwriting,
//! appending and inserting 1 MiB, and the manifest size of a 1 GiB file
//! (36 bytes per chunk, extrapolated from the 128 MiB chunk count), plus the
//! chunk+hash throughput of the chosen sizes on one core.
//!
//! Run: `cargo run --release --example chunk_sizes`

use fastcdc::v2020::FastCDC;
use std::collections::HashSet;
use std::time::Instant;

const MIB: usize = 1 << 20;

fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn ids(data: &[u8], sizes: (u32, u32, u32)) -> Vec<(blake3::Hash, usize)> {
    FastCDC::new(data, sizes.0, sizes.1, sizes.2)
        .map(|c| (blake3::hash(&data[c.offset..c.offset + c.length]), c.length))
        .collect()
}

fn resent(old: &[(blake3::Hash, usize)], new: &[(blake3::Hash, usize)]) -> usize {
    let have: HashSet<_> = old.iter().map(|c| c.0).collect();
    let mut sent = HashSet::new();
    new.iter()
        .filter(|c| !have.contains(&c.0) && sent.insert(c.0))
        .map(|c| c.1)
        .sum()
}

fn main() {
    let base = pseudo_random(128 * MIB, 0x9e37_79b9_7f4a_7c15);
    let patch = pseudo_random(MIB, 42);
    let mid = base.len() / 2 + 12_345;
    let mut overwrite = base.clone();
    overwrite[mid..mid + MIB].copy_from_slice(&patch);
    let append = [&base[..], &patch[..]].concat();
    let insert = [&base[..mid], &patch[..], &base[mid..]].concat();
    println!("| min / avg / max (KiB) | overwrite 1 MiB mid-file | append 1 MiB | insert 1 MiB mid-file | manifest of 1 GiB |");
    println!("|---|---|---|---|---|");
    for sizes in [
        (2048, 8192, 32768),
        (4096, 16384, 65536),
        (16384, 65536, 262_144),
        (32768, 131_072, 524_288),
        (65536, 262_144, 1_048_576),
    ] {
        let old = ids(&base, sizes);
        let manifest_1g = old.len() * 8 * 36;
        let mb = |n: usize| n as f64 / MIB as f64;
        println!(
            "| {} / {} / {} | {:.2} MiB | {:.2} MiB | {:.2} MiB | {:.2} MB |",
            sizes.0 / 1024,
            sizes.1 / 1024,
            sizes.2 / 1024,
            mb(resent(&old, &ids(&overwrite, sizes))),
            mb(resent(&old, &ids(&append, sizes))),
            mb(resent(&old, &ids(&insert, sizes))),
            manifest_1g as f64 / 1e6,
        );
    }
    let start = Instant::now();
    let manifest = cloudservice::chunk::manifest_of_reader(&base[..]).expect("in-memory read");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nchosen sizes, streaming chunk + BLAKE3 per chunk + whole-file BLAKE3 on one core: {} chunks, {:.2} GB/s",
        manifest.chunks.len(),
        base.len() as f64 / secs / 1e9
    );
}
