//! Gives memory that exited actor threads freed back to the operating system.
//!
//! Each actor thread allocates from one of glibc's per-thread arenas. When
//! thousands of users connect at once, thousands of actors run together; once
//! they retire, their freed memory stays inside those arenas (only the top of
//! a heap is ever returned on its own), so the server's RSS would stay at the
//! storm's peak. `malloc_trim` releases the free pages of every arena.

use libc::{malloc_trim, mallopt, M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD};

/// Allocations below this come from the heap and are reused; glibc's
/// default (128 KiB, adapting upward) sent every fresh 256 KiB file chunk
/// buffer to mmap/munmap, a page fault per 4 KiB on the upload path.
pub const MMAP_THRESHOLD: i32 = 4 * 1024 * 1024;

/// Free bytes at the top of a heap that glibc keeps instead of giving
/// them back at once. Setting [`MMAP_THRESHOLD`] fixes this one at its
/// 128 KiB default (glibc stops adapting both), so each 256 KiB frame
/// payload the reactor allocates and an actor frees shrank the heap and the
/// next one grew it again: 1,719 brk calls and a page fault per 4 KiB
/// of about a fifth of the bytes of a 1 GiB upload (BENCHMARKS.md "A cut
/// point in half the time"). Free memory of exited actors is still given
/// back by [`release_free_memory`], which trims whatever this says.
pub const TRIM_THRESHOLD: i32 = 4 * 1024 * 1024;

/// Arenas the allocator may use. Actor threads mostly sleep; a few shared
/// arenas keep what thousands of short-lived actors leave behind in one
/// place instead of spreading it over one arena per core times eight.
pub const ARENAS: i32 = 2;

/// Limits the allocator to [`ARENAS`] arenas and serves chunk-sized buffers
/// from the heap; call before starting threads.
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        mallopt(M_ARENA_MAX, ARENAS);
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Actor exits after which a trim is worth its cost (it walks every arena).
pub const EXITS_PER_TRIM: usize = 64;

/// When the reactor trims: after [`EXITS_PER_TRIM`] actor exits, or once
/// the last actor thread has ended (the storm is over).
#[derive(Debug, Default)]
pub struct TrimSchedule {
    exits: usize,
}

impl TrimSchedule {
    /// An actor thread ended.
    pub fn actor_exited(&mut self) {
        self.exits += 1;
    }

    /// Trims if it is time, given the actor threads still alive; returns
    /// whether it trimmed.
    pub fn tick(&mut self, threads_alive: usize) -> bool {
        if self.exits >= EXITS_PER_TRIM || (self.exits > 0 && threads_alive == 0) {
            self.exits = 0;
            release_free_memory();
            return true;
        }
        false
    }
}

/// Releases free heap memory to the OS; returns whether any was released.
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim only inspects and madvises the allocator's own
    // free chunks; it takes no pointers from us.
    unsafe { malloc_trim(0) != 0 }
}
