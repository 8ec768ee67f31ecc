//! Another device's rename placed here by rename, not by a copy (outside
//! tester breaker21, F6; PROTOCOL.md ).
//!
//! Why: a reply lists a rename as the old path Deleted and the new path as
//! a file. The applier sets the old file aside into the
//! temporary area, judges it there (R-5.2.18's removal step, logged first),
//! and used to COPY it to a staged file for the new path: `mv d e` of a
//! directory of 10 x 50 MiB on another device cost 500 MiB of writes here,
//! free space of the biggest file (on a full disk the file was fetched
//! whole from the server instead), and a copy-long window for a crash.
//! Now the set-aside file itself is placed (renamed) at the new path,
//! through the same placement as a download (hash-checked, fsynced, placed
//! with `RENAME_NOREPLACE` or an exchange, its directory synced before the
//! index says so).
//!
//! The file placed must be the one the removal set aside, still holding the
//! content the reply names. Its stat cannot vouch for that on its own: the
//! move into the temporary area has just set its ctime, so by the racy
//! rule of [`crate::client::detect::judge`] a record of it is never
//! trusted. So [`Applier::take_stashed`] reads it once more (a read, no
//! write and no space) and places it only when the hash and size are the
//! reply's, it is the same inode as the one set aside with the same stat
//! ([`is_the_set_aside`]), and its stat did not move while it was hashed.
//! Anything else is never placed; the content is then copied from another
//! local source or downloaded, as before.

use super::{Applied, Applier, FetchJob, Obtained};
use crate::client::error::ClientError;
use crate::client::fsutil::{open_nofollow, Stat};
use crate::client::staging;
use crate::fsafe::hash_reader;
use crate::protocol::WirePath;
use std::fs;
use std::path::PathBuf;

/// A synced file the current reply deletes, set aside in the temporary area
/// (or a drive's staging directory) because the reply wants its content at
/// another path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stashed {
    /// Where it is.
    pub at: PathBuf,
    /// The folder path it was removed from (for the log).
    pub from: WirePath,
    /// Its stat when it was judged the synced version, in the temporary area.
    pub stat: Stat,
}

/// How a file of the reply gets content the stash holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Rename a stashed file into place (no byte written).
    Take,
    /// Copy from a stashed (or indexed) file, which stays for a later path.
    Copy,
}

/// `stashed` set-aside files hold the content a file of the reply wants,
/// and `wanted_after` more files of the reply want it after this one: this
/// one takes a stashed file when enough are left for the later ones, else
/// copies. So the same content wanted at two new paths with one file set
/// aside is one copy and one rename (the last one), never a rename that
/// leaves the later path without a local source (it would be downloaded).
/// A file of the reply that turns out not to need its content (kept local
/// change, already there) never asks: the last stashed file is then not
/// taken but removed with the stash, as it always was.
pub fn stash_use(stashed: usize, wanted_after: usize) -> Option<Reuse> {
    match stashed {
        0 => None,
        n if n > wanted_after => Some(Reuse::Take),
        _ => Some(Reuse::Copy),
    }
}

/// Whether the file now at a stashed path (`before` and `after`: its stat
/// before and after it was hashed) is the one the removal set aside there
/// (`recorded`) and unchanged since: the same inode on the same device,
/// born at the same time, with the same size, times and bit, and it did
/// not change while it was read. The hash is checked beside this.
pub fn is_the_set_aside(recorded: &Stat, before: &Stat, after: &Stat) -> bool {
    recorded.ino != 0 && before == recorded && after == before
}

impl Applier<'_> {
    /// Takes a stashed file with `job`'s content to place it at
    /// `job.path` ([`stash_use`] said so): checked by [`is_the_set_aside`]
    /// and its hash and size, else removed (it is not what was set aside;
    /// the folder never held it at this name) and `None`: the caller falls
    /// back to a copy or a download.
    pub(super) fn take_stashed(&mut self, job: &FetchJob) -> Option<Obtained> {
        let stashed = self.stash.get_mut(&job.hash)?.pop()?;
        match checked(&stashed, job) {
            Ok(Some(made)) => {
                log::debug!(
                    "placing {}'s file at {} (renamed here as on the server, not copied)",
                    stashed.from,
                    job.path
                );
                // Its stat as checked, not an open descriptor (breaker22
                // F3): [`Obtained::reopen`] syncs it while it is this file.
                Some(Obtained {
                    job: job.clone(),
                    tmp: stashed.at,
                    made,
                })
            }
            outcome => {
                log::info!(
                    "{} changed in the temporary area after it was set aside ({}); \
                     {} gets its content another way",
                    stashed.from,
                    outcome
                        .err()
                        .map_or("not the content set aside".into(), |e| e.to_string()),
                    job.path
                );
                let _ = fs::remove_file(&stashed.at);
                Self::forget_origin(&stashed.at);
                if let Some(dir) = stashed.at.parent() {
                    staging::tidy(dir);
                }
                None
            }
        }
    }

    /// [`Self::take_stashed`] then [`Self::obtained`]; returns whether the
    /// job was obtained so.
    ///
    /// # Errors
    /// As [`Self::obtained`].
    pub(super) fn obtain_by_taking(
        &mut self,
        job: &FetchJob,
        out: &mut Applied,
    ) -> Result<bool, ClientError> {
        let Some(made) = self.take_stashed(job) else {
            return Ok(false);
        };
        self.obtained(made, out)?;
        Ok(true)
    }
}

