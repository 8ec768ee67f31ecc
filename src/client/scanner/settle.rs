//! "Is this file still being written?", decided by watching it stop
//! changing, never by trusting how old its timestamps look.
//!
//! A changed file may be hashed and pushed when one of these holds:
//! - the watcher saw its writer close it (close-after-write) or saw it moved
//!   in whole, with no write reported since (a *settled* file, see
//!   [`Scope::settled`](super::Scope));
//! - two looks at least [`QUIET`] apart found the identical stat (size,
//!   mtime and whatever else [`Stat`] compares): nobody wrote in between;
//! - its mtime lies more than [`QUIET`] in the past: a writer at work keeps
//!   setting it to the present, so this is only a shortcut for files changed
//!   while the client was not looking.
//!
//! - it has been seen changing for [`MAX_UNSETTLED`]: a file that never
//!   pauses (a log written every 0.2 s through a descriptor held open) would
//!   otherwise never go out (outside tester breaker15, L1). It is then read
//!   as any file is: a read during which its stat changed is thrown away and
//!   repeated (`Scanner::stable_hash`), so what goes out is a state the file
//!   really had, the newest one read between two of its writes.
//!
//! A future mtime (a clock ahead, `touch -d 2100-01-01`) is never taken for
//! an old one: such a file goes out on its close-after-write, or after two
//! equal looks when no event named it.

use crate::client::fsutil::Stat;
use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a file must be seen unchanged (or have been last modified) before
/// it counts as complete without a close-after-write event.
pub const QUIET: Duration = Duration::from_millis(300);

/// How long a file may be seen changing, look after look, before it is read
/// anyway: a continuously written file goes out at most this often.
pub const MAX_UNSETTLED: Duration = Duration::from_secs(10);

/// Per file not yet known complete: the stat of the last look, when that
/// stat was first seen, and when the file was first seen unsettled. Holds
/// only files the last comparisons found unstable (bounded by the folder's
/// file count); entries go when the file is hashed or is compared again and
/// gone.
#[derive(Debug, Default)]
pub struct Settle {
    seen: BTreeMap<WirePath, Look>,
}

/// What [`Settle`] remembers of one file.
#[derive(Debug, Clone, Copy)]
struct Look {
    stat: Stat,
    /// When `stat` was first seen.
    at: Instant,
    /// When the file was first seen unsettled (kept across changes).
    since: Instant,
}

impl Settle {
    /// True when the file at `path`, now `stat`, may be hashed: it is
    /// `settled`, old, was seen with the same stat at least [`QUIET`]
    /// before `now`, or has been seen changing for [`MAX_UNSETTLED`].
    /// Otherwise this look is remembered.
    pub fn ready(&mut self, path: &WirePath, stat: Stat, settled: bool, now: Instant) -> bool {
        if settled || !stat.is_racy(QUIET) {
            self.seen.remove(path);
            return true;
        }
        let ready = match self.seen.get_mut(path) {
            Some(look) => {
                let overdue = now.saturating_duration_since(look.since) >= MAX_UNSETTLED;
                if look.stat == stat {
                    now.saturating_duration_since(look.at) >= QUIET || overdue
                } else {
                    look.stat = stat;
                    look.at = now;
                    overdue
                }
            }
            None => {
                self.seen.insert(
                    path.clone(),
                    Look {
                        stat,
                        at: now,
                        since: now,
                    },
                );
                false
            }
        };
        if ready {
            self.seen.remove(path);
        }
        ready
    }

    /// Drops what `keep` rejects (paths compared again and found gone or
    /// complete).
    pub fn retain(&mut self, mut keep: impl FnMut(&WirePath) -> bool) {
        self.seen.retain(|path, _| keep(path));
    }

    /// The last seen stats of the files being watched for quiet (not read
    /// yet): a file that vanished from the index may be one of them moved
    /// ([`crate::client::plan::wait_for_moves`]).
    pub fn watched(&self) -> impl Iterator<Item = (WirePath, Stat)> + '_ {
        self.seen
            .iter()
            .map(|(path, look)| (path.clone(), look.stat))
    }

    /// How many files are being watched for quiet.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// No file is being watched for quiet.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fsutil::now_ns;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn stat(size: u64, mtime_ns: i64) -> Stat {
        Stat {
            size,
            mtime_ns,
            ..Stat::default()
        }
    }

    #[test]
    fn timestamps_never_hold_a_file_back_once_it_stops_changing() {
        let hour = 3_600_000_000_000i64;
        let year_2100 = 4_102_444_800_000_000_000i64;
        let t0 = Instant::now();
        for mtime in [now_ns(), now_ns() + hour, year_2100] {
            let mut settle = Settle::default();
            let s = stat(4, mtime);
            // A close-after-write is enough at once.
            assert!(settle.ready(&p("f"), s, true, t0));
            // Without one: the first look waits, a look too soon waits,
            // an equal look QUIET later goes.
            assert!(!settle.ready(&p("f"), s, false, t0));
            assert!(!settle.ready(&p("f"), s, false, t0 + QUIET / 2));
            assert!(settle.ready(&p("f"), s, false, t0 + QUIET));
            assert!(settle.is_empty());
        }
    }

    #[test]
    fn a_file_that_keeps_changing_waits_and_an_old_one_goes() {
        let t0 = Instant::now();
        let mut settle = Settle::default();
        let now = now_ns();
        assert!(!settle.ready(&p("f"), stat(1, now), false, t0));
        // Changed between the looks: the quiet period starts again.
        assert!(!settle.ready(&p("f"), stat(2, now + 1), false, t0 + QUIET));
        assert!(!settle.ready(&p("f"), stat(2, now + 1), false, t0 + QUIET * 3 / 2));
        assert!(settle.ready(&p("f"), stat(2, now + 1), false, t0 + QUIET * 2));
        // Last modified well in the past: at once.
        let old = now - 2 * QUIET.as_nanos() as i64;
        assert!(settle.ready(&p("g"), stat(3, old), false, t0));
        assert_eq!(settle.len(), 0);
        settle.ready(&p("h"), stat(1, now), false, t0);
        settle.retain(|path| *path != p("h"));
        assert!(settle.is_empty());
    }

    /// breaker15 L1: a log written every 0.2 s never pauses for QUIET; it
    /// goes out once it has been seen changing for MAX_UNSETTLED, and the
    /// wait starts again after that.
    #[test]
    fn a_file_that_never_pauses_goes_out_every_max_unsettled() {
        let t0 = Instant::now();
        let mut settle = Settle::default();
        let now = now_ns();
        let step = Duration::from_millis(200);
        let mut went = Vec::new();
        for i in 0..150u32 {
            let at = t0 + step * i;
            let s = stat(u64::from(i), now + i64::from(i) * 200_000_000);
            if settle.ready(&p("log"), s, false, at) {
                went.push(at - t0);
            }
        }
        assert_eq!(
            went,
            vec![MAX_UNSETTLED, MAX_UNSETTLED * 2 + step],
            "out after 10 s of changes, then 10 s after the next first look"
        );
    }
}
