//! Putting a push plan in an order the server can apply as meant.
//!
//! The server applies pushes one at a time, in arrival order, and judges each
//! against its tree *at that moment* (protocol-spec §5.4): a rename onto a
//! path that still exists is a Conflict, a rename below its own source is
//! Stale. So a plan is a set of operations with dependencies, sent in a
//! topological order:
//!
//! - **free before fill**: an operation that empties a path (rename source,
//!   Delete, RemoveDir) goes before one that fills that path, an ancestor's
//!   path turned into a directory, or a descendant's path turned into a file;
//! - **source before removal**: a rename goes before whatever removes an
//!   ancestor of its source (the source must still be there);
//! - **parents before children**: an operation that makes a directory goes
//!   before what is placed below it;
//! - a rename **below its own source** (`mv a t; mkdir a; mv t a/a`) and
//!   every **cycle** (swaps `a <-> b`, `mv d/x d` after `rm -r d`) go through
//!   a temporary name at the top of the folder (outside anything the plan
//!   removes): `from -> tmp` first, `tmp -> to` when its turn comes.
//!
//! Among operations free to go, removals (Delete, RemoveDir) go last and
//! the plan's original order is kept otherwise (Kahn's algorithm with a
//! min-heap on (removal, original position)): the server builds an upload
//! from the chunks of any file the user has (§13.3), so a file deleted in
//! the same round as an edited copy of it is uploaded from (`cp X Y; edit
//! Y; rm X`, `mv X Y` seen as a delete and an upload, a directory of such
//! files) must still be there when the copy goes, or the copy crosses
//! whole. Only the path rules below make a removal go earlier. A plan
//! without dependencies and without removals is sent exactly as planned.
//! Cost: O(n · depth · log n).

use super::ops::Op;
use crate::protocol::WirePath;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

/// The heap rank of a removal no other operation waits for: sent last.
const UNNEEDED_REMOVAL: u8 = 2;

/// Orders `ops` by their dependencies. `taken` says whether a path is in use
/// locally or on the server as far as this device knows (index or disk): a
/// temporary name is never one of them, nor any path of the plan.
pub fn order(ops: Vec<Op>, taken: &dyn Fn(&WirePath) -> bool) -> Vec<Op> {
    let mut namer = TempNames::new(&ops, taken);
    let mut nodes: Vec<Node> = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        match op {
            Op::Rename { from, to, base } if to.is_within(&from) && to != from => {
                // Below its own source: through a temporary name.
                let tmp = namer.next(&from);
                let first = nodes.len();
                nodes.push(Node::new(Op::Rename {
                    from: from.clone(),
                    to: tmp.clone(),
                    base,
                }));
                let mut second = Node::new(Op::Rename {
                    from: tmp,
                    to,
                    base,
                });
                second.after.push(first);
                nodes.push(second);
            }
            op => nodes.push(Node::new(op)),
        }
    }
    let mut graph = Graph::build(nodes);
    graph.sort(&mut namer)
}

/// One operation and what must be sent before it besides the path rules.
struct Node {
    op: Op,
    after: Vec<usize>,
}

impl Node {
    fn new(op: Op) -> Node {
        Node {
            op,
            after: Vec::new(),
        }
    }
}

/// The dependency graph: `next[u]` must wait for `u`.
struct Graph {
    ops: Vec<Option<Op>>,
    next: Vec<Vec<usize>>,
    waiting: Vec<usize>,
}

/// Operations by the path they free and the path they fill.
struct ByPath<'a> {
    frees: BTreeMap<&'a str, Vec<usize>>,
    fills: BTreeMap<&'a str, Vec<usize>>,
}

impl ByPath<'_> {
    fn at<'m>(map: &'m BTreeMap<&str, Vec<usize>>, path: &str) -> &'m [usize] {
        map.get(path).map_or(&[], Vec::as_slice)
    }

    /// Every operation of `map` at a path strictly below `path`.
    fn below<'m>(
        map: &'m BTreeMap<&str, Vec<usize>>,
        path: &WirePath,
    ) -> impl Iterator<Item = usize> + 'm {
        // Descendants sort between "path/" and "path0" ('0' follows '/').
        let lo = format!("{path}/");
        let hi = format!("{path}0");
        map.range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// Strict ancestors of `path`, nearest first.
