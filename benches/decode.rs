//! Decoder throughput: large `FileChunk` frames (bytes/s) and small control
//! frames (frames/s), each from one whole buffer and in 64 KiB socket reads.
//! `memcpy` rows copy the same bytes into a fresh `Vec`: the floor for a
//! decoder that hands out owned payloads.
//!
//! Run with `cargo bench --bench decode`.

use std::hint::black_box;

use cloudservice::protocol::{Frame, FrameDecoder, Message, PushAck, PushStatus, Status, WirePath};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A typical socket read.
const READ: usize = 64 * 1024;

/// Decodes every frame in `bytes`, fed in reads of `read` bytes; returns the
/// number of frames so the work cannot be optimised away.
fn decode_in_reads(bytes: &[u8], read: usize) -> usize {
    let mut decoder = FrameDecoder::new();
    let mut frames = 0;
    for mut chunk in bytes.chunks(read) {
        while !chunk.is_empty() {
            match decoder.feed(&mut chunk) {
                Ok(Status::Complete(frame)) => {
                    black_box(&frame);
                    frames += 1;
                }
                Ok(Status::Partial) => {}
                Err(e) => panic!("benchmark input does not decode: {e}"),
            }
        }
    }
    frames
}

fn file_chunks(c: &mut Criterion) {
    let mut group = c.benchmark_group("file_chunk");
    for (label, size) in [("256KiB", 256 * 1024), ("1MiB", 1024 * 1024)] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let bytes = Frame::new(1, Message::FileChunk(data)).to_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("whole", label), &bytes, |b, bytes| {
            b.iter(|| decode_in_reads(bytes, bytes.len()))
        });
        group.bench_with_input(
            BenchmarkId::new("reads_64KiB", label),
            &bytes,
            |b, bytes| b.iter(|| decode_in_reads(bytes, READ)),
        );
        group.bench_with_input(BenchmarkId::new("memcpy", label), &bytes, |b, bytes| {
            b.iter(|| black_box(bytes[12..].to_vec()))
        });
    }
    group.finish();
}

fn control_frames(c: &mut Criterion) {
    const FRAMES: usize = 4096;
    let path = WirePath::new("documents/2026/report (final).txt").expect("valid path");
    let mut bytes = Vec::new();
    for i in 0..FRAMES as u32 {
        let message = match i % 3 {
            0 => Message::Pull {
                cursor: u64::from(i),
            },
            1 => Message::Ack {
                cursor: u64::from(i),
            },
            _ => Message::PushAck(PushAck {
                status: PushStatus::Applied,
                version: u64::from(i),
                path: path.clone(),
            }),
        };
        Frame::new(i, message).encode(&mut bytes);
    }
    let mut group = c.benchmark_group("control");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("whole/pull_ack_pushack", |b| {
        b.iter(|| assert_eq!(decode_in_reads(&bytes, bytes.len()), FRAMES))
    });
    group.bench_function("reads_64KiB/pull_ack_pushack", |b| {
        b.iter(|| assert_eq!(decode_in_reads(&bytes, READ), FRAMES))
    });
    group.finish();
}

criterion_group!(benches, file_chunks, control_frames);
criterion_main!(benches);
