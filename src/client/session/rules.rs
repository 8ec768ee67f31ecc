//! The session's side of `.cloudignore`: adopting the rules at start-up and
//! noticing that they changed while running, and making the index and the
//! next pull follow (ignored paths stay on the server; paths no longer
//! ignored come back).

use super::Session;
use crate::client::ignore::apply::{follow_rules, Followed};
use crate::client::ignore::source::{applied_digest, save_applied, RuleSource};
use crate::client::index::Index;
use crate::client::state::StateDir;
use std::path::Path;
use std::time::Instant;

/// Reads `.cloudignore` at start-up; when the rules differ from those the
/// index was last trimmed with (edited while the client was not running),
/// makes the index follow them ([`follow_rules`]) and rewinds the cursor so the next pull is a full listing
/// (paths no longer ignored come back from the server).
pub(super) fn adopt_rules(root: &Path, state: &StateDir, index: &mut Index) -> RuleSource {
    let source = RuleSource::load(root);
    if applied_digest(state.path()).as_deref() != Some(source.digest()) {
        log_followed(follow_rules(index, source.rules()));
        if index.cursor() > 0 {
            index.set_cursor(0);
        }
        // The trimmed index first: the record must never claim more than it.
        if let Err(e) = index.save(&state.index_file()) {
            log::warn!("{e}");
        } else if let Err(e) = save_applied(state.path(), source.digest()) {
            log::warn!("cannot record the ignore rules: {e}");
        }
    }
    source
}

/// Says what a change of the rules did to the index.
fn log_followed(followed: Followed) {
    if followed.held > 0 {
        log::info!(
            "{} indexed path(s) are ignored now; they stay on the server",
            followed.held
        );
    }
    if followed.released > 0 {
        log::info!(
            "{} path(s) are no longer ignored; changes made to them meanwhile are pushed",
            followed.released
        );
    }
}

impl Session<'_> {
    /// Re-reads `.cloudignore` if it changed (`force`: whatever its stat
    /// says). New rules: the scanner uses them, ignored paths leave the index
    /// as held bases (they stay on the server), paths no longer ignored come
    /// back from theirs, the cursor goes back to a full listing (so
    /// paths no longer ignored are pulled), and the whole folder is compared.
    pub(super) fn refresh_rules(&mut self, force: bool) {
        if !self.rules.refresh(force) {
            return;
        }
        log::info!("ignore rules changed; comparing the folder again");
        self.scanner.set_rules(self.rules.rules().clone());
        if let Some(watcher) = self.watcher.as_mut() {
            // Ignored directories lose their watches, un-ignored ones get theirs.
            if let Err(e) = watcher.set_rules(self.rules.rules()) {
                log::warn!("{e}; falling back to a full rescan at every pull");
                self.watcher = None;
            }
        }
        log_followed(follow_rules(&mut self.index, self.rules.rules()));
        self.rewind_cursor(0);
        self.pull.wanted = true;
        self.push.unknown = true;
        self.mark_all(Instant::now());
        if let Err(e) = self.index.save(&self.state.index_file()) {
            log::error!("{e}");
        }
        if let Err(e) = save_applied(self.state.path(), self.rules.digest()) {
            log::warn!("cannot record the ignore rules: {e}");
        }
    }
}
