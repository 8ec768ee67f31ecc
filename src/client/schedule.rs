//! When the next push round runs: watcher events gathered into the paths to
//! compare and a due time. Decisions only (no I/O), so they are tested
//! without a watcher or a clock.
//!
//! A file whose writer closed it (or that was moved in whole) is complete:
//! its round is due after [`SETTLED_DEBOUNCE`], which only gathers the other
//! events of the same save. Any other event waits for [`DEBOUNCE`] of quiet
//! (at most [`MAX_DEBOUNCE`] in all), and never postpones a round already due
//! sooner for a completed file.

use super::scanner::Scope;
use super::watcher::WatchEvent;
use std::time::{Duration, Instant};

/// Quiet time after the last watcher event before changes are planned.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// The wait after a file was closed for writing or moved in whole. An
/// editor's save (write a temporary file, close it, rename it over the
/// original) takes microseconds, so its events arrive within this window and
/// are planned as one change.
pub const SETTLED_DEBOUNCE: Duration = Duration::from_millis(3);
/// A steady stream of events still gets planned at least this often.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Adds a watcher event received at `now` to the pending round: `dirty` (what
/// to compare), `due` (when to plan it) and `since` (the batch's first
/// event). `Rescan` and `RootGone` widen to the whole folder (the session
/// checks first whether the folder itself is gone).
pub fn on_event(
    dirty: &mut Scope,
    due: &mut Option<Instant>,
    since: &mut Option<Instant>,
    event: WatchEvent,
    now: Instant,
) {
    let first = *since.get_or_insert(now);
    match event {
        WatchEvent::Settled(paths) => {
            for path in paths {
                dirty.add_settled(path);
            }
            let soon = now + SETTLED_DEBOUNCE;
            *due = Some(due.map_or(soon, |d| d.min(soon)));
            return;
        }
        WatchEvent::Paths(paths) => {
            for path in paths {
                dirty.add(path);
            }
        }
        WatchEvent::Metadata(paths) => {
            for path in paths {
                dirty.add_metadata(path);
            }
        }
        WatchEvent::Rescan(_) | WatchEvent::RootGone => dirty.add_all(),
    }
    let quiet = (now + DEBOUNCE).min(first + MAX_DEBOUNCE);
    *due = match *due {
        // A completed file is waiting: do not postpone its round.
        Some(planned) if !dirty.settled.is_empty() => Some(planned.min(quiet)),
        _ => Some(quiet),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WirePath;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    /// The session's three fields, for the tests.
    #[derive(Default)]
    struct Pending {
        dirty: Scope,
        due: Option<Instant>,
        since: Option<Instant>,
    }

    impl Pending {
        fn on_event(&mut self, event: WatchEvent, now: Instant) {
            on_event(&mut self.dirty, &mut self.due, &mut self.since, event, now);
        }
    }

    #[test]
    fn a_completed_file_goes_at_once_and_a_write_waits_for_quiet() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        pending.on_event(WatchEvent::Paths(vec![p("a")]), t0);
        assert_eq!(pending.due, Some(t0 + DEBOUNCE));
        pending.on_event(WatchEvent::Settled(vec![p("b")]), t0);
        assert_eq!(pending.due, Some(t0 + SETTLED_DEBOUNCE));
        // Later writes elsewhere do not postpone the completed file.
        pending.on_event(WatchEvent::Paths(vec![p("c")]), t0 + SETTLED_DEBOUNCE / 2);
        assert_eq!(pending.due, Some(t0 + SETTLED_DEBOUNCE));
        assert!(pending.dirty.settled.contains(&p("b")));
    }

    #[test]
    fn a_write_after_the_close_takes_the_settled_mark_away() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        pending.on_event(WatchEvent::Settled(vec![p("f")]), t0);
        pending.on_event(WatchEvent::Metadata(vec![p("f")]), t0);
        assert!(pending.dirty.settled.contains(&p("f")), "touch keeps it");
        pending.on_event(WatchEvent::Paths(vec![p("f")]), t0);
        assert!(pending.dirty.settled.is_empty());
        assert!(pending.dirty.paths.contains(&p("f")));
    }

    #[test]
    fn an_editor_save_is_one_settled_destination() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        // write .f.swp, close it, rename it over f
        pending.on_event(WatchEvent::Paths(vec![p(".f.swp")]), t0);
        pending.on_event(WatchEvent::Settled(vec![p(".f.swp")]), t0);
        pending.on_event(WatchEvent::Paths(vec![p(".f.swp")]), t0);
        pending.on_event(WatchEvent::Settled(vec![p("f")]), t0);
        assert_eq!(pending.due, Some(t0 + SETTLED_DEBOUNCE));
        assert_eq!(pending.dirty.settled.iter().collect::<Vec<_>>(), [&p("f")]);
    }

    #[test]
    fn a_steady_stream_is_planned_within_the_maximum() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        let mut now = t0;
        while now < t0 + MAX_DEBOUNCE * 2 {
            pending.on_event(WatchEvent::Paths(vec![p("log")]), now);
            now += Duration::from_millis(50);
        }
        assert_eq!(pending.due, Some(t0 + MAX_DEBOUNCE));
    }
}
