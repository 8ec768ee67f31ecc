//! FastCDC's cut point (the `fastcdc` crate's `v2020::cut`, PROTOCOL.md
//! §13.2), byte for byte, in about half its CPU time (issue 12: the
//! server cuts every stream upload, R-13.8.8, and this was its largest
//! single cost: 0.49 of 2.7 CPU-s per GiB uploaded over TLS).
//!
//! Why it can be faster and stay exact: the crate's loop is one chain of
//! dependent shift-adds (`hash = (hash << 1) + GEAR[byte]`, two bytes a
//! step), so the CPU waits on the previous byte's add and it runs at
//! about 2 GB/s whatever the core can issue. But a 64-bit gear hash
//! forgets a byte 64 bytes later (each step shifts it one bit further
//! out), so the hash at any position is a function of the 64 bytes before
//! it. [`cut`] therefore splits what it scans into blocks of [`LANES`]
//! runs of [`SPAN`] byte pairs and hashes the runs side by side, each
//! started from zero [`WARM`] pairs (64 bytes) before its run: from its
//! run's first byte on, each lane's hash is exactly the crate's. A block
//! in which any lane meets the mask is scanned again with the crate's own
//! loop from the block's start (once per chunk, at most `LANES * SPAN`
//! pairs), which returns the first cut, so the result is the crate's.
//! Where the crate starts its hash at zero (at `min_size`, not 64 bytes
//! earlier), the warm-up starts there too, as the crate does.
//!
//! Checked against the crate's `cut` on random, zero and low-entropy data
//! of every window length class (tests below), and through [`super::cutter`]
//! against `StreamCDC`.

use fastcdc::v2020::get_gear_with_seed;
use std::sync::OnceLock;

/// Runs hashed side by side in a block: enough independent chains to fill
/// the core's ALUs (4 measured best, against 6 and 8).
const LANES: usize = 4;

/// Byte pairs per lane per block (2 KiB): long enough that the 64-byte
/// warm-up costs ~3 %, short enough that what a block hashes past the cut
/// (half a block on average, 4 KiB) stays small next to a 48 KiB scan.
const SPAN: usize = 1024;

/// Byte pairs a lane hashes before its run: 64 bytes, after which no byte
/// before the run is left in a 64-bit hash.
const WARM: usize = 32;

/// The gear tables of seed 0 (§13.2), as the crate's `cut` uses them.
struct Gear {
    gear: [u64; 256],
    /// `gear` shifted left by one bit (the crate's GEAR_LS).
    gear_ls: [u64; 256],
}

fn tables() -> &'static Gear {
    static TABLES: OnceLock<Gear> = OnceLock::new();
    TABLES.get_or_init(|| {
        let (gear, gear_ls) = get_gear_with_seed(0);
        Gear {
            gear: *gear,
            gear_ls: *gear_ls,
        }
    })
}

/// The length of the chunk that starts `source`: what the crate's
/// `fastcdc::v2020::cut(source, min_size, avg_size, max_size, mask_s,
/// mask_l, mask_s << 1, mask_l << 1).1` returns, for the same arguments.
pub fn cut(
    source: &[u8],
    min_size: usize,
    avg_size: usize,
    max_size: usize,
    mask_s: u64,
    mask_l: u64,
) -> usize {
    let mut remaining = source.len();
    if remaining <= min_size {
        return remaining;
    }
    let mut center = avg_size;
    if remaining > max_size {
        remaining = max_size;
    } else if remaining < center {
        center = remaining;
    }
    let g = tables();
    // In pairs, as the crate counts: its hash starts at zero at pair
    // `first`; pairs before `center / 2` are checked with the small mask,
    // the rest up to `remaining / 2` with the large one.
    let first = min_size / 2;
    let mid = (center / 2).max(first);
    let small = Masks {
        m: mask_s,
        m_ls: mask_s << 1,
    };
    let large = Masks {
        m: mask_l,
        m_ls: mask_l << 1,
    };
    let hash = match scan(g, source, first, 0, first, mid, small) {
        Ok(at) => return at,
        Err(hash) => hash,
    };
    match scan(g, source, first, hash, mid, remaining / 2, large) {
        Ok(at) => at,
        Err(_) => remaining,
    }
}

/// A mask and its shifted twin (checked after a pair's first byte).
#[derive(Clone, Copy)]
struct Masks {
    m: u64,
    m_ls: u64,
}

/// The crate's loop over pairs `lo..hi` with `hash` the hash before pair
/// `lo`: `Ok(cut length)` at the first match, else `Err(hash after hi)`.
#[inline(always)]
fn scalar(
    g: &Gear,
    src: &[u8],
    mut hash: u64,
    lo: usize,
    hi: usize,
    k: Masks,
) -> Result<usize, u64> {
    for pair in lo..hi {
        let a = pair * 2;
        hash = (hash << 2).wrapping_add(g.gear_ls[usize::from(src[a])]);
        if hash & k.m_ls == 0 {
            return Ok(a);
        }
        hash = hash.wrapping_add(g.gear[usize::from(src[a + 1])]);
        if hash & k.m == 0 {
            return Ok(a + 1);
        }
    }
    Err(hash)
}

/// The crate's hash before pair `at`, from the [`WARM`] pairs before it
/// (or from pair `first`, where the crate's hash starts at zero).
#[inline(always)]
fn warm(g: &Gear, src: &[u8], first: usize, at: usize) -> u64 {
    let mut hash = 0u64;
    for pair in at.saturating_sub(WARM).max(first)..at {
        let a = pair * 2;
        hash = (hash << 2).wrapping_add(g.gear_ls[usize::from(src[a])]);
        hash = hash.wrapping_add(g.gear[usize::from(src[a + 1])]);
    }
    hash
}

/// [`scalar`]'s answer for pairs `lo..hi` (`first` where the crate's hash
/// started), computed a block of [`LANES`] runs at a time (module doc).
fn scan(
    g: &Gear,
    src: &[u8],
    first: usize,
    mut hash: u64,
    mut lo: usize,
    hi: usize,
    k: Masks,
) -> Result<usize, u64> {
    const BLOCK: usize = LANES * SPAN;
    while lo + BLOCK <= hi {
        let block = &src[2 * lo..2 * (lo + BLOCK)];
        let mut lanes = [hash; LANES];
        for (lane, h) in lanes.iter_mut().enumerate().skip(1) {
            *h = warm(g, src, first, lo + lane * SPAN);
        }
        let mut met = false;
        for pair in 0..SPAN {
            let mut any = false;
            for (lane, h) in lanes.iter_mut().enumerate() {
                let a = 2 * (lane * SPAN + pair);
                let h1 = (*h << 2).wrapping_add(g.gear_ls[usize::from(block[a])]);
                let h2 = h1.wrapping_add(g.gear[usize::from(block[a + 1])]);
                any |= (h1 & k.m_ls == 0) | (h2 & k.m == 0);
                *h = h2;
            }
            if any {
                met = true;
                break;
            }
        }
        if met {
            // The first match of the block, exactly: the crate's loop from
            // the block's start (a lane's match may not be the first).
            return match scalar(g, src, hash, lo, lo + BLOCK, k) {
                Ok(at) => Ok(at),
                // Unreachable (a lane's hash is the crate's), but exact
                // anyway: go on after the block.
                Err(hash) => scan(g, src, first, hash, lo + BLOCK, hi, k),
            };
        }
        hash = lanes[LANES - 1];
        lo += BLOCK;
    }
    scalar(g, src, hash, lo, hi, k)
}

#[cfg(test)]
mod tests;
