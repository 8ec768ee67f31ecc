//! Making downloaded files durable off the receive path (issue 11).
//!
//! A downloaded file is renamed into the folder only once its data is on
//! disk (`fsync`), so a crash never leaves a placed file with missing data.
//! Done one file at a time in the receive loop, that cost one journal commit
//! per file (2.9–4.2 ms each on the shared disk: 10,000 × 4 KiB took 12× as
//! long as rsync, BENCHMARKS.md "Why the misses"). Here a small pool of
//! threads fsyncs the files while the loop goes on receiving; fsyncs issued
//! together share the file system's journal commits. The loop collects the
//! finished ones ([`Syncer::try_done`], [`Syncer::wait_done`]) and only then
//! places them. The threads only call `fsync` on descriptors handed to them:
//! every decision (and every rename) stays on the loop's thread.

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::thread::JoinHandle;

/// Threads that fsync at once. Each spends its time blocked in the kernel,
/// so more threads than cores is the point: 16 concurrent fsyncs of 4 KiB
/// files took about a third of the serial time on this machine's ext4.
pub const SYNC_THREADS: usize = 16;

/// Most files handed to the pool and not yet reported back: past this the
/// loop waits for one (bounds open descriptors and unsynced data).
pub const MAX_UNSYNCED: usize = 256;

/// What a finished fsync reports: the key it was submitted with and the
/// outcome (an error means the file may not be durable: it is not placed).
pub type Synced = (u64, io::Result<()>);

/// A pool of fsync threads, started on the first [`Syncer::submit`]. If
/// threads cannot be started the files are synced on the caller's thread,
/// as before.
#[derive(Debug, Default)]
pub struct Syncer {
    jobs: Option<Sender<(u64, File)>>,
    done: Option<Receiver<Synced>>,
    workers: Vec<JoinHandle<()>>,
    /// Results of files synced on the caller's thread.
    inline: VecDeque<Synced>,
    /// Files submitted and not yet returned by `try_done`/`wait_done`.
    pending: usize,
}

impl Syncer {
    /// Hands `file` (flushed, its data in the page cache) to the pool; its
    /// result comes back under `key`.
    pub fn submit(&mut self, key: u64, file: File) {
        self.pending += 1;
        if self.jobs.is_none() && self.workers.is_empty() {
            self.start();
        }
        let file = match self.jobs.as_ref() {
            Some(jobs) => match jobs.send((key, file)) {
                Ok(()) => return,
                // Every worker is gone (cannot happen while we hold the
                // receiver side alive): sync here.
                Err(e) => e.into_inner().1,
            },
            None => file,
        };
        self.inline.push_back((key, file.sync_all()));
    }

    fn start(&mut self) {
        let (jobs, jobs_rx) = unbounded::<(u64, File)>();
        let (done_tx, done) = unbounded::<Synced>();
        for i in 0..SYNC_THREADS {
            let rx = jobs_rx.clone();
            let tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fsync-{i}"))
                .spawn(move || {
                    for (key, file) in rx {
                        let synced = file.sync_all();
                        drop(file);
                        if tx.send((key, synced)).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(handle) => self.workers.push(handle),
                Err(e) => {
                    log::warn!("could not start an fsync thread: {e}");
                    break;
                }
            }
        }
        if !self.workers.is_empty() {
            self.jobs = Some(jobs);
            self.done = Some(done);
        }
    }

    /// Files submitted whose result has not been taken yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// A finished fsync, if one is ready (never blocks).
    pub fn try_done(&mut self) -> Option<Synced> {
        let got = self
            .inline
            .pop_front()
            .or_else(|| self.done.as_ref().and_then(|d| d.try_recv().ok()));
        self.took(got)
    }

    /// The next finished fsync, waiting for one if any is pending; `None`
    /// when nothing is pending.
    pub fn wait_done(&mut self) -> Option<Synced> {
        if self.pending == 0 {
            return None;
        }
        let got = self
            .inline
            .pop_front()
            .or_else(|| self.done.as_ref().and_then(|d| d.recv().ok()));
        self.took(got)
    }

    fn took(&mut self, got: Option<Synced>) -> Option<Synced> {
        if got.is_some() {
            self.pending -= 1;
        }
        got
    }
}

impl Drop for Syncer {
    /// Closes the queue and waits for the threads (each finishes the fsync
    /// it is in, bounded by the queue's [`MAX_UNSYNCED`]).
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Fsyncs each directory (by its path) so the renames into it are durable.
///
/// # Errors
/// The first directory that cannot be opened or synced.
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a std::path::Path>) -> io::Result<()> {
    for dir in dirs {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::Write;

    fn files(dir: &std::path::Path, n: u64) -> Vec<(u64, File)> {
        (0..n)
            .map(|i| {
                let mut f = File::create(dir.join(format!("f{i}"))).unwrap();
                f.write_all(&i.to_le_bytes()).unwrap();
                (i, f)
            })
            .collect()
    }

    #[test]
    fn every_submitted_file_comes_back_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = Syncer::default();
        let mut seen = BTreeSet::new();
        for (i, f) in files(dir.path(), 600) {
            syncer.submit(i, f);
            while let Some((key, r)) = syncer.try_done() {
                r.unwrap();
                assert!(seen.insert(key), "{key} twice");
            }
        }
        while let Some((key, r)) = syncer.wait_done() {
            r.unwrap();
            assert!(seen.insert(key), "{key} twice");
        }
        assert_eq!(syncer.pending(), 0);
        assert_eq!(seen, (0..600).collect());
        assert!(syncer.wait_done().is_none());
    }

    #[test]
    fn a_dropped_pool_with_pending_files_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = Syncer::default();
        for (i, f) in files(dir.path(), 50) {
            syncer.submit(i, f);
        }
        drop(syncer);
    }

    #[test]
    fn directories_sync_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        sync_dirs([dir.path()]).unwrap();
        let gone = dir.path().join("gone");
        assert!(sync_dirs([gone.as_path()]).is_err());
    }
}
