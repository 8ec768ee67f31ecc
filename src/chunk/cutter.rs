//! Content-defined cut points over a reader, each chunk lent as a slice of
//! one buffer: FastCDC's own cut function (`fastcdc::v2020::cut`), without
//! `StreamCDC`'s copies.
//!
//! `fastcdc::v2020::StreamCDC` (the crate's reader API, used here until
//! 2026-12-02) holds a [`MAX_CHUNK`] buffer and, for every chunk, collects
//! its bytes into a new `Vec`, shifts the rest of the buffer to the front
//! (`Vec::drain`: about 190 KiB moved for an average 64 KiB chunk) and
//! zero-fills the freed tail before reading again (`benches/chunking.rs`,
//! BENCHMARKS.md "Issue 11 targets 6 and 7"). [`Cutter`] reads up to
//! [`BUFFER`] bytes at a time straight into its buffer, moves at most one
//! unfinished [`MAX_CHUNK`] tail per refill, and lends each chunk in place.
//! The buffer is never zero-filled: it starts at [`FIRST_BUFFER`] and grows
//! with what the source holds, so a small file costs a small buffer (a
//! zeroed 4 MiB buffer per file made 20 KiB files 7x slower to cut than
//! with `StreamCDC`: the `small_files` rows of the bench).
//!
//! Same cut points as `StreamCDC::new(source, MIN_CHUNK, AVG_CHUNK,
//! MAX_CHUNK)`, byte for byte: both call the crate's `cut_gear` with the
//! seed-0 GEAR tables and normalisation level 1 on the next
//! `min(MAX_CHUNK, bytes left)` bytes (checked against `StreamCDC` by a
//! property test below).

use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use fastcdc::v2020::{cut, logarithm2, Normalization, MASKS};
use std::io::{self, Read};

/// Most bytes the cutter holds: 4 MiB (at least 16 average chunks per
/// refill, so the tail moved to the front, at most [`MAX_CHUNK`], costs at
/// most 1/16 of a copy of the data).
pub const BUFFER: usize = 4 << 20;

/// Capacity the buffer starts with (not initialised; it grows by doubling
/// up to [`BUFFER`] while the source has more): two [`MAX_CHUNK`]s.
pub const FIRST_BUFFER: usize = 2 * MAX_CHUNK as usize;

/// FastCDC's masks for [`AVG_CHUNK`] at normalisation level 1, computed as
/// `StreamCDC::with_level_and_seed` computes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Masks {
    small: u64,
    large: u64,
}

impl Masks {
    pub(crate) fn new() -> Masks {
        let bits = logarithm2(AVG_CHUNK) as usize;
        let level = Normalization::Level1.bits() as usize;
        Masks {
            small: MASKS[bits + level],
            large: MASKS[bits - level],
        }
    }

    /// The length of the chunk that starts `window`: FastCDC's cut point in
    /// it. `window` must be the next `min(MAX_CHUNK, bytes left)` bytes of
    /// the source for the cut to be the one [`Cutter`] and `StreamCDC`
    /// make. Returns 1..=`window.len()` (0 for an empty window).
    pub(crate) fn cut(self, window: &[u8]) -> usize {
        if window.is_empty() {
            return 0;
        }
        let (_, len) = cut(
            window,
            MIN_CHUNK as usize,
            AVG_CHUNK as usize,
            MAX_CHUNK as usize,
            self.small,
            self.large,
            self.small << 1,
            self.large << 1,
        );
        // `cut` returns 1..=window for a non-empty window; guard anyway so a
        // change in the crate cannot make a caller loop forever.
        len.clamp(1, window.len())
    }
}

/// The content-defined chunks of a reader, front to back; see the module
/// doc. Memory: one buffer of at most [`BUFFER`] bytes (rounded up by the
/// allocator's growth).
pub struct Cutter<R> {
    source: R,
    /// `buf[start..]` holds bytes read and not yet lent.
    buf: Vec<u8>,
    start: usize,
    /// The source said end of file.
    eof: bool,
    /// Offset in the source of `buf[start]`.
    offset: u64,
    masks: Masks,
}

impl<R: Read> Cutter<R> {
    /// A cutter over `source`, which it reads [`BUFFER`] bytes at a time (a
    /// `BufReader` around it is not needed: reads this large bypass one).
    pub fn new(source: R) -> Cutter<R> {
        Cutter {
            source,
            buf: Vec::with_capacity(FIRST_BUFFER),
            start: 0,
            eof: false,
            offset: 0,
            masks: Masks::new(),
        }
    }

