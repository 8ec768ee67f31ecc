//! The applier's steps that replace, remove or create a local file, each
//! atomic with respect to a user writing at the same moment.
//!
//! The decision ("this file is still the synced version, it may go") is made
//! before the step, but a local writer can act between the decision and the
//! step. So no step trusts it: a download is put in place with
//! `RENAME_NOREPLACE` (nothing is there) or `RENAME_EXCHANGE` (swap, then the
//! swapped-out file is checked again); a deleted file is first moved into the
//! temporary area and checked there; a conflict copy takes a name with
//! `RENAME_NOREPLACE`. Whatever turns out not to be the synced version is
//! kept — back at its path, or as a conflict copy that is then pushed. A set
//! aside file that some program still holds open for writing counts as an
//! edit too (its next write would otherwise go into a deleted file); see
//! [`crate::client::lease`].

use super::leftovers::origin_note;
use super::taken::Stashed;
use super::vouch::{Moved, Vouched};
use super::{indexed_exec, Applied, Applier, FetchJob};
use crate::client::conflict::{
    on_pull_mode, on_remove, on_swapped_out, Content, ModeDecision, OnRemove, OnSwappedOut,
    SetAside,
};
use crate::client::detect::same_file;
use crate::client::error::ClientError;
use crate::client::fsutil::{
    check_path, copy_hashed, ensure_parent, hash_file, open_nofollow, reach_held, set_exec,
    set_exec_of, Local, Reach, Stat,
};
use crate::client::held_open::Change;
use crate::client::lease::{writers, Writers};
use crate::client::rename::{exchange, rename_noreplace};
use crate::client::staging;
use crate::fsafe::walk::pause_for_tests;
use crate::protocol::conflict::free_conflict_path;
use crate::protocol::{ContentHash, WirePath};
use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How often placing a download looks again when something keeps
/// appearing at the path (each time it is kept as a conflict copy).
const PLACE_TRIES: usize = 4;

/// A callback run just before each step (the seam between "decide" and "do"
/// where tests play a concurrent writer), with the path the step is about to
/// touch: a local path about to be replaced or moved aside, a conflict name
/// about to be taken, or a set-aside file about to be judged (what a writer
/// still holding it open would write into).
pub struct RaceHook<'a>(pub Box<dyn FnMut(&Path) + 'a>);

impl fmt::Debug for RaceHook<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaceHook")
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> ClientError {
    let context = format!("{what} {}", path.display());
    move |e| ClientError::io(context, e)
}

/// What became of the file a download's exchange took out of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SwappedOut {
    /// Not a regular file: it is back at its path, nothing was placed.
    Back,
    /// A file some program holds open for writing: it is back at its path,
    /// nothing was placed, and the path is held back until the program
    /// closes it.
    Held,
    /// The download stays at the path; the old file was deleted (the synced
    /// content; `exec`: its executable bit) or kept as a conflict copy (an
    /// edit; `exec` is `None`).
    Replaced { exec: Option<bool> },
}

/// Gives the download placed (or about to be) at `path` with the bit
/// `placed` the bit `bit` ([`Applier::bit_over`]: a chmod made here on the
/// file it replaced, R-15.2.4), through `placing`, a handle on its inode, so
/// no other file at the path is touched. [`Applier::placed`] then records
/// the server's bit and marks the path when they differ, so the SetMode
/// follows. A failure is logged (the chmod is then lost, as the bit of a
/// file this user may not change would be).
fn carry_chmod(path: &WirePath, placing: &fs::File, placed: bool, bit: bool) {
    if bit == placed {
        return;
    }
    log::info!(
        "{path}: the chmod {} made here while the download was placed is kept",
        if bit { "+x" } else { "-x" }
    );
    if let Err(e) = set_exec_of(placing, bit) {
        log::warn!("{path}: could not keep the chmod made here: {e}");
    }
}

/// Gives the download staged at `tmp`, about to replace the file at
/// `local`, that file's read and write bits and the executable bit `exec`
/// (R-15.2.6, [`crate::fsafe::replacing_mode`]): new content keeps a
/// private file private. Nothing there, or not a regular file: the
/// staged file keeps the umask's bits. A failure only costs the bits
/// (logged).
fn keep_read_write_bits(local: &Path, tmp: &Path, exec: bool) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(local) else {
        return;
    };
    if !meta.file_type().is_file() {
        return;
    }
    let want = crate::fsafe::replacing_mode(meta.permissions().mode(), exec);
    if let Err(e) = fs::set_permissions(tmp, fs::Permissions::from_mode(want)) {
        log::warn!("could not give {} the mode {want:o}: {e}", tmp.display());
    }
}

