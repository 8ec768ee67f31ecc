//! Making downloaded files durable off the receive path (issue 11).
//!
//! A downloaded file (or one a pull copied from content this device already
//! had) is renamed into the folder only once its data is on disk (`fsync`),
//! so a crash after the pull is acknowledged never leaves a placed file with
//! missing data. Done one file at a time in the receive loop, that cost one
//! journal commit per file (2.9–4.2 ms each on the shared disk: 10,000 ×
//! 4 KiB took 12× as long as rsync, BENCHMARKS.md "Why the misses"). Here a
//! pool of threads ([`SyncPool`], started once for the client's run) fsyncs
//! the files while the loop goes on receiving; fsyncs issued together share
//! the file system's journal commits. Each pull has its own [`Syncer`] on
//! that pool, with its own reply channel: the loop collects the finished
//! ones ([`Syncer::try_done`], [`Syncer::wait_done`]) and only then places
//! them, and results of an abandoned pull go nowhere. The threads only call
//! `fsync` on descriptors handed to them: every decision (and every rename)
//! stays on the loop's thread.

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::collections::VecDeque;
use std::fs::File;
use std::io;

/// Threads that fsync at once. Each spends its time blocked in the kernel,
/// so more threads than cores is the point: 16 concurrent fsyncs of 4 KiB
/// files took about a third of the serial time on this machine's ext4.
pub const SYNC_THREADS: usize = 16;

/// Most files handed to the pool and not yet reported back: past this the
/// loop waits for one (bounds open descriptors and unsynced data). Also the
/// capacity of the pool's queue, so the queue never holds more than one
/// pull's worth even when an abandoned pull left files in it.
pub const MAX_UNSYNCED: usize = 256;

/// Most files handed to the pool and not yet reported back by one pull,
/// for a process allowed `nofile` open files (`None`: unknown): a quarter
/// of that when it is less than [`MAX_UNSYNCED`] (at least 4), so the
/// descriptors waiting for their fsync leave the rest of the client (its
/// connection, watches, index, downloads) room under a low `ulimit -n`
/// (outside tester breaker22 F3 ran one under 1,024 and 256).
pub fn unsynced_limit(nofile: Option<usize>) -> usize {
    nofile.map_or(MAX_UNSYNCED, |n| (n / 4).clamp(4, MAX_UNSYNCED))
}

/// [`unsynced_limit`] of this process's soft `RLIMIT_NOFILE`, read once.
fn this_process_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| unsynced_limit(crate::server::config::open_file_limit()))
}

/// What a finished fsync reports: the key it was submitted with and the
/// outcome (an error means the file may not be durable: it is not placed).
pub type Synced = (u64, io::Result<()>);

/// One file to fsync and where to report it.
pub(super) struct Job {
    key: u64,
    file: File,
    done: Sender<Synced>,
}

/// The client's fsync threads, started once ([`SyncPool::start`]) and shared
/// by every pull of the run (cloning is cheap: a queue handle). The threads
/// end when the last handle is dropped. The queue is bounded
/// ([`MAX_UNSYNCED`]): a submit waits while it is full.
#[derive(Debug, Clone, Default)]
pub struct SyncPool {
    /// `None` when no thread could be started: files are synced inline.
    jobs: Option<Sender<Job>>,
}

impl SyncPool {
    /// Starts [`SYNC_THREADS`] threads (as many as the system gives; with
    /// none, [`Syncer`]s on this pool sync on the caller's thread).
    pub fn start() -> SyncPool {
        SyncPool::with_threads(SYNC_THREADS)
    }

