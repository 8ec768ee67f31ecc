//! A file written out to disk while it arrives, so the fsync that makes it
//! durable finds little left to write: the client's download builds, and
//! the server's uploads with `--fsync` (PROTOCOL.md §10, R-10.1: the
//! file is fsynced before the PushAck; `server::store::upload`).
//!
//! Without it the page cache holds what the kernel's flusher has not yet
//! written (pages dirtied in the last ~30 s: `vm.dirty_expire_centisecs`),
//! and the build's `sync_all` writes all of it after the last byte came in:
//! 0.38 s for a 1 GiB download over a 100 Mbit/s link (BENCHMARKS.md, "Issue
//! 12's last target: where every byte and round trip goes"), on a `--once`
//! run's critical path; on the server, 0.43 s after the last byte of a 1 GiB
//! upload on loopback before the PushAck (BENCHMARKS.md, "Server uploads
//! written out while they arrive"). Starting the write-out every
//! [`KICK_EVERY`] bytes moves that disk time under the transfer; the
//! fsync still makes the file durable before it is placed (nothing about
//! durability changes: this only starts writes that the fsync would do).
//!
//! [`Writeback`] decides when (no I/O); [`start_writeback`] does it.

use std::fs::File;
use std::io;

/// Bytes written to a build between two starts of its write-out: 8 MiB,
/// about 0.7 s of a 100 Mbit/s link, so at most that much (plus what the
/// disk has not finished) is left for the final fsync.
pub const KICK_EVERY: u64 = 8 << 20;

/// Counts the bytes written to one build since its write-out was last
/// started.
#[derive(Debug, Default)]
pub struct Writeback {
    unkicked: u64,
}

impl Writeback {
    /// `n` more bytes were written to the build; true when its write-out
    /// should be started now (every [`KICK_EVERY`] bytes, then counted from
    /// zero again).
    pub fn wrote(&mut self, n: u64) -> bool {
        self.unkicked = self.unkicked.saturating_add(n);
        if self.unkicked < KICK_EVERY {
            return false;
        }
        self.unkicked = 0;
        true
    }
}

/// Starts writing every dirty page of `file` to disk and returns without
/// waiting for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)` over the
/// whole file). Does nothing on other systems.
///
/// # Errors
/// The system call's error. A caller may ignore it: the fsync before the
/// file is placed is what makes it durable.
pub fn start_writeback(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a plain system call on a descriptor `file` keeps open for
        // the call's duration; offset 0 and length 0 mean the whole file.
        let rc =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The write-out starts once at least KICK_EVERY bytes were written
    /// since the last start, at the first write that reaches it, whatever
    /// the sizes of the writes; never before the first KICK_EVERY.
    #[test]
    fn starts_once_per_kick_every_bytes_whatever_the_write_sizes() {
        let sizes = [
            4096,
            65_536,
            262_144,
            1_000_003,
            KICK_EVERY - 1,
            KICK_EVERY,
            3 * KICK_EVERY,
        ];
        for size in sizes {
            let mut w = Writeback::default();
            let total = 48 * KICK_EVERY;
            let (mut written, mut since, mut kicks) = (0u64, 0u64, 0u64);
            // Bounded: `total / size + 1` writes.
            while written < total {
                let n = size.min(total - written);
                written += n;
                since += n;
                if w.wrote(n) {
                    assert!(
                        since >= KICK_EVERY && since - n < KICK_EVERY,
                        "writes of {size}"
                    );
                    kicks += 1;
                    since = 0;
                } else {
                    assert!(
                        since < KICK_EVERY,
                        "writes of {size}: {since} bytes not started"
                    );
                }
            }
            if total.is_multiple_of(size) {
                let per = KICK_EVERY.div_ceil(size) * size;
                assert_eq!(kicks, total / per, "writes of {size}");
            }
        }
        let mut w = Writeback::default();
        assert!(!w.wrote(KICK_EVERY - 1));
        assert!(w.wrote(1));
        assert!(!w.wrote(KICK_EVERY - 1));
        assert!(w.wrote(u64::MAX), "no overflow");
    }

    /// Starting the write-out of a file with dirty pages (and of an empty
    /// one) succeeds and changes nothing of its content.
    #[test]
    fn starting_the_write_out_keeps_the_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let at = dir.path().join("build");
        let mut file = File::create(&at).expect("create");
        start_writeback(&file).expect("empty file");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).expect("write");
        start_writeback(&file).expect("dirty file");
        file.sync_all().expect("sync");
        assert_eq!(std::fs::read(&at).expect("read"), bytes);
    }
}