fn ancestors(path: &WirePath) -> impl Iterator<Item = WirePath> {
    std::iter::successors(path.parent(), WirePath::parent)
}

impl Graph {
    fn build(nodes: Vec<Node>) -> Graph {
        let n = nodes.len();
        let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
        {
            let mut by = ByPath {
                frees: BTreeMap::new(),
                fills: BTreeMap::new(),
            };
            for (i, node) in nodes.iter().enumerate() {
                if let Some(p) = node.op.frees() {
                    by.frees.entry(p.as_str()).or_default().push(i);
                }
                if let Some(p) = node.op.occupies() {
                    by.fills.entry(p.as_str()).or_default().push(i);
                }
                for &u in &node.after {
                    edges.insert((u, i));
                }
            }
            for (v, node) in nodes.iter().enumerate() {
                dependencies(&by, v, &node.op, &mut edges);
            }
            // The halves of a move through a temporary name: the second
            // frees the name the first fills, which is no reason to wait.
            for (v, node) in nodes.iter().enumerate() {
                for &u in &node.after {
                    edges.remove(&(v, u));
                }
            }
        }
        let mut next = vec![Vec::new(); n];
        let mut waiting = vec![0; n];
        for (u, v) in edges {
            if u != v {
                next[u].push(v);
                waiting[v] += 1;
            }
        }
        Graph {
            ops: nodes.into_iter().map(|n| Some(n.op)).collect(),
            next,
            waiting,
        }
    }

    /// Kahn's algorithm; a stall (a cycle) is broken by sending one rename's
    /// first half through a temporary name.
    fn sort(&mut self, namer: &mut TempNames) -> Vec<Op> {
        let n = self.ops.len();
        let mut ready: BinaryHeap<Reverse<(u8, usize)>> = (0..n)
            .filter(|&i| self.waiting[i] == 0)
            .map(|i| Reverse(self.key(i)))
            .collect();
        let mut out = Vec::with_capacity(n + 1);
        let mut left = n;
        while left > 0 {
            // Nothing free, or only removals nobody waits for while other
            // operations wait: those are in a cycle, broken first.
            let stalled = ready
                .peek()
                .is_none_or(|Reverse((rank, _))| *rank == UNNEEDED_REMOVAL && left > ready.len());
            let breaker = if stalled { self.cycle_breaker() } else { None };
            if let Some(r) = breaker {
                let Some(Op::Rename { from, to, base }) = self.ops[r].take() else {
                    break;
                };
                let tmp = namer.next(&from);
                out.push(Op::Rename {
                    from,
                    to: tmp.clone(),
                    base,
                });
                // The source is out of the way: whatever waited for it may go.
                for v in std::mem::take(&mut self.next[r]) {
                    self.release(v, &mut ready);
                }
                self.ops[r] = Some(Op::Rename {
                    from: tmp,
                    to,
                    base,
                });
                continue;
            }
            let Some(Reverse((_, u))) = ready.pop() else {
                // Not expected (every cycle holds a rename): keep the
                // plan's order for the rest; the server then decides by
                // its rules, and nothing is lost.
                let rest = (0..n).filter(|&i| self.ops[i].is_some());
                out.extend(
                    rest.collect::<Vec<_>>()
                        .into_iter()
                        .filter_map(|i| self.ops[i].take()),
                );
                break;
            };
            let Some(op) = self.ops[u].take() else {
                continue;
            };
            out.push(op);
            left -= 1;
            for v in std::mem::take(&mut self.next[u]) {
                self.release(v, &mut ready);
            }
        }
        out
    }

    fn release(&mut self, v: usize, ready: &mut BinaryHeap<Reverse<(u8, usize)>>) {
        self.waiting[v] -= 1;
        if self.waiting[v] == 0 {
            ready.push(Reverse(self.key(v)));
        }
    }