/// Test knob: with `CLOUD_TEST_PLACE_DELAY_MS=N` in the environment, the
/// client waits N milliseconds (at most 10 s) right before exchanging a
/// download with the file at its path, so that an end-to-end test can make
/// a local change land in the window between the decision and the step
/// (tests/e2e_exec_race.rs). Read once; never set outside tests.
fn slow_down_for_tests() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    crate::test_knob::pause(&DELAY, "CLOUD_TEST_PLACE_DELAY_MS");
}

/// True when `now` (what is at a path, `None`: nothing) is the download
/// whose temporary file had the stat `staged` right before it was renamed
/// there: same device, inode, birth time, size and mtime
/// ([`same_file`]). Unknown (`None`) is not: a file that may be the
/// user's is never taken.
fn is_the_placed(staged: Option<Stat>, now: Option<Stat>) -> bool {
    staged.zip(now).is_some_and(|(s, n)| same_file(&s, &n))
}

/// What is at `at` (not following a symlink), `None`: nothing there.
fn stat_of(at: &Path) -> Option<Stat> {
    fs::symlink_metadata(at).ok().map(|m| Stat::of(&m))
}

/// True when something (anything, even a dangling symlink) is at `path`.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

impl<'a> Applier<'a> {
    /// Installs a [`RaceHook`].
    pub fn set_race_hook(&mut self, hook: impl FnMut(&Path) + 'a) {
        self.hook = Some(RaceHook(Box::new(hook)));
    }

    fn before_step(&mut self, local: &Path) {
        if let Some(RaceHook(hook)) = self.hook.as_mut() {
            hook(local);
        }
    }

    /// [`Self::before_step`] for the folder's `path`, as the hook has
    /// always seen it ([`Self::local`]: the whole path when short enough),
    /// not the handle's `/proc/self/fd` name the step itself uses.
    pub(super) fn before_step_at(&mut self, path: &WirePath) {
        if self.hook.is_some() {
            let local = self.local(path);
            self.before_step(&local);
        }
    }

    /// Installs a hook run between the stat that vouches for a file a
    /// download replaces and the exchange (vouch.rs), with the local path;
    /// this client holds a read lease on the file then, so a test's writer
    /// there must run on another thread (it waits for the lease).
    #[cfg(test)]
    pub fn set_vouched_hook(&mut self, hook: impl FnMut(&Path) + 'a) {
        self.vouched_hook = Some(RaceHook(Box::new(hook)));
    }

    fn while_vouched(&mut self, local: &Path) {
        if let Some(RaceHook(hook)) = self.vouched_hook.as_mut() {
            hook(local);
        }
    }

    /// Moves a verified temporary file (content `hash`, server `version`) into
    /// place at `job.path` and indexes it, so the watcher's report of this
    /// write finds nothing to push. Whatever the path holds at that instant is
    /// swapped out atomically and kept unless it is the synced version (or
    /// already the new content); a directory or symlink there is never
    /// replaced (the pull is then repeated).
    ///
    /// A file staged on another mount than `job.path`'s directory (a drive
    /// mounted inside the folder, R-5.6.12) is first copied, hash-checked
    /// and synced into that drive's staging directory ([`Self::stage_dir`]),
    /// then placed from there the same way; `tmp` is removed once it is.
    ///
    /// # Errors
    /// Renaming, copying to the drive, or creating parent directories.
    pub fn place(
        &mut self,
        job: &FetchJob,
        tmp: &Path,
        (hash, version): (ContentHash, u64),
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        ensure_parent(self.root, &job.path)?;
        let dir = self.stage_dir(&job.path)?;
        let same = match (staging::mount_of(tmp), staging::mount_of(&dir)) {
            (Ok(a), Ok(b)) => a.same(b),
            // Unknown: placed from where it is, as always.
            _ => true,
        };
        if same {
            let placed = self.place_staged(job, tmp, (hash, version), out);
            if placed.is_ok() {
                // `tmp` is used up; a stashed file's note goes with it.
                Self::forget_origin(tmp);
            }
            staging::tidy(&dir);
            return placed;
        }
        let staged = self.stage_name(&job.path, "drive")?;
        let copied = copy_hashed(tmp, &staged).and_then(|(got, n, file)| {
            if got != hash || n != job.size {
                return Err(io::Error::other(format!(
                    "{} changed while it was copied ({n} bytes)",
                    tmp.display()
                )));
            }
            file.sync_all()
        });
        if let Err(e) = copied {
            let _ = fs::remove_file(&staged);
            staging::tidy(&dir);
            return Err(io_err(
                "copy onto the file system of",
                &self.whole(&job.path),
            )(e));
        }
        let placed = self.place_staged(job, &staged, (hash, version), out);
        // What is still at `staged` is the copy (not placed), unless an
        // exchange left a local file there with its note (kept for the
        // next start, which settles it).
        if !origin_note(&staged).exists() {
            let _ = fs::remove_file(&staged);
        }
        if placed.is_ok() {
            let _ = fs::remove_file(tmp);
            Self::forget_origin(tmp);
        }
        staging::tidy(&dir);
        placed
    }

