//! One look: the disk within a scope against the index, turned into the
//! pushes that reproduce it on the server, in sending order. Directory
//! renames go first and alone; otherwise files are planned, moves not fully
//! seen yet are held back (never sent as a Delete), and the rest is ordered
//! by [`plan::order`]. The decisions themselves are pure ([`plan`]); this
//! file gathers what they decide on.

use super::{unsyncable, Plan, Scanner, Scope};
use crate::client::error::ClientError;
use crate::client::fsutil::Stat;
use crate::client::ignore::apply::drop_ignored_only_dirs;
use crate::client::index::{Entry, EntryKind, Index};
use crate::client::plan::{self, DiskEntry};
use crate::client::printable::escape_controls;
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

impl Scanner {
    /// Compares `scope` with `index` and plans the pushes, in the order
    /// they must be sent ([`plan::order`]).
    ///
    /// # Errors
    /// As [`Scanner::scan`].
    pub fn plan(&mut self, index: &Index, scope: &Scope) -> Result<Plan, ClientError> {
        let started = Instant::now();
        self.manifests.clear();
        self.kept_chunks = 0;
        let scope = &scope.with_other_links(index, &self.root);
        let roots = scope.roots(index);
        let before: BTreeMap<PathBuf, String> = self
            .skipped
            .extract_if(.., |p, _| covered(&roots, p))
            .collect();
        let (mut disk, mut known) = self.snapshot(index, scope)?;
        // A file here that the index has at a path outside this look (one
        // step of a swap or cycle reported apart from the others): that
        // path's directory is compared too, so the move pairs as a whole
        // not as an upload here and a Delete there.
        let elsewhere = elsewhere(&disk, &known, index, &roots);
        let wide;
        let scope = if elsewhere.is_empty() {
            scope
        } else {
            let mut wider = scope.clone();
            for path in elsewhere {
                wider.add_metadata(path);
            }
            wide = wider;
            (disk, known) = self.snapshot(index, &wide)?;
            &wide
        };
        // Files moved to a path the protocol cannot carry: their old
        // paths stay, listed as not synced.
        let held = self.hold_stranded(&disk, &known);
        known.retain(|p, _| !held.holds(p));
        for (path, why) in held.listed {
            self.skip(&path, why);
        }
        let mut plan = Plan::default();
        let (mut deleted_dirs, mut added_dirs) = plan::dir_changes(&disk, &known);
        let renames = plan::dir_renames(&disk, &known, &deleted_dirs, &added_dirs);
        let ops = if renames.is_empty() {
            let mut uploads = self.plan_files(&disk, &known, scope, &mut plan);
            let roots = scope.roots(index);
            let unstable: HashSet<&WirePath> = plan.unstable.iter().collect();
            self.settle
                .retain(|p| unstable.contains(p) || !Scope::covers(&roots, p));
            // A vanished file whose inode is at a file not read yet is that
            // file moved: compared again with it, never pushed as a Delete
            // now (R-7.2.4, breaker23 F4).
            let unsettled: Vec<(WirePath, Stat)> = plan
                .unstable
                .iter()
                .filter_map(|p| match disk.get(p) {
                    Some(DiskEntry::File(stat)) => Some((p.clone(), *stat)),
                    _ => None,
                })
                .chain(self.settle.watched())
                .collect();
            let wait = plan::wait_for_moves(&disk, &known, &deleted_dirs, &unsettled);
            if let Some(first) = wait.vanished.first() {
                log::debug!(
                    "{first} gone, its file moved to a path not read yet: looked at again with it"
                );
                known.retain(|p, _| !wait.holds(p));
                deleted_dirs.retain(|d| !wait.holds(d));
                added_dirs.retain(|d| !wait.holds(d));
                uploads.retain(|op| !wait.holds(op.path()));
                let again = wait.vanished.into_iter().chain(wait.moved_to);
                let again: BTreeSet<WirePath> = again.chain(plan.unstable.drain(..)).collect();
                plan.unstable.extend(again);
            }
            // A file moved out through an ignored name, with more steps
            // to come: looked at again, not a Delete now.
            let covers = |p: &WirePath| Scope::covers(&roots, p);
            let now = Instant::now();
            let rules = &self.rules;
            let ignored = |p: &WirePath| rules.ignores(p.as_str(), false);
            let moves = &mut self.ignored_moves;
            let held = moves.hold(&self.root, &disk, &known, ignored, covers, now);
            if let Some(first) = held.first() {
                log::debug!("{first}'s file is at an ignored name: looked at again later");
                known.retain(|p, _| !held.contains(p));
                uploads.retain(|op| !held.contains(op.path()));
                plan.unstable.extend(held);
            }
            plan::file_changes(&disk, &known, &deleted_dirs, added_dirs, uploads)
        } else {
            plan.renames_only = true;
            // Files were not looked at: what was known of them stays
            // (but which moved files are stranded was decided above).
            let stranded = |why: &String| why.starts_with(plan::stranded::MOVED);
            for (path, why) in before.iter().filter(|(_, why)| !stranded(why)) {
                self.skipped
                    .entry(path.clone())
                    .or_insert_with(|| why.clone());
            }
            renames
        };
        self.forget_fixed(before);
        let root = &self.root;
        let taken = |p: &WirePath| {
            index.get(p).is_some()
                || disk.contains_key(p)
                || p.to_local(root).symlink_metadata().is_ok()
        };
        plan.ops = plan::order(ops, &taken);
        if scope.full {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            log::debug!("compared {} paths with the index in {ms:.1} ms", disk.len());
        }
        Ok(plan)
    }