    /// The heap's key of operation `i`: removals after everything else
    /// that is free to go (their files may be the chunk source of an
    /// upload of the round), those nothing waits for last; then the plan's
    /// order.
    fn key(&self, i: usize) -> (u8, usize) {
        let rank = match &self.ops[i] {
            Some(op) if op.removes() && self.next[i].is_empty() => UNNEEDED_REMOVAL,
            Some(op) if op.removes() => 1,
            _ => 0,
        };
        (rank, i)
    }

    /// The first waiting rename that others wait for (so moving it out of
    /// the way unblocks something; each break removes edges, so breaking
    /// ends) and whose move strands no other waiting rename's source.
    fn cycle_breaker(&self) -> Option<usize> {
        let renames: Vec<(usize, &WirePath)> = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match op {
                Some(Op::Rename { from, .. }) if !self.next[i].is_empty() => Some((i, from)),
                _ => None,
            })
            .collect();
        renames
            .iter()
            .find(|(i, from)| {
                !renames
                    .iter()
                    .any(|(j, other)| j != i && other.is_within(from))
            })
            .or(renames.first())
            .map(|(i, _)| *i)
    }
}

/// Adds the edges `u -> v` that operation `v` (at position `v`) needs.
fn dependencies(by: &ByPath, v: usize, op: &Op, edges: &mut BTreeSet<(usize, usize)>) {
    if let Some(fill) = op.occupies() {
        // Free before fill: the path itself and every ancestor (a file in
        // the way of a directory) ...
        for u in ByPath::at(&by.frees, fill.as_str()) {
            edges.insert((*u, v));
        }
        for up in ancestors(fill) {
            for u in ByPath::at(&by.frees, up.as_str()) {
                edges.insert((*u, v));
            }
            // Parents before children.
            for u in ByPath::at(&by.fills, up.as_str()) {
                edges.insert((*u, v));
            }
        }
        // ... and, for a file, what the directory it replaces held.
        if !matches!(op, Op::MakeDir { .. }) {
            for u in ByPath::below(&by.frees, fill) {
                edges.insert((u, v));
            }
        }
    }
    if let Op::Rename { from, .. } = op {
        // Source before removal: nothing may remove the source's ancestors
        // (or the source itself) before the rename moved it.
        for up in ancestors(from) {
            for w in ByPath::at(&by.frees, up.as_str()) {
                edges.insert((v, *w));
            }
        }
        for w in ByPath::at(&by.frees, from.as_str()) {
            edges.insert((v, *w));
        }
    }
}

/// Temporary names next to a source, unused locally, on the server as far
/// as known, and by the plan.
struct TempNames<'a> {
    used: BTreeSet<WirePath>,
    taken: &'a dyn Fn(&WirePath) -> bool,
    counter: u32,
}

impl<'a> TempNames<'a> {
    fn new(ops: &[Op], taken: &'a dyn Fn(&WirePath) -> bool) -> TempNames<'a> {
        let mut used = BTreeSet::new();
        for op in ops {
            used.extend(op.frees().cloned());
            used.extend(op.occupies().cloned());
        }
        TempNames {
            used,
            taken,
            counter: 0,
        }
    }

    /// `NAME.cs-move-HASH-N` at the top of the folder, HASH from the source's
    /// whole path: two devices moving different sources at once never pick
    /// the same name (they would take each other's move for a conflict).
    fn next(&mut self, from: &WirePath) -> WirePath {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        from.as_str().hash(&mut hasher);
        let tag = hasher.finish() as u32;
        loop {
            self.counter += 1;
            let text = format!("{}.cs-move-{tag:08x}-{}", from.file_name(), self.counter);
            // A name too long for the protocol: a short one.
            let candidate = WirePath::new(&text)
                .or_else(|_| WirePath::new(&format!(".cs-move-{tag:08x}-{}", self.counter)));
            if let Ok(path) = candidate {
                if !self.used.contains(&path) && !(self.taken)(&path) {
                    self.used.insert(path.clone());
                    return path;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