    /// [`Self::place`] from `tmp`, which is on the mount of `job.path`'s
    /// directory.
    fn place_staged(
        &mut self,
        job: &FetchJob,
        tmp: &Path,
        (hash, version): (ContentHash, u64),
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let path = &job.path;
        let mut exec = match job.carried {
            Some(bit) => bit,
            None => self.placed_exec(job)?,
        };
        set_exec(tmp, exec).map_err(io_err("set the mode of", tmp))?;
        // What is renamed below, to know it at the path afterwards.
        let staged = Stat::of(&fs::symlink_metadata(tmp).map_err(io_err("stat", tmp))?);
        // Noted before it can appear at the path, so a crash before the
        // index is saved never makes it a file added here.
        let record = Stat {
            exec: job.exec.unwrap_or(exec),
            ..staged
        };
        self.log_placement(path, record, hash, version)?;
        let staged = Some(staged);
        for _ in 0..PLACE_TRIES {
            // A program writing there (or in its SQLite group) keeps its
            // file at the name: nothing is placed.
            if self.held_for_writer(path, Change::Replace, out) {
                let _ = fs::remove_file(tmp);
                Self::forget_origin(tmp);
                return Ok(());
            }
            let checked = check_path(self.root, path)?;
            // Through its directory's handle: where it lands is known.
            let local = self.held(path);
            match checked {
                Local::Dir | Local::Foreign => break,
                Local::Absent => {
                    self.before_step_at(path);
                    pause_for_tests();
                    match rename_noreplace(tmp, &local) {
                        Ok(()) if !local.still_in(self.root, path)? => {
                            return self.take_back(path, &local, tmp, staged, out);
                        }
                        Ok(()) => return self.placed(job, staged, (hash, version), out),
                        // Created since we looked: swapped out on the next try.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err("move into", &self.whole(path))(e)),
                    }
                }
                Local::File(_) => {
                    // What comes out of the exchange is the user's until settled.
                    self.note_origin(tmp, path, Some(hash))?;
                    keep_read_write_bits(&local, tmp, exec);
                    // The new file's inode, to give it a bit the user sets
                    // on the old one until the exchange.
                    let placing = open_nofollow(tmp).map_err(io_err("open", tmp))?;
                    slow_down_for_tests();
                    self.before_step_at(path);
                    // Right before the exchange: what may spare the
                    // swapped-out file a hash (vouch.rs).
                    let mut vouched = self.vouch(path, &local);
                    if vouched.is_some() {
                        self.while_vouched(&local);
                    }
                    pause_for_tests();
                    let exchanged = exchange(tmp, &local);
                    if !matches!(exchanged, Ok(true)) {
                        Self::forget_origin(tmp);
                    }
                    match exchanged {
                        Ok(true) if !local.still_in(self.root, path)? => {
                            drop(vouched);
                            return self.swap_back_out(path, &local, tmp, staged, out);
                        }
                        Ok(true) => {
                            let moved = vouched.take().map(Vouched::moved);
                            let settled = self.settle_swapped_out(path, tmp, hash, moved, out)?;
                            Self::forget_origin(tmp);
                            if settled == SwappedOut::Held {
                                return self.held_after_exchange(path, tmp, out);
                            }
                            let SwappedOut::Replaced { exec: replaced } = settled else {
                                break;
                            };
                            let bit = self.bit_over(job, replaced, exec);
                            carry_chmod(path, &placing, exec, bit);
                            return self.placed(job, staged, (hash, version), out);
                        }
                        Ok(false) => {
                            // No exchange here: move aside, then no-replace.
                            let aside = self.stage_name(path, "aside")?;
                            self.note_origin(&aside, path, None)?;
                            match fs::rename(&local, &aside) {
                                Ok(()) if !local.still_in(self.root, path)? => {
                                    // The user's file, in a directory moved
                                    // out of the folder: it stays there.
                                    rename_noreplace(&aside, &local)
                                        .map_err(io_err("move back into", &self.whole(path)))?;
                                    Self::forget_origin(&aside);
                                    return self.take_back_nothing(path, tmp, out);
                                }
                                Ok(()) => {
                                    let moved = vouched.take().map(Vouched::moved);
                                    let settled =
                                        self.settle_swapped_out(path, &aside, hash, moved, out)?;
                                    if settled == SwappedOut::Held {
                                        Self::forget_origin(&aside);
                                        return self.held_after_exchange(path, tmp, out);
                                    }
                                    if let SwappedOut::Replaced { exec: replaced } = settled {
                                        let bit = self.bit_over(job, replaced, exec);
                                        carry_chmod(path, &placing, exec, bit);
                                        exec = bit;
                                    }
                                }
                                Err(e)
                                    if e.kind() == io::ErrorKind::NotFound && !exists(&local) => {}
                                Err(e) => return Err(io_err("move", &self.whole(path))(e)),
                            }
                            Self::forget_origin(&aside);
                        }
                        // The local file went away meanwhile: look again.
                        Err(e) if e.kind() == io::ErrorKind::NotFound && exists(tmp) => {}
                        Err(e) => return Err(io_err("move into", &self.whole(path))(e)),
                    }
                }
            }
        }
        let _ = fs::remove_file(tmp);
        log::warn!("not writing {path}: something else keeps appearing there");
        out.dirty.insert(path.clone());
        // Not placed: the pull must be repeated, not acknowledged.
        out.failed = true;
        Ok(())
    }