    /// Paths skipped before this plan and not now: syncable again (or
    /// gone), so a later problem with them is warned about again.
    pub(super) fn forget_fixed(&mut self, before: BTreeMap<PathBuf, String>) {
        for (path, why) in before {
            if !self.skipped.contains_key(&path) {
                let shown = escape_controls(&unsyncable::shown(&path)).into_owned();
                log::info!("{shown} can be synced again (was: {why})");
                self.warned.remove(&self.root.join(&path));
            }
        }
    }

    /// The disk and the index within `scope`, without what could not be read
    /// (never read "could not look" as "deleted").
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &mut self,
        index: &Index,
        scope: &Scope,
    ) -> Result<(BTreeMap<WirePath, DiskEntry>, BTreeMap<WirePath, Entry>), ClientError> {
        let mut disk = BTreeMap::new();
        let mut known: BTreeMap<WirePath, Entry> = BTreeMap::new();
        self.unreadable.clear();
        self.holds_ignored.clear();
        self.ignored_moves.clear_walk();
        for root in scope.roots(index) {
            disk.extend(self.scan(root.as_ref())?);
            known.extend(index.subtree(root.as_ref()).map(|(k, v)| (k.clone(), *v)));
        }
        // An ignored path is never pushed: what the index still lists there
        // (a rule added since) is left alone on the server, not deleted.
        known.retain(|p, e| !self.rules.ignores(p.as_str(), e.kind == EntryKind::Dir));
        drop_ignored_only_dirs(&mut disk, &known, std::mem::take(&mut self.holds_ignored));
        for blind in &self.unreadable {
            known.retain(|p, _| !p.is_within(blind));
            disk.retain(|p, _| !p.is_within(blind));
        }
        Ok((disk, known))
    }
}

/// Whether a look with `roots` walks the skipped entry at `rel`: the
/// entry's own path, or for a name the protocol cannot carry the directory
/// it is found in (the nearest part of `rel` that is a [`WirePath`]; none:
/// only a look at the whole folder).
fn covered(roots: &[Option<WirePath>], rel: &Path) -> bool {
    let wire = rel
        .ancestors()
        .find_map(|part| part.to_str().and_then(|s| WirePath::new(s).ok()));
    match wire {
        Some(wire) => Scope::covers(roots, &wire),
        None => roots.iter().any(Option::is_none),
    }
}

/// Most paths [`elsewhere`] adds to a look.
const MAX_ELSEWHERE: usize = 1_000;

/// The directories (a top-level file: itself) of the indexed paths outside
/// `roots` whose file (device and inode) is at a path of `disk` the index
/// has no such file at: the other ends of moves of which this look saw
/// only one.
fn elsewhere(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    index: &Index,
    roots: &[Option<WirePath>],
) -> BTreeSet<WirePath> {
    let mut out = BTreeSet::new();
    for (path, entry) in disk {
        let DiskEntry::File(now) = entry else {
            continue;
        };
        let same = match known.get(path).map(|e| e.kind) {
            Some(EntryKind::File { stat, .. }) => !stat.other_file(now),
            _ => false,
        };
        if same || now.ino == 0 {
            continue;
        }
        for other in index.paths_of_inode(now.dev, now.ino) {
            if !Scope::covers(roots, other) && out.len() < MAX_ELSEWHERE {
                out.insert(other.parent().unwrap_or_else(|| other.clone()));
            }
        }
    }
    out
}
