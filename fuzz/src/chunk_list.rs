//! The `chunk_list` property: hostile chunk lists and chunk offers against
//! the receiving side of delta transfer (`ManifestReceiver`, `AssemblyPlan`).
//!
//! # Input
//! ```text
//! mode u8 | …
//! ```
//! Mode even: an honest file (pseudo-random, its length and seed from the
//! input) whose real manifest is then damaged by input-driven edits (a length
//! or hash changed, an entry dropped, duplicated or swapped, the size or the
//! announced count off), sent in frames of input-chosen sizes, then offered
//! chunks that are honest, corrupted, truncated or at a wrong index.
//! Mode odd: size, count and every entry straight from the input.
//!
//! Bit 3 of the damage byte sends the list with 16-byte IDs (§13.6).
//! Mode 3 modulo 4: a chunk list delta (§13.7): an honest base file, an
//! edit of it whose list is sent as a `ChunkListDelta` through the frame
//! codec, then operations straight from the input against the same base.
//!
//! Properties: nothing panics; a list that is accepted tiles `0..size`; every
//! write lands inside the file; a plan that completes has written every byte
//! of `0..size`; when the manifest was not damaged the built file is the
//! honest file byte for byte.

use super::ByteSource;
use cloudservice::chunk::{
    manifest_of_reader, test_bytes, AssemblyPlan, ChunkEntry, IdLen, ManifestReceiver,
};
use cloudservice::protocol::ContentHash;

/// Largest honest file a fuzz input builds: 1 MiB (a few chunks).
const MAX_HONEST: usize = 1 << 20;

/// Checks the properties for one input.
///
/// # Panics
/// When a property does not hold.
pub fn check_chunk_list(data: &[u8]) {
    let mut src = ByteSource::new(data);
    let mode = src.u8();
    if mode % 4 == 3 {
        delta_list(&mut src);
    } else if mode.is_multiple_of(2) {
        honest_then_damaged(&mut src);
    } else {
        raw_list(&mut src);
    }
}

/// Chunk list deltas (§13.7): an honest edit's delta expands to the edited
/// list exactly; hostile operations either are refused or expand to
/// exactly the announced count of entries, each a base entry of its run or
/// a new one, and the receiver then checks the list as any other.
fn delta_list(src: &mut ByteSource<'_>) {
    use cloudservice::protocol::list_delta::{diff, expand};
    use cloudservice::protocol::{ChunkListDelta, Frame, ListOp, Message, ShortChunkEntry};
    let len = usize::from(src.u16()) * 16 % (MAX_HONEST + 1);
    let seed = src.u64();
    let base_file = test_bytes(len, seed);
    let Ok(base) = manifest_of_reader(&base_file[..]) else {
        panic!("in-memory read failed");
    };
    let mut edited = base_file.clone();
    let at = usize::from(src.u16()) * 16 % (edited.len() + 1);
    let n = usize::from(src.u16());
    match src.u8() % 3 {
        0 => edited
            .splice(at..at, test_bytes(n, seed ^ 1))
            .for_each(drop),
        1 => edited.drain(at..(at + n).min(edited.len())).for_each(drop),
        _ => edited.truncate(at),
    }
    let Ok(new) = manifest_of_reader(&edited[..]) else {
        panic!("in-memory read failed");
    };
    let short = |e: &ChunkEntry| ChunkEntry {
        len: e.len,
        id: IdLen::Short.cut(e.id),
    };
    let honest = ChunkListDelta {
        base_hash: base.hash,
        ops: diff(&base.chunks, &new.chunks),
    };
    if !honest.ops.is_empty() {
        let bytes = Frame::new(1, Message::ChunkListDelta(honest.clone())).to_bytes();
        let (frames, _) = cloudservice::protocol::decode_all(&bytes);
        assert_eq!(frames.len(), 1, "an honest delta must decode");
        assert_eq!(frames[0].message, Message::ChunkListDelta(honest.clone()));
    }
    let expanded = expand(&base.chunks, &honest.ops, new.chunks.len() as u32)
        .expect("an honest delta expands");
    assert!(
        expanded
            .iter()
            .eq(new.chunks.iter().map(short).collect::<Vec<_>>().iter()),
        "an honest delta expanded to another list"
    );
    // Hostile operations from the input.
    let mut ops = Vec::new();
    for _ in 0..usize::from(src.u8() % 16) {
        if src.u8().is_multiple_of(2) {
            ops.push(ListOp::Copy {
                first: src.u32() >> (src.u8() % 32),
                count: src.u32() >> (src.u8() % 32),
            });
        } else {
            ops.push(ListOp::New(ShortChunkEntry {
                len: src.u32() >> 8,
                id: src.array(),
            }));
        }
    }
    let announced = src.u32() >> (src.u8() % 32);
    // Through the codec: what it refuses never reaches the expansion.
    let mut payload = Vec::new();
    Message::ChunkListDelta(ChunkListDelta {
        base_hash: base.hash,
        ops,
    })
    .encode_payload(&mut payload);
    let Ok(Message::ChunkListDelta(decoded)) =
        Message::decode(cloudservice::protocol::Kind::ChunkListDelta, payload)
    else {
        return;
    };
    let Ok(list) = expand(&base.chunks, &decoded.ops, announced) else {
        return;
    };
    assert_eq!(list.len(), announced as usize, "expanded to another count");
    let mut at = 0usize;
    for op in &decoded.ops {
        match *op {
            ListOp::Copy { first, count } => {
                for k in 0..count as usize {
                    assert_eq!(list[at + k], short(&base.chunks[first as usize + k]));
                }
                at += count as usize;
            }
            ListOp::New(e) => {
                assert_eq!(list[at], e.to_entry());
                at += 1;
            }
        }
    }
    let size = list.iter().map(|e| u64::from(e.len)).sum();
    if let Ok(mut receiver) = ManifestReceiver::new(size, new.hash, announced) {
        if receiver.push_ids(&list, IdLen::Short).is_ok() {
            let _ = receiver.finish();
        }
    }
}