    /// The next chunk: its offset in the source and its bytes (1 to
    /// [`MAX_CHUNK`], at least [`MIN_CHUNK`] except the last), lent until
    /// the next call; `None` after the last one.
    ///
    /// # Errors
    /// The source's [`io::Error`] (an `Interrupted` read is retried); the
    /// cutter should not be used after one.
    pub fn next_chunk(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        let max = MAX_CHUNK as usize;
        if self.buf.len() - self.start < max && !self.eof {
            self.refill()?;
        }
        let window = (self.buf.len() - self.start).min(max);
        if window == 0 {
            return Ok(None);
        }
        let len = self.masks.cut(&self.buf[self.start..self.start + window]);
        let at = self.start;
        let offset = self.offset;
        self.start += len;
        self.offset += len as u64;
        Ok(Some((offset, &self.buf[at..at + len])))
    }

    /// Moves the unlent tail to the front and reads until [`BUFFER`] bytes
    /// are held or the source ends (`read_to_end` reads into the spare
    /// capacity without zeroing it first, and retries `Interrupted`).
    fn refill(&mut self) -> io::Result<()> {
        self.buf.drain(..self.start);
        self.start = 0;
        let want = BUFFER.saturating_sub(self.buf.len());
        let got = (&mut self.source)
            .take(want as u64)
            .read_to_end(&mut self.buf)?;
        if got < want {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::StreamCDC;
    use proptest::prelude::*;

    /// A reader that hands out at most `step` bytes per read, to vary how
    /// the buffer fills.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (offset, length) of every chunk `StreamCDC` cuts: the previous
    /// implementation's output.
    fn stream_cdc(data: &[u8]) -> Vec<(u64, usize)> {
        StreamCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| {
                let c = c.expect("in-memory read");
                (c.offset, c.length)
            })
            .collect()
    }

    fn cutter<R: Read>(source: R, data: &[u8]) -> Vec<(u64, usize)> {
        let mut cutter = Cutter::new(source);
        let mut out = Vec::new();
        while let Some((offset, bytes)) = cutter.next_chunk().expect("in-memory read") {
            let at = offset as usize;
            assert_eq!(
                bytes,
                &data[at..at + bytes.len()],
                "lent bytes are the source's"
            );
            out.push((offset, bytes.len()));
        }
        out
    }

    /// Data that also has long runs of one byte (no cut point: every chunk
    /// MAX_CHUNK) and short repeated patterns, not only random bytes.
    fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut data = crate::chunk::test_bytes(len, seed);
        let mut at = (seed as usize) % len.max(1);
        while at < len {
            let run = (at / 7 + 300_000).min(len - at);
            if (at / 4096).is_multiple_of(3) {
                data[at..at + run].fill(0);
            }
            at += run * 2;
        }
        data
    }

    #[test]
    fn empty_and_tiny_sources() {
        for len in [0usize, 1, 63, 16 * 1024, 16 * 1024 + 1] {
            let data = crate::chunk::test_bytes(len, 3);
            assert_eq!(cutter(&data[..], &data), stream_cdc(&data), "len {len}");
        }
    }

    /// A small source is cut in a small buffer (never zeroed, so cheap to
    /// make per file), a large one in at most about BUFFER.
    #[test]
    fn the_buffer_grows_with_the_source() {
        let small = crate::chunk::test_bytes(20 * 1024, 5);
        let mut cutter = Cutter::new(&small[..]);
        while cutter.next_chunk().expect("in-memory read").is_some() {}
        assert_eq!(cutter.buf.capacity(), FIRST_BUFFER);
        let large = crate::chunk::test_bytes(3 * BUFFER, 6);
        let mut cutter = Cutter::new(&large[..]);
        while cutter.next_chunk().expect("in-memory read").is_some() {}
        assert!(
            cutter.buf.capacity() <= 2 * BUFFER,
            "{}",
            cutter.buf.capacity()
        );
    }

    #[test]
    fn a_read_error_is_passed_on() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let err = Cutter::new(Broken).next_chunk().expect_err("fails");
        assert_eq!(err.to_string(), "disk gone");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The same cut points as StreamCDC, whatever the content (random,
        /// or with runs that force MAX_CHUNK cuts), the length (across
        /// several BUFFER refills) and how the reader splits its reads.
        #[test]
        fn cut_points_are_stream_cdcs(
            seed in any::<u64>(),
            len in 0usize..(3 * BUFFER + 12_345),
            runs in any::<bool>(),
            step in prop_oneof![Just(usize::MAX), 1usize..(MAX_CHUNK as usize * 2)],
        ) {
            let data = if runs { mixed(len, seed) } else { crate::chunk::test_bytes(len, seed) };
            let want = stream_cdc(&data);
            let got = cutter(Dribble { data: &data, step: step.max(4096) }, &data);
            prop_assert_eq!(got, want);
        }
    }
}