    /// `path` in the folder through a handle on its directory
    /// ([`reach_held`]): a step through it lands in that directory, and
    /// [`Reach::still_in`] then says whether the directory is still the
    /// folder's.
    pub(super) fn held(&self, path: &WirePath) -> Reach {
        reach_held(self.root, path)
    }

    /// A download was placed at `local`, in a directory the user moved out
    /// of the folder between the walk to it and the rename: it is
    /// taken back (it is ours, and the server still has it), so nothing is
    /// written outside the folder; the pull is repeated, and by then the
    /// detector has seen the directory go, as if the move had come a
    /// moment before the placement. Only the file placed is taken back
    /// (`staged`: its identity before the rename, [`is_the_placed`]): a
    /// file written there since (in place, or renamed over it) is the
    /// user's and stays, also when it took the place between the look and
    /// the take-back (it is put back).
    fn take_back(
        &mut self,
        path: &WirePath,
        local: &Reach,
        tmp: &Path,
        staged: Option<Stat>,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        self.before_step(local);
        if !is_the_placed(staged, stat_of(local)) {
            log::warn!("{path}: written in the directory moved out of the folder since the download was placed there; it stays there");
            return self.take_back_nothing(path, tmp, out);
        }
        match rename_noreplace(local, tmp) {
            Ok(()) if !is_the_placed(staged, stat_of(tmp)) => {
                // Replaced between the look and the take-back: the user's.
                if let Err(e) = rename_noreplace(tmp, local) {
                    log::warn!(
                        "{path}: a file written in the directory moved out of the folder is kept at {} ({e})",
                        tmp.display()
                    );
                    out.failed = true;
                    return Ok(());
                }
            }
            Ok(()) => {}
            // Changed or removed there since: the user's now.
            Err(e) => log::warn!("{path}: could not take the download back from the directory moved out of the folder: {e}"),
        }
        self.take_back_nothing(path, tmp, out)
    }

