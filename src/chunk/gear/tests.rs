use super::*;
use crate::chunk::{test_bytes, AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use fastcdc::v2020::{logarithm2, MASKS};
use proptest::prelude::*;

/// The crate's answer (the reference: PROTOCOL.md §13.2 names it).
fn reference(source: &[u8], min: usize, avg: usize, max: usize, s: u64, l: u64) -> usize {
    fastcdc::v2020::cut(source, min, avg, max, s, l, s << 1, l << 1).1
}

/// Sizes and masks as the cutter makes them (normalisation level 1).
fn params(min: u32, avg: u32, max: u32) -> (usize, usize, usize, u64, u64) {
    let bits = logarithm2(avg) as usize;
    (
        min as usize,
        avg as usize,
        max as usize,
        MASKS[bits + 1],
        MASKS[bits - 1],
    )
}

fn same_as_crate(data: &[u8], (min, avg, max, s, l): (usize, usize, usize, u64, u64)) {
    let want = reference(data, min, avg, max, s, l);
    let got = cut(data, min, avg, max, s, l);
    assert_eq!(
        got,
        want,
        "len {} min {min} avg {avg} max {max}",
        data.len()
    );
}

/// Bytes from a tiny alphabet: the mask is met often, in any lane of a
/// block, several times a block with small masks.
fn low_entropy(len: usize, seed: u64, alphabet: u8) -> Vec<u8> {
    test_bytes(len, seed)
        .into_iter()
        .map(|b| b % alphabet)
        .collect()
}

#[test]
fn every_window_length_class_of_the_protocols_sizes() {
    let p = params(MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
    let data = test_bytes(2 * MAX_CHUNK as usize, 7);
    let edges = [
        0,
        1,
        2,
        MIN_CHUNK as usize,
        AVG_CHUNK as usize,
        MAX_CHUNK as usize,
    ];
    for edge in edges {
        for delta in 0..5usize {
            for len in [edge + delta, edge.saturating_sub(delta)] {
                same_as_crate(&data[..len], p);
                same_as_crate(&data[3..3 + len], p);
            }
        }
    }
    for len in (0..2 * MAX_CHUNK as usize).step_by(4099) {
        same_as_crate(&data[..len], p);
    }
}

#[test]
fn runs_of_one_byte_are_cut_at_the_window_like_the_crate() {
    let p = params(MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
    for byte in [0u8, 0xff, 0x5a] {
        let data = vec![byte; MAX_CHUNK as usize + 5];
        for len in [MAX_CHUNK as usize + 5, MAX_CHUNK as usize, 100_001, 40_000] {
            same_as_crate(&data[..len], p);
        }
    }
}

#[test]
fn a_whole_file_is_cut_where_the_crate_cuts_it() {
    let p = params(MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
    let data = test_bytes(16 << 20, 11);
    let (mut at, mut cuts) = (0, 0);
    while at < data.len() {
        let window = &data[at..(at + MAX_CHUNK as usize).min(data.len())];
        let want = reference(window, p.0, p.1, p.2, p.3, p.4);
        assert_eq!(
            cut(window, p.0, p.1, p.2, p.3, p.4),
            want,
            "chunk {cuts} at {at}"
        );
        at += want.max(1);
        cuts += 1;
    }
    assert!(cuts > 200, "{cuts}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any content (random, or a tiny alphabet that meets the mask in many
    /// lanes at once), any length, and sizes down to FastCDC's smallest:
    /// the crate's cut.
    #[test]
    fn the_crates_cut_point(
        seed in any::<u64>(),
        len in 0usize..300_000,
        alphabet in prop_oneof![Just(0u8), 2u8..5, Just(255)],
        sizes in prop_oneof![
            Just((MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)),
            Just((64u32, 256, 1024)),
            Just((2048u32, 8192, 32768)),
            Just((4096u32, 16384, 65536)),
            Just((16384u32, 65536, 262144 * 4)),
        ],
        skew in 0usize..3,
    ) {
        let data = if alphabet == 0 { test_bytes(len + skew, seed) } else { low_entropy(len + skew, seed, alphabet) };
        let (min, avg, max, s, l) = params(sizes.0, sizes.1, sizes.2);
        let data = &data[skew..];
        prop_assert_eq!(cut(data, min, avg, max, s, l), reference(data, min, avg, max, s, l));
    }
}

/// What each lane starts from is the crate's hash at that pair, all 64
/// bits (a lane with a shorter warm-up would miss or invent a match in its
/// first bytes, rarely enough for a whole-file test to pass by luck).
#[test]
fn a_lanes_warm_up_gives_the_crates_hash() {
    let g = tables();
    let data = test_bytes(64 * 1024, 5);
    let first = MIN_CHUNK as usize / 2;
    let mut hash = 0u64;
    for pair in first..data.len() / 2 {
        assert_eq!(warm(g, &data, first, pair), hash, "before pair {pair}");
        let a = pair * 2;
        hash = (hash << 2).wrapping_add(g.gear_ls[usize::from(data[a])]);
        hash = hash.wrapping_add(g.gear[usize::from(data[a + 1])]);
    }
}
