//! What a restore of `path` as it was just before change `seq` places,
//! decided from the kept records and the records the reaper dropped
//! (PROTOCOL.md §14.3, R-14.3.1, R-14.3.2): no I/O here.

use crate::protocol::{KeptKind, KeptVersion, WirePath};
use std::collections::BTreeMap;

/// A restore to make: the kept entries to place, in path order, and how
/// many entries that were in place then are no longer kept (expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// One kept record per path, by path.
    pub place: Vec<KeptVersion>,
    /// Entries (files and directories) in place just before `seq` at or
    /// below the path whose record the reaper dropped: they do not come
    /// back.
    pub expired: usize,
}

/// Why nothing is restored: nothing of the path as it was then is kept,
/// or what is kept is only directories whose files all expired (an empty
/// shell is not what was there). `expired` counts the entries no longer
/// kept (0: never displaced, or never there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NothingKept {
    /// Entries in place then whose record the reaper dropped.
    pub expired: usize,
}

/// The records in place just before `seq` at or below `path`, one per
/// path (a crash between keeping and the change can leave one twice: the
/// later wins).
fn live(records: &[KeptVersion], seq: u64, path: &WirePath) -> BTreeMap<WirePath, KeptVersion> {
    let mut out = BTreeMap::new();
    for record in records {
        if record.live_before(seq) && record.is_under(Some(path)) {
            out.insert(record.path.clone(), record.clone());
        }
    }
    out
}