    /// [`Self::take_back`] once nothing of the download is left outside
    /// the folder: `tmp` (the download, if it came back) is dropped and
    /// the pull repeated.
    fn take_back_nothing(
        &mut self,
        path: &WirePath,
        tmp: &Path,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let _ = fs::remove_file(tmp);
        log::info!(
            "not placing {path}: its directory was moved out of the folder meanwhile (the pull is repeated)"
        );
        out.failed = true;
        Ok(())
    }

    /// [`Self::take_back`] after an exchange: `tmp` holds the file the
    /// download replaced there, which goes back (exchanged again) to the
    /// directory moved out of the folder, where the user's move took it.
    /// Only while the download is what is at the path (`staged`, its
    /// identity before the exchange, [`is_the_placed`]): a file the user
    /// wrote there since (in place, or renamed over it) stays, also when
    /// it took the place between the look and the exchange back (exchanged
    /// again), and the replaced file goes back beside it
    /// ([`Self::put_back_out`]).
    fn swap_back_out(
        &mut self,
        path: &WirePath,
        local: &Reach,
        tmp: &Path,
        staged: Option<Stat>,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        self.before_step(local);
        if is_the_placed(staged, stat_of(local)) {
            match exchange(tmp, local) {
                Ok(true) if is_the_placed(staged, stat_of(tmp)) => {
                    Self::forget_origin(tmp);
                    return self.take_back_nothing(path, tmp, out);
                }
                // The user's file took the place between the look and the
                // exchange: it goes back; `tmp` holds the replaced file again.
                Ok(true) => {
                    if !matches!(exchange(tmp, local), Ok(true)) {
                        log::warn!(
                            "{path}: kept in the temporary area; put back at the next start"
                        );
                        out.failed = true;
                        return Ok(());
                    }
                }
                // No exchange here: the download stays; the replaced file
                // goes beside it.
                Ok(false) | Err(_) => {}
            }
        }
        self.put_back_out(path, local, tmp, out)
    }

