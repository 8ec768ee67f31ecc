//! Telling this device's own placements from local changes: a path the
//! watcher reports that is on disk as the index records it (a download just
//! placed) is an echo, not a change to upload, and is not counted as one.

use super::Session;
use crate::client::detect::as_recorded;
use crate::client::fsutil::{check_path, Local};
use crate::client::index::EntryKind;
use crate::protocol::WirePath;

impl Session<'_> {
    /// Notes which of `paths` (just reported by the watcher) are as this
    /// device placed them: a file the index records with the stat it has
    /// now (its mtime may be recorded as 0: [`crate::client::detect::seal`]),
    /// a directory the index knows. A download is not a local change, so a
    /// joining device does not show its whole folder "to upload" (outside
    /// tester's finding 3); a path written again since is counted.
    pub(super) fn note_echoes(&mut self, paths: &[WirePath]) {
        for path in paths {
            if self.as_placed(path) {
                self.push.echoes.insert(path.clone());
            } else {
                self.push.echoes.remove(path);
            }
        }
    }

    /// True when `path` is on disk as the index records it.
    fn as_placed(&self, path: &WirePath) -> bool {
        let Some(entry) = self.index.get(path) else {
            return false;
        };
        match (entry.kind, check_path(&self.root, path)) {
            (EntryKind::Dir, Ok(Local::Dir)) => true,
            (EntryKind::File { stat, .. }, Ok(Local::File(now))) => as_recorded(&stat, &now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::client::detect::as_recorded;
    use crate::client::fsutil::Stat;

    #[test]
    fn only_a_file_as_it_was_placed_is_an_echo() {
        let placed = Stat {
            size: 42,
            mtime_ns: 1_000,
            ctime_ns: 2_000,
            dev: 7,
            ino: 9,
            exec: false,
            btime_ns: 0,
        };
        assert!(as_recorded(&placed, &placed));
        let sealed = Stat {
            mtime_ns: 0,
            ..placed
        };
        assert!(
            as_recorded(&sealed, &placed),
            "a racy record's mtime is unknown"
        );
        let changes = [
            Stat { size: 43, ..placed },
            Stat {
                mtime_ns: 1_001,
                ..placed
            },
            Stat {
                ctime_ns: 2_001,
                ..placed
            },
            Stat { ino: 10, ..placed },
            Stat { dev: 8, ..placed },
            Stat {
                exec: true,
                ..placed
            },
        ];
        for now in changes {
            assert!(!as_recorded(&placed, &now), "{now:?}");
            assert!(
                !as_recorded(&sealed, &now) || now.mtime_ns != placed.mtime_ns,
                "{now:?}"
            );
        }
        let unknown = Stat { ino: 0, ..placed };
        assert!(
            !as_recorded(&unknown, &unknown),
            "an old index record proves nothing"
        );
    }
}
