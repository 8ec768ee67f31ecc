//! Polling with deadlines instead of sleeps: [`eventually`] for any
//! condition, [`converge`] / [`converge_stable`] for folders that must end
//! up holding the same tree (compared by content).

use super::tree::{tree, tree_diff, Tree};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long an end-to-end convergence may take before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// Polls `check` every 5 ms (so a test can act the moment it holds, e.g.
/// kill a server mid-upload) until it returns true (→ true) or `limit`
/// passes (→ false). Checks should be cheap.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to [`CONVERGE`]) until every folder holds the same tree as
/// the first; returns it, or panics with `what` and how the trees differ.
pub fn converge(what: &str, folders: &[&Path]) -> Tree {
    converge_stable(folders, CONVERGE, Duration::ZERO)
        .unwrap_or_else(|diff| panic!("{what}: trees did not converge.\n{diff}"))
}

/// Waits until every folder holds the same tree and it has stayed the same
/// for `stable`; returns it, or `Err` with the last differences (one line
/// per entry) after `limit`. Polls every `stable / 5`, between 50 and 200 ms
/// (reading large trees costs CPU).
pub fn converge_stable(
    folders: &[&Path],
    limit: Duration,
    stable: Duration,
) -> Result<Tree, String> {
    let deadline = Instant::now() + limit;
    let poll = (stable / 5).clamp(Duration::from_millis(50), Duration::from_millis(200));
    let mut agreed: Option<(Instant, Tree)> = None;
    loop {
        let trees: Vec<Tree> = folders.iter().map(|f| tree(f)).collect();
        if trees.iter().all(|t| *t == trees[0]) {
            if agreed.as_ref().is_none_or(|(_, t)| *t != trees[0]) {
                agreed = Some((Instant::now(), trees[0].clone()));
            }
            if agreed
                .as_ref()
                .is_some_and(|(since, _)| since.elapsed() >= stable)
            {
                return Ok(trees[0].clone());
            }
        } else {
            agreed = None;
        }
        if Instant::now() >= deadline {
            let mut why = String::new();
            for (i, t) in trees.iter().enumerate().skip(1) {
                if *t != trees[0] {
                    why.push_str(&format!(
                        "{} vs {}:\n{}",
                        folders[0].display(),
                        folders[i].display(),
                        tree_diff(&trees[0], t)
                    ));
                }
            }
            return Err(why);
        }
        std::thread::sleep(poll);
    }
}