    fn with_threads(threads: usize) -> SyncPool {
        let (jobs, jobs_rx) = bounded::<Job>(MAX_UNSYNCED);
        let mut started = 0;
        for i in 0..threads {
            let rx = jobs_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fsync-{i}"))
                .spawn(move || {
                    for job in rx {
                        let synced = job.file.sync_all();
                        drop(job.file);
                        // The pull that asked may be gone (abandoned): its
                        // result is not wanted, the thread goes on.
                        let _ = job.done.send((job.key, synced));
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => {
                    log::warn!("could not start an fsync thread: {e}");
                    break;
                }
            }
        }
        SyncPool {
            jobs: (started > 0).then_some(jobs),
        }
    }
}

#[cfg(test)]
impl Job {
    /// Does what a pool thread does with it.
    pub(super) fn run(self) {
        let synced = self.file.sync_all();
        let _ = self.done.send((self.key, synced));
    }
}

#[cfg(test)]
impl SyncPool {
    /// A pool without threads whose queue the test holds: nothing is
    /// synced until the test runs the jobs ([`Job::run`]).
    pub(super) fn gated() -> (SyncPool, Receiver<Job>) {
        let (jobs, rx) = bounded(MAX_UNSYNCED);
        (SyncPool { jobs: Some(jobs) }, rx)
    }
}

/// One pull's use of a [`SyncPool`]: what it submitted and what came back.
#[derive(Debug)]
pub struct Syncer {
    pool: SyncPool,
    /// Where the pool reports this pull's files. Unbounded, but it never
    /// holds more than `pending` results, which the pull keeps at most
    /// [`MAX_UNSYNCED`] + 1.
    done_tx: Sender<Synced>,
    done: Receiver<Synced>,
    /// Results of files synced on the caller's thread.
    inline: VecDeque<Synced>,
    /// Files submitted and not yet returned by `try_done`/`wait_done`.
    pending: usize,
    /// Files whose fsync succeeded, since this syncer was made.
    synced: u64,
    /// Most files pending before the pull waits ([`unsynced_limit`]).
    limit: usize,
}

impl Syncer {
    /// A syncer whose files go to `pool`.
    pub fn new(pool: SyncPool) -> Syncer {
        let (done_tx, done) = unbounded();
        Syncer {
            pool,
            done_tx,
            done,
            inline: VecDeque::new(),
            pending: 0,
            synced: 0,
            limit: this_process_limit(),
        }
    }

    /// Most files this pull keeps submitted and not reported back: past
    /// it, it waits for one ([`unsynced_limit`]).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Hands `file` (flushed, its data in the page cache) to the pool; its
    /// result comes back under `key`. Waits while the pool's queue is full.
    pub fn submit(&mut self, key: u64, file: File) {
        self.pending += 1;
        let file = match self.pool.jobs.as_ref() {
            Some(jobs) => {
                let job = Job {
                    key,
                    file,
                    done: self.done_tx.clone(),
                };
                match jobs.send(job) {
                    Ok(()) => return,
                    // Every worker is gone (they end only with the last
                    // handle, which this is): sync here.
                    Err(e) => e.into_inner().file,
                }
            }
            None => file,
        };
        self.inline.push_back((key, file.sync_all()));
    }

    /// Files submitted whose result has not been taken yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Files whose fsync came back successful so far.
    pub fn synced(&self) -> u64 {
        self.synced
    }

    /// A finished fsync, if one is ready (never blocks).
    pub fn try_done(&mut self) -> Option<Synced> {
        let got = self
            .inline
            .pop_front()
            .or_else(|| self.done.try_recv().ok());
        self.took(got)
    }

    /// The next finished fsync, waiting for one if any is pending; `None`
    /// when nothing is pending.
    pub fn wait_done(&mut self) -> Option<Synced> {
        if self.pending == 0 {
            return None;
        }
        let got = self.inline.pop_front().or_else(|| self.done.recv().ok());
        self.took(got)
    }

    fn took(&mut self, got: Option<Synced>) -> Option<Synced> {
        if let Some((_, result)) = &got {
            self.pending -= 1;
            self.synced += u64::from(result.is_ok());
        }
        got
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
    fn the_fsync_queue_takes_at_most_a_quarter_of_the_open_file_limit() {
        assert_eq!(unsynced_limit(None), MAX_UNSYNCED);
        assert_eq!(unsynced_limit(Some(1_048_576)), MAX_UNSYNCED);
        assert_eq!(unsynced_limit(Some(1024)), MAX_UNSYNCED);
        assert_eq!(unsynced_limit(Some(256)), 64);
        assert_eq!(unsynced_limit(Some(20)), 5);
        assert_eq!(unsynced_limit(Some(3)), 4, "never fewer than 4");
    }

    #[test]
    fn every_submitted_file_comes_back_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = Syncer::new(SyncPool::start());
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
        assert_eq!(syncer.synced(), 600);
        assert_eq!(seen, (0..600).collect());
        assert!(syncer.wait_done().is_none());
    }

    #[test]
    fn a_dropped_pool_with_pending_files_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = Syncer::new(SyncPool::start());
        for (i, f) in files(dir.path(), 50) {
            syncer.submit(i, f);
        }
        drop(syncer);
    }

    /// The pool lives for the run: pulls one after the other use the same
    /// threads, and what an abandoned pull left pending never reaches the
    /// next one (same keys, each gets exactly its own files back).
    #[test]
    fn one_pool_serves_pulls_in_turn_and_keeps_their_results_apart() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SyncPool::start();
        let mut abandoned = Syncer::new(pool.clone());
        for (i, f) in files(dir.path(), 300) {
            abandoned.submit(i, f);
        }
        drop(abandoned);
        for round in 0..3u64 {
            let sub = dir.path().join(format!("r{round}"));
            std::fs::create_dir(&sub).unwrap();
            let mut syncer = Syncer::new(pool.clone());
            for (i, f) in files(&sub, 40) {
                syncer.submit(i, f);
            }
            let mut seen = BTreeSet::new();
            while let Some((key, r)) = syncer.wait_done() {
                r.unwrap();
                assert!(seen.insert(key), "{key} twice in round {round}");
            }
            assert_eq!(seen, (0..40).collect(), "round {round}");
            assert!(syncer.try_done().is_none());
        }
    }

    /// A pool without threads (none could be started) syncs on the
    /// caller's thread, with the same results.
    #[test]
    fn a_pool_without_threads_syncs_inline() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = Syncer::new(SyncPool::default());
        for (i, f) in files(dir.path(), 5) {
            syncer.submit(i, f);
        }
        let keys: Vec<u64> = std::iter::from_fn(|| syncer.wait_done())
            .map(|(k, r)| r.map(|()| k).unwrap())
            .collect();
        assert_eq!(keys, (0..5).collect::<Vec<_>>());
        assert_eq!(syncer.synced(), 5);
    }

    #[test]
    fn directories_sync_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        sync_dirs([dir.path()]).unwrap();
        let gone = dir.path().join("gone");
        assert!(sync_dirs([gone.as_path()]).is_err());
    }
}
