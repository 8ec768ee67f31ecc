//! What the index records for a download the applier just moved into
//! place, whatever a program did to its path in the instant since.
//!
//! A "hot folder" consumer (a print or OCR worker woken by inotify's
//! `IN_MOVED_TO`) deletes, moves or replaces each file the moment it
//! appears, between the rename that placed it and the look that indexes
//! it. The pull is acknowledged all the same (the cursor passes the file),
//! so a file left out of the index was never known here: its deletion was
//! no local change, nothing was pushed, and `status` said "in sync" while
//! the server and every other device kept it (outside tester breaker25 F3:
//! 1–4 of 40 deletions lost, also via another device's rename). So the
//! placement is always recorded: as found when it is still the file
//! placed, else as placed (the staged file's identity, never trusted), and
//! the path is compared again, so the next look pushes the Delete, the
//! Rename, or the upload of what replaced it.

use super::{Applied, Applier, FetchJob};
use crate::client::detect::{same_file, seal_placed_at};
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, now_ns, Local, Stat};
use crate::client::index::{Entry, EntryKind};
use crate::protocol::ContentHash;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// What is at a download's path right after it was moved there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// The file placed (same device, inode, size and mtime as the staged
    /// file), or one this client cannot tell from it: indexed as seen.
    AsPlaced(Stat),
    /// Another regular file (renamed over it, or the download rewritten):
    /// the user's. Indexed with an unknown mtime, so the next look hashes
    /// it and uploads it on the version placed.
    Replaced(Stat),
    /// Nothing, a directory or a special file: the file placed went
    /// (deleted, moved away). Indexed as placed, with an unknown ctime, so
    /// the next look finds the change and pushes it.
    Gone(Stat),
}

/// Decides what `here` (the path's state after the placement) means,
/// given `staged`, the temporary file's stat right before the rename
/// (`None`: unknown), and `size`, the download's.
pub(super) fn found(here: Local, staged: Option<Stat>, size: u64) -> Found {
    match (here, staged) {
        (Local::File(now), Some(staged)) if same_file(&staged, &now) => Found::AsPlaced(now),
        (Local::File(now), None) => Found::AsPlaced(now),
        (Local::File(now), Some(_)) => Found::Replaced(now),
        (Local::Absent | Local::Dir | Local::Foreign, staged) => Found::Gone(Stat {
            ctime_ns: 0,
            ..staged.unwrap_or(Stat {
                size,
                ..Stat::default()
            })
        }),
    }
}

impl Found {
    /// The stat to index, as of `at_ns`: only a file found as placed can
    /// be trusted ([`seal_placed_at`]); the others are judged by content
    /// at the next look.
    pub(super) fn record(self, staged: Option<Stat>, at_ns: i64) -> Stat {
        match self {
            Found::AsPlaced(now) => seal_placed_at(now, staged, at_ns),
            Found::Replaced(now) => Stat { mtime_ns: 0, ..now },
            Found::Gone(was) => was,
        }
    }

    /// True when something other than the file placed is at the path: a
    /// local change the next look must find.
    pub(super) fn changed_here(self) -> bool {
        !matches!(self, Found::AsPlaced(_))
    }
}

/// Test knob: with `CLOUD_TEST_PLACED_DELAY_MS=N` in the environment, the
/// client waits N milliseconds (at most 10 s) right after moving a
/// download into place and before looking at it to index it, so that an
/// end-to-end test's consumer deletes, moves or replaces it in that window
/// every time (tests/e2e_hot_folder.rs). Read once; never set outside
/// tests.
fn pause_for_tests() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    crate::test_knob::pause(&DELAY, "CLOUD_TEST_PLACED_DELAY_MS");
}

impl<'a> Applier<'a> {
    /// Installs a hook run right after a download is moved into place and
    /// before it is looked at and indexed (tests only), with the local path.
    #[cfg(test)]
    pub fn set_placed_hook(&mut self, hook: impl FnMut(&Path) + 'a) {
        self.placed_hook = Some(super::RaceHook(Box::new(hook)));
    }