/// Decides the restore of `path` as it was just before `seq` from the
/// `kept` records (index order) and the `expired` ones, `dir_there` being
/// whether `path` is a directory in the folder now.
///
/// - Nothing kept for `path` itself (unless it is a directory there now)
///   or below it: [`NothingKept`].
/// - Files were in place then and none of them is kept, only directories:
///   [`NothingKept`] too (R-14.3.2: restoring the empty directory would
///   say it came back when what it held did not).
/// - Otherwise the kept entries are placed; `expired` says how many of
///   that moment's entries do not come back. A directory that really was
///   empty then (nothing expired) comes back empty.
///
/// # Errors
/// [`NothingKept`] as above.
pub fn plan(
    kept: &[KeptVersion],
    expired: &[KeptVersion],
    seq: u64,
    path: &WirePath,
    dir_there: bool,
) -> Result<RestorePlan, NothingKept> {
    let found = live(kept, seq, path);
    let gone: Vec<KeptVersion> = live(expired, seq, path)
        .into_values()
        .filter(|e| !found.contains_key(&e.path))
        .collect();
    let is_file = |e: &KeptVersion| matches!(e.kind, KeptKind::File { .. });
    let refusal = NothingKept {
        expired: gone.len(),
    };
    if found.is_empty() || !(found.contains_key(path) || dir_there) {
        return Err(refusal);
    }
    if gone.iter().any(is_file) && !found.values().any(is_file) {
        return Err(refusal);
    }
    Ok(RestorePlan {
        place: found.into_values().collect(),
        expired: gone.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Cause, ContentHash};

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    /// A record of `path` in place from `since` until change `seq`.
    fn rec(path: &str, since: u64, seq: u64, dir: bool) -> KeptVersion {
        KeptVersion {
            seq,
            since,
            time_ms: seq,
            cause: Cause::Deleted,
            kind: if dir {
                KeptKind::Dir
            } else {
                KeptKind::File {
                    size: 1,
                    hash: ContentHash::of(path.as_bytes()),
                    mtime_ns: 0,
                    executable: false,
                }
            },
            path: p(path),
        }
    }

    fn paths(plan: &RestorePlan) -> Vec<&str> {
        plan.place.iter().map(|e| e.path.as_str()).collect()
    }

    /// The table: (what, kept, expired, seq, path, dir there now,
    /// expected: Ok((placed paths, expired count)) or Err(expired count)).
    #[test]
    fn a_restore_places_what_is_kept_and_never_an_empty_shell() {
        type Want = Result<(Vec<&'static str>, usize), usize>;
        type Case = (
            &'static str,
            Vec<KeptVersion>,
            Vec<KeptVersion>,
            u64,
            &'static str,
            bool,
            Want,
        );
        let cases: Vec<Case> = vec![
            (
                "the tester's finding 6: files deleted one by one (543-545) and \
                 expired, the directory removed later (546) and kept",
                vec![rec("e6", 500, 546, true)],
                vec![
                    rec("e6/f1", 501, 543, false),
                    rec("e6/f2", 502, 544, false),
                    rec("e6/f3", 503, 545, false),
                ],
                543,
                "e6",
                false,
                Err(3),
            ),
            (
                "the same directory by the number of its removal: it was empty then",
                vec![rec("e6", 500, 546, true)],
                vec![
                    rec("e6/f1", 501, 543, false),
                    rec("e6/f2", 502, 544, false),
                    rec("e6/f3", 503, 545, false),
                ],
                546,
                "e6",
                false,
                Ok((vec!["e6"], 0)),
            ),
            (
                "between two deletions: f3 was there and expired",
                vec![rec("e6", 500, 546, true)],
                vec![rec("e6/f1", 501, 543, false), rec("e6/f3", 503, 545, false)],
                544,
                "e6",
                false,
                Err(1),
            ),
            (
                "a directory that really was empty comes back empty",
                vec![rec("e7", 600, 601, true)],
                vec![],
                601,
                "e7",
                false,
                Ok((vec!["e7"], 0)),
            ),
            (
                "some files kept, some expired: what is kept comes back, counted",
                vec![rec("d", 10, 20, true), rec("d/b", 12, 20, false)],
                vec![rec("d/a", 11, 15, false)],
                15,
                "d",
                false,
                Ok((vec!["d", "d/b"], 1)),
            ),
            (
                "an expired subdirectory with its file, a kept file beside it",
                vec![rec("d", 10, 20, true), rec("d/b", 12, 20, false)],
                vec![rec("d/s", 11, 14, true), rec("d/s/x", 11, 14, false)],
                13,
                "d",
                false,
                Ok((vec!["d", "d/b"], 2)),
            ),
            (
                "a file whose version expired",
                vec![],
                vec![rec("f", 1, 5, false)],
                5,
                "f",
                false,
                Err(1),
            ),
            (
                "a file kept",
                vec![rec("f", 1, 5, false)],
                vec![],
                5,
                "f",
                false,
                Ok((vec!["f"], 0)),
            ),
            (
                "never there",
                vec![rec("g", 1, 5, false)],
                vec![],
                5,
                "f",
                false,
                Err(0),
            ),
            (
                "a directory there now: what is kept below it comes back",
                vec![rec("d/b", 3, 9, false)],
                vec![rec("d/a", 2, 8, false)],
                8,
                "d",
                true,
                Ok((vec!["d/b"], 1)),
            ),
            (
                "a directory there now, everything below it expired",
                vec![],
                vec![rec("d/a", 2, 8, false)],
                8,
                "d",
                true,
                Err(1),
            ),
            (
                "only expired directories below a kept one: no file lost",
                vec![rec("d", 10, 20, true)],
                vec![rec("d/empty", 11, 14, true)],
                13,
                "d",
                false,
                Ok((vec!["d"], 1)),
            ),
            (
                "a record twice (crash) and in both files: counted kept once",
                vec![
                    rec("d", 10, 20, true),
                    rec("d/b", 12, 20, false),
                    rec("d/b", 12, 20, false),
                ],
                vec![rec("d/b", 12, 20, false)],
                20,
                "d",
                false,
                Ok((vec!["d", "d/b"], 0)),
            ),
            (
                "not in place then: a later incarnation's expired file is not counted",
                vec![rec("d", 10, 20, true)],
                vec![rec("d/late", 25, 30, false), rec("d/early", 1, 9, false)],
                15,
                "d",
                false,
                Ok((vec!["d"], 0)),
            ),
            (
                "elsewhere: an expired file of another path is not counted",
                vec![rec("d", 10, 20, true)],
                vec![rec("dd/a", 11, 15, false)],
                15,
                "d",
                false,
                Ok((vec!["d"], 0)),
            ),
        ];
        for (what, kept, expired, seq, path, dir_there, want) in cases {
            let got = plan(&kept, &expired, seq, &p(path), dir_there);
            match (got, want) {
                (Ok(plan), Ok((placed, n))) => {
                    assert_eq!((paths(&plan), plan.expired), (placed, n), "{what}");
                }
                (Err(refusal), Err(n)) => assert_eq!(refusal.expired, n, "{what}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }
}