fn raw_list(src: &mut ByteSource<'_>) {
    let size = src.u64() >> (src.u8() % 64);
    let count = src.u32();
    let Ok(mut receiver) = ManifestReceiver::new(size, ContentHash(src.array()), count) else {
        return;
    };
    while !src.is_empty() && !receiver.is_complete() {
        let n = 1 + usize::from(src.u8() % 16);
        let entries: Vec<ChunkEntry> = (0..n)
            .map(|_| ChunkEntry {
                len: src.u32() >> (src.u8() % 32),
                id: ContentHash([src.u8(); 32]),
            })
            .collect();
        if receiver.push(&entries).is_err() {
            return;
        }
    }
    if let Ok(manifest) = receiver.finish() {
        let end = manifest.offsets().fold(0u64, |at, (offset, chunk)| {
            assert_eq!(offset, at, "accepted list does not tile");
            at + u64::from(chunk.len)
        });
        assert_eq!(end, manifest.size, "accepted list does not add up");
        let _ = AssemblyPlan::new(&manifest).expect("a valid list plans");
    }
}

fn honest_then_damaged(src: &mut ByteSource<'_>) {
    let len = usize::from(src.u16()) * 16 % (MAX_HONEST + 1);
    let file = test_bytes(len, src.u64());
    let Ok(honest) = manifest_of_reader(&file[..]) else {
        panic!("in-memory read failed");
    };
    let mut manifest = honest.clone();
    let damage = src.u8();
    let at = usize::from(src.u8());
    let n = manifest.chunks.len();
    if n > 0 {
        let i = at % n;
        match damage % 8 {
            0 => manifest.chunks[i].len ^= 1 << (src.u8() % 32),
            1 => manifest.chunks[i].id.0[0] ^= 1,
            2 => {
                manifest.chunks.remove(i);
            }
            3 => manifest.chunks.insert(i, manifest.chunks[i]),
            4 => manifest.chunks.swap(i, (i + 1) % n),
            5 => manifest.size = manifest.size.wrapping_add(u64::from(src.u8()) + 1),
            _ => {}
        }
    }
    let damaged = manifest != honest;
    // Bit 3 of the damage byte: the list travels with 16-byte IDs (§13.6).
    let id_len = if damage & 8 != 0 {
        IdLen::Short
    } else {
        IdLen::Full
    };
    for chunk in &mut manifest.chunks {
        chunk.id = id_len.cut(chunk.id);
    }
    let mut count = manifest.chunks.len() as u32;
    if damage % 8 == 6 {
        count = count.wrapping_add(u32::from(src.u8()) + 1);
    }
    let Ok(mut receiver) = ManifestReceiver::new(manifest.size, manifest.hash, count) else {
        return;
    };
    for part in manifest.chunks.chunks(1 + usize::from(src.u8() % 4)) {
        if receiver.push_ids(part, id_len).is_err() {
            return;
        }
    }
    let Ok(received) = receiver.finish() else {
        return;
    };
    let Ok(mut plan) = AssemblyPlan::new(&received) else {
        panic!("a list the receiver accepted must plan");
    };
    let size = usize::try_from(received.size).expect("honest sizes are small");
    let mut built = vec![0u8; size];
    let mut written = vec![false; size];
    let honest_chunks: Vec<(u64, ChunkEntry)> = honest.offsets().map(|(o, c)| (o, *c)).collect();
    // Offers: honest chunks in an input-driven order, some corrupted.
    for _ in 0..64 {
        if plan.is_complete() || honest_chunks.is_empty() {
            break;
        }
        let pick = usize::from(src.u8()) % honest_chunks.len();
        let (offset, chunk) = honest_chunks[pick];
        let mut bytes = file[offset as usize..offset as usize + chunk.len as usize].to_vec();
        match src.u8() % 6 {
            0 if !bytes.is_empty() => bytes[0] ^= 0x40,
            1 => {
                bytes.pop();
            }
            _ => {}
        }
        let key = id_len.cut(chunk.id);
        if let Ok(offsets) = plan.fill(&key, &bytes) {
            assert_eq!(
                id_len.cut(ContentHash::of(&bytes)),
                key,
                "accepted wrong bytes"
            );
            for &o in offsets {
                let o = usize::try_from(o).expect("small");
                let end = o + bytes.len();
                assert!(end <= size, "write past the end: {o}+{}", bytes.len());
                built[o..end].copy_from_slice(&bytes);
                written[o..end].iter_mut().for_each(|w| *w = true);
            }
        }
    }
    if plan.is_complete() {
        assert!(written.iter().all(|&w| w), "complete plan left a hole");
        if !damaged {
            assert_eq!(built, file, "undamaged manifest built other bytes");
            assert_eq!(
                plan.full_manifest(&received).as_ref(),
                Some(&honest),
                "the completed plan's full IDs are not the file's"
            );
        }
    }
}