/// The stashed file's stat when it is the one set aside and holds `job`'s
/// content (see the module comment); the descriptor it was read through
/// is closed on return.
fn checked(stashed: &Stashed, job: &FetchJob) -> Result<Option<Stat>, ClientError> {
    let io = |what: &str| {
        let context = format!("{what} {}", stashed.at.display());
        move |e| ClientError::io(context, e)
    };
    let file = open_nofollow(&stashed.at).map_err(io("open"))?;
    let before = Stat::of(&file.metadata().map_err(io("stat"))?);
    let (hash, size) = hash_reader(&file).map_err(io("read"))?;
    let after = Stat::of(&file.metadata().map_err(io("stat"))?);
    let good =
        is_the_set_aside(&stashed.stat, &before, &after) && hash == job.hash && size == job.size;
    Ok(good.then_some(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_wanted_path_takes_the_file_and_earlier_ones_copy() {
        // One file set aside, one path wants it: renamed.
        assert_eq!(stash_use(1, 0), Some(Reuse::Take));
        // One set aside, two paths want it: the first copies, the last takes.
        assert_eq!(stash_use(1, 1), Some(Reuse::Copy));
        assert_eq!(stash_use(1, 0), Some(Reuse::Take));
        // Two set aside (two look-alike files moved): both renamed.
        assert_eq!(stash_use(2, 1), Some(Reuse::Take));
        assert_eq!(stash_use(1, 0), Some(Reuse::Take));
        // Nothing stashed: another source or a download.
        assert_eq!(stash_use(0, 0), None);
        assert_eq!(stash_use(0, 3), None);
        // Three paths, one file: copy, copy, take.
        let mut stashed = 1;
        let mut uses = Vec::new();
        for after in (0..3).rev() {
            let reuse = stash_use(stashed, after);
            if reuse == Some(Reuse::Take) {
                stashed -= 1;
            }
            uses.push(reuse);
        }
        assert_eq!(
            uses,
            [Some(Reuse::Copy), Some(Reuse::Copy), Some(Reuse::Take)]
        );
    }

    /// The stat of a 10-byte file (inode 42 on device 1) both tests vary.
    fn a_stat() -> Stat {
        Stat {
            size: 10,
            mtime_ns: 5,
            ctime_ns: 6,
            dev: 1,
            ino: 42,
            exec: false,
            btime_ns: 3,
        }
    }

    #[test]
    fn an_obtained_file_is_reopened_only_while_it_is_the_file_made() {
        use super::super::still_made;
        let made = a_stat();
        assert!(still_made(&made, &made));
        for (what, now) in [
            ("another inode", Stat { ino: 43, ..made }),
            ("another device", Stat { dev: 2, ..made }),
            (
                "born again",
                Stat {
                    btime_ns: 4,
                    ..made
                },
            ),
            (
                "written",
                Stat {
                    mtime_ns: 7,
                    ctime_ns: 7,
                    ..made
                },
            ),
            ("grown", Stat { size: 11, ..made }),
            (
                "chmod",
                Stat {
                    exec: true,
                    ctime_ns: 8,
                    ..made
                },
            ),
        ] {
            assert!(!still_made(&made, &now), "{what}");
        }
        let unknown = Stat { ino: 0, ..made };
        assert!(!still_made(&unknown, &unknown), "no inode: nothing says");
    }

    /// Another device's `mv` of a directory of 300 files: each is placed
    /// by renaming the file set aside, and the reply's files are handed
    /// over without one open descriptor each (breaker22 F3: they were, to
    /// EMFILE). Then one obtained file changed in the temporary area is
    /// not reopened, the others are.
    #[test]
    fn a_reply_of_many_renames_hands_over_its_files_without_open_descriptors() {
        use super::super::test_folder::{deleted, file, Folder};
        use crate::protocol::ContentHash;
        let fds = || fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
        let mut f = Folder::new();
        let n = 300;
        for i in 0..n {
            f.write(&format!("d/f{i}"), &format!("file {i}\n"));
        }
        f.sync_all(1);
        let mut entries = vec![deleted("d", 2)];
        for i in 0..n {
            let data = format!("file {i}\n");
            entries.push(file(&format!("e/f{i}"), 3, &data));
        }
        let (root, tmp) = (f.root.clone(), f.tmp.clone());
        let open_before = fds();
        let applied = Applier::new(&root, &tmp, &mut f.index, 2)
            .handing_over_obtained()
            .apply(&entries, false)
            .unwrap();
        let held = fds().saturating_sub(open_before);
        assert!(applied.fetches.is_empty(), "{:?}", applied.fetches);
        assert_eq!(applied.obtained.len(), n);
        // Other tests of this binary run beside this one: some slack.
        assert!(
            held < 50,
            "{held} descriptors held for {n} files handed over"
        );
        let first = &applied.obtained[0];
        assert_eq!(first.job.hash, ContentHash::of(b"file 0\n"));
        fs::write(&first.tmp, "FILE 0\n").unwrap();
        assert!(first.reopen().is_err(), "written since it was made");
        assert!(applied.obtained[1..].iter().all(|m| m.reopen().is_ok()));
    }

    #[test]
    fn only_the_same_unchanged_inode_is_the_file_set_aside() {
        let recorded = a_stat();
        assert!(is_the_set_aside(&recorded, &recorded, &recorded));
        let other_inode = Stat {
            ino: 43,
            ..recorded
        };
        assert!(!is_the_set_aside(&recorded, &other_inode, &other_inode));
        let written = Stat {
            mtime_ns: 7,
            ctime_ns: 7,
            ..recorded
        };
        assert!(
            !is_the_set_aside(&recorded, &written, &written),
            "written since"
        );
        assert!(
            !is_the_set_aside(&recorded, &recorded, &written),
            "written while it was hashed"
        );
        let grown = Stat {
            size: 11,
            ..recorded
        };
        assert!(!is_the_set_aside(&recorded, &grown, &grown));
        let chmod = Stat {
            exec: true,
            ctime_ns: 8,
            ..recorded
        };
        assert!(!is_the_set_aside(&recorded, &chmod, &chmod));
        let unknown = Stat { ino: 0, ..recorded };
        assert!(
            !is_the_set_aside(&unknown, &unknown, &unknown),
            "no inode: nothing says it is the same file"
        );
    }

    /// The decision above, on disk: a file set aside for `x.txt` and
    /// stashed for `y.txt`, then (before it is taken) left alone, or
    /// written in place at the same size, appended to, or replaced by
    /// another file with the same bytes. Only the untouched one is placed
    /// (by rename: `y.txt` is its inode); the others are never placed and
    /// the content is downloaded (nothing else here holds it).
    #[test]
    fn a_stashed_file_is_placed_only_if_untouched_since_it_was_set_aside() {
        use super::super::test_folder::Folder;
        use crate::client::fsutil::Local;
        use crate::protocol::ContentHash;
        use std::os::unix::fs::MetadataExt;
        type Change = fn(&std::path::Path);
        let changes: [(&str, Option<Change>); 4] = [
            ("untouched", None),
            (
                "written at the same size",
                Some(|at| fs::write(at, "CONTENT\n").unwrap()),
            ),
            (
                "appended to",
                Some(|at| {
                    let mut f = fs::OpenOptions::new().append(true).open(at).unwrap();
                    std::io::Write::write_all(&mut f, b"more").unwrap();
                }),
            ),
            (
                "replaced by another file with the same bytes",
                Some(|at| {
                    fs::remove_file(at).unwrap();
                    fs::write(at, "content\n").unwrap();
                }),
            ),
        ];
        for (name, change) in changes {
            let mut f = Folder::new();
            f.write("x.txt", "content\n");
            f.sync_all(1);
            let hash = ContentHash::of(b"content\n");
            let at = f.tmp.join("aside-1-1");
            fs::rename(f.root.join("x.txt"), &at).unwrap();
            let meta = fs::symlink_metadata(&at).unwrap();
            let ino = meta.ino();
            let (root, tmp) = (f.root.clone(), f.tmp.clone());
            let mut applier = Applier::new(&root, &tmp, &mut f.index, 2);
            applier.stash.entry(hash).or_default().push(Stashed {
                at: at.clone(),
                from: WirePath::new("x.txt").unwrap(),
                stat: Stat::of(&meta),
            });
            applier.wanters.insert(hash, 1);
            if let Some(change) = change {
                change(&at);
            }
            let job = FetchJob {
                path: WirePath::new("y.txt").unwrap(),
                version: 2,
                size: 8,
                hash,
                expect: Local::Absent,
                exec: None,
                carried: None,
            };
            let mut out = Applied::default();
            applier.obtain(job.clone(), &mut out).unwrap();
            drop(applier);
            let placed = fs::symlink_metadata(root.join("y.txt")).ok();
            match change {
                None => {
                    assert!(out.fetches.is_empty(), "{name}");
                    assert_eq!(
                        placed.map(|m| m.ino()),
                        Some(ino),
                        "{name}: renamed, not copied"
                    );
                    assert_eq!(f.read("y.txt").as_deref(), Some("content\n"));
                }
                Some(_) => {
                    assert!(placed.is_none(), "{name}: placed");
                    assert_eq!(out.fetches, [job], "{name}: downloaded instead");
                }
            }
            assert!(
                !at.exists(),
                "{name}: the stashed file is gone from the temporary area"
            );
        }
    }
}