    fn after_placing(&mut self, local: &Path) {
        if let Some(super::RaceHook(hook)) = self.placed_hook.as_mut() {
            hook(local);
        }
    }

    /// Indexes a download placed at `job.path` (`staged`: the temporary
    /// file's stat right before the rename) with the server's bit, as
    /// found at the path ([`found`]); a local bit kept over it
    /// ([`Self::placed_exec`]) or anything else found there is a
    /// difference the next look pushes.
    pub(super) fn placed(
        &mut self,
        job: &FetchJob,
        staged: Option<Stat>,
        (hash, version): (ContentHash, u64),
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let path = &job.path;
        pause_for_tests();
        if self.placed_hook.is_some() {
            let local = self.local(path);
            self.after_placing(&local);
        }
        let found = found(check_path(self.root, path)?, staged, job.size);
        let stat = found.record(staged, now_ns());
        let server = job.exec.unwrap_or(stat.exec);
        if server != stat.exec || found.changed_here() {
            out.dirty.insert(path.clone());
        }
        if found.changed_here() {
            log::info!("{path} changed here right after it was placed; the next look pushes that");
        }
        let stat = Stat {
            exec: server,
            ..stat
        };
        let kind = EntryKind::File { stat, hash };
        self.index.insert(path.clone(), Entry { kind, version });
        log::debug!("received {path} ({} bytes)", job.size);
        out.changed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::detect::{judge, Verdict};

    fn stat(ino: u64, size: u64, mtime_ns: i64) -> Stat {
        Stat {
            size,
            mtime_ns,
            ctime_ns: mtime_ns + 5,
            dev: 7,
            ino,
            exec: false,
            btime_ns: 0,
        }
    }

    const OLD: i64 = 1_000_000_000_000;
    const NOW: i64 = OLD + 3_600_000_000_000;

    /// Every state the path can be in after the rename, with and without
    /// the staged stat: only the file placed is indexed as found and
    /// trusted; anything else is a change the next look finds (a record
    /// never judged `Unchanged` against what is there, or against the file
    /// placed coming back).
    #[test]
    fn only_the_file_placed_is_indexed_as_found() {
        let staged = stat(11, 6, OLD);
        // Nanosecond stamps (whole seconds would mean a coarse file
        // system, whose 2 s window makes a ctime 1 s old racy).
        let placed = Stat {
            ctime_ns: NOW - 1_000_000_007,
            ..staged
        };
        let user = stat(12, 6, NOW - 1_000_000_000);
        let table: &[(Local, Option<Stat>, bool)] = &[
            (Local::File(placed), Some(staged), false),
            (Local::File(placed), None, false),
            (Local::File(user), Some(staged), true),
            // Rewritten in place: same inode, new mtime.
            (Local::File(stat(11, 6, OLD + 1)), Some(staged), true),
            (Local::File(stat(11, 9, OLD)), Some(staged), true),
            (Local::Absent, Some(staged), true),
            (Local::Absent, None, true),
            (Local::Dir, Some(staged), true),
            (Local::Foreign, Some(staged), true),
        ];
        for &(here, staged, changed) in table {
            let found = found(here, staged, 6);
            assert_eq!(found.changed_here(), changed, "{here:?} {staged:?}");
            let record = found.record(staged, NOW);
            if let Local::File(now) = here {
                let verdict = judge(&record, &now);
                match changed {
                    true => assert_ne!(verdict, Verdict::Unchanged, "{here:?}"),
                    false => assert_eq!(verdict, Verdict::Unchanged, "{here:?}"),
                }
            } else {
                assert_eq!(record.size, 6, "{here:?}: the download's size");
                assert_ne!(judge(&record, &placed), Verdict::Unchanged, "{here:?}");
            }
        }
    }
}