    /// The file a download's exchange took out of a directory since moved
    /// out of the folder (at `tmp`) goes back there: to its path when that
    /// is free (the download went from there meanwhile), else beside what
    /// the user put there, under a free conflict-copy name of this device,
    /// so neither is lost. If it cannot, it stays in the temporary area
    /// with its note, and the next start puts it back at `path`.
    fn put_back_out(
        &mut self,
        path: &WirePath,
        local: &Reach,
        tmp: &Path,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let back = match rename_noreplace(tmp, local) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let mut move_to = |name: &WirePath| -> io::Result<bool> {
                    match rename_noreplace(tmp, &local.with_file_name(name.file_name())) {
                        Ok(()) => Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
                        Err(e) => Err(e),
                    }
                };
                match free_conflict_path(path, self.me, SystemTime::now(), &mut move_to) {
                    Ok(Some(kept)) => {
                        log::warn!(
                            "{path}: written in the directory moved out of the folder while the download was taken back; the file it replaced is beside it there as {}",
                            kept.file_name()
                        );
                        Ok(())
                    }
                    Ok(None) => Err(io::Error::other("no free conflict name")),
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        if let Err(e) = back {
            log::warn!("{path}: kept in the temporary area ({e}); put back at the next start");
            out.failed = true;
            return Ok(());
        }
        Self::forget_origin(tmp);
        self.take_back_nothing(path, tmp, out)
    }

    /// After an exchange, `at` holds what `path` held an instant ago. The
    /// synced version (or a copy of the new content) is deleted; a local edit
    /// becomes a conflict copy. Something that is not a regular file is
    /// swapped back ([`SwappedOut::Back`]: nothing was placed). The bit of a
    /// deleted file is returned: the new content's bit is decided again
    /// from it ([`Self::bit_over`]), because a chmod can land after any
    /// earlier look at the path ([`Self::placed_exec`]) and before the
    /// exchange. `moved`: the file was vouched for right before the exchange
    /// (vouch.rs); if it still is, it is the synced content without a read.
    fn settle_swapped_out(
        &mut self,
        path: &WirePath,
        at: &Path,
        new: ContentHash,
        mut moved: Option<Moved>,
        out: &mut Applied,
    ) -> Result<SwappedOut, ClientError> {
        if self.hook.is_some() {
            // A test's writer runs in this thread: it would wait on the lease.
            moved.iter_mut().for_each(Moved::let_go);
        }
        self.before_step(at);
        let meta = fs::symlink_metadata(at).map_err(io_err("stat", at))?;
        let regular = meta.file_type().is_file();
        let vouched = moved.as_ref().is_some_and(|m| m.synced(&Stat::of(&meta)));
        // Held (when leases work) until the file is deleted: no new writer.
        let lease = match regular {
            true => writers(at).unwrap_or(Writers::Unknown),
            false => Writers::Unknown,
        };
        let set_aside = match (regular, &lease) {
            (false, _) => SetAside::NotAFile,
            (true, Writers::Some) => SetAside::HeldOpen,
            (true, _) if moved.as_ref().is_some_and(Moved::broken) => SetAside::HeldOpen,
            (true, _) if vouched => SetAside::File(Content::Synced),
            (true, _) if self.synced_hash_at(path, Stat::of(&meta), at).is_some() => {
                SetAside::File(Content::Synced)
            }
            (true, _) if hash_file(at).is_ok_and(|(h, _)| h == new) => {
                SetAside::File(Content::Server)
            }
            (true, _) => SetAside::File(Content::Edited),
        };
        match on_swapped_out(set_aside) {
            OnSwappedOut::SwapBack => {
                drop(lease);
                self.swap_back(path, at)?;
                return Ok(match set_aside {
                    SetAside::HeldOpen => SwappedOut::Held,
                    _ => SwappedOut::Back,
                });
            }
            OnSwappedOut::Discard => {
                fs::remove_file(at).map_err(io_err("delete", at))?;
                drop(lease);
                drop(moved);
                let exec = Some(Stat::of(&meta).exec);
                return Ok(SwappedOut::Replaced { exec });
            }
            OnSwappedOut::ConflictCopy => {}
        }
        let kept = match self.conflict_copy_from(path, at) {
            Ok(kept) => kept,
            Err(e) => {
                // Never leave the user's file in the temporary area.
                self.swap_back(path, at)?;
                return Err(e);
            }
        };
        log::warn!("{path} changed while downloading; kept this device's version as {kept}");
        out.dirty.insert(kept);
        Ok(SwappedOut::Replaced { exec: None })
    }

    /// A program opened the file a download was exchanged with for writing
    /// (or held it open unseen): the file went back to its name
    /// ([`SwappedOut::Held`]), `tmp` holds the download again and is
    /// dropped; the path is listed as held back and the pull
    /// repeated.
    fn held_after_exchange(
        &mut self,
        path: &WirePath,
        tmp: &Path,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let _ = fs::remove_file(tmp);
        let found = crate::client::held_open::Found {
            own: true,
            companion: None,
        };
        log::info!(
            "{path}: a program opened it for writing as the server's version was placed; put back"
        );
        out.failures
            .insert(path.clone(), crate::client::held_open::why(path, &found));
        out.held_open.insert(path.clone());
        out.failed = true;
        Ok(())
    }

    /// Undoes an exchange (or a move aside): what is at `at` goes back to
    /// `path`, and what `path` holds now (the new content) goes to `at`.
    fn swap_back(&mut self, path: &WirePath, at: &Path) -> Result<(), ClientError> {
        let local = self.local(path);
        match exchange(at, &local) {
            Ok(true) => Ok(()),
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err("move back into", &local)(e))
            }
            // No exchange, or nothing at `path` any more: move it back.
            _ => rename_noreplace(at, &local).map_err(io_err("move back into", &local)),
        }
    }

    /// The bit a download appears with (§15.2): the server's, unless the
    /// file it replaces had its bit changed here and not pushed yet
    /// ([`ModeDecision::KeepLocal`], R-15.2.4: a content download does not
    /// undo a local chmod); from a server without modes, the bit of the
    /// file it replaces.
    fn placed_exec(&self, job: &FetchJob) -> Result<bool, ClientError> {
        let here = match check_path(self.root, &job.path)? {
            Local::File(stat) => Some(stat.exec),
            _ => None,
        };
        Ok(self.exec_over(job, here))
    }

    /// [`Self::placed_exec`]'s rule for a download replacing a local file
    /// whose bit is `here` (`None`: no regular file).
    fn exec_over(&self, job: &FetchJob, here: Option<bool>) -> bool {
        let Some(server) = job.exec else {
            return here.unwrap_or(false);
        };
        let indexed = indexed_exec(self.index.get(&job.path).copied());
        match on_pull_mode(indexed, here, server) {
            ModeDecision::KeepLocal => here.unwrap_or(server),
            ModeDecision::Agree | ModeDecision::Apply | ModeDecision::PushFirst => server,
        }
    }

    /// The bit a download placed with `placed` must have once the exchange
    /// took out a file whose bit was `replaced` (`None`: kept as a conflict
    /// copy, which keeps its own): decided again by [`Self::exec_over`] on
    /// the file actually replaced, so a chmod made here between the first
    /// look and the exchange is kept; a bit carried from a file
    /// the server moved ([`FetchJob::carried`]) stays.
    fn bit_over(&self, job: &FetchJob, replaced: Option<bool>, placed: bool) -> bool {
        match (job.carried, replaced) {
            (None, Some(here)) => self.exec_over(job, Some(here)),
            _ => placed,
        }
    }

    /// The bit changed here on a file the same reply deleted, whose content
    /// `job` brings to a path with nothing local (the server renamed the
    /// file): recorded in the job, so the moved file appears with it, the
    /// index records the server's, and the difference is pushed as a
    /// SetMode.
    pub(super) fn carry_mode(&mut self, mut job: FetchJob) -> Result<FetchJob, ClientError> {
        let Some(server) = job.exec else {
            return Ok(job);
        };
        let Some(&(_, bit)) = self.carried.get(&job.hash) else {
            return Ok(job);
        };
        if bit == server {
            self.carried.remove(&job.hash);
            return Ok(job);
        }
        if check_path(self.root, &job.path)? != Local::Absent {
            return Ok(job);
        }
        if let Some((from, bit)) = self.carried.remove(&job.hash) {
            log::info!(
                "the chmod {} of {from} follows it to {} (moved on the server)",
                if bit { "+x" } else { "-x" },
                job.path
            );
            job.carried = Some(bit);
        }
        Ok(job)
    }

    /// Removes the file at `path`, which was judged to be the synced version:
    /// it is moved into the temporary area first and judged again there, so a
    /// write made since the decision is never deleted. A file whose content
    /// the current reply wants elsewhere (`wanted`, a remote rename) is kept
    /// in the stash instead of deleted, and one whose chunks its delta
    /// downloads may use is kept as a donor ([`Self::keep_as_donor`],
    /// Returns false when the file turned out
    /// to be a local edit: it is back at `path`, or, if `path` was recreated
    /// meanwhile, a conflict copy beside it (in `out.dirty`); the caller
    /// decides what to do with `path`.
    ///
    /// # Errors
    /// Renaming or deleting.
    pub(super) fn remove_synced(
        &mut self,
        path: &WirePath,
        wanted: &HashSet<ContentHash>,
        out: &mut Applied,
    ) -> Result<bool, ClientError> {
        let local = self.held(path);
        let aside = self.stage_name(path, "aside")?;
        self.log_removal(path, &local)?;
        // The note, like the record, may take the spare on a full disk:
        // the removal it guards frees at least as much.
        let state = self.tmp.parent().unwrap_or(self.tmp);
        crate::client::spare::with_room(state, ClientError::is_no_space, || {
            self.note_origin(&aside, path, None)
        })?;
        self.before_step_at(path);
        pause_for_tests();
        match fs::rename(&local, &aside) {
            Ok(()) if !local.still_in(self.root, path)? => {
                // Taken from a directory moved out of the folder meanwhile:
                // the user's move took it along; it goes back there.
                rename_noreplace(&aside, &local)
                    .map_err(io_err("move back into", &self.whole(path)))?;
                Self::forget_origin(&aside);
                return Ok(true);
            }
            Ok(()) => {}
            // Gone already (not: the temporary area is missing).
            Err(e) if e.kind() == io::ErrorKind::NotFound && !exists(&local) => {
                Self::forget_origin(&aside);
                return Ok(true);
            }
            Err(e) => {
                Self::forget_origin(&aside);
                return Err(io_err("move", &self.whole(path))(e));
            }
        }
        let (settled, stashed) = self.settle_set_aside(path, &aside, wanted, out)?;
        // A stashed file keeps its note until it is placed or deleted: a
        // client killed meanwhile puts it back at `path` at its next start
        // (`recover_leftovers`), and the repeated pull renames it where the
        // server has it instead of downloading it again (breaker23 F2).
        if !stashed {
            Self::forget_origin(&aside);
            if let Some(dir) = aside.parent() {
                staging::tidy(dir);
            }
        }
        Ok(settled)
    }

    /// The rest of [`Self::remove_synced`], once the file is at `aside`:
    /// whether it was the synced version (deleted or kept), and whether it
    /// is kept in the stash.
    fn settle_set_aside(
        &mut self,
        path: &WirePath,
        aside: &Path,
        wanted: &HashSet<ContentHash>,
        out: &mut Applied,
    ) -> Result<(bool, bool), ClientError> {
        self.before_step(aside);
        let meta = fs::symlink_metadata(aside).map_err(io_err("stat", aside))?;
        let regular = meta.file_type().is_file();
        // Held (when leases work) until the file is deleted: no new writer.
        let lease = match regular {
            true => writers(aside).unwrap_or(Writers::Unknown),
            false => Writers::Unknown,
        };
        if matches!(lease, Writers::Some) {
            log::info!("kept {path}: a program has it open for writing");
        }
        let synced = (regular && !matches!(lease, Writers::Some))
            .then(|| self.synced_hash_at(path, Stat::of(&meta), aside))
            .flatten();
        let set_aside = match (regular, &lease, synced) {
            (false, _, _) => SetAside::NotAFile,
            (true, Writers::Some, _) => SetAside::HeldOpen,
            (true, _, Some(_)) => SetAside::File(Content::Synced),
            (true, _, None) => SetAside::File(Content::Edited),
        };
        let (OnRemove::Remove, Some(hash)) = (on_remove(set_aside), synced) else {
            if let Some(kept) = self.put_back(path, aside)? {
                out.dirty.insert(kept);
            }
            return Ok((false, false));
        };
        let stashed = self.stash.get(&hash).map_or(0, Vec::len);
        let stash =
            wanted.contains(&hash) && stashed < self.wanters.get(&hash).copied().unwrap_or(0);
        if stash {
            self.stash.entry(hash).or_default().push(Stashed {
                at: aside.to_path_buf(),
                from: path.clone(),
                stat: Stat::of(&meta),
            });
        } else if !self.keep_as_donor(path, hash, meta.len(), aside) {
            fs::remove_file(aside).map_err(io_err("delete", aside))?;
        }
        Ok((true, stash))
    }

    /// Returns a file moved aside to `path`, or, when `path` was taken in the
    /// meantime, to a conflict copy next to it (returned).
    pub(super) fn put_back(
        &mut self,
        path: &WirePath,
        aside: &Path,
    ) -> Result<Option<WirePath>, ClientError> {
        let local = self.local(path);
        match rename_noreplace(aside, &local) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let kept = self.conflict_copy_from(path, aside)?;
                log::warn!(
                    "{path} was recreated while being deleted; kept the edited one as {kept}"
                );
                Ok(Some(kept))
            }
            Err(e) => Err(io_err("move back into", &local)(e)),
        }
    }

    /// Renames the local `path` to a free conflict-copy name and returns it.
    pub(super) fn conflict_copy(&mut self, path: &WirePath) -> Result<WirePath, ClientError> {
        let local = self.local(path);
        self.conflict_copy_from(path, &local)
    }

    /// Moves the file at `from` (the local `path`, or where it was set aside)
    /// to a free conflict-copy name of `path`, never over anything: a name
    /// taken between the look and the move is skipped.
    ///
    /// # Errors
    /// [`ClientError::UnsafePath`] when no name is free; rename errors.
    pub(super) fn conflict_copy_from(
        &mut self,
        path: &WirePath,
        from: &Path,
    ) -> Result<WirePath, ClientError> {
        let me = self.me;
        // A name counts as taken if the move onto it finds it taken.
        let mut move_to = |name: &WirePath| -> Result<bool, ClientError> {
            if self.index.get(name).is_some() || check_path(self.root, name)? != Local::Absent {
                return Ok(true);
            }
            let to = self.local(name);
            self.before_step(&to);
            match rename_noreplace(from, &to) {
                Ok(()) => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
                Err(e) => Err(io_err("move", from)(e)),
            }
        };
        free_conflict_path(path, me, SystemTime::now(), &mut move_to)?
            .ok_or_else(|| ClientError::UnsafePath(format!("no free conflict name for {path}")))
    }
}
